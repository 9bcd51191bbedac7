"""Zero-downtime deploys with health-gated automatic rollback that hold under every fault.

The release logic is written once against `StoreFS` (a handful of filesystem operations); transports
implement it: `LocalFS` here, `SftpFS` in deploy/sftp.py. Layout on a store, beside the live plugin path:

    <parent>/<name>                               -> symlink to .psp-releases/<name>/<folder>
    <parent>/.psp-releases/<name>/<folder>/        one immutable folder per deploy attempt that went in:
                                                   `<release>` for the first, `<release>~2`, `~3`... after
    <parent>/.psp-releases/<name>/<folder>.manifest.json   its files' sha256, to verify it at any time
    <parent>/.psp-releases/<name>/history.jsonl    append-only: what went live, from what, its verdict,
                                                   bad marks and their clearing (the rollback source)
    <parent>/.psp-releases/<name>/.lock/           the lease lock: owner-<token>.json + lease (renewed)
    <parent>/.psp-releases/<name>/.staging-<token>/  an upload in progress (garbage once its lock is gone)

Rules: a folder is never modified or deleted while it is live or the rollback target; every attempt
uploads into fresh staging and renames it into a new folder. The switch is a symlink made under a
temporary name and renamed over the live link, so a request sees the old release or the new one. The
lock is a lease judged on the store's own clock; only its holder (by token) releases it, and the holder
re-checks it right before every switch. Nothing here keeps global state: deploys to different stores
may run one per thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import posixpath
import shutil
import socket
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from psp_assets.core.errors import DeployError
from psp_assets.core.package import Artifact

RELEASES_DIR = ".psp-releases"
LOCK_NAME = ".lock"
HISTORY_NAME = "history.jsonl"
STAGING_PREFIX = ".staging-"
ATTEMPT_SEP = "~"  # <release>~<attempt>; '~' never occurs in a release id (semver has no '~')
LEASE_SECONDS = 120.0  # a lock whose lease was not renewed for this long (store clock) is abandoned
KEEP_RELEASES = 5  # release folders kept on a store, the live one included
MAX_LEASE_SECONDS = 3600.0  # a lease a holder declares is believed up to this long
LIVE_EVENTS = ("switch", "adopt", "rollback", "observed")


class StoreFS(Protocol):
    """The operations a deploy needs from a store. Paths are POSIX strings on the store."""

    def exists(self, path: str) -> bool: ...
    def is_symlink(self, path: str) -> bool: ...
    def is_dir(self, path: str) -> bool: ...
    def readlink(self, path: str) -> str: ...
    def mkdir(self, path: str) -> None: ...  # raises FileExistsError when present
    def makedirs(self, path: str) -> None: ...
    def rename(self, src: str, dst: str) -> None: ...  # atomic; replaces a file, link or empty folder
    def symlink(self, target: str, path: str) -> None: ...
    def rmtree(self, path: str) -> None: ...
    def remove(self, path: str) -> None: ...
    def listdir(self, path: str) -> list[str]: ...
    def list_files(self, root: str) -> list[str]: ...  # regular files under root, relative, sorted
    def mtime(self, path: str) -> float: ...  # on the store's clock
    def write_bytes(self, path: str, data: bytes, confirm: bool = True) -> None: ...  # confirm: size checked
    # one transfer; returns each file's sha256 read back on the store when it can in the same round trip
    def write_tree(self, root: str, files: dict[str, bytes]) -> dict[str, str | None] | None: ...
    def read_bytes(self, path: str) -> bytes: ...
    def sha256(self, path: str) -> str: ...
    def sha256_many(self, paths: list[str]) -> dict[str, str | None]: ...  # None: missing
    def replace_dir_with_link(self, path: str, link: str, aside: str) -> None: ...


_RENAME_EXCHANGE = 2


def _exchange(a: str, b: str) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where that is unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0


class LocalFS:
    """A store on this machine's filesystem, rooted at `root`; no path may leave it."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _p(self, path: str) -> Path:
        full = Path(os.path.normpath(self.root / path.lstrip("/")))
        if self.root != full and self.root not in full.parents:
            raise DeployError(f"{path}: outside the store root {self.root}")
        return full

    def exists(self, path: str) -> bool:
        return os.path.lexists(self._p(path))

    def is_symlink(self, path: str) -> bool:
        return self._p(path).is_symlink()

    def is_dir(self, path: str) -> bool:
        return self._p(path).is_dir()

    def readlink(self, path: str) -> str:
        return os.readlink(self._p(path))

    def mkdir(self, path: str) -> None:
        self._p(path).mkdir()

    def makedirs(self, path: str) -> None:
        self._p(path).mkdir(parents=True, exist_ok=True)

    def rename(self, src: str, dst: str) -> None:
        os.replace(self._p(src), self._p(dst))

    def symlink(self, target: str, path: str) -> None:
        os.symlink(target, self._p(path))

    def rmtree(self, path: str) -> None:
        p = self._p(path)
        if p.is_symlink() or p.is_file():
            p.unlink(missing_ok=True)
        else:
            shutil.rmtree(p, ignore_errors=True)

    def remove(self, path: str) -> None:
        self._p(path).unlink(missing_ok=True)

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(self._p(path)))

    def list_files(self, root: str) -> list[str]:
        base = self._p(root)
        found = []
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                full = Path(dirpath) / name
                if full.is_file() and not full.is_symlink():
                    found.append(full.relative_to(base).as_posix())
        return sorted(found)

    def mtime(self, path: str) -> float:
        return self._p(path).lstat().st_mtime

    def write_bytes(self, path: str, data: bytes, confirm: bool = True) -> None:
        self._p(path).write_bytes(data)

    def read_bytes(self, path: str) -> bytes:
        return self._p(path).read_bytes()

    def write_tree(self, root: str, files: dict[str, bytes]) -> dict[str, str | None] | None:
        base = self._p(root)
        for rel, data in sorted(files.items()):
            target = self._p(posixpath.join(root, rel))
            if base not in target.parents:
                raise DeployError(f"{rel}: outside {root}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return None

    def sha256(self, path: str) -> str:
        return hashlib.sha256(self._p(path).read_bytes()).hexdigest()

    def sha256_many(self, paths: list[str]) -> dict[str, str | None]:
        return {p: self.sha256(p) if self._p(p).is_file() else None for p in paths}

    def replace_dir_with_link(self, path: str, link: str, aside: str) -> None:
        """The folder at `path` goes to `aside` and the symlink `link` takes its place; with
        RENAME_EXCHANGE no reader ever finds `path` missing."""
        if _exchange(str(self._p(link)), str(self._p(path))):
            os.rename(self._p(link), self._p(aside))
            return
        os.rename(self._p(path), self._p(aside))
        os.rename(self._p(link), self._p(path))


@dataclass
class Step:
    step: str
    ok: bool
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Deployment:
    target: str
    release_id: str
    deployed_version: str | None = None  # the release the store serves after this deploy, read back
    previous_version: str | None = None  # the release it served before
    health: str = "not checked"  # healthy | unhealthy | unchanged | not checked
    rolled_back: bool = False
    noop: bool = False
    error: str = ""
    steps: list[Step] = field(default_factory=list)
    live_folder: str | None = None  # the release folder the live path points at, read back
    marked_bad: bool = False

    @property
    def ok(self) -> bool:
        return not self.error and not self.rolled_back

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class HealthResult:
    ok: bool
    detail: str
    # "release": the release itself broke the store (a 5xx, PHP error output); "environment": the store or
    # the network did, or the answer was inconclusive (roll back, but a retry of the same release is allowed)
    blame: str = "release"


# (live path, release id now live, that release's manifest or None for a hand-installed one) -> result
HealthCheck = Callable[[str, str, "dict[str, str] | None"], HealthResult]
Reconnect = Callable[[], "StoreFS"]


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a store's release history. `folder` is a release folder; `release` its release id."""

    seq: int
    event: str  # switch | adopt | rollback | observed | verdict | marked bad | cleared
    release: str = ""
    folder: str = ""
    previous: str = ""  # the folder live before (switch, adopt, rollback, observed)
    verdict: str = ""  # healthy | unhealthy (verdict)
    reason: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    run: str = ""
    target: str = ""
    at: float = 0.0  # the deployer's clock: for people, never for decisions

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HistoryEntry:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def manifest_path(releases: str, folder: str) -> str:
    """Each release folder's manifest is kept on the store beside it, so a rollback can be verified too."""
    return posixpath.join(releases, f"{folder}.manifest.json")


def stored_manifest(fs: StoreFS, releases: str, folder: str) -> dict[str, str] | None:
    path = manifest_path(releases, folder)
    if not fs.exists(path):
        return None
    return json.loads(fs.read_bytes(path))


def releases_dir_for(live: str) -> str:
    parent, name = posixpath.split(live.rstrip("/"))
    return posixpath.join(parent, RELEASES_DIR, name)


def release_of(folder: str) -> str:
    """The release id a release folder holds (`1.2.0-abc~3` -> `1.2.0-abc`)."""
    return folder.split(ATTEMPT_SEP, 1)[0]


def live_folder(fs: StoreFS, live: str) -> str | None:
    """The release folder the live path points at, or None when there is no managed release."""
    if not fs.is_symlink(live):
        return None
    return posixpath.basename(fs.readlink(live).rstrip("/"))


def current_release(fs: StoreFS, live: str) -> str | None:
    """The release id the live path points at, or None when there is no managed release."""
    folder = live_folder(fs, live)
    return release_of(folder) if folder else None


# --- history ---------------------------------------------------------------------------------------


def read_history(fs: StoreFS, live: str) -> list[HistoryEntry]:
    """The store's release history for the plugin at `live`, oldest first (empty when there is none)."""
    return _read_history(fs, releases_dir_for(live))


def _read_history(fs: StoreFS, releases: str) -> list[HistoryEntry]:
    path = posixpath.join(releases, HISTORY_NAME)
    try:
        raw = fs.read_bytes(path)
    except FileNotFoundError:
        return []
    except OSError:
        if not fs.exists(path):
            return []
        raise
    return _parse_history(raw)


def _read_raw(fs: StoreFS, releases: str) -> bytes:
    path = posixpath.join(releases, HISTORY_NAME)
    try:
        return fs.read_bytes(path)
    except FileNotFoundError:
        return b""


def _parse_history(raw: bytes) -> list[HistoryEntry]:
    entries = []
    for line in raw.decode("utf-8", "replace").splitlines():
        with contextlib.suppress(ValueError, TypeError):
            entries.append(HistoryEntry.from_json(json.loads(line)))
    return entries


def _append_history(fs: StoreFS, releases: str, token: str, raw: bytes | None = None, **entry: Any) -> bytes:
    """Append one entry: the whole file is written under a temporary name and renamed over the old one,
    so a reader (or a kill) sees the history before or after the entry, never half a line. `raw` is the
    history as read under the same lock (the holder is its only writer); returns the new content."""
    path = posixpath.join(releases, HISTORY_NAME)
    if raw is None:
        raw = _read_raw(fs, releases)
    seq = raw.count(b"\n") + 1
    record = HistoryEntry(seq=seq, at=round(time.time(), 3), **entry)
    line = json.dumps({k: v for k, v in asdict(record).items() if v not in ("", {}, None)}, sort_keys=True)
    tmp = posixpath.join(releases, f".history.tmp-{token}")
    raw = raw + line.encode() + b"\n"
    fs.write_bytes(tmp, raw)
    fs.rename(tmp, path)
    return raw


def _verdicts(history: list[HistoryEntry]) -> dict[str, str]:
    latest: dict[str, str] = {}
    for e in history:
        if e.verdict and e.folder:
            latest[e.folder] = e.verdict
    return latest


def bad_mark(history: list[HistoryEntry], release: str) -> HistoryEntry | None:
    """The entry that marked `release` bad, unless a later one cleared it."""
    mark = None
    for e in history:
        if e.release == release and e.event == "marked bad":
            mark = e
        elif e.release == release and e.event == "cleared":
            mark = None
    return mark


def previous_live_folder(history: list[HistoryEntry], current: str | None) -> str | None:
    """The folder that was live before `current` went live (the last time it did), skipping folders whose
    last verdict was unhealthy and releases marked bad: where a rollback from `current` goes."""
    lives = [e for e in history if e.event in LIVE_EVENTS]
    verdicts = _verdicts(history)
    upto = len(lives)
    if current is not None:
        matches = [i for i, e in enumerate(lives) if e.folder == current]
        upto = matches[-1] if matches else len(lives)
    for e in reversed(lives[:upto]):
        if (
            not e.folder
            or e.folder == current
            or verdicts.get(e.folder) == "unhealthy"
            or bad_mark(history, release_of(e.folder))
        ):
            continue
        return e.folder
    return None


def folder_live_before(history: list[HistoryEntry], release: str) -> str | None:
    """Where a rollback from `release` goes: the folder live before the last time `release` went live."""
    folder = next((e.folder for e in reversed(history) if e.event in LIVE_EVENTS and e.release == release), None)
    return previous_live_folder(history, folder) if folder else None


# --- the lease lock ---------------------------------------------------------------------------------


class LeaseLost(DeployError):
    """This deploy no longer holds the store's lock (its lease was broken by another deploy)."""


def _store_now(fs: StoreFS, releases: str, token: str) -> float:
    """The store's clock, read as the mtime of a file written just now."""
    probe = posixpath.join(releases, f".clock-{token}")
    fs.write_bytes(probe, b"")
    try:
        return fs.mtime(probe)
    finally:
        with contextlib.suppress(OSError):
            fs.remove(probe)


@dataclass
class Lease:
    """The deploy lock on one store plugin path, held by `token`. Renewed by writing `lease` (its mtime is
    the store's clock); the owner record is written before the lock exists, so a lock always has one."""

    fs: StoreFS
    releases: str
    token: str
    holder: str
    seconds: float
    renewed: float = field(default_factory=time.monotonic)

    @property
    def lock(self) -> str:
        return posixpath.join(self.releases, LOCK_NAME)

    def check(self) -> None:
        """Raise LeaseLost unless the lock on the store is still this lease's (one request)."""
        if not self.fs.exists(posixpath.join(self.lock, _owner_file(self.token))):
            owner = _read_owner(self.fs, self.lock) or {}
            raise LeaseLost(
                f"{self.lock}: this deploy's lease was broken (the lock now belongs to "
                f"{owner.get('holder') or 'nobody'}); it stops before changing the store"
            )

    def renew(self, force: bool = False) -> None:
        """Check the lease is ours and push its expiry out; cheap no-op unless a quarter lease passed."""
        if not force and time.monotonic() - self.renewed < self.seconds / 4:
            return
        self.check()
        self.fs.write_bytes(posixpath.join(self.lock, "lease"), self.token.encode())
        self.renewed = time.monotonic()

    def release(self) -> None:
        """Remove the lock only if it is still ours: moved aside atomically, its token checked, deleted."""
        with contextlib.suppress(LeaseLost, OSError, EOFError):
            self.check()
            gone = posixpath.join(self.releases, f".lock.gone-{self.token}")
            self.fs.rename(self.lock, gone)
            _restore_unless_token(self.fs, gone, self.lock, self.token)
            self.fs.rmtree(gone)


def _restore_unless_token(fs: StoreFS, moved: str, lock: str, token: str) -> None:
    """After moving a lock aside: when it turns out not to be the one meant (another deploy took the lock in
    between), put it back; raises LeaseLost so the caller does not delete it."""
    if not token or not fs.exists(posixpath.join(moved, _owner_file(token))):
        with contextlib.suppress(OSError):
            fs.rename(moved, lock)
        raise LeaseLost(f"{lock}: changed hands while being moved; put back")


def _owner_file(token: str) -> str:
    return f"owner-{token}.json"


def _read_owner(fs: StoreFS, lock: str) -> dict[str, Any] | None:
    """The lock's owner record (its token is in the file's name); {} for a lock without one; None when
    there is no lock."""
    try:
        names = fs.listdir(lock)
    except FileNotFoundError:
        return None
    except OSError:
        if not fs.exists(lock):
            return None
        raise
    for name in names:
        if name.startswith("owner-") and name.endswith(".json"):
            owner: dict[str, Any] = {}
            with contextlib.suppress(OSError, ValueError):
                owner = json.loads(fs.read_bytes(posixpath.join(lock, name)))
            return {**owner, "token": name[len("owner-") : -len(".json")], "file": name}
    return {}


def acquire_lease(
    fs: StoreFS,
    releases: str,
    holder: str | None,
    what: str,
    seconds: float = LEASE_SECONDS,
    steps: list[Step] | None = None,
    target: str = "",
) -> Lease:
    """Take the deploy lock of a store plugin path, or raise DeployError naming who holds it.

    A held lock is broken (atomically, by renaming it to a unique name) when its lease expired on the
    store's clock, when it has no owner, or when its holder is `holder` itself: a retry of the same run
    (Dagster starts a retry only after the attempt before it ended), whatever host or pod it ran on.
    """
    token = os.urandom(12).hex()
    holder = holder or f"anonymous-{token}"
    lock = posixpath.join(releases, LOCK_NAME)
    fresh = posixpath.join(releases, f".lock.new-{token}")
    owner = {
        "token": token,
        "holder": holder,
        "what": what,
        "lease_seconds": seconds,
        "host": socket.gethostname(),  # for people reading the lock, never for decisions
        "pid": os.getpid(),
        "deployer_time": round(time.time(), 3),
    }
    fs.mkdir(fresh)
    try:
        # the owner record's mtime is the lease until the first renewal writes `lease`
        fs.write_bytes(posixpath.join(fresh, _owner_file(token)), json.dumps(owner).encode())
        for _attempt in range(4):
            try:
                fs.rename(fresh, lock)
            except OSError:
                if not fs.exists(lock):
                    if not fs.exists(fresh):
                        raise DeployError(f"target {target}: {fresh} vanished while taking the lock") from None
                    continue
            else:
                return Lease(fs, releases, token, holder, seconds)
            found = _read_owner(fs, lock)
            if found is None:
                continue  # released in between: try again
            why = _why_breakable(fs, releases, lock, found, holder, token)
            if not why:
                age = _lease_age(fs, releases, lock, token, found.get("file", ""))
                declared = _declared_lease(found, seconds)
                raise DeployError(
                    f"target {target}: another deploy holds {lock} ({found.get('holder', '?')} deploying "
                    f"{found.get('what', '?')}, lease renewed {int(age)} s ago on the store's clock); it is "
                    f"abandoned once its lease of {int(declared)} s runs out"
                )
            judged = found.get("file", "")
            if judged and not fs.exists(posixpath.join(lock, judged)):
                continue  # it changed hands since it was judged: judge again
            broken = posixpath.join(releases, f".lock.broken-{token}")
            try:
                fs.rename(lock, broken)
            except OSError:
                continue  # someone else broke or released it first
            note = ""
            if judged and not fs.exists(posixpath.join(broken, judged)):
                # another deploy took the lock between the check and the rename: it is broken now too,
                # and that deploy stops at its next check (putting it back could revive a lock its owner
                # has already given up)
                note = "; a lock taken in the same instant was broken too"
            with contextlib.suppress(OSError):
                fs.rmtree(broken)
            if steps is not None:
                who = found.get("holder") or "nobody"
                steps.append(Step("lock", True, f"broke the lock of {who}: {why}{note}"))
        raise DeployError(f"target {target}: could not take {lock} after 4 tries (contended)")
    finally:
        with contextlib.suppress(OSError, EOFError):
            if fs.exists(fresh):
                fs.rmtree(fresh)


def _declared_lease(owner: dict[str, Any], default: float) -> float:
    value = owner.get("lease_seconds")
    if isinstance(value, (int, float)) and value > 0:
        return min(float(value), MAX_LEASE_SECONDS)
    return default


def _lease_age(fs: StoreFS, releases: str, lock: str, token: str, owner_file: str = "") -> float:
    now = _store_now(fs, releases, token)
    for name in ("lease", owner_file or "owner.json"):
        with contextlib.suppress(FileNotFoundError, OSError):
            return now - fs.mtime(posixpath.join(lock, name))
    return now - fs.mtime(lock)


def _why_breakable(fs: StoreFS, releases: str, lock: str, owner: dict[str, Any], holder: str, token: str) -> str:
    if not owner.get("token"):
        return "the lock has no owner record"
    if owner.get("holder") == holder and not holder.startswith("anonymous-"):
        return f"it is held by an earlier attempt of {holder}, which has ended"
    declared = _declared_lease(owner, LEASE_SECONDS)
    age = _lease_age(fs, releases, lock, token, owner.get("file", ""))
    if age >= declared:
        return f"its lease was last renewed {int(age)} s ago on the store's clock (lease {int(declared)} s)"
    return ""


# --- deploy -----------------------------------------------------------------------------------------


def _timed(deployment: Deployment, name: str, fn: Callable[[], Any]) -> Any:
    start = time.monotonic()
    try:
        detail = fn()
    except Exception as exc:
        deployment.steps.append(Step(name, False, str(exc) or type(exc).__name__, round(time.monotonic() - start, 4)))
        raise
    shown = detail if isinstance(detail, str) else ("already on the store" if detail else f"{name} done")
    deployment.steps.append(Step(name, True, shown, round(time.monotonic() - start, 4)))
    return detail


_EXTRACTED: dict[tuple[Any, ...], dict[str, bytes]] = {}
_EXTRACTED_LOCK = threading.Lock()


def extract_release(artifact: Artifact) -> dict[str, bytes]:
    """The plugin's files from the archive (without the archive's root folder), checked against the
    manifest: no entry may escape, none may be missing, extra or altered.

    Kept for the last few archives, by path, size, mtime, inode and manifest: a release deployed to many
    stores is read and checked once (every uploaded file is still verified against the manifest on each
    store). The mapping is shared: read it, do not change it."""
    st = artifact.path.stat()
    key = (
        str(artifact.path),
        st.st_size,
        st.st_mtime_ns,
        st.st_ino,
        artifact.root,
        tuple(sorted(artifact.manifest.items())),
    )
    with _EXTRACTED_LOCK:
        files = _EXTRACTED.get(key)
    if files is None:
        files = _extract(artifact)
        with _EXTRACTED_LOCK:
            while len(_EXTRACTED) >= 8:
                del _EXTRACTED[next(iter(_EXTRACTED))]
            _EXTRACTED[key] = files
    return files


def _extract(artifact: Artifact) -> dict[str, bytes]:
    prefix = f"{artifact.root.strip('/')}/" if artifact.root.strip("/") else ""
    files: dict[str, bytes] = {}
    with zipfile.ZipFile(artifact.path) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            name = info.filename
            pure = PurePosixPath(name)
            if pure.is_absolute() or ".." in pure.parts or not name.startswith(prefix):
                raise DeployError(f"{artifact.path.name}: entry {name!r} would land outside the plugin folder")
            files[name[len(prefix) :]] = zf.read(info)
    actual = {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}
    if actual != artifact.manifest:
        missing = sorted(set(artifact.manifest) - set(actual))
        extra = sorted(set(actual) - set(artifact.manifest))
        changed = sorted(k for k in actual.keys() & artifact.manifest.keys() if actual[k] != artifact.manifest[k])
        raise DeployError(
            f"{artifact.path.name}: archive does not match its manifest "
            f"(missing {missing[:3]}, extra {extra[:3]}, changed {changed[:3]})"
        )
    return files


def verify_tree(
    fs: StoreFS, root: str, manifest: dict[str, str], hashes: dict[str, str | None] | None = None
) -> list[str]:
    """Differences between the files under `root` on the store and the manifest (empty: identical).
    `hashes`: the files' sha256 as the store computed them already (path -> digest), else asked now."""
    problems = []
    paths = {rel: posixpath.join(root, rel) for rel in sorted(manifest)}
    if hashes is None:
        hashes = fs.sha256_many(list(paths.values()))
    for rel, path in paths.items():
        if hashes.get(path) is None:
            problems.append(f"missing {rel}")
        elif hashes[path] != manifest[rel]:
            problems.append(f"changed {rel}")
    return problems


def _switch(fs: StoreFS, live: str, folder: str, token: str) -> None:
    parent, name = posixpath.split(live)
    tmp = posixpath.join(parent, f".{name}.switch-{token}")
    with contextlib.suppress(OSError):
        fs.remove(tmp)
    fs.symlink(posixpath.join(RELEASES_DIR, name, folder), tmp)
    try:
        fs.rename(tmp, live)
    except Exception:
        with contextlib.suppress(Exception):
            fs.remove(tmp)
        raise


def _is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, (EOFError, ConnectionError, TimeoutError)):
        return True
    name = type(exc).__name__
    return name in ("SSHException", "ChannelException", "NoValidConnectionsError") or (
        isinstance(exc, OSError) and ("closed" in str(exc).lower() or "connection" in str(exc).lower())
    )


