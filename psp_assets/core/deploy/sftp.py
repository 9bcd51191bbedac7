"""The SFTP transport: a store reached over SSH, implementing the deploy's `StoreFS` operations.

Host keys are pinned per target and verified; an unknown or changed key is refused, never added.
Connect, banner, auth and channel waits have explicit timeouts, and every remote command a deadline.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import functools
import io
import posixpath
import shlex
import socket
import stat
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import paramiko

from psp_assets.core.errors import DeployError

CHUNK = 1 << 15


@dataclass(frozen=True)
class SshEndpoint:
    host: str
    port: int
    user: str
    known_host: str  # '<type> <base64>' (a leading host field is ignored: the pin is per target)
    private_key: str = field(repr=False)  # key text; never logged
    connect_timeout: float = 10.0
    command_timeout: float = 60.0
    keepalive: float = 15.0  # seconds between SSH keepalives (0: none)

    @property
    def label(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


def load_private_key(text: str, where: str) -> paramiko.PKey:
    """Parse an OpenSSH/PEM private key of any type paramiko supports; errors never echo the key."""
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError, IndexError):
            continue
    raise DeployError(f"{where}: the private key is not a readable unencrypted ed25519, ECDSA or RSA key")


def _pinned_key(known_host: str) -> paramiko.PKey:
    parts = known_host.split()
    key_type, blob = parts[-2], parts[-1]
    try:
        return paramiko.PKey.from_type_string(key_type, base64.b64decode(blob))
    except Exception as exc:
        raise DeployError(f"known_host: cannot read the pinned {key_type} key ({exc})") from None


def _guarded(method):
    """A request that gets no answer within command_timeout closes the connection (a black-holed
    connection would otherwise make every later request wait out its own timeout)."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except TimeoutError:
            self.close()
            raise ConnectionError(
                f"target {self.target}: no answer from {self.endpoint.label} within "
                f"{self.endpoint.command_timeout} s; connection closed"
            ) from None
        except (EOFError, paramiko.SSHException) as exc:
            self.close()
            raise ConnectionError(f"target {self.target}: connection to {self.endpoint.label} lost: {exc}") from None
        except OSError as exc:
            if exc.errno is None and str(exc) in ("Socket is closed", "Server connection dropped: "):
                raise ConnectionError(f"target {self.target}: connection to {self.endpoint.label} lost") from None
            raise

    return call


# exchange `link` and `path` atomically, then move the folder (now at `link`) aside; exit 3 when the
# exchange is unavailable (nothing changed), and the shell falls back to two renames
_SWAP = (
    "python3 -c 'import ctypes, os, sys\n"
    "p, l, a = (os.fsencode(x) for x in sys.argv[1:4])\n"
    'f = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)\n'
    "if f is None or f(-100, l, -100, p, 2) != 0: sys.exit(3)\n"
    "os.rename(l, a)' {path} {link} {aside} 2>/dev/null; s=$?; "
    "if [ $s -eq 3 ] || [ $s -eq 127 ]; then mv -T -- {path} {aside} && mv -T -- {link} {path}; else exit $s; fi"
)


