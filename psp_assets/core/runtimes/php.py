"""PHP runtimes: one interface, several backends.

`NativePhp` runs the machine's `php` binary (Debian php-cli). `WasmPhp` runs PHP 7.4 ... 8.5 compiled to
WebAssembly (npm `@php-wasm/node-X-Y`) in one Node process per version; `PhpRuntimes` keeps one booted
runtime per version for a whole run. Every backend lints many files and runs many scripts per boot;
callers never start one runtime per file.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from psp_assets.core.errors import PspError
from psp_assets.core.runtimes import check_cache


class PhpUnavailable(PspError):
    """No PHP runtime of the requested kind is installed."""


@dataclass(frozen=True)
class LintResult:
    path: str
    ok: bool
    message: str


@dataclass(frozen=True)
class RunResult:
    returncode: int
    stdout: str
    stderr: str


class PhpRuntime(Protocol):
    version: str

    def lint(self, root: Path, files: Iterable[str]) -> list[LintResult]: ...

    def run(self, script: Path, args: list[str], cwd: Path, timeout: float = 60) -> RunResult: ...


def binary_stamp(binary: str) -> str:
    """A binary by its real path, size and modification time: a reinstalled PHP or Node is another runtime."""
    real = os.path.realpath(binary)
    try:
        st = os.stat(real)
    except OSError:
        return real
    return f"{real}:{st.st_size}:{st.st_mtime_ns}"


class NativePhp:
    """The machine's PHP CLI. Lints in parallel, one short process per file (what `php -l` allows)."""

    def __init__(self, binary: str | None = None) -> None:
        found = binary or os.environ.get("PSP_PHP_BINARY") or shutil.which("php")
        if not found:
            raise PhpUnavailable("no `php` on PATH: install Debian's php-cli (scripts/setup.sh does)")
        self.binary = found
        out = subprocess.run(
            [found, "-n", "-r", "echo PHP_MAJOR_VERSION . '.' . PHP_MINOR_VERSION, ' ', PHP_VERSION;"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        self.version, _, self.full_version = out.stdout.strip().partition(" ")
        # what its check results are remembered under (check_cache): this binary, this exact PHP
        self.identity = f"native php {self.full_version} {binary_stamp(found)}"

    def _lint_one(self, root: Path, rel: str) -> LintResult:
        proc = subprocess.run(
            [self.binary, "-n", "-d", "display_errors=1", "-d", "error_reporting=-1", "-l", rel],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
        )
        text = (proc.stdout + proc.stderr).strip()
        ok = proc.returncode == 0 and "Deprecated:" not in text
        return LintResult(rel, ok, "" if ok else _tidy(text, root))

    def lint(self, root: Path, files: Iterable[str]) -> list[LintResult]:
        """Lint results are a pure function of the file's bytes and this PHP, so they are remembered by
        content (check_cache): the deploy's lint of the live files (pipeline.local_health) and a second
        target of the same release cost a hash, not a process per file. A file whose bytes changed is
        linted again. PSP_PHP_LINT_CACHE=0 runs `php -l` on every file every time."""
        return cached_lint(self.identity, root, files, self.lint_uncached)

    def lint_uncached(self, root: Path, files: Iterable[str]) -> list[LintResult]:
        """`php -l` on every file, side by side, nothing remembered."""
        with ThreadPoolExecutor(max_workers=max(2, (os.cpu_count() or 2) * 2)) as pool:
            return list(pool.map(lambda rel: self._lint_one(root, rel), sorted(files)))

    def run(self, script: Path, args: list[str], cwd: Path, timeout: float = 60) -> RunResult:
        proc = subprocess.run(
            [
                self.binary,
                "-n",
                "-d",
                "display_errors=stderr",
                "-d",
                "error_reporting=-1",
                str(script),
                *args,
            ],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return RunResult(proc.returncode, proc.stdout, proc.stderr)


def _tidy(text: str, root: Path) -> str:
    """Lint output without absolute build paths and without PHP's trailing boilerplate."""
    text = text.replace(str(root) + "/", "")
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("Errors parsing")]
    return "\n".join(lines)[:2000]


def cached_lint(
    identity: str, root: Path, files: Iterable[str], lint: Callable[[Path, list[str]], list[LintResult]]
) -> list[LintResult]:
    files = sorted(files)
    if not files:
        return []
    done = check_cache.cached_lint(identity, root, files, lambda missing: lint(root, missing))
    return [LintResult(path, ok, message) for path, ok, message in done]


# --- PHP as WebAssembly ------------------------------------------------------------------------------

WASM_DRIVER = Path(__file__).with_name("wasm_driver.mjs")
NODE_MODULES = Path(__file__).resolve().parents[3] / "node_modules"
WASM_PACKAGE_VERSION = "3.1.56"  # package.json pins every @php-wasm package to this

# Runtime boots in this process, per PHP version (what benchmarks and tests count).
BOOTS: Counter[str] = Counter()


def node_modules_dir() -> Path:
    return Path(os.environ.get("PSP_NODE_MODULES") or NODE_MODULES).resolve()


def require_wasm_package(version: str) -> Path:
    """The installed @php-wasm package of PHP `version`; PhpUnavailable when it is not installed."""
    package = node_modules_dir() / "@php-wasm" / f"node-{version.replace('.', '-')}"
    if not (package / "package.json").is_file():
        raise PhpUnavailable(
            f"PHP {version} as WebAssembly: {package} is missing; run scripts/setup.sh (npm ci installs "
            f"@php-wasm/node-{version.replace('.', '-')}@{WASM_PACKAGE_VERSION} from package-lock.json)"
        )
    return package


def wasm_identity(version: str, node: str | None = None, node_flags: list[str] | None = None) -> str:
    """What a WasmPhp of `version` would be, known without booting it: the installed @php-wasm package
    (its package.json, which pins the build), Node and its flags. Check results are remembered under it."""
    node = node or os.environ.get("PSP_NODE_BINARY") or shutil.which("node") or "node"
    if node_flags is None:
        node_flags = os.environ.get("PSP_WASM_NODE_FLAGS", "--liftoff-only").split()
    package = node_modules_dir() / "@php-wasm" / f"node-{version.replace('.', '-')}" / "package.json"
    try:
        pinned = hashlib.sha256(package.read_bytes() + (package.parents[1] / "node" / "package.json").read_bytes())
    except OSError:
        return f"wasm php {version} missing"
    return f"wasm php {version} {pinned.hexdigest()} {binary_stamp(node)} {' '.join(node_flags)}"


class WasmPhp:
    """Real PHP `version` (7.4 ... 8.5) compiled to WebAssembly, run by Node (`@php-wasm/node`).

    One boot (about 0.3-0.8 s) serves every later `lint` and `run`: the driver
    (php/wasm_driver.mjs) keeps the runtime and answers JSON lines. Lint compiles without executing
    (`php -l` semantics; a deprecation fails the file, as with NativePhp); scripts run with `$argv`,
    `STDERR` and errors on stderr like the CLI. Unlike `NativePhp` (`php -n`), the runtime has the
    extensions php-wasm builds in (mbstring, gd, sqlite, ...): it cannot unload them. A request that
    times out kills the process; the next call boots a new one (counted in `boots`).
    """

    def __init__(
        self, version: str, node: str | None = None, boot_timeout: float = 120, node_flags: list[str] | None = None
    ) -> None:
        self.version = version
        # Default `--liftoff-only`: V8 runs PHP's WebAssembly on its baseline compiler and never tiers up
        # in the background. Our requests are short (a lint, one contract run), so the optimizing tier's
        # compile work costs more CPU than it saves: measured on 2 cores, the demo's 7 plugins on 6 PHP
        # versions 5.1 s instead of 7.9 s (first plugin, with the boots: 2.0 s instead of 4.0 s), 105
        # plugins 42.5 s instead of 44.4 s. PSP_WASM_NODE_FLAGS replaces it (empty: V8's default tiering;
        # `--no-liftoff`: optimizing tier up front, for one runtime serving very many requests).
        if node_flags is None:
            node_flags = os.environ.get("PSP_WASM_NODE_FLAGS", "--liftoff-only").split()
        self.node_flags = list(node_flags)
        self.full_version = ""
        self.boots = 0
        self.boot_seconds = 0.0
        self._node = node or os.environ.get("PSP_NODE_BINARY") or shutil.which("node")
        if not self._node:
            raise PhpUnavailable("no `node` on PATH: PHP as WebAssembly needs Node.js (scripts/setup.sh installs it)")
        require_wasm_package(version)
        self.identity = wasm_identity(version, self._node, self.node_flags)
        self._boot_timeout = boot_timeout
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=40)
        self._next_id = 0
        with self._lock:
            self._start()

    # the process -------------------------------------------------------------------------------------

    def _start(self) -> None:
        started = time.perf_counter()
        env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_OPTIONS")}
        env["PSP_NODE_MODULES"] = str(node_modules_dir())
        proc = subprocess.Popen(
            [self._node, *self.node_flags, str(WASM_DRIVER), self.version],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            env=env,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        stderr: deque[str] = deque(maxlen=40)
        threading.Thread(target=_pump, args=(proc.stdout, lines.put, lambda: lines.put(None)), daemon=True).start()
        threading.Thread(target=_pump, args=(proc.stderr, stderr.append, None), daemon=True).start()
        self._proc, self._lines, self._stderr = proc, lines, stderr
        ready = self._read(self._boot_timeout, "boot")
        if not ready.get("ready"):
            self._kill()
            raise PhpUnavailable(f"PHP {self.version} as WebAssembly did not boot: {ready}")
        self.full_version = str(ready.get("version", ""))
        if not self.full_version.startswith(self.version + "."):
            self._kill()
            raise PhpUnavailable(f"asked @php-wasm for PHP {self.version}, it booted {self.full_version!r}")
        self.boots += 1
        BOOTS[self.version] += 1
        self.boot_seconds += time.perf_counter() - started

    def _read(self, timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self._kill()
                raise PhpUnavailable(
                    f"PHP {self.version} (WebAssembly): {what} took longer than {timeout:.0f} s; "
                    "the runtime was stopped and boots again on the next call"
                ) from None
            if line is None:
                code = self._proc.wait() if self._proc else None
                tail = "\n".join(self._stderr)[-1500:]
                self._proc = None
                raise PhpUnavailable(f"PHP {self.version} (WebAssembly) stopped during {what} (exit {code}): {tail}")
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                self._stderr.append(line)  # stray output is kept for the error message, never parsed
                continue
            if isinstance(data, dict):
                return data

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def _call(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            assert self._proc is not None and self._proc.stdin is not None
            self._next_id += 1
            request = {**request, "id": self._next_id}
            try:
                self._proc.stdin.write(json.dumps(request) + "\n")
                self._proc.stdin.flush()
            except OSError as exc:
                self._kill()
                raise PhpUnavailable(f"PHP {self.version} (WebAssembly) is not running: {exc}") from None
            while True:
                reply = self._read(timeout, request["op"])
                if reply.get("id") == request["id"]:
                    break
        if not reply.get("ok"):
            raise PhpUnavailable(f"PHP {self.version} (WebAssembly) could not {request['op']}: {reply.get('error')}")
        return reply

    def close(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()

    identity_for = staticmethod(wasm_identity)  # PhpRuntimes asks the factory before it boots anything

    def __enter__(self) -> WasmPhp:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # the PhpRuntime protocol -------------------------------------------------------------------------

    def lint(self, root: Path, files: Iterable[str]) -> list[LintResult]:
        """Remembered by content like NativePhp.lint (check_cache); misses go to the runtime in one request."""
        return cached_lint(self.identity, root, files, self.lint_uncached)

    def lint_uncached(self, root: Path, files: Iterable[str]) -> list[LintResult]:
        files = sorted(files)
        if not files:
            return []
        reply = self._call({"op": "lint", "root": str(Path(root).resolve()), "files": files}, 60 + len(files))
        return [LintResult(r["path"], bool(r["ok"]), r["message"]) for r in reply["results"]]

    def run(self, script: Path, args: list[str], cwd: Path, timeout: float = 60) -> RunResult:
        request = {
            "op": "run",
            "script": str(Path(script).resolve()),
            "args": [str(a) for a in args],
            "cwd": str(Path(cwd).resolve()),
        }
        try:
            reply = self._call(request, timeout)
        except PhpUnavailable as exc:
            if "took longer than" in str(exc):
                raise subprocess.TimeoutExpired([f"php{self.version}.wasm", str(script)], timeout) from None
            raise
        return RunResult(int(reply["returncode"]), reply["stdout"], reply["stderr"])


def _pump(stream: Any, sink: Callable[[str], None], at_end: Callable[[], None] | None) -> None:
    for line in stream:
        sink(line.rstrip("\n"))
    if at_end is not None:
        at_end()


class PhpRuntimes:
    """One booted runtime per PHP version, shared by every file and partition of a run.

    `get("8.1")` boots PHP 8.1 the first time and returns the same runtime after that; `close()` stops
    them all (a later `get` boots again). `factory` picks the backend (default: `WasmPhp`).
    """

    def __init__(self, factory: Callable[[str], PhpRuntime] | None = None) -> None:
        self._factory: Callable[[str], PhpRuntime] = factory or WasmPhp
        self._runtimes: dict[str, PhpRuntime] = {}
        self._lock = threading.Lock()
        self._booting: dict[str, threading.Lock] = {}
        self._closed_boots: Counter[str] = Counter()

    def identity(self, version: str) -> str | None:
        """What `get(version)` is, for check_cache keys, without booting it when the backend can say."""
        known = getattr(self._factory, "identity_for", None)
        if known is not None:
            return str(known(version))
        return getattr(self.get(version), "identity", None)

    def get(self, version: str) -> PhpRuntime:
        with self._lock:
            booting = self._booting.setdefault(version, threading.Lock())
        with booting:  # versions boot side by side; one version boots once
            with self._lock:
                runtime = self._runtimes.get(version)
            if runtime is None:
                runtime = self._factory(version)
                with self._lock:
                    self._runtimes[version] = runtime
            return runtime

    __call__ = get

    @property
    def versions(self) -> list[str]:
        return sorted(self._runtimes)

    def boots(self) -> Counter[str]:
        """Runtime boots per version since this pool was made (restarts after a crash or timeout included)."""
        with self._lock:
            live = Counter({v: getattr(rt, "boots", 1) for v, rt in self._runtimes.items()})
        return live + self._closed_boots

    def close(self) -> None:
        with self._lock:
            runtimes, self._runtimes = list(self._runtimes.values()), {}
            for runtime in runtimes:
                self._closed_boots[runtime.version] += getattr(runtime, "boots", 1)
        for runtime in runtimes:
            close = getattr(runtime, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> PhpRuntimes:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


# --- check results remembered by content ----------------------------------------------------------------


class CachedPhp:
    """A PhpRuntime whose lint results and successful script runs are remembered by content
    (check_cache): a hit answers without PHP, and the runtime behind it is booted on the first miss only.
    `salt` is what the caller's inputs add to every key (the template and contract hashes). Without an
    `identity` (a runtime that cannot name itself) nothing is remembered."""

    def __init__(
        self,
        version: str,
        identity: str | None,
        runtime: Callable[[], PhpRuntime],
        cache: check_cache.CheckCache,
        salt: str = "",
    ) -> None:
        self.version = version
        self.identity = identity
        self._runtime = runtime
        self._cache = cache
        self._salt = salt

    @classmethod
    def wrap(cls, runtime: PhpRuntime, cache: check_cache.CheckCache, salt: str = "") -> CachedPhp:
        return cls(runtime.version, getattr(runtime, "identity", None), lambda: runtime, cache, salt)

    def lint(self, root: Path, files: Iterable[str]) -> list[LintResult]:
        runtime = self._runtime() if self.identity is None else None
        if runtime is not None:
            return runtime.lint(root, files)

        def uncached(root: Path, missing: list[str]) -> list[LintResult]:
            behind = self._runtime()
            return getattr(behind, "lint_uncached", behind.lint)(root, missing)

        files = sorted(files)
        if not files:
            return []
        done = check_cache.cached_lint(str(self.identity), root, files, lambda m: uncached(root, m), self._cache)
        return [LintResult(path, ok, message) for path, ok, message in done]

    def run(self, script: Path, args: list[str], cwd: Path, timeout: float = 60) -> RunResult:
        if self.identity is None or not check_cache.enabled("run"):
            return self._runtime().run(script, args, cwd, timeout)
        try:
            entry = check_cache.run_key(self.identity, self._salt, script, [str(a) for a in args], cwd)
        except OSError:
            return self._runtime().run(script, args, cwd, timeout)
        value = self._cache.get(entry)
        if check_cache.run_value_ok(value):
            return RunResult(0, value["stdout"], value["stderr"])
        result = self._runtime().run(script, args, cwd, timeout)
        if result.returncode == 0:  # a failure is always run again
            self._cache.put(entry, {"returncode": 0, "stdout": result.stdout, "stderr": result.stderr})
        return result


def cached_runtimes(
    runtimes: Callable[[str], PhpRuntime], cache: check_cache.CheckCache, salt: str = ""
) -> Callable[[str], PhpRuntime]:
    """`runtimes` (PHP version -> runtime) behind CachedPhp: a version whose results are all known is
    never booted (a PhpRuntimes pool names its runtimes without booting them)."""
    made: dict[str, CachedPhp] = {}
    lock = threading.Lock()

    def get(version: str) -> PhpRuntime:
        with lock:
            if version not in made:
                name = getattr(runtimes, "identity", None)
                identity = name(version) if name is not None else getattr(runtimes(version), "identity", None)
                made[version] = CachedPhp(version, identity, lambda: runtimes(version), cache, salt)
            return made[version]

    return get