@dataclass
class _Run:
    """One deploy's working state (kept off the module so deploys can run side by side)."""

    fs: StoreFS
    live: str
    releases: str
    result: Deployment
    lease: Lease
    health: HealthCheck
    reconnect: Reconnect | None
    target: str
    reconnected: bool = False
    raw: bytes | None = None  # the history as read (and then written) under this lock

    def history(self) -> list[HistoryEntry]:
        if self.raw is None:
            self.raw = _read_raw(self.fs, self.releases)
        return _parse_history(self.raw)

    def append(self, **entry: Any) -> None:
        self.lease.check()
        self.lease.renew()
        if self.raw is None:
            self.raw = _read_raw(self.fs, self.releases)
        self.raw = _append_history(
            self.fs, self.releases, self.lease.token, self.raw, run=self.lease.holder, target=self.target, **entry
        )

    def switch(self, folder: str) -> None:
        self.lease.check()  # re-checked right before the switch
        self.lease.renew()
        _switch(self.fs, self.live, folder, self.lease.token)

    def fresh_connection(self) -> bool:
        """Reconnect once after the connection died; True when there is a new one."""
        if self.reconnected or self.reconnect is None:
            return False
        self.reconnected = True
        try:
            self.fs = self.reconnect()
        except Exception as exc:
            self.result.steps.append(Step("reconnect", False, str(exc) or type(exc).__name__))
            return False
        self.lease.fs = self.fs
        self.result.steps.append(Step("reconnect", True, "a new connection to the store"))
        return True


