"""Shared fixtures. Real components only: the machine's PHP, real files, real Dagster instances, the local
GitHub stand-in (tests/support/fake_github.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from psp_assets.core.config.model import parse_client
from psp_assets.core.reconciliation.reconcile import StatusRules
from psp_assets.core.runtimes.php import NativePhp
from psp_assets.core.workspace import REPO_ROOT, Paths
from psp_assets.defs.previews import silence_previews
from tests.support.fake_github import FakeGitHub

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


@pytest.fixture(scope="session")
def rules() -> StatusRules:
    """The order status rules of WooCommerce and Magento 2, as their template.yaml files state them."""
    return StatusRules.load(TEMPLATES, ["woocommerce", "magento2"])


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    server = FakeGitHub().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def app_key_pair() -> tuple[str, str]:
    """A GitHub App's RSA key pair (private PEM, public PEM), made fresh for the test session."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public