class SftpFS:
    """One SSH connection to a store; use as a context manager. Paths are absolute POSIX paths."""

    def __init__(self, endpoint: SshEndpoint, target: str = "") -> None:
        self.endpoint = endpoint
        self.target = target or endpoint.label
        self.stats = {"connect": 0.0}
        self._client = paramiko.SSHClient()
        pinned = _pinned_key(endpoint.known_host)
        names = [endpoint.host] if endpoint.port == 22 else [f"[{endpoint.host}]:{endpoint.port}"]
        for name in names:
            self._client.get_host_keys().add(name, pinned.get_name(), pinned)
        self._client.set_missing_host_key_policy(paramiko.RejectPolicy())
        pkey = load_private_key(endpoint.private_key, f"target {self.target}")
        start = time.monotonic()
        t = endpoint.connect_timeout
        try:
            self._client.connect(
                endpoint.host,
                endpoint.port,
                username=endpoint.user,
                pkey=pkey,
                timeout=t,
                banner_timeout=t,
                auth_timeout=t,
                channel_timeout=t,
                look_for_keys=False,
                allow_agent=False,
            )
        except paramiko.BadHostKeyException as exc:
            self._client.close()
            raise DeployError(
                f"target {self.target}: host key of {endpoint.label} CHANGED (got {exc.key.get_name()} "
                f"{exc.key.get_base64()[:16]}..., pinned {exc.expected_key.get_base64()[:16]}...); "
                "refusing to connect. "
                "If the store was re-keyed on purpose, update known_host in the client config"
            ) from None
        except paramiko.SSHException as exc:
            self._client.close()
            if "not found in known_hosts" in str(exc) or "known_hosts" in str(exc):
                raise DeployError(
                    f"target {self.target}: {endpoint.label} offered a host key that does not match the pinned "
                    "known_host; refusing to connect (never auto-added)"
                ) from None
            raise DeployError(f"target {self.target}: SSH to {endpoint.label} failed: {exc}") from None
        except (TimeoutError, OSError) as exc:
            self._client.close()
            raise DeployError(f"target {self.target}: cannot reach {endpoint.label}: {exc}") from None
        transport = self._client.get_transport()
        if transport is not None:
            # small requests go out at once: with Nagle's algorithm a request written right after another
            # (a channel closed, the next opened) waited for the store's delayed ACK, 40 ms on Linux
            with contextlib.suppress(OSError, AttributeError):
                transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if endpoint.keepalive and transport is not None:
            transport.set_keepalive(max(1, int(endpoint.keepalive)))
        self._sftp = self._client.open_sftp()
        self._sftp.get_channel().settimeout(endpoint.command_timeout)
        self.stats["connect"] = time.monotonic() - start
        self._exec_ok: bool | None = None
        self._tar_ok: bool | None = None

    def close(self) -> None:
        self._client.close()

    def alive(self) -> bool:
        """The SSH transport is still up (a pooled connection is checked before it is reused)."""
        transport = self._client.get_transport()
        return transport is not None and transport.is_active()

    def __enter__(self) -> SftpFS:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- StoreFS ----------------------------------------------------------------------------------

    def _lstat(self, path: str) -> paramiko.SFTPAttributes | None:
        try:
            return self._sftp.lstat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise

    @_guarded
    def exists(self, path: str) -> bool:
        return self._lstat(path) is not None

    @_guarded
    def is_symlink(self, path: str) -> bool:
        st = self._lstat(path)
        return st is not None and stat.S_ISLNK(st.st_mode or 0)

    @_guarded
    def readlink(self, path: str) -> str:
        target = self._sftp.readlink(path)
        if target is None:
            raise DeployError(f"target {self.target}: {path} is not a symlink")
        return target

    @_guarded
    def mkdir(self, path: str) -> None:
        try:
            self._sftp.mkdir(path)
        except OSError:
            if self.exists(path):
                raise FileExistsError(path) from None
            raise

    @_guarded
    def makedirs(self, path: str) -> None:
        st = self._lstat(path)  # one request when the folder is there already (the common case)
        if st is not None and (stat.S_ISDIR(st.st_mode or 0) or stat.S_ISLNK(st.st_mode or 0)):
            return
        current = ""
        for part in path.strip("/").split("/"):
            current += "/" + part
            st = self._lstat(current)
            if st is None:
                try:
                    self._sftp.mkdir(current)
                except OSError as exc:
                    if not self.exists(current):
                        raise DeployError(f"target {self.target}: cannot create {current}: {exc}") from None
            elif not (stat.S_ISDIR(st.st_mode or 0) or stat.S_ISLNK(st.st_mode or 0)):
                raise DeployError(f"target {self.target}: {current} exists and is not a directory")

    @_guarded
    def rename(self, src: str, dst: str) -> None:
        self._sftp.posix_rename(src, dst)

    @_guarded
    def symlink(self, target: str, path: str) -> None:
        self._sftp.symlink(target, path)

    @_guarded
    def rmtree(self, path: str) -> None:
        st = self._lstat(path)
        if st is None:
            return
        if not stat.S_ISDIR(st.st_mode or 0):
            self._sftp.remove(path)
            return
        for entry in self._sftp.listdir_attr(path):
            child = posixpath.join(path, entry.filename)
            if stat.S_ISDIR(entry.st_mode or 0):
                self.rmtree(child)
            else:
                self._sftp.remove(child)
        self._sftp.rmdir(path)

    @_guarded
    def remove(self, path: str) -> None:
        if self.exists(path):
            self._sftp.remove(path)

    @_guarded
    def listdir(self, path: str) -> list[str]:
        return sorted(self._sftp.listdir(path))

    @_guarded
    def is_dir(self, path: str) -> bool:
        st = self._lstat(path)
        return st is not None and stat.S_ISDIR(st.st_mode or 0)

    @_guarded
    def list_files(self, root: str) -> list[str]:
        found: list[str] = []

        def walk(folder: str, prefix: str) -> None:
            for entry in self._sftp.listdir_attr(folder):
                mode = entry.st_mode or 0
                rel = f"{prefix}{entry.filename}"
                if stat.S_ISDIR(mode):
                    walk(posixpath.join(folder, entry.filename), rel + "/")
                elif stat.S_ISREG(mode):
                    found.append(rel)

        walk(root, "")
        return sorted(found)

    @_guarded
    def replace_dir_with_link(self, path: str, link: str, aside: str) -> None:
        """The folder at `path` goes to `aside`, the symlink `link` takes its place. With a shell it is one
        remote command (a deployer killed meanwhile cannot leave `path` missing): an atomic exchange
        (renameat2) where the store has python3 on Linux, else two renames microseconds apart. Without a
        shell, two SFTP requests (a deploy after a kill in between restores the link)."""
        if self._exec_ok is not False:
            q = shlex.quote
            out = self._exec(_SWAP.format(path=q(path), link=q(link), aside=q(aside)), allow_fail=False)
            if out is not None:
                self._exec_ok = True
                return
            self._exec_ok = False
        self._sftp.posix_rename(path, aside)
        self._sftp.posix_rename(link, path)

    @_guarded
    def mtime(self, path: str) -> float:
        st = self._lstat(path)
        if st is None:
            raise FileNotFoundError(path)
        return float(st.st_mtime or 0)

    @_guarded
    def write_bytes(self, path: str, data: bytes, confirm: bool = True) -> None:
        # paramiko does not check the status of the last pipelined write (a full disk can cut a file
        # short silently): confirm stats the file and fails unless its size matches. Uploads pass
        # confirm=False because they are verified by sha256 on the store before anything goes live.
        self._sftp.putfo(io.BytesIO(data), path, file_size=len(data), confirm=confirm)

    @_guarded
    def read_bytes(self, path: str) -> bytes:
        with self._sftp.open(path, "rb") as fh:
            fh.prefetch()
            return fh.read()

    def sha256(self, path: str) -> str:
        return self.sha256_many([path])[path]

    @_guarded
    def sha256_many(self, paths: list[str]) -> dict[str, str | None]:
        """Hashes computed on the store (one `sha256sum` call); reads files back when the account has
        no shell. A missing file maps to None."""
        result: dict[str, str | None] = dict.fromkeys(paths)
        if self._exec_ok is not False and paths:
            out = self._exec("sha256sum -- " + " ".join(shlex.quote(p) for p in paths), allow_fail=True)
            if out is not None:
                self._exec_ok = True
                for line in out.splitlines():
                    digest, _, name = line.partition("  ")
                    if name in result and len(digest) == 64:
                        result[name] = digest
                return result
            self._exec_ok = False
        import hashlib

        for p in paths:
            if self.exists(p):
                result[p] = hashlib.sha256(self.read_bytes(p)).hexdigest()
        return result

    @_guarded
    def write_tree(self, root: str, files: dict[str, bytes]) -> dict[str, str | None] | None:
        """Create `root` (in an existing folder) with `files` (relative paths) in one transfer: a tar stream
        unpacked on the store by one remote command, which then hashes what it unpacked (sha256sum, read
        from the store's disk): returns {path: sha256 or None}. Without a shell (or tar), pipelined SFTP
        writes, and None. Not size-confirmed: the caller verifies every file's sha256 before anything
        goes live."""
        self._sftp.mkdir(root)  # fresh: named by the deploy's token
        if self._exec_ok is not False and self._tar_ok is not False:
            q = shlex.quote
            names = " ".join(q(rel) for rel in sorted(files))
            # a failed unpack fails the command; a file sha256sum cannot read is left out (verified: missing)
            command = f"cd {q(root)} && tar -x -f - && {{ sha256sum -- {names}; exit 0; }}"
            out = self._exec(command, stdin=tar_of(files))
            if out is not None:
                self._exec_ok = self._tar_ok = True
                hashes: dict[str, str | None] = {posixpath.join(root, rel): None for rel in files}
                for line in out.splitlines():
                    digest, _, name = line.partition("  ")
                    path = posixpath.join(root, name)
                    if name in files and len(digest) == 64:
                        hashes[path] = digest
                # no hash at all (a store without sha256sum): the caller asks again, sha256_many falls back
                return hashes if any(hashes.values()) else None
            self._tar_ok = False
        for d in sorted({p for rel in files for p in _parents(posixpath.dirname(rel))}):
            self._sftp.mkdir(posixpath.join(root, d))  # a fresh folder: its subfolders are new
        for rel, data in sorted(files.items()):
            self._sftp.putfo(io.BytesIO(data), posixpath.join(root, rel), file_size=len(data), confirm=False)
        return None

    def _exec(self, command: str, allow_fail: bool = False, stdin: bytes | None = None) -> str | None:
        """Run a remote command with a deadline; None when the account cannot run commands.

        The output is read to its end (EOF), not to the exit status: sshd sends the exit status when the
        command's process ends, which may be before it has forwarded all of the output still in the pipe
        (a `sha256sum` answer cut short that way made a healthy release look incomplete)."""
        deadline = time.monotonic() + self.endpoint.command_timeout
        try:
            chan = self._client.get_transport().open_session(timeout=self.endpoint.connect_timeout)
        except paramiko.SSHException:
            return None
        try:
            chan.exec_command(command)
            if stdin is not None:
                chan.settimeout(max(0.1, deadline - time.monotonic()))
                try:
                    chan.sendall(stdin)
                except TimeoutError:
                    raise
                except OSError:
                    if not self.alive():
                        raise
                    # the command ended without reading it all (an account without a shell): judged below
                chan.shutdown_write()
            out, err = bytearray(), bytearray()
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"remote command timed out after {self.endpoint.command_timeout} s")
                if chan.recv_stderr_ready():
                    err += chan.recv_stderr(CHUNK)
                    continue
                if chan.eof_received and not chan.recv_ready():
                    break
                chan.settimeout(min(left, 0.05))  # wakes at once on output or EOF; stderr looked at between
                try:
                    data = chan.recv(CHUNK)
                except TimeoutError:
                    continue
                if not data:  # EOF, or the channel closed
                    break
                out += data
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(CHUNK)
            if not chan.status_event.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"remote command timed out after {self.endpoint.command_timeout} s")
            status = chan.recv_exit_status()
            if status == -1 and not self.alive():
                raise EOFError("the connection closed before the remote command ended")
        finally:
            chan.close()
        if status == 127 or (status != 0 and b"This service allows sftp connections only" in err):
            return None
        if status != 0 and not allow_fail:
            raise DeployError(f"target {self.target}: remote command failed ({status}): {err.decode()[:200]}")
        return out.decode()


