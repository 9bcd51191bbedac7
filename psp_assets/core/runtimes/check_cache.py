"""Check results remembered by content, so the same bytes are never tested twice.

A lint result is a pure function of the file's bytes, its path in the tree, the PHP that compiled it
and the code that asked; a PHP script run (the contract harness, a platform-API check) is a pure
function of the script and every file next to it, the bytes of the files and folders it is given, the
tree it runs in, the PHP and the code that built its inputs. The key of an entry is the sha256 of all
of that, so any changed byte (in a rendered file, the vectors, the harness, the contract, the PHP
version, the project's own code) is a different key: a miss, and the check runs again. The verdict is
never stored; what is stored is what PHP printed, and the caller judges it as it would a fresh run.

Entries live in memory (process-wide, bounded) and on disk under `<data dir>/cache/checks/` (one JSON
file per entry, written to a temporary name and renamed into place; an entry that does not parse,
names another key or whose value does not match its own checksum is ignored and overwritten). Only
script runs that exited 0 are stored: a failure is always run again.

PSP_CHECK_CACHE=0 turns every entry off (each check runs every time); PSP_PHP_LINT_CACHE=0 turns off
lint entries alone (the production tests hold a deploy at its store lint). See docs/benchmarks.md,
"Do not test the same bytes twice", for why a hit can never pass a plugin that would fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

CACHE_ENV = "PSP_CHECK_CACHE"
LINT_CACHE_ENV = "PSP_PHP_LINT_CACHE"
FORMAT = 1
PACKAGE_DIR = Path(__file__).resolve().parents[2]  # psp_assets/: the harnesses, vector files, contract, code
MEMORY_MAX = 50_000

_MEMORY: OrderedDict[str, Any] = OrderedDict()
_MEMORY_LOCK = threading.Lock()


def enabled(kind: str = "run") -> bool:
    if os.environ.get(CACHE_ENV, "1") == "0":
        return False
    return not (kind == "lint" and os.environ.get(LINT_CACHE_ENV, "1") == "0")


def key(*parts: Any) -> str:
    """The sha256 of the parts (JSON), with the format version and the project's code in it."""
    text = json.dumps([FORMAT, code_digest(), *parts], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree_digest(root: Path, skip: Callable[[Path], bool] | None = None) -> str:
    """sha256 over every regular file under `root`: its path relative to root and its bytes."""
    root = Path(root)
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and not (skip and skip(path)):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        elif path.is_symlink():
            digest.update(path.relative_to(root).as_posix().encode() + b"\0->" + os.readlink(path).encode())
    return digest.hexdigest()


def _not_code(path: Path) -> bool:
    return "__pycache__" in path.parts or path.suffix in (".pyc", ".tmp")


@lru_cache(maxsize=1)
def code_digest() -> str:
    """Every file of the psp_assets package: the contract harnesses and judges (core/verify/contract/harness), the
    vector files and the API contract (contract/), the Python that builds vectors and runs checks. Not a
    list of today's names: a file added by anyone is in it. Computed once per process."""
    return tree_digest(PACKAGE_DIR, _not_code)


def path_digest(value: str, cwd: Path, trees: dict[Path, str] | None = None) -> Any:
    """What a script argument stands for: an existing file by its bytes, a folder by its tree, else the
    text itself (a PHP version, a flag). `trees` remembers folder digests within one key."""
    path = Path(value) if os.path.isabs(value) else Path(cwd) / value
    try:
        if path.is_file():
            return ["file", file_digest(path)]
        if path.is_dir():
            trees = {} if trees is None else trees
            if path.resolve() not in trees:
                trees[path.resolve()] = tree_digest(path)
            return ["dir", trees[path.resolve()]]
    except OSError:
        pass
    return ["text", value]


class CheckCache:
    """Entries by key: the process-wide memory first, then `directory` (None: memory only)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.hits = 0
        self.misses = 0

    def _file(self, entry: str) -> Path:
        assert self.directory is not None
        return self.directory / entry[:2] / f"{entry}.json"

    def get(self, entry: str) -> Any | None:
        with _MEMORY_LOCK:
            if entry in _MEMORY:
                _MEMORY.move_to_end(entry)
                self.hits += 1
                return _MEMORY[entry]
        value = self._read(entry)
        if value is None:
            self.misses += 1
            return None
        self._remember(entry, value)
        self.hits += 1
        return value

    def _read(self, entry: str) -> Any | None:
        if self.directory is None:
            return None
        try:
            data = json.loads(self._file(entry).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # absent, or cut short / garbled: a miss
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("key") != entry:
            return None
        value = data.get("value")
        if data.get("sha256") != _value_digest(value):
            return None
        return value

    def put(self, entry: str, value: Any) -> None:
        self._remember(entry, value)
        if self.directory is None:
            return
        path = self._file(entry)
        body = {"format": FORMAT, "key": entry, "sha256": _value_digest(value), "value": value}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(body, sort_keys=True), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)  # a full or read-only disk costs a re-run, never a result

    @staticmethod
    def _remember(entry: str, value: Any) -> None:
        with _MEMORY_LOCK:
            _MEMORY[entry] = value
            _MEMORY.move_to_end(entry)
            while len(_MEMORY) > MEMORY_MAX:
                _MEMORY.popitem(last=False)


def _value_digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def data_dir_from_env() -> Path:
    """PSP_DATA_DIR, else the repo's var/data (the environment contract in DESIGN.md)."""
    return Path(os.environ.get("PSP_DATA_DIR") or PACKAGE_DIR.parent / "var" / "data").resolve()


_CACHES: dict[Path, CheckCache] = {}
_CACHES_LOCK = threading.Lock()


def at(data_dir: Path | None = None) -> CheckCache:
    """The cache of a data dir (None: the environment's), one object per folder per process."""
    folder = (Path(data_dir).resolve() if data_dir is not None else data_dir_from_env()) / "cache" / "checks"
    with _CACHES_LOCK:
        cache = _CACHES.get(folder)
        if cache is None:
            cache = _CACHES[folder] = CheckCache(folder)
        return cache


def clear_memory() -> None:
    """Forget the in-memory layer (tests; the disk entries stay)."""
    with _MEMORY_LOCK:
        _MEMORY.clear()


# --- the two kinds of entries -----------------------------------------------------------------------

LintOne = tuple[str, bool, str]  # path, ok, message


def cached_lint(
    identity: str,
    root: Path,
    files: Sequence[str],
    lint: Callable[[list[str]], Iterable[Any]],
    cache: CheckCache | None = None,
) -> list[tuple[str, bool, str]]:
    """Lint `files` under `root`, each remembered by (identity, path, bytes); `lint` gets the misses in
    one call and returns objects with `path`, `ok` and `message` (php.LintResult). Results in file order."""
    if not enabled("lint"):
        return [(r.path, bool(r.ok), r.message) for r in lint(list(files))]
    cache = cache or at()
    known: dict[str, tuple[str, bool, str]] = {}
    keys: dict[str, str] = {}
    for rel in files:
        try:
            keys[rel] = key("lint", identity, rel, file_digest(Path(root) / rel))
        except OSError:
            continue  # the runtime says what is wrong with the path
        value = cache.get(keys[rel])
        if _lint_value_ok(value, rel):
            known[rel] = (rel, bool(value["ok"]), value["message"])
    missing = [rel for rel in files if rel not in known]
    if missing:
        for r in lint(missing):
            known[r.path] = (r.path, bool(r.ok), r.message)
            if r.path in keys:
                cache.put(keys[r.path], {"path": r.path, "ok": bool(r.ok), "message": r.message})
    return [known[rel] for rel in files if rel in known]


def _lint_value_ok(value: Any, rel: str) -> bool:
    return (
        isinstance(value, dict)
        and value.get("path") == rel
        and isinstance(value.get("ok"), bool)
        and isinstance(value.get("message"), str)
    )


def run_key(identity: str, salt: str, script: Path, args: Sequence[str], cwd: Path) -> str:
    """The key of one script run: the script's bytes and its folder (the files it may include), each
    argument by what it names, the tree it runs in, the runtime and the caller's salt."""
    script = Path(script).resolve()
    trees: dict[Path, str] = {}  # the plugin tree is usually both an argument and the working folder
    arguments = [path_digest(str(a), cwd, trees) for a in args]
    return key(
        "run",
        identity,
        salt,
        file_digest(script),
        tree_digest(script.parent, _not_code),
        arguments,
        path_digest(str(Path(cwd).resolve()), cwd, trees),
    )


def run_value_ok(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and value.get("returncode") == 0
        and isinstance(value.get("stdout"), str)
        and isinstance(value.get("stderr"), str)
    )
