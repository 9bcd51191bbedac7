"""Fixtures for the Dagster tests: a private workspace and a temporary instance."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from psp_assets.core.workspace import Paths
from tests.conftest import DEMO_CLIENTS, TEMPLATES


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """Configs and templates copied into tmp (tests edit them), outputs and stores in tmp too."""
    shutil.copytree(DEMO_CLIENTS, tmp_path / "client_configs")
    shutil.copytree(TEMPLATES, tmp_path / "templates")
    values = {
        "PSP_CLIENT_CONFIGS_DIR": tmp_path / "client_configs",
        "PSP_TEMPLATES_DIR": tmp_path / "templates",
        "PSP_DATA_DIR": tmp_path / "data",
        "PSP_STORES_DIR": tmp_path / "stores",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, str(value))
    return Paths.from_env()


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst
