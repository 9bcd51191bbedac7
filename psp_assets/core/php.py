"""PHP runtimes: one interface, several backends.

`NativePhp` runs the machine's `php` binary (Debian php-cli). Every backend lints many files and runs
many scripts per boot; callers never start one runtime per file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .errors import PspError


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


class NativePhp:
    """The machine's PHP CLI. Lints in parallel, one short process per file (what `php -l` allows)."""

    def __init__(self, binary: str | None = None) -> None:
        found = binary or os.environ.get("PSP_PHP_BINARY") or shutil.which("php")
        if not found:
            raise PhpUnavailable("no `php` on PATH: install Debian's php-cli (scripts/setup.sh does)")
        self.binary = found
        out = subprocess.run(
            [found, "-n", "-r", "echo PHP_MAJOR_VERSION . '.' . PHP_MINOR_VERSION;"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        self.version = out.stdout.strip()

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
        files = sorted(files)
        with ThreadPoolExecutor(max_workers=max(2, (os.cpu_count() or 2) * 2)) as pool:
            return list(pool.map(lambda rel: self._lint_one(root, rel), files))

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