def deploy(
    artifact: Artifact,
    fs: StoreFS,
    live: str,
    target_name: str,
    health: HealthCheck,
    keep: int = KEEP_RELEASES,
    lease_seconds: float = LEASE_SECONDS,
    holder: str | None = None,
    reconnect: Reconnect | None = None,
) -> Deployment:
    """Deploy `artifact` to the live path `live` on `fs`; returns what happened, step by step, and what the
    store serves afterwards (read back from the live link).

    Raises DeployError only when the store was not changed: the archive is bad, the lock is held, or the
    release is marked bad. Every other failure (a failed health gate, a dropped connection, a full disk) is
    reported in the Deployment; a failed gate is rolled back first. `holder` names the run deploying (the
    same for every retry of it: a retry takes over the lock of the attempt it retries). `reconnect` opens a
    new connection to the store, used once when the connection dies (rollback, read-back).
    """
    release = artifact.release_id
    releases = releases_dir_for(live)
    result = Deployment(target=target_name, release_id=release)
    files = extract_release(artifact)
    result.steps.append(Step("verify archive", True, f"{len(files)} files match the manifest"))
    fs.makedirs(releases)
    lease = acquire_lease(fs, releases, holder, release, lease_seconds, result.steps, target_name)
    run = _Run(fs, live, releases, result, lease, health, reconnect, target_name)
    try:
        history = _adopt_legacy_marks(run, run.history())
        mark = bad_mark(history, release)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        _finish(run)
        return result
    if mark is not None:
        _finish(run)
        raise DeployError(
            f"target {target_name}: release {release} is marked bad ({mark.reason}); build a new release, "
            "or take the mark back with `psp release clear-bad` if the evidence was wrong"
        )
    try:
        _deploy_locked(run, artifact, files, history, keep)
    except Exception as exc:
        result.error = result.error or (str(exc) if isinstance(exc, DeployError) else f"{type(exc).__name__}: {exc}")
    _finish(run)
    return result


