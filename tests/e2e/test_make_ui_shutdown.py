"""Ctrl-C on `make ui` stops everything the platform started: `dagster dev`, its webserver, daemon and
code servers, the runs the sensors launched and the PHP and Node runtimes those runs boot. Ctrl-C is
SIGINT to the terminal's foreground process group, which is what the test sends to `make ui`'s group.
A process belongs to the project when its environment carries this test's DAGSTER_HOME: every process
started below `make` inherits it, including one that left the process group."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import DEMO_CLIENTS
from tests.production.services import REPO, base_env, free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def project_processes(home: Path) -> list[str]:
    """`pid command` of every live process whose environment names `home` as DAGSTER_HOME."""
    marker = f"DAGSTER_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            if marker not in environ.split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if state != "Z":
            found.append(f"{entry.name} {cmdline[:160]}")
    return found


def _serving(url: str) -> bool:
    try:
        import requests

        return requests.get(f"{url}/server_info", timeout=2).ok
    except Exception:
        return False


def test_sigint_to_make_ui_leaves_no_project_process_after_10_seconds(tmp_path: Path):
    home = tmp_path / "dagster-home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        yaml.safe_dump(
            {
                "storage": {"sqlite": {"base_dir": str(home / "storage")}},
                "local_artifact_storage": {
                    "module": "dagster.core.storage.root",
                    "class": "LocalArtifactStorage",
                    "config": {"base_dir": str(home)},
                },
                "compute_logs": {
                    "module": "dagster.core.storage.local_compute_log_manager",
                    "class": "LocalComputeLogManager",
                    "config": {"base_dir": str(home / "logs")},
                },
                "telemetry": {"enabled": False},
            }
        )
    )
    shutil.copytree(DEMO_CLIENTS, tmp_path / "client_configs")
    env = base_env(
        DAGSTER_HOME=home,
        PSP_CLIENT_CONFIGS_DIR=tmp_path / "client_configs",
        PSP_DATA_DIR=tmp_path / "data",
        PSP_STORES_DIR=tmp_path / "stores",
    )
    port = free_port()
    log = (tmp_path / "make-ui.log").open("w")
    # its own session and process group, as a terminal gives a foreground job
    make = subprocess.Popen(
        ["make", "-s", "ui", f"PORT={port}"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for("make ui to serve the UI", lambda: _serving(f"http://127.0.0.1:{port}"), 300, interval=1)
        # the sensors' first ticks launch runs (the clients are new here); SIGINT while one is going, when
        # the machine is quick enough to catch it
        with contextlib.suppress(TimeoutError):
            wait_for("a run worker", lambda: any("execute_run" in p for p in project_processes(home)) or None, 90, 0.5)
        started = project_processes(home)
        assert len(started) >= 4, started  # make, the supervisor, dagster dev, webserver, daemon, code servers

        os.killpg(make.pid, signal.SIGINT)  # Ctrl-C
        sent = time.monotonic()
        while project_processes(home) and time.monotonic() - sent < 10:
            time.sleep(0.25)
        left = project_processes(home)
        assert not left, "still running 10 s after SIGINT:\n" + "\n".join(left)
        assert make.wait(timeout=5) is not None
    finally:
        for line in project_processes(home):
            os.kill(int(line.split()[0]), signal.SIGKILL)
        log.close()
