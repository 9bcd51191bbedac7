"""PHP runtimes that outlive a run: one local service per machine and data dir, on a Unix socket.

Booting the seven PHP-as-WebAssembly runtimes costs 2.6-4.7 s of CPU, and in production every run is
a process of its own (DefaultRunLauncher), so every run paid it. The service keeps one booted runtime
per PHP version (php.WasmPhp, the same runtimes a run would boot) and answers lint and run requests
from any process of the same user:

    python -m psp_assets.core.runtimes.php_service start [--idle 900] [--watch-pid PID]   # detached, waits until up
    python -m psp_assets.core.runtimes.php_service status | stop | serve

Who starts it: whoever runs the Dagster daemon, next to it (`--watch-pid <daemon pid>`: it stops with
the daemon), or the first run that needs PHP when PSP_PHP_SERVICE=auto. It always stops by itself after
`--idle` seconds without a request (PSP_PHP_SERVICE_IDLE_SECONDS, default 900), so it never lingers.

`ServicePhp` is the client, a PhpRuntime like WasmPhp. PSP_PHP_SERVICE picks how runs use it: `off`
(in-process runtimes only), `connect` (default: the service when it is running, else in-process boots)
or `auto` (start it on first use). Its failure never passes a plugin that would fail: a reply that is
not exactly an answer to this request (wrong id or nonce, another PHP version, results for other files,
missing fields, not JSON, the connection dropped, no service) is a protocol error, and the request is
run again in this process, from the start, on a runtime of our own (`fallbacks` counts them).

The socket is `<data dir>/run/php-<key>.sock` (a short path under the temp dir when that is too long for
a Unix socket), in a folder only this user can open, and the service answers only peers of its own
uid. `<key>` is a hash of the project's code, node_modules and the Node flags: a service started by
other code never answers this code.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import resource
import secrets
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from psp_assets.core.errors import PspError
from psp_assets.core.runtimes import check_cache
from psp_assets.core.runtimes.php import (
    LintResult,
    PhpRuntime,
    PhpRuntimes,
    PhpUnavailable,
    RunResult,
    WasmPhp,
    binary_stamp,
    cached_lint,
    node_modules_dir,
    require_wasm_package,
    wasm_identity,
)

SERVICE_ENV = "PSP_PHP_SERVICE"
IDLE_ENV = "PSP_PHP_SERVICE_IDLE_SECONDS"
MODES = ("off", "connect", "auto")
DEFAULT_IDLE_SECONDS = 900.0
PROTOCOL = 1
MAX_LINE = 64 * 1024 * 1024  # a run's stdout can be large (the contract harness's document)
BOOT_ALLOWANCE = 150.0  # seconds a request may wait for the service to boot a cold runtime


class ServiceError(PspError):
    """The runtime service is absent or did not answer this request properly: the caller falls back."""


def mode(value: str | None = None) -> str:
    """`value`, else $PSP_PHP_SERVICE, else `connect`: one of off, connect, auto."""
    chosen = (value or os.environ.get(SERVICE_ENV) or "connect").strip().lower()
    if chosen not in MODES:
        raise PspError(f"{SERVICE_ENV}={chosen!r}: must be one of {', '.join(MODES)}")
    return chosen


def service_key() -> str:
    """The code, node_modules, Node and its flags a service runs with: a client only talks to its twin."""
    node = os.environ.get("PSP_NODE_BINARY") or "node"
    flags = os.environ.get("PSP_WASM_NODE_FLAGS", "--liftoff-only")
    text = json.dumps([PROTOCOL, check_cache.code_digest(), str(node_modules_dir()), binary_stamp(_which(node)), flags])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _which(binary: str) -> str:
    import shutil

    return shutil.which(binary) or binary


def socket_path(data_dir: Path | None = None) -> Path:
    data = Path(data_dir).resolve() if data_dir is not None else check_cache.data_dir_from_env()
    path = data / "run" / f"php-{service_key()}.sock"
    if len(str(path).encode()) > 100:  # sun_path holds 108 bytes
        short = hashlib.sha256(str(data).encode()).hexdigest()[:12]
        path = Path(tempfile.gettempdir()) / f"psp-php-{os.getuid()}" / f"{short}-{service_key()}.sock"
    return path


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


# --- the service ------------------------------------------------------------------------------------


class RuntimeService:
    """The server: one PhpRuntimes pool of WasmPhp, one thread per connection, JSON lines."""

    def __init__(self, path: Path, idle_seconds: float, watch_pid: int | None = None) -> None:
        self.path = path
        self.idle_seconds = idle_seconds
        self.watch_pid = watch_pid
        self.pool = PhpRuntimes(WasmPhp)
        self.requests = 0
        self.started = time.time()
        self._active = 0
        self._last = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def serve(self) -> None:
        _private_dir(self.path.parent)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a stale socket of a dead service (start() holds the lock)
        server.bind(str(self.path))
        os.chmod(self.path, 0o600)
        inode = os.stat(self.path).st_ino
        server.listen(64)
        server.settimeout(0.5)
        try:
            while not self._should_stop():
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    continue
                threading.Thread(target=self._connection, args=(conn,), daemon=True).start()
        finally:
            server.close()
            with contextlib.suppress(OSError):
                if os.stat(self.path).st_ino == inode:  # never remove a successor's socket
                    self.path.unlink()
            self.pool.close()

    def _should_stop(self) -> bool:
        if self._stop.is_set():
            return True
        if self.watch_pid is not None and not _alive(self.watch_pid):
            return True
        with self._lock:
            return self._active == 0 and time.monotonic() - self._last > self.idle_seconds

    def _connection(self, conn: socket.socket) -> None:
        with conn:
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _pid, uid, _gid = struct.unpack("3i", creds)
            if uid != os.getuid():
                return  # another user's process: no answer at all
            stream = conn.makefile("rwb")
            for line in stream:
                with self._lock:
                    self._active += 1
                    self.requests += 1
                try:
                    reply = self._answer(line)
                finally:
                    with self._lock:
                        self._active -= 1
                        self._last = time.monotonic()
                try:
                    stream.write(json.dumps(reply).encode() + b"\n")
                    stream.flush()
                except OSError:
                    return

    def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            head = {"id": request["id"], "nonce": request["nonce"], "protocol": PROTOCOL}
        except (ValueError, KeyError, TypeError):
            return {"ok": False, "error": "not a request"}
        try:
            return head | self._serve(request)
        except subprocess.TimeoutExpired:
            return head | {"ok": False, "timeout": True}
        except (PhpUnavailable, OSError, KeyError, TypeError, ValueError) as exc:
            return head | {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

    def _serve(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request["op"]
        if op == "ping":
            return {"ok": True, "pid": os.getpid(), "key": service_key(), "versions": self.pool.versions}
        if op == "stats":
            return {"ok": True, "pid": os.getpid(), "requests": self.requests, "boots": dict(self.pool.boots())}
        if op == "cpu":
            return {"ok": True, "cpu_s": self.cpu_seconds()}
        if op == "stop":
            self._stop.set()
            return {"ok": True}
        if op == "warm":
            versions = [str(v) for v in request["versions"]]
            with ThreadPoolExecutor(max_workers=max(1, min(len(versions), os.cpu_count() or 1))) as pool:
                list(pool.map(self.pool.get, versions))
            return {"ok": True, "versions": self.pool.versions}
        runtime = self.pool.get(str(request["version"]))
        php = {"php": runtime.full_version}  # type: ignore[attr-defined]
        if op == "lint":
            results = runtime.lint_uncached(Path(request["root"]), [str(f) for f in request["files"]])  # type: ignore[attr-defined]
            return {"ok": True, **php, "results": [{"path": r.path, "ok": r.ok, "message": r.message} for r in results]}
        if op == "run":
            script, cwd = Path(request["script"]), Path(request["cwd"])
            done = runtime.run(script, [str(a) for a in request["args"]], cwd, float(request["timeout"]))
            return {"ok": True, **php, "returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
        return {"ok": False, "error": f"unknown op {op!r}"}

    def cpu_seconds(self) -> float:
        """CPU of this process, its finished children and its live PHP runtimes."""
        own = resource.getrusage(resource.RUSAGE_SELF)
        gone = resource.getrusage(resource.RUSAGE_CHILDREN)
        total = own.ru_utime + own.ru_stime + gone.ru_utime + gone.ru_stime
        tick = os.sysconf("SC_CLK_TCK")
        for version in self.pool.versions:
            proc = getattr(self.pool.get(version), "_proc", None)
            if proc is None:
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
        return round(total, 3)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- the client -------------------------------------------------------------------------------------


class ServiceClient:
    """Requests to the service at `path`: one connection per request, so threads go side by side."""

    def __init__(self, path: Path, autostart: bool = False) -> None:
        self.path = path
        self.autostart = autostart
        self._next = 0
        self._lock = threading.Lock()
        self._start_tried = 0.0

    def request(self, op: str, wait: float, **fields: Any) -> dict[str, Any]:
        """The service's reply to this request, checked to be one; ServiceError for anything else."""
        with self._lock:
            self._next += 1
            ident = self._next
        nonce = secrets.token_hex(8)
        message = json.dumps({"id": ident, "nonce": nonce, "op": op, **fields}).encode() + b"\n"
        try:
            conn = self._connect()
        except OSError as exc:
            raise ServiceError(f"no PHP runtime service at {self.path}: {exc}") from None
        try:
            with conn:
                conn.settimeout(wait)
                conn.sendall(message)
                line = _read_line(conn)
        except OSError as exc:
            raise ServiceError(f"PHP runtime service: connection lost ({type(exc).__name__}: {exc})") from None
        try:
            reply = json.loads(line)
        except ValueError:
            raise ServiceError(f"PHP runtime service: not JSON: {line[:200]!r}") from None
        if not isinstance(reply, dict) or reply.get("id") != ident or reply.get("nonce") != nonce:
            raise ServiceError("PHP runtime service: the reply is not the answer to this request")
        if reply.get("protocol") != PROTOCOL:
            raise ServiceError(f"PHP runtime service: protocol {reply.get('protocol')!r}, expected {PROTOCOL}")
        return reply

    def _connect(self) -> socket.socket:
        try:
            return _dial(self.path)
        except OSError:
            if not self.autostart or time.monotonic() - self._start_tried < 30:
                raise
            self._start_tried = time.monotonic()
            start(self.path)
            return _dial(self.path)