def _finish(run: _Run) -> None:
    """Release the lock and read back what the store serves (reconnecting once when needed)."""
    result = run.result
    for attempt in range(2):
        try:
            run.lease.release()
            folder = live_folder(run.fs, run.live)
            result.live_folder = folder
            result.deployed_version = release_of(folder) if folder else None
            if folder is None and run.fs.exists(run.live):
                result.deployed_version = result.previous_version  # a hand-installed folder, still there
            return
        except Exception as exc:
            if attempt == 0 and _is_connection_error(exc) and run.fresh_connection():
                continue
            result.steps.append(Step("read back", False, f"cannot read what the store serves: {exc}"))
            result.error = result.error or "the store could not be read back"
            result.deployed_version = None
            result.live_folder = None
            return


def _adopt_legacy_marks(run: _Run, history: list[HistoryEntry]) -> list[HistoryEntry]:
    """`<release>.bad.json` markers of earlier versions become history entries (then go)."""
    for name in run.fs.listdir(run.releases):
        if name.endswith(".bad.json") and not name.startswith("."):
            release = name[: -len(".bad.json")]
            path = posixpath.join(run.releases, name)
            reason = ""
            with contextlib.suppress(OSError, ValueError):
                reason = str(json.loads(run.fs.read_bytes(path)).get("reason", ""))
            if bad_mark(history, release) is None:
                run.append(event="marked bad", release=release, reason=reason or "legacy marker", evidence={})
            run.fs.remove(path)
            history = run.history()
    return history


