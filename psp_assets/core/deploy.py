"""Zero-downtime deploys with health-gated automatic rollback.

The release logic is written once against `StoreFS` (a handful of filesystem operations); transports
implement it: `LocalFS` here, SFTP later. Layout on a store, beside the live plugin path:

    <parent>/<name>                         -> symlink to .psp-releases/<name>/<release>
    <parent>/.psp-releases/<name>/<release>/ one folder per release, kept side by side
    <parent>/.psp-releases/<name>/<release>.bad.json   a release that failed its health check
    <parent>/.psp-releases/<name>/.lock/     the deploy lock (mkdir is atomic)

The switch is a symlink made under a temporary name and renamed over the live link, so a request
sees either the old release or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import shutil
import socket
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from .errors import DeployError
from .package import Artifact

RELEASES_DIR = ".psp-releases"
LOCK_NAME = ".lock"
STALE_LOCK_SECONDS = 15 * 60


class StoreFS(Protocol):
    """The operations a deploy needs from a store. Paths are POSIX strings on the store."""

    def exists(self, path: str) -> bool: ...
    def is_symlink(self, path: str) -> bool: ...
    def readlink(self, path: str) -> str: ...
    def mkdir(self, path: str) -> None: ...  # raises FileExistsError when present (used as a lock)
    def makedirs(self, path: str) -> None: ...
    def rename(self, src: str, dst: str) -> None: ...  # atomic, replaces dst
    def symlink(self, target: str, path: str) -> None: ...
    def rmtree(self, path: str) -> None: ...
    def remove(self, path: str) -> None: ...
    def listdir(self, path: str) -> list[str]: ...
    def mtime(self, path: str) -> float: ...
    def write_bytes(self, path: str, data: bytes) -> None: ...
    def read_bytes(self, path: str) -> bytes: ...
    def sha256(self, path: str) -> str: ...
    def sha256_many(self, paths: list[str]) -> dict[str, str | None]: ...  # None: missing


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
        shutil.rmtree(self._p(path), ignore_errors=True)

    def remove(self, path: str) -> None:
        self._p(path).unlink(missing_ok=True)

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(self._p(path)))

    def mtime(self, path: str) -> float:
        return self._p(path).lstat().st_mtime

    def write_bytes(self, path: str, data: bytes) -> None:
        self._p(path).write_bytes(data)

    def read_bytes(self, path: str) -> bytes:
        return self._p(path).read_bytes()

    def sha256(self, path: str) -> str:
        return hashlib.sha256(self._p(path).read_bytes()).hexdigest()

    def sha256_many(self, paths: list[str]) -> dict[str, str | None]:
        return {p: self.sha256(p) if self._p(p).is_file() else None for p in paths}


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
    deployed_version: str | None = None  # live after this deploy
    previous_version: str | None = None  # live before it
    health: str = "not checked"  # healthy | unhealthy | unchanged | not checked
    rolled_back: bool = False
    noop: bool = False
    error: str = ""
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.error and not self.rolled_back

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class HealthResult:
    ok: bool
    detail: str
    # "release": the release itself broke the store (never deploy it again); "environment": the store or
    # the network did (roll back, but a retry of the same release is allowed)
    blame: str = "release"


# (live path, release id now live, that release's manifest or None for a hand-installed one) -> result
HealthCheck = Callable[[str, str, "dict[str, str] | None"], HealthResult]


def manifest_path(releases: str, release: str) -> str:
    """Each release's manifest is kept on the store beside it, so a rollback can be verified too."""
    return posixpath.join(releases, f"{release}.manifest.json")


def stored_manifest(fs: StoreFS, releases: str, release: str) -> dict[str, str] | None:
    path = manifest_path(releases, release)
    if not fs.exists(path):
        return None
    return json.loads(fs.read_bytes(path))


def releases_dir_for(live: str) -> str:
    parent, name = posixpath.split(live.rstrip("/"))
    return posixpath.join(parent, RELEASES_DIR, name)


def _timed(deployment: Deployment, name: str, fn: Callable[[], Any]) -> Any:
    start = time.monotonic()
    try:
        detail = fn()
    except Exception as exc:
        deployment.steps.append(Step(name, False, str(exc), round(time.monotonic() - start, 4)))
        raise
    shown = detail if isinstance(detail, str) else ("already on the store" if detail else f"{name} done")
    deployment.steps.append(Step(name, True, shown, round(time.monotonic() - start, 4)))
    return detail


def extract_release(artifact: Artifact) -> dict[str, bytes]:
    """The plugin's files from the archive (without the archive's root folder), checked against the
    manifest: no entry may escape, none may be missing, extra or altered."""
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


def verify_tree(fs: StoreFS, root: str, manifest: dict[str, str]) -> list[str]:
    """Differences between the files under `root` on the store and the manifest (empty: identical)."""
    problems = []
    paths = {rel: posixpath.join(root, rel) for rel in sorted(manifest)}
    hashes = fs.sha256_many(list(paths.values()))
    for rel, path in paths.items():
        if hashes.get(path) is None:
            problems.append(f"missing {rel}")
        elif hashes[path] != manifest[rel]:
            problems.append(f"changed {rel}")
    return problems


