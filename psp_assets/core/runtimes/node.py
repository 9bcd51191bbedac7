"""Node.js for the JavaScript parts of plugins: syntax checks and the contract harness of JS cores.

One runtime object per process; syntax checks run `node --check` (the only parser Node exposes for ES
modules without executing them) in parallel, contract runs execute many cases in one Node process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

from psp_assets.core.errors import PspError
from psp_assets.core.runtimes.php import LintResult, RunResult, binary_stamp, cached_lint


class NodeUnavailable(PspError):
    """No usable `node` binary."""


class NodeRuntime:
    """The machine's Node.js (PSP_NODE_BINARY, else `node` on PATH)."""

    def __init__(self, binary: str | None = None) -> None:
        found = binary or os.environ.get("PSP_NODE_BINARY") or shutil.which("node")
        if not found:
            raise NodeUnavailable("no `node` on PATH: install Node.js 18 or newer (scripts/setup.sh does)")
        self.binary = found
        try:
            out = subprocess.run(
                [found, "-p", "process.versions.node"], capture_output=True, text=True, timeout=30, check=True
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise NodeUnavailable(f"{found}: cannot run it ({exc})") from None
        self.full_version = out.stdout.strip()
        self.version = "node " + self.full_version
        self.identity = f"node {self.full_version} {binary_stamp(found)}"  # what check results are kept under

    def _check_one(self, root: Path, rel: str) -> LintResult:
        proc = subprocess.run(
            [self.binary, "--check", rel], cwd=root, capture_output=True, text=True, timeout=60, env=_quiet_env()
        )
        text = (proc.stdout + proc.stderr).replace(str(root) + "/", "").strip()
        return LintResult(rel, proc.returncode == 0, "" if proc.returncode == 0 else text[:2000])

    def check_syntax(self, root: Path, files: Iterable[str]) -> list[LintResult]:
        """`node --check` results are remembered by content like PHP lint results (check_cache): the
        deploy's check of the live files and a second plugin with the same bytes cost a hash per file."""
        return cached_lint(self.identity, root, files, self.check_syntax_uncached)

    def check_syntax_uncached(self, root: Path, files: Iterable[str]) -> list[LintResult]:
        files = sorted(files)
        with ThreadPoolExecutor(max_workers=max(2, (os.cpu_count() or 2) * 2)) as pool:
            return list(pool.map(lambda rel: self._check_one(root, rel), files))

    def run(self, script: Path, args: list[str], cwd: Path, timeout: float = 60) -> RunResult:
        command = [self.binary, str(script), *args]
        proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=_quiet_env())
        return RunResult(proc.returncode, proc.stdout, proc.stderr)


def _quiet_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_OPTIONS")}
    env["NODE_NO_WARNINGS"] = "0"  # warnings are findings: the harness records them
    return env


@lru_cache(maxsize=1)
def default_node() -> NodeRuntime:
    """The process-wide Node runtime (found once)."""
    return NodeRuntime()