def _deploy_locked(
    run: _Run, artifact: Artifact, files: dict[str, bytes], history: list[HistoryEntry], keep: int
) -> None:
    fs, live, releases, result = run.fs, run.live, run.releases, run.result
    release = artifact.release_id
    folder = live_folder(fs, live)
    if folder is None and not fs.exists(live):
        folder = _recover_missing_live(run, history)
    last_live = next((e.folder for e in reversed(history) if e.event in LIVE_EVENTS), None)
    if folder is not None and folder != last_live:
        run.append(event="observed", release=release_of(folder), folder=folder, previous=last_live or "")
        history = run.history()
    if folder is None and fs.exists(live):
        adopted: list[str] = []
        _timed(result, "adopt", lambda: _adopt(run, adopted))
        folder = adopted[0]
        history = run.history()
    result.previous_version = release_of(folder) if folder else None

    if (
        folder is not None
        and release_of(folder) == release
        and not verify_tree(fs, posixpath.join(releases, folder), artifact.manifest)
    ):
        result.steps.append(Step("noop", True, f"{release} is already live ({folder}) and matches its manifest"))
        # still gated: a deploy killed between its switch and its health check left this release live
        # without a verdict, and a retry must not call that a success
        check = _gate(run, release, artifact.manifest)
        if check.ok:
            if _verdicts(history).get(folder) != "healthy":
                run.append(
                    event="verdict", release=release, folder=folder, verdict="healthy", reason=check.detail[:300]
                )
            result.noop = True
            result.health = "unchanged"
            _collect(run, keep, folder)
            return
        target = previous_live_folder(history, folder)
        result.previous_version = release_of(target) if target else None
        _roll_back(run, check, folder, target, artifact.manifest)
        return

    existing = set(fs.listdir(releases))
    new_folder = _reusable_folder(fs, releases, existing, release, artifact.manifest, exclude=folder)
    if new_folder is None:
        read_back: list[dict[str, str | None] | None] = []
        staging = _timed(result, "upload", lambda: _upload(run, files, read_back))
        manifest = dict(artifact.manifest)  # what extract_release found the files to be
        _timed(result, "verify", lambda: _verify_uploaded(fs, staging, manifest, read_back[0]))
        new_folder = _place(run, staging, manifest, _new_folder_name(existing, release))
    else:
        result.steps.append(Step("upload", True, f"{new_folder} is already on the store, intact"))
    _timed(result, "switch", lambda: (run.switch(new_folder), f"{live} -> {new_folder}")[1])
    # one history entry per deploy, written with its verdict: a deploy killed before it is recorded by
    # the next one as "observed" (what was live before it is then the last entry)
    check = _gate(run, release, artifact.manifest)
    if check.ok:
        result.health = "healthy"
        run.append(
            event="switch",
            release=release,
            folder=new_folder,
            previous=folder or "",
            verdict="healthy",
            reason=check.detail[:300],
        )
        _collect(run, keep, new_folder)
        return
    previous_manifest = None
    with contextlib.suppress(Exception):
        previous_manifest = stored_manifest(run.fs, releases, folder) if folder else None
    _roll_back(run, check, new_folder, folder, previous_manifest)


