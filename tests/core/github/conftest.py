"""Fixtures for the GitHub release tests: a real built artifact (the GitHub stand-in and an App key are
tests/conftest.py's)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from psp_assets.core.package import Artifact, package
from psp_assets.core.render.engine import RenderedTree


def build_artifact(out_dir: Path, client: str = "nordbank", platform: str = "woocommerce", build: str = "0a1b2c3d4e5f"):
    # incompressible payload, so an upload cut "halfway" is really partial
    blob = random.Random(build).randbytes(300_000)
    tree = RenderedTree(
        client,
        platform,
        "1.4.0",
        build,
        {
            "plugin/plugin.php": b"<?php\n// plugin\n",
            "plugin/readme.txt": b"Stable tag: 1.4.0\n",
            "plugin/blob.bin": blob,
        },
    )
    return package(tree, "nordbank-payments", "nordbank-payments.zip", out_dir / client / platform / tree.release_id)


@pytest.fixture
def artifact(tmp_path: Path) -> Artifact:
    return build_artifact(tmp_path / "artifacts")