def current_release(fs: StoreFS, live: str) -> str | None:
    """The release id the live path points at, or None when there is no managed release."""
    if not fs.is_symlink(live):
        return None
    target = fs.readlink(live).rstrip("/")
    return posixpath.basename(target)


def _switch(fs: StoreFS, live: str, release_id: str) -> None:
    parent, name = posixpath.split(live)
    tmp = posixpath.join(parent, f".{name}.switch-{os.getpid()}-{time.monotonic_ns()}")
    fs.symlink(posixpath.join(RELEASES_DIR, name, release_id), tmp)
    try:
        fs.rename(tmp, live)
    except Exception:
        fs.remove(tmp)
        raise


_HELD_LOCKS: set[str] = set()  # tokens of the locks this process holds right now


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _abandoned(owner: dict[str, Any]) -> str:
    """Why a lock's owner can no longer be deploying ('' when it may still be)."""
    if owner.get("host") != socket.gethostname() or not isinstance(owner.get("pid"), int):
        return ""
    if not _pid_alive(owner["pid"]):
        return f"its process {owner['pid']} on {owner['host']} is gone"
    if owner["pid"] == os.getpid() and owner.get("token") not in _HELD_LOCKS:
        return "this process lost it when its connection dropped"
    return ""


def _acquire_lock(fs: StoreFS, releases: str, deployment: Deployment, stale_after: float) -> tuple[str, str]:
    lock = posixpath.join(releases, LOCK_NAME)
    try:
        fs.mkdir(lock)
    except FileExistsError:
        age = time.time() - fs.mtime(lock)
        owner: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            owner = json.loads(fs.read_bytes(posixpath.join(lock, "owner.json")))
        why = f"it is older than {int(stale_after)} s" if age >= stale_after else _abandoned(owner)
        if not why:
            who = f"{owner.get('host', '?')} pid {owner.get('pid', '?')} deploying {owner.get('release', '?')}"
            raise DeployError(
                f"target {deployment.target}: another deploy holds {lock} since {int(age)} s ({who}); "
                f"it is considered stale after {int(stale_after)} s"
            ) from None
        fs.rmtree(lock)
        fs.mkdir(lock)
        deployment.steps.append(Step("lock", True, f"broke a stale lock: {why}"))
    token = os.urandom(8).hex()
    owner_doc = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "token": token,
        "release": deployment.release_id,
        "at": time.time(),
    }
    _HELD_LOCKS.add(token)
    fs.write_bytes(posixpath.join(lock, "owner.json"), json.dumps(owner_doc).encode())
    return lock, token


def _prune(fs: StoreFS, releases: str, keep: int, protect: set[str]) -> list[str]:
    entries = [e for e in fs.listdir(releases) if not e.startswith(".") and not e.endswith(".json")]
    entries.sort(key=lambda e: fs.mtime(posixpath.join(releases, e)), reverse=True)
    removed = []
    for entry in entries[keep:]:
        if entry not in protect:
            fs.rmtree(posixpath.join(releases, entry))
            fs.remove(manifest_path(releases, entry))
            removed.append(entry)
    return removed


def deploy(
    artifact: Artifact,
    fs: StoreFS,
    live: str,
    target_name: str,
    health: HealthCheck,
    keep: int = 5,
    stale_lock_after: float = STALE_LOCK_SECONDS,
) -> Deployment:
    """Deploy `artifact` to the live path `live` on `fs`; returns what happened, step by step.

    Raises DeployError only when the store was not changed (locked, release marked bad, bad archive).
    A failed health check is not an exception: it is rolled back and reported in the Deployment.
    """
    release = artifact.release_id
    releases = releases_dir_for(live)
    release_dir = posixpath.join(releases, release)
    bad_marker = f"{release_dir}.bad.json"
    result = Deployment(target=target_name, release_id=release)
    fs.makedirs(releases)
    lock, token = _acquire_lock(fs, releases, result, stale_lock_after)
    try:
        previous = current_release(fs, live)
        result.previous_version = previous
        if previous is None and fs.exists(live):
            legacy = f"legacy-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
            _timed(result, "adopt", lambda: _adopt(fs, live, releases, legacy))
            previous = legacy
            result.previous_version = legacy
        if previous == release and not verify_tree(fs, release_dir, artifact.manifest):
            result.steps.append(Step("noop", True, f"{release} is already live and matches its manifest"))
            # still gated: a deploy killed between its switch and its health check left this release live
            # without a verdict, and a retry must not call that a success
            check = _checked(result, health, live, release, artifact.manifest)
            if check.ok:
                result.noop = True
                result.deployed_version = release
                result.health = "unchanged"
                return result
            fallback = _newest_good_release(fs, releases, exclude=release)
            result.previous_version = fallback
            return _roll_back(fs, result, check, live, releases, fallback, health, bad_marker)
        if fs.exists(bad_marker):
            why = json.loads(fs.read_bytes(bad_marker)).get("reason", "")
            raise DeployError(
                f"target {target_name}: release {release} failed its health check before and is marked bad "
                f"({why}); build a new release instead"
            )
        _timed(result, "verify archive", lambda: f"{len(extract_release(artifact))} files match the manifest")
        staging = posixpath.join(releases, f".tmp-{release}-{os.getpid()}")
        try:
            reused = _timed(result, "upload", lambda: _upload(fs, artifact, releases, release, staging))
            _timed(
                result, "verify", lambda: _verify_uploaded(fs, release_dir if reused else staging, artifact.manifest)
            )
            if not reused:
                fs.rename(staging, release_dir)
            fs.write_bytes(manifest_path(releases, release), json.dumps(artifact.manifest, sort_keys=True).encode())
        finally:
            fs.rmtree(staging)
        _timed(result, "switch", lambda: (_switch(fs, live, release), f"{live} -> {release}")[1])
        check = _checked(result, health, live, release, artifact.manifest)
        if check.ok:
            result.health = "healthy"
            result.deployed_version = release
            removed = _prune(fs, releases, keep, {release, previous or ""})
            result.steps.append(
                Step("prune", True, f"removed {', '.join(removed)}" if removed else "nothing to remove")
            )
            return result
        return _roll_back(fs, result, check, live, releases, previous, health, bad_marker)
    finally:
        _HELD_LOCKS.discard(token)
        fs.rmtree(lock)


