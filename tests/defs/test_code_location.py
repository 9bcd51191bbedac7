"""One code location name everywhere: `dagster dev` (pyproject.toml or workspace.yaml), the daemon and
every `dagster ... -w workspace.yaml` command act on the same location, so `dagster sensor stop -w
workspace.yaml` stops the sensors `make ui` serves."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def _locations(workspace: Path) -> set[str]:
    entries = yaml.safe_load(workspace.read_text())["load_from"]
    return {next(iter(entry.values())).get("location_name") for entry in entries}


def test_pyproject_and_every_workspace_file_name_the_same_code_location():
    tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["dagster"]
    assert _locations(REPO / "workspace.yaml") == {tool["code_location_name"]}
    assert _locations(REPO / "deploy" / "postgres" / "workspace.yaml") == {tool["code_location_name"]}
    # `make ui` serves the workspace file the CLI commands are pointed at
    ui = next(line for line in (REPO / "Makefile").read_text().splitlines() if "dagster dev" in line)
    assert "-w workspace.yaml" in ui
