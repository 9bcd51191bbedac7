"""Runs a generated GitHub Actions workflow's `run:` steps on this machine, as a runner would.

The job's steps run in order in a checkout, each as `bash --noprofile --norc -eo pipefail <script>`
(what `shell: bash` means on GitHub's runners), with GITHUB_WORKSPACE, RUNNER_TEMP and CI set and a
PATH whose first directory holds the runtime the matrix names (the machine's PHP or Node, or PHP as
WebAssembly behind a `php` command, see PhpCommand). Only the setup actions are skipped: checkout (the
checkout is given) and setup-php / setup-node (the PATH stands in for them). The first failing step
ends the job, as on GitHub. Expressions other than `${{ matrix.<key> }}` are refused: a step that
depends on one cannot be shown to work here.

PhpCommand puts a `php` executable on that PATH which forwards its arguments to a PhpRuntime of this
process over a Unix socket, so PHP 7.4 ... 8.5 as WebAssembly boots once for a whole job instead of
once per `php -l`.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from psp_assets.core.runtimes.php import PhpRuntime

SETUP_ACTIONS = {"actions/checkout", "shivammathur/setup-php", "actions/setup-node"}
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


@dataclass(frozen=True)
class StepRun:
    name: str
    returncode: int | None  # None: a setup action, skipped
    output: str


def _expand(text: str, matrix: dict[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        expr = m.group(1)
        key = expr.removeprefix("matrix.")
        if key == expr or key not in matrix:
            raise AssertionError(f"expression ${{{{ {expr} }}}} cannot be evaluated here")
        return matrix[key]

    return EXPRESSION.sub(one, text)


def run_job(
    workflow_text: str, checkout: Path, matrix: dict[str, str], tools: Path, job: str = "checks"
) -> list[StepRun]:
    """Run `job` for one matrix combination in `checkout`; `tools` goes first on PATH."""
    workflow = yaml.safe_load(workflow_text)
    assert workflow.get("defaults", {}).get("run", {}).get("shell") == "bash", "steps must declare shell: bash"
    spec = workflow["jobs"][job]
    for key, value in matrix.items():
        assert value in spec["strategy"]["matrix"][key], f"{key} {value} is not in the workflow's matrix"
    temp = Path(tempfile.mkdtemp(prefix="psp-runner-"))
    env = {
        "PATH": f"{tools}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(temp),
        "LANG": "C.UTF-8",
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(checkout),
        "RUNNER_TEMP": str(temp),
    }
    env.update({k: _expand(str(v), matrix) for k, v in (spec.get("env") or {}).items()})
    runs: list[StepRun] = []
    try:
        for n, step in enumerate(spec["steps"], 1):
            if "uses" in step:
                action = step["uses"].split("@", 1)[0]
                assert action in SETUP_ACTIONS, f"step {n} uses {action}, which this runner cannot stand in for"
                runs.append(StepRun(step["uses"], None, ""))
                continue
            assert "${{" not in step["run"], f"step {n} ({step.get('name')}) evaluates an expression in its script"
            script = temp / f"step-{n}.sh"
            script.write_text(step["run"])
            proc = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                cwd=checkout / step.get("working-directory", "."),
                env={**env, **{k: _expand(str(v), matrix) for k, v in (step.get("env") or {}).items()}},
                capture_output=True,
                text=True,
                timeout=900,
            )
            runs.append(
                StepRun(_expand(step.get("name", f"step {n}"), matrix), proc.returncode, proc.stdout + proc.stderr)
            )
            if proc.returncode != 0:
                break
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return runs


def tools_dir(directory: Path, **commands: str) -> Path:
    """`directory`, made, with the named commands linked to the given executables (php="/usr/bin/php")."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, target in commands.items():
        (directory / name).symlink_to(target)
    return directory


_SHIM = """#!{python} -S
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect({socket!r})
s.sendall((json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd()}}) + "\\n").encode())
s.shutdown(socket.SHUT_WR)
reply = json.loads(b"".join(iter(lambda: s.recv(65536), b"")))
sys.stdout.write(reply["stdout"])
sys.stderr.write(reply["stderr"])
sys.exit(reply["returncode"])
"""


class PhpCommand:
    """A `php` command in `directory` backed by `runtime` (see the module docstring).

    It understands what the generated workflows run: `-n` and `-d` (the runtime has its own ini),
    `-v`, `-l <file>` and `<script> [args]`."""

    def __init__(self, runtime: PhpRuntime) -> None:
        self.runtime = runtime
        self.directory = Path(tempfile.mkdtemp(prefix="psp-php-"))
        self.calls: list[list[str]] = []
        sock = str(self.directory / "php.sock")
        command = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                request = json.loads(self.rfile.read())
                command.calls.append(request["argv"])
                try:
                    code, out, err = command.execute(request["argv"], Path(request["cwd"]))
                except Exception as exc:  # reported like a crashed binary, so the step fails visibly
                    code, out, err = 70, "", f"php shim: {type(exc).__name__}: {exc}\n"
                self.wfile.write(json.dumps({"returncode": code, "stdout": out, "stderr": err}).encode())

        self.server = socketserver.UnixStreamServer(sock, Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        shim = self.directory / "php"
        shim.write_text(_SHIM.format(python=sys.executable, socket=sock))
        shim.chmod(0o755)

    def execute(self, argv: list[str], cwd: Path) -> tuple[int, str, str]:
        i, lint, version = 0, None, False
        while i < len(argv):
            arg = argv[i]
            if arg == "-n":
                i += 1
            elif arg == "-d":
                i += 2
            elif arg.startswith("-d"):
                i += 1
            elif arg == "-l":
                lint, i = argv[i + 1], i + 2
            elif arg in ("-v", "--version"):
                version, i = True, i + 1
            else:
                break
        rest = argv[i:]
        if version:
            full = getattr(self.runtime, "full_version", self.runtime.version)
            return 0, f"PHP {full} (cli) (WebAssembly, @php-wasm/node)\n", ""
        if lint is not None:
            [result] = self.runtime.lint(cwd, [lint])
            if result.ok:
                return 0, f"No syntax errors detected in {lint}\n", ""
            return 255, f"{result.message}\nErrors parsing {lint}\n", ""
        assert rest, f"php shim: nothing to run in {argv}"
        result = self.runtime.run(cwd / rest[0], rest[1:], cwd, timeout=300)
        return result.returncode, result.stdout, result.stderr

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.directory, ignore_errors=True)


def checkout_branch(repo: Any, branch: str, into: Path) -> dict[str, bytes]:
    """What actions/checkout would put on disk for `branch`, read through the REST API (PyGithub
    repository `repo`): the branch's tree, every blob downloaded and checked against its git id."""
    from psp_assets.core.github.client_repo import git_blob_sha

    head = repo.get_git_ref(f"heads/{branch}").object.sha
    tree = repo.get_git_tree(repo.get_git_commit(head).tree.sha, recursive=True)
    files = {}
    for entry in tree.tree:
        if entry.type != "blob":
            continue
        data = base64.b64decode(repo.get_git_blob(entry.sha).content)
        assert git_blob_sha(data) == entry.sha, f"{entry.path}: downloaded content does not match its blob id"
        target = into / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        files[entry.path] = data
    return files