_TARS: dict[int, tuple[dict[str, bytes], bytes]] = {}  # id(files) -> (files, their tar): the same release
_TARS_LOCK = threading.Lock()  # uploaded to many stores is packed once


def tar_of(files: dict[str, bytes]) -> bytes:
    """A tar of `files` with plain modes (0644 files, 0755 folders), no owner names, and one mtime. Kept
    for the last few `files` mappings (by identity, holding them so that identity stays theirs)."""
    with _TARS_LOCK:
        cached = _TARS.get(id(files))
        if cached is not None and cached[0] is files:
            return cached[1]
    buffer = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for folder in sorted({p for rel in files for p in _parents(posixpath.dirname(rel))}):
            info = tarfile.TarInfo(folder)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, now
            tar.addfile(info)
        for rel, data in sorted(files.items()):
            info = tarfile.TarInfo(rel)
            info.size, info.mode, info.mtime = len(data), 0o644, now
            tar.addfile(info, io.BytesIO(data))
    packed = buffer.getvalue()
    with _TARS_LOCK:
        while len(_TARS) >= 8:
            del _TARS[next(iter(_TARS))]
        _TARS[id(files)] = (files, packed)
    return packed


def _parents(folder: str) -> list[str]:
    """`a/b/c` -> `a`, `a/b`, `a/b/c`; nothing for the root."""
    parts = [p for p in folder.split("/") if p]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


