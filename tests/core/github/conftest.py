"""Fixtures for the GitHub release tests: the local GitHub stand-in, a real built artifact, an App key."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from psp_assets.core.package import Artifact, package
from psp_assets.core.render.engine import RenderedTree
from tests.github.fake_github import FakeGitHub


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    server = FakeGitHub().start()
    try:
        yield server
    finally:
        server.stop()


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