def _checked(
    result: Deployment,
    health: HealthCheck,
    live: str,
    release: str,
    manifest: dict[str, str] | None,
    step: str = "health",
) -> HealthResult:
    started = time.monotonic()
    check = health(live, release, manifest)
    result.steps.append(Step(step, check.ok, check.detail, round(time.monotonic() - started, 4)))
    return check


def _roll_back(
    fs: StoreFS,
    result: Deployment,
    check: HealthResult,
    live: str,
    releases: str,
    previous: str | None,
    health: HealthCheck,
    bad_marker: str,
) -> Deployment:
    """The release failed its health check: mark it when it is to blame, go back to `previous`, re-verify."""
    result.health = "unhealthy"
    if check.blame == "release":
        fs.write_bytes(bad_marker, json.dumps({"reason": check.detail[:500], "at": time.time()}).encode())
    else:
        result.steps.append(Step("not marked bad", True, "the failure points at the store, not the release"))
    _timed(result, "rollback", lambda: _rollback(fs, live, previous))
    result.rolled_back = True
    result.deployed_version = previous
    if previous is not None:
        again = _checked(result, health, live, previous, stored_manifest(fs, releases, previous), "re-verify")
        if not again.ok:
            result.error = f"rolled back to {previous}, but it is unhealthy too: {again.detail}"
    return result


def _newest_good_release(fs: StoreFS, releases: str, exclude: str) -> str | None:
    """The most recent release on the store other than `exclude` that is not marked bad."""
    names = set(fs.listdir(releases))
    candidates = [
        e
        for e in names
        if not e.startswith(".") and not e.endswith(".json") and e != exclude and f"{e}.bad.json" not in names
    ]
    candidates.sort(key=lambda e: fs.mtime(posixpath.join(releases, e)), reverse=True)
    return candidates[0] if candidates else None


def _adopt(fs: StoreFS, live: str, releases: str, legacy: str) -> str:
    """First deploy over a hand-installed plugin folder: keep it as a release, then link to it."""
    fs.rename(live, posixpath.join(releases, legacy))
    _switch(fs, live, legacy)
    return f"kept the existing folder as release {legacy}"


def _upload(fs: StoreFS, artifact: Artifact, releases: str, release: str, staging: str) -> bool:
    """Put the release's files into `staging`; True when an intact copy is already on the store."""
    release_dir = posixpath.join(releases, release)
    if fs.exists(release_dir):
        if not verify_tree(fs, release_dir, artifact.manifest):
            return True
        fs.rmtree(release_dir)
    fs.rmtree(staging)
    fs.makedirs(staging)
    files = extract_release(artifact)
    for d in sorted({posixpath.dirname(rel) for rel in files if posixpath.dirname(rel)}):
        fs.makedirs(posixpath.join(staging, d))
    for rel, data in sorted(files.items()):
        fs.write_bytes(posixpath.join(staging, rel), data)
    return False


def _verify_uploaded(fs: StoreFS, release_dir: str, manifest: dict[str, str]) -> str:
    problems = verify_tree(fs, release_dir, manifest)
    if problems:
        raise DeployError(f"{release_dir} differs from the manifest: {'; '.join(problems[:5])}")
    return f"{len(manifest)} files match sha256"


def _rollback(fs: StoreFS, live: str, previous: str | None) -> str:
    if previous is None:
        fs.remove(live)  # nothing was live before this deploy: leave nothing live
        return "no previous release; removed the live link"
    _switch(fs, live, previous)
    return f"{live} -> {previous}"
