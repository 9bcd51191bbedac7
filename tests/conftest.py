"""Shared fixtures. Real components only: the machine's PHP, real files, real Dagster instances."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from psp_assets.core.config.model import parse_client
from psp_assets.core.runtimes.php import NativePhp
from psp_assets.core.workspace import REPO_ROOT, Paths
from psp_assets.defs.previews import silence_previews

DEMO_CLIENTS = REPO_ROOT / "client_configs"


def pytest_configure(config: pytest.Config) -> None:
    silence_previews()  # pytest restores the filters after collection: set them for the whole session


TEMPLATES = REPO_ROOT / "templates"


@pytest.fixture(scope="session")
def php() -> NativePhp:
    return NativePhp()


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    """A private workspace: a copy of the demo configs, the real templates, empty data and stores."""
    configs = tmp_path / "client_configs"
    shutil.copytree(DEMO_CLIENTS, configs)
    return Paths(
        configs_dir=configs, templates_dir=TEMPLATES, data_dir=tmp_path / "data", stores_dir=tmp_path / "stores"
    )


def client_dict(**overrides) -> dict:
    base = yaml.safe_load((DEMO_CLIENTS / "nordbank.yaml").read_text())
    base.update(overrides)
    return base


def make_client(**overrides):
    return parse_client(client_dict(**overrides), "test.yaml")