def _gate(run: _Run, release: str, manifest: dict[str, str] | None, step: str = "health") -> HealthResult:
    """The health check; an exception (a dropped connection mid-check) is an inconclusive failure."""
    started = time.monotonic()
    try:
        run.lease.renew()
        check = run.health(run.live, release, manifest)
    except Exception as exc:
        check = HealthResult(False, f"the check could not run: {type(exc).__name__}: {exc}", blame="environment")
    run.result.steps.append(Step(step, check.ok, check.detail, round(time.monotonic() - started, 4)))
    return check


def _recover_missing_live(run: _Run, history: list[HistoryEntry]) -> str | None:
    """The live path is gone (a kill between the two renames of an adoption without a shell): point it
    back at the folder the history says is live."""
    last = next((e for e in reversed(history) if e.event in LIVE_EVENTS), None)
    if last is None or not last.folder or not run.fs.is_dir(posixpath.join(run.releases, last.folder)):
        return None
    folder = last.folder
    _timed(run.result, "recover", lambda: (run.switch(folder), f"live path was missing; -> {folder}")[1])
    return folder


def _reusable_folder(
    fs: StoreFS, releases: str, existing: set[str], release: str, manifest: dict[str, str], exclude: str | None
) -> str | None:
    """An intact folder of this release already on the store (a retry after a failure past the upload)."""
    for name in sorted(existing):
        if name == exclude or release_of(name) != release or name.endswith(".json") or name.startswith("."):
            continue
        if fs.exists(manifest_path(releases, name)) and not verify_tree(fs, posixpath.join(releases, name), manifest):
            return name
    return None


def _new_folder_name(existing: set[str], release: str) -> str:
    if release not in existing:
        return release
    n = 2
    while f"{release}{ATTEMPT_SEP}{n}" in existing:
        n += 1
    return f"{release}{ATTEMPT_SEP}{n}"


def _upload(run: _Run, files: dict[str, bytes], hashes: list[dict[str, str | None] | None]) -> str:
    """Upload into a fresh staging folder (named by this lease's token); returns it. The sha256 of the
    uploaded files, when the store computed them in the same round trip, go into `hashes`."""
    staging = posixpath.join(run.releases, f"{STAGING_PREFIX}{run.lease.token}")
    run.lease.renew()
    hashes.append(run.fs.write_tree(staging, files))  # one transfer; verified by sha256 next
    run.lease.renew()
    return staging


