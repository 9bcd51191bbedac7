"""Fixtures for the PHP matrix: real PHP 7.4 ... 8.5 (WebAssembly, npm @php-wasm) and template copies."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from psp_assets.core.config.fleet import Fleet, load_fleet
from psp_assets.core.runtimes.php import PhpRuntimes
from psp_assets.core.runtimes.php_service import shared_runtimes
from tests.conftest import DEMO_CLIENTS, TEMPLATES

# The templates whose matrix tests pin exact cells; the other platforms are covered by the repo-wide test.
STABLE_PLATFORMS = ("woocommerce", "magento2")

# A PHP 8.1 feature (an enum) in a file that follows every WooCommerce convention, so only lint reacts.
ENUM_FILE = """<?php
defined( 'ABSPATH' ) || exit;

enum PspPolicyProbeState: string
{
    case Paid = 'paid';
}
"""
# A PHP 8.1 readonly property, same conventions.
READONLY_FILE = """<?php
defined( 'ABSPATH' ) || exit;

final class PspPolicyProbe
{
    public readonly string $state;

    public function __construct()
    {
        $this->state = 'paid';
    }
}
"""


@pytest.fixture(scope="session")
def runtimes() -> PhpRuntimes:
    """The process-wide pool: each PHP version boots once for the whole test session."""
    return shared_runtimes()


@pytest.fixture
def templates_dir(tmp_path: Path) -> Path:
    """A private copy of the shared files and the WooCommerce and Magento 2 templates (tests edit it)."""
    target = tmp_path / "templates"
    shutil.copytree(TEMPLATES / "_shared", target / "_shared")
    for platform in STABLE_PLATFORMS:
        shutil.copytree(TEMPLATES / platform, target / platform)
    return target


@pytest.fixture(scope="session")
def fleet() -> Fleet:
    return load_fleet(DEMO_CLIENTS)


def add_file(templates_dir: Path, platform: str, rel: str, text: str) -> None:
    path = templates_dir / platform / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def edit_spec(templates_dir: Path, platform: str, **changes: object) -> None:
    path = templates_dir / platform / "template.yaml"
    spec = yaml.safe_load(path.read_text())
    spec.update(changes)
    path.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