class SftpPool:
    """Open SSH connections to stores, reused by every deploy of one run: a fleet run deploying many
    plugins to the same host pays one SSH handshake and authentication, not one per plugin and target.

    Keyed by the whole endpoint (host, port, user, pinned host key, private key, timeouts): a target that
    authenticates differently never rides on another target's connection. `lease` hands a connection to
    one thread at a time: an idle one of the endpoint, or a new one when all are busy (deploys running
    side by side to one host each get their own); it comes back to the pool when the deploy is done, or is
    closed when it died. `close()` (or leaving the `with` block) closes them all.
    """

    def __init__(self) -> None:
        self._open: dict[SshEndpoint, SftpFS] = {}  # `get`: one shared connection per endpoint
        self._idle: dict[SshEndpoint, list[SftpFS]] = {}  # `lease`: connections no thread is using
        self._busy: set[SftpFS] = set()
        self._lock = threading.Lock()
        self.connects = 0  # SSH connections opened (what tests and benchmarks count)

    @contextlib.contextmanager
    def lease(self, endpoint: SshEndpoint, target: str = "") -> Iterator[SftpFS]:
        fs = None
        with self._lock:
            idle = self._idle.setdefault(endpoint, [])
            while idle and fs is None:
                candidate = idle.pop()
                if candidate.alive():
                    fs = candidate
                else:
                    candidate.close()
        if fs is None:
            fs = SftpFS(endpoint, target=target)  # outside the lock: other hosts need not wait for it
            with self._lock:
                self.connects += 1
        fs.target = target or endpoint.label  # errors name the target being deployed now
        with self._lock:
            self._busy.add(fs)
        try:
            yield fs
        finally:
            with self._lock:
                self._busy.discard(fs)
                if fs.alive():
                    self._idle.setdefault(endpoint, []).append(fs)
                else:
                    fs.close()

    def get(self, endpoint: SshEndpoint, target: str = "") -> SftpFS:
        """The endpoint's shared connection (for callers that use it from one thread)."""
        with self._lock:
            fs = self._open.get(endpoint)
            if fs is not None and not fs.alive():
                del self._open[endpoint]
                fs.close()
                fs = None
            if fs is None:
                fs = self._open[endpoint] = SftpFS(endpoint, target=target)
                self.connects += 1
            fs.target = target or endpoint.label
            return fs

    @property
    def open_connections(self) -> list[SftpFS]:
        with self._lock:
            idle = [fs for pool in self._idle.values() for fs in pool]
            return list(self._open.values()) + idle + list(self._busy)

    def discard(self, fs: SftpFS) -> None:
        with self._lock:
            if self._open.get(fs.endpoint) is fs:
                del self._open[fs.endpoint]
            idle = self._idle.get(fs.endpoint, [])
            if fs in idle:
                idle.remove(fs)
        fs.close()

    def close(self) -> None:
        with self._lock:
            connections = list(self._open.values()) + [fs for pool in self._idle.values() for fs in pool]
            self._open, self._idle = {}, {}
        for fs in connections:
            fs.close()

    def __enter__(self) -> SftpPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
