"""The project as a person runs it: `dagster-webserver` and `dagster-daemon` on loopback against the
repository's workspace.yaml, with a temporary DAGSTER_HOME holding the embedded default dagster.yaml
(SQLite; its relative paths land in that folder because the services run from it)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.production.conftest import Workspace, make_workspace
from tests.production.services import REPO, Dagster, base_env, dagster_services, stop_automation

ARTIFACTS = REPO / "var" / "test-artifacts"
LOCATION = "psp_assets"  # workspace.yaml and pyproject.toml name the location alike


@pytest.fixture(scope="package")
def e2e_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return make_workspace(tmp_path_factory.mktemp("e2e-workspace"))


@pytest.fixture(scope="package")
def e2e_dagster(e2e_workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dagster]:
    home = tmp_path_factory.mktemp("e2e-dagster-home")
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    with dagster_services(
        home=home,
        env=base_env(**e2e_workspace.env()),
        workspace=REPO / "workspace.yaml",
        logs=home / "logs",
        cwd=home,
        code_server=False,
        before_daemon=stop_automation,
        location=LOCATION,
    ) as dagster:
        yield dagster


@pytest.fixture
def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    """var/test-artifacts/<test name>/ (ignored by git), emptied before the test."""
    path = ARTIFACTS / request.node.name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