def _verify_uploaded(
    fs: StoreFS, staging: str, manifest: dict[str, str], hashes: dict[str, str | None] | None = None
) -> str:
    problems = verify_tree(fs, staging, manifest, hashes)
    if problems:
        raise DeployError(f"{staging} differs from the manifest after upload: {'; '.join(problems[:5])}")
    return f"{len(manifest)} files match sha256"


def _place(run: _Run, staging: str, manifest: dict[str, str], folder: str) -> str:
    """Store the manifest beside the new folder, then rename staging into the new release folder."""
    fs, releases = run.fs, run.releases
    tmp = posixpath.join(releases, f".manifest.tmp-{run.lease.token}")
    fs.write_bytes(tmp, json.dumps(manifest, sort_keys=True).encode())
    fs.rename(tmp, manifest_path(releases, folder))
    run.lease.renew()
    fs.rename(staging, posixpath.join(releases, folder))
    return folder


def _adopt(run: _Run, adopted: list[str]) -> str:
    """First deploy over a hand-installed plugin folder: copy it into a release folder with its manifest,
    make the live link to that copy, and only then move the hand-installed folder aside (with an atomic
    exchange where the store has one, no reader ever finds the plugin missing)."""
    fs, live, releases = run.fs, run.live, run.releases
    legacy = f"legacy-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{run.lease.token[:6]}"
    staging = posixpath.join(releases, f"{STAGING_PREFIX}{run.lease.token}")
    fs.makedirs(staging)
    manifest = {}
    for rel in fs.list_files(live):
        run.lease.renew()
        data = fs.read_bytes(posixpath.join(live, rel))
        target = posixpath.join(staging, rel)
        if posixpath.dirname(rel):
            fs.makedirs(posixpath.dirname(target))
        fs.write_bytes(target, data)
        manifest[rel] = hashlib.sha256(data).hexdigest()
    if verify_tree(fs, staging, manifest):
        raise DeployError(f"{staging}: the copy of the hand-installed plugin does not match it")
    fs.write_bytes(manifest_path(releases, legacy), json.dumps(manifest, sort_keys=True).encode())
    fs.rename(staging, posixpath.join(releases, legacy))
    run.append(event="adopt", release=legacy, folder=legacy, reason="hand-installed folder adopted")
    parent, name = posixpath.split(live)
    link = posixpath.join(parent, f".{name}.switch-{run.lease.token}")
    run.lease.check()
    fs.symlink(posixpath.join(RELEASES_DIR, name, legacy), link)
    fs.replace_dir_with_link(live, link, posixpath.join(releases, f".adopted-{run.lease.token}"))
    adopted.append(legacy)
    return f"kept the hand-installed folder as release {legacy} ({len(manifest)} files)"


def _roll_back(
    run: _Run, check: HealthResult, failed: str, previous: str | None, previous_manifest: dict[str, str] | None
) -> None:
    """The gate failed: roll back first (reconnecting once), then re-verify, then record and mark.

    The release is marked bad only on evidence that it is the problem: the store failed with it in a way
    that blames the release (a 5xx, PHP error output) and was healthy again on the previous release."""
    result = run.result
    result.health = "unhealthy"
    for attempt in range(2):
        try:
            if previous is None:
                run.lease.check()
                run.fs.remove(run.live)  # nothing was live before this deploy: leave nothing live
                detail = "no previous release; removed the live link"
            else:
                run.switch(previous)
                detail = f"{run.live} -> {previous}"
            result.steps.append(Step("rollback", True, detail))
            break
        except LeaseLost as exc:
            result.steps.append(Step("rollback", False, str(exc)))
            result.error = f"health check failed ({check.detail}); {exc}"
            return
        except Exception as exc:
            result.steps.append(Step("rollback", False, str(exc) or type(exc).__name__))
            if attempt == 0 and _is_connection_error(exc) and run.fresh_connection():
                continue
            result.error = f"health check failed ({check.detail}) and the rollback failed: {exc}"
            return
    result.rolled_back = True
    history = run.history()
    last_live = next((e for e in reversed(history) if e.event in LIVE_EVENTS), None)
    if last_live is not None and last_live.folder == failed:
        run.append(
            event="verdict", release=release_of(failed), folder=failed, verdict="unhealthy", reason=check.detail[:300]
        )
    else:
        run.append(
            event="switch",
            release=release_of(failed),
            folder=failed,
            previous=previous or "",
            verdict="unhealthy",
            reason=check.detail[:300],
        )
    run.append(
        event="rollback", release=release_of(previous) if previous else "", folder=previous or "", previous=failed
    )
    if previous is None:
        result.steps.append(Step("not marked bad", True, "nothing was live before to compare the store with"))
        return
    again = _gate(run, release_of(previous), previous_manifest, "re-verify")
    if not again.ok:
        result.error = f"rolled back to {previous}, but it is unhealthy too: {again.detail}"
        result.steps.append(Step("not marked bad", True, "the previous release fails too: the store is sick"))
        return
    if check.blame != "release":
        result.steps.append(Step("not marked bad", True, "the failure points at the store, not the release"))
        return
    run.append(
        event="marked bad",
        release=release_of(failed),
        folder=failed,
        reason=check.detail[:500],
        evidence={"with_release": check.detail[:500], "after_rollback": again.detail[:500], "previous": previous},
    )
    result.marked_bad = True
    result.steps.append(Step("marked bad", True, f"{release_of(failed)}: failed on its own, healthy on {previous}"))