def _dial(path: Path) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.settimeout(5)
        conn.connect(str(path))
    except OSError:
        conn.close()
        raise
    return conn


def _read_line(conn: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = conn.recv(1 << 16)
        if not chunk:
            raise ConnectionResetError("the service closed the connection before it answered")
        end = chunk.find(b"\n")
        if end >= 0:
            chunks.append(chunk[:end])
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_LINE:
            raise ConnectionAbortedError("reply line too long")


class ServicePhp:
    """PHP `version` served by the runtime service; on any protocol error the same request runs again
    in this process on a WasmPhp of our own (booted on the first fallback, counted in `boots`)."""

    def __init__(self, version: str, client: ServiceClient, fallback: Callable[[str], PhpRuntime] | None = None):
        require_wasm_package(version)  # an unknown version fails here, as WasmPhp(version) would
        self.version = version
        self.identity = wasm_identity(version)
        self.client = client
        self._full_version = ""
        self.served = 0
        self.fallbacks = 0
        self.last_error = ""
        self._fallback_factory = fallback or WasmPhp
        self._fallback: PhpRuntime | None = None
        self._lock = threading.Lock()

    @property
    def full_version(self) -> str:
        """The PHP that answered last: the service's, or ours after a fallback."""
        return self._full_version or str(getattr(self._fallback, "full_version", ""))

    @property
    def boots(self) -> int:
        return int(getattr(self._fallback, "boots", 0))

    @property
    def boot_seconds(self) -> float:
        return float(getattr(self._fallback, "boot_seconds", 0.0))

    def local(self) -> PhpRuntime:
        with self._lock:
            if self._fallback is None:
                self._fallback = self._fallback_factory(self.version)
            return self._fallback

    def _fall_back(self, error: Exception) -> PhpRuntime:
        with self._lock:
            self.fallbacks += 1
            self.last_error = f"{type(error).__name__}: {error}"
        return self.local()

    def _ask(self, op: str, wait: float, **fields: Any) -> dict[str, Any]:
        reply = self.client.request(op, wait + BOOT_ALLOWANCE, version=self.version, **fields)
        if reply.get("timeout") is True and reply.get("ok") is False:
            return reply
        php = reply.get("php")
        if reply.get("ok") is not True or not isinstance(php, str) or not php.startswith(self.version + "."):
            raise ServiceError(f"PHP runtime service could not {op} on PHP {self.version}: {reply.get('error', php)}")
        self._full_version = php
        return reply

    def lint(self, root: Path, files: Iterable[str]) -> list[LintResult]:
        return cached_lint(self.identity, root, files, self.lint_uncached)

    def lint_uncached(self, root: Path, files: Iterable[str]) -> list[LintResult]:
        files = sorted(files)
        if not files:
            return []
        try:
            reply = self._ask("lint", 60 + len(files), root=str(Path(root).resolve()), files=files)
            results = _lint_results(reply, files)
        except Exception as exc:  # anything but a proper answer: this process lints them again
            return _uncached(self._fall_back(exc), root, files)
        self.served += 1
        return results

    def run(self, script: Path, args: list[str], cwd: Path, timeout: float = 60) -> RunResult:
        request = {
            "script": str(Path(script).resolve()),
            "args": [str(a) for a in args],
            "cwd": str(Path(cwd).resolve()),
            "timeout": timeout,
        }
        try:
            reply = self._ask("run", timeout, **request)
            if reply.get("timeout") is True:
                raise subprocess.TimeoutExpired([f"php{self.version}.wasm", str(script)], timeout)
            result = _run_result(reply)
        except subprocess.TimeoutExpired:
            raise  # the service's runtime ran out of time on this script, as ours would
        except Exception as exc:  # anything but a proper answer: this process runs it again
            return self._fall_back(exc).run(script, args, cwd, timeout)
        self.served += 1
        return result

    def close(self) -> None:
        with self._lock:
            runtime, self._fallback = self._fallback, None
        close = getattr(runtime, "close", None)
        if close is not None:
            close()


def _uncached(runtime: PhpRuntime, root: Path, files: list[str]) -> list[LintResult]:
    return getattr(runtime, "lint_uncached", runtime.lint)(root, files)


def _lint_results(reply: dict[str, Any], files: list[str]) -> list[LintResult]:
    rows = reply.get("results")
    if not isinstance(rows, list):
        raise ServiceError("PHP runtime service: lint reply without results")
    out = []
    for row in rows:
        if not (
            isinstance(row, dict)
            and isinstance(row.get("path"), str)
            and isinstance(row.get("ok"), bool)
            and isinstance(row.get("message"), str)
        ):
            raise ServiceError(f"PHP runtime service: malformed lint result {str(row)[:200]}")
        out.append(LintResult(row["path"], row["ok"], row["message"]))
    if sorted(r.path for r in out) != sorted(files):
        raise ServiceError("PHP runtime service: lint results are not for the files asked")
    return sorted(out, key=lambda r: r.path)


def _run_result(reply: dict[str, Any]) -> RunResult:
    code, out, err = reply.get("returncode"), reply.get("stdout"), reply.get("stderr")
    if not (isinstance(code, int) and not isinstance(code, bool) and isinstance(out, str) and isinstance(err, str)):
        raise ServiceError("PHP runtime service: malformed run reply")
    return RunResult(code, out, err)


class ServiceRuntimes:
    """A PhpRuntimes factory: ServicePhp per version, all sharing one client; `fallback` makes the
    in-process runtime of a version (default: a WasmPhp of each ServicePhp's own)."""

    identity_for = staticmethod(wasm_identity)

    def __init__(self, client: ServiceClient, fallback: Callable[[str], PhpRuntime] | None = None) -> None:
        self.client = client
        self.fallback = fallback

    def __call__(self, version: str) -> PhpRuntime:
        return ServicePhp(version, self.client, self.fallback)


def service_runtimes(data_dir: Path | None = None, autostart: bool | None = None) -> PhpRuntimes:
    """A pool whose runtimes are the service's (in-process boots when it is absent)."""
    auto = mode() == "auto" if autostart is None else autostart
    return PhpRuntimes(ServiceRuntimes(ServiceClient(socket_path(data_dir), autostart=auto)))


# --- starting and stopping ----------------------------------------------------------------------------


def ping(path: Path, timeout: float = 5) -> dict[str, Any] | None:
    try:
        return ServiceClient(path).request("ping", timeout)
    except ServiceError:
        return None


def start(
    path: Path | None = None, idle_seconds: float | None = None, watch_pid: int | None = None, wait: float = 30
) -> int:
    """Start the service for `path` (default: this environment's) detached, unless one answers there;
    returns its pid once it answers. Two callers at once start one service (a lock file)."""
    path = path or socket_path()
    _private_dir(path.parent)
    idle = idle_seconds if idle_seconds is not None else float(os.environ.get(IDLE_ENV, DEFAULT_IDLE_SECONDS))
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = ping(path)
        if found is not None:
            return int(found["pid"])
        command = [sys.executable, "-m", "psp_assets.core.runtimes.php_service", "serve", "--socket", str(path)]
        command += ["--idle", str(idle)] + (["--watch-pid", str(watch_pid)] if watch_pid else [])
        with open(path.with_suffix(".log"), "ab") as log:
            proc = subprocess.Popen(
                command,
                cwd=check_cache.PACKAGE_DIR.parent,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # not in the caller's process group: it outlives the run
            )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            found = ping(path, timeout=2)
            if found is not None:
                return int(found["pid"])
            if proc.poll() is not None:
                log_file = path.with_suffix(".log")
                raise PspError(f"the PHP runtime service exited at start ({proc.returncode}); see {log_file}")
            time.sleep(0.05)
        proc.kill()
        raise PspError(f"the PHP runtime service did not answer within {wait:.0f} s; see {path.with_suffix('.log')}")


def stop(path: Path | None = None, wait: float = 15) -> bool:
    """Ask the service to stop; True when one was running (it has stopped when this returns)."""
    path = path or socket_path()
    found = ping(path)
    if found is None:
        return False
    with contextlib.suppress(ServiceError):
        ServiceClient(path).request("stop", 10)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and _alive(int(found["pid"])) and path.exists():
        time.sleep(0.05)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m psp_assets.core.runtimes.php_service", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("command", choices=("serve", "start", "stop", "status"))
    parser.add_argument("--socket", help="default: under $PSP_DATA_DIR/run/")
    parser.add_argument("--idle", type=float, default=None, help=f"seconds idle before it stops ({IDLE_ENV})")
    parser.add_argument("--watch-pid", type=int, default=None, help="stop when this process (the daemon) is gone")
    args = parser.parse_args(argv)
    path = Path(args.socket) if args.socket else socket_path()
    idle = args.idle if args.idle is not None else float(os.environ.get(IDLE_ENV, DEFAULT_IDLE_SECONDS))
    if args.command == "serve":
        RuntimeService(path, idle, args.watch_pid).serve()
        return 0
    if args.command == "start":
        print(json.dumps({"pid": start(path, idle, args.watch_pid), "socket": str(path)}))
        return 0
    if args.command == "stop":
        print(json.dumps({"stopped": stop(path), "socket": str(path)}))
        return 0
    found = ping(path)
    stats = ServiceClient(path).request("stats", 5) if found else None
    print(json.dumps({"running": found is not None, "socket": str(path), **(stats or {})}))
    return 0 if found else 1


if __name__ == "__main__":
    raise SystemExit(main())


_SHARED: dict[tuple[int, str], PhpRuntimes] = {}
_SHARED_LOCK = threading.Lock()


def shared_runtimes(service: str | None = None) -> PhpRuntimes:
    """The process-wide pool: at most one boot per PHP version per process (in-process Dagster runs and
    the `psp fleet` runner reuse it run after run), stopped when the process exits. A forked child
    never talks to its parent's runtimes: it gets a pool of its own. `service` (default
    $PSP_PHP_SERVICE, else `connect`) says whether its runtimes are the machine's runtime service
    (php_service: `connect` when it runs, `auto` starting it on first use; no boot in this process
    while it answers) or in-process boots only (`off`)."""
    pid, chosen = os.getpid(), mode(service)
    with _SHARED_LOCK:
        pool = _SHARED.get((pid, chosen))
        if pool is None:
            for key in [k for k in _SHARED if k[0] != pid]:
                del _SHARED[key]
            pool = PhpRuntimes() if chosen == "off" else service_runtimes(autostart=chosen == "auto")
            _SHARED[(pid, chosen)] = pool
            atexit.register(pool.close)
        return pool