def _collect(run: _Run, keep: int, current: str) -> None:
    """Garbage after a successful deploy: staging folders, lock debris, clock probes and temp files of any
    attempt (none of them holds the lock now), orphan manifests, never-live folders, and release folders
    beyond `keep` (the live one counted); never the live folder or the rollback target."""
    fs, releases, result = run.fs, run.releases, run.result
    history = run.history()
    protect = {current}
    target = previous_live_folder(history, current)
    if target:
        protect.add(target)
    order: dict[str, int] = {}
    for e in history:
        if e.event in LIVE_EVENTS and e.folder:
            order[e.folder] = e.seq
    names = fs.listdir(releases)
    folders = [n for n in names if not n.startswith(".") and not n.endswith(".json") and n != HISTORY_NAME]
    removed: list[str] = []
    # newest first by when they were last live; folders the history never saw live (an earlier layout, an
    # attempt killed between its rename and its switch) rank oldest
    ranked = sorted((f for f in folders if f not in protect), key=lambda f: order.get(f, 0), reverse=True)
    room = max(0, keep - len(protect))
    for f in ranked[room:]:
        run.lease.renew()
        fs.rmtree(posixpath.join(releases, f))
        removed.append(f)
    remaining = set(folders) - set(removed)
    for n in names:
        if n.startswith(".") and n != LOCK_NAME:
            fs.rmtree(posixpath.join(releases, n))
            removed.append(n)
        elif n.endswith(".manifest.json") and n[: -len(".manifest.json")] not in remaining:
            fs.remove(posixpath.join(releases, n))
    parent, name = posixpath.split(run.live)
    for n in fs.listdir(parent):
        if n.startswith(f".{name}.switch-"):
            fs.remove(posixpath.join(parent, n))
            removed.append(n)
    result.steps.append(Step("prune", True, f"removed {', '.join(removed)}" if removed else "nothing to remove"))


# --- operations on a store outside a deploy ---------------------------------------------------------


def roll_back_to_previous(
    fs: StoreFS,
    live: str,
    reason: str,
    evidence: dict[str, Any] | None = None,
    health: HealthCheck | None = None,
    holder: str | None = None,
    target_name: str = "",
    mark_bad: bool = False,
    lease_seconds: float = LEASE_SECONDS,
    from_release: str | None = None,
) -> Deployment:
    """Roll the store back to the release the history says was live before the current one (for KPI-gated
    rollouts and operators): takes the lock, switches, re-verifies with `health` when given, records the
    rollback (and, with `mark_bad`, marks the release that was live bad with `evidence`), and reports what
    the store serves, read back. Raises DeployError when the lock is held or there is nothing to go back to.

    `from_release` names the release to roll back from (a retry of a rollback): when the store already
    serves the release live before it (an earlier attempt switched, then died before it recorded, verified
    or marked), this one finishes that rollback without switching; serving anything else, it raises.
    """
    releases = releases_dir_for(live)
    current = live_folder(fs, live)
    result = Deployment(target=target_name, release_id=release_of(current) if current else "")
    if current is None:
        raise DeployError(f"target {target_name}: {live} is not a managed release; nothing to roll back")
    lease = acquire_lease(fs, releases, holder, f"rollback of {current}", lease_seconds, result.steps, target_name)
    run = _Run(
        fs, live, releases, result, lease, health or (lambda *_a: HealthResult(True, "not checked")), None, target_name
    )
    try:
        history = run.history()
        current = live_folder(fs, live)
        target = previous_live_folder(history, current)
        switched = False
        if from_release and (current is None or release_of(current) != from_release):
            if current is None or folder_live_before(history, from_release) != current:
                raise DeployError(f"target {target_name}: {live} serves {current}, not {from_release}; left alone")
            # an earlier attempt switched already: finish its rollback
            target, switched = current, True
            current = next(e.folder for e in reversed(history) if e.event in LIVE_EVENTS and e.release == from_release)
        result.previous_version = release_of(current) if current else None
        if target is None or not fs.is_dir(posixpath.join(releases, target)):
            raise DeployError(f"target {target_name}: the history of {live} names no earlier release to go back to")
        if switched:
            result.steps.append(Step("rollback", True, f"{live} -> {target} already (an earlier attempt switched)"))
        else:
            _timed(result, "rollback", lambda: (run.switch(target), f"{live} -> {target} ({reason})")[1])
        result.rolled_back = True
        last = next((e for e in reversed(history) if e.event in LIVE_EVENTS), None)
        if not (switched and last is not None and last.event == "rollback" and last.folder == target):
            run.append(
                event="verdict", release=release_of(current), folder=current, verdict="unhealthy", reason=reason[:300]
            )
            run.append(
                event="rollback",
                release=release_of(target),
                folder=target,
                previous=current,
                reason=reason[:300],
                evidence=evidence or {},
            )
        if health is not None:
            again = _gate(run, release_of(target), stored_manifest(fs, releases, target), "re-verify")
            result.health = "healthy" if again.ok else "unhealthy"
            if not again.ok:
                result.error = f"rolled back to {target}, but it is unhealthy too: {again.detail}"
        if mark_bad and not result.error and bad_mark(history, release_of(current)) is not None:
            result.marked_bad = True  # an earlier attempt marked it
        elif mark_bad and not result.error:
            run.append(
                event="marked bad",
                release=release_of(current),
                folder=current,
                reason=reason[:500],
                evidence=evidence or {},
            )
            result.marked_bad = True
    except DeployError as exc:
        _finish(run)
        if not result.rolled_back:
            raise
        result.error = result.error or str(exc)
        return result
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    _finish(run)
    return result


def clear_bad(
    fs: StoreFS, live: str, release: str, reason: str, holder: str | None = None, lease_seconds: float = LEASE_SECONDS
) -> str:
    """Take back the bad mark of `release` on this store (an operator's decision, recorded with `reason`)."""
    releases = releases_dir_for(live)
    if not fs.exists(releases):
        raise DeployError(f"{live}: no releases on this store")
    lease = acquire_lease(fs, releases, holder, f"clear-bad {release}", lease_seconds, None)
    try:
        history = _read_history(fs, releases)
        legacy = posixpath.join(releases, f"{release}.bad.json")
        mark = bad_mark(history, release)
        if mark is None and not fs.exists(legacy):
            raise DeployError(f"{live}: release {release} is not marked bad")
        lease.renew(force=True)
        _append_history(fs, releases, lease.token, event="cleared", release=release, reason=reason, run=lease.holder)
        fs.remove(legacy)
        return f"{release}: bad mark cleared ({mark.reason if mark else 'legacy marker'})"
    finally:
        lease.release()
