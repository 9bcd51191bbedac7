"""One SSH connection per store endpoint for all the deploys of a run (core/sftp.py SftpPool), real sshd."""

from __future__ import annotations

from pathlib import Path

import pytest

from psp_assets.core.config import parse_client
from psp_assets.core.deploy import current_release
from psp_assets.core.pipeline import Paths, deploy_plugin
from psp_assets.core.sftp import SftpFS, SftpPool
from psp_assets.core.template_cache import TemplateCache
from tests.conftest import TEMPLATES
from tests.integration.test_sftp_deploy import KEY_ENV, PLUGIN, build, endpoint, sftp_config

pytestmark = pytest.mark.integration


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path / "configs", TEMPLATES, tmp_path / "data", tmp_path / "stores", tmp_path / "keys")


def two_targets(sshd, store_root: Path, client: str):
    """A client's plugin with a staging and a production target on the same SSH endpoint."""
    config = sftp_config(sshd, str(store_root / client / "staging" / PLUGIN))
    data = config.model_dump(mode="json")
    data["id"] = client
    first = data["platforms"]["woocommerce"]["targets"][0]
    data["platforms"]["woocommerce"]["targets"] = [
        {**first, "name": "staging", "path": str(store_root / client / "staging" / PLUGIN)},
        {**first, "name": "production", "path": str(store_root / client / "production" / PLUGIN)},
    ]
    return parse_client(data, f"{client}.yaml")


def test_every_deploy_of_a_run_rides_one_ssh_connection_per_endpoint(sshd, store_root, paths, php, tmp_path):
    secret = {KEY_ENV: sshd.client_private}.get
    cache = TemplateCache()
    released = {}
    with SftpPool() as pool:
        for client in ["nordbank", "zeta-bank"]:
            config = two_targets(sshd, store_root, client)
            artifact = build(config, tmp_path / client)
            results = deploy_plugin(paths, config, "woocommerce", artifact, php, secret, cache=cache, connections=pool)
            assert [(r.target, r.ok, r.health) for r in results] == [
                ("staging", True, "healthy"),
                ("production", True, "healthy"),
            ]
            released[client] = artifact.release_id
        # two plugins x two targets, one SSH handshake; one template load for both plugins
        assert pool.connects == 1 and cache.loads == 1
        [connection] = pool.open_connections
    assert not connection.alive()  # closed with the run
    with SftpFS(endpoint(sshd), target="check") as fs:
        for client, release in released.items():
            for target in ("staging", "production"):
                assert current_release(fs, str(store_root / client / target / PLUGIN)) == release


def test_a_pooled_connection_that_died_is_replaced_and_the_deploy_goes_through(sshd, store_root, paths, php, tmp_path):
    secret = {KEY_ENV: sshd.client_private}.get
    config = two_targets(sshd, store_root, "nordbank")
    artifact = build(config, tmp_path / "a")
    with SftpPool() as pool:
        assert all(r.ok for r in deploy_plugin(paths, config, "woocommerce", artifact, php, secret, connections=pool))
        [connection] = pool.open_connections
        connection.close()  # the store dropped the connection between two deploys
        again = deploy_plugin(paths, config, "woocommerce", artifact, php, secret, connections=pool)
        assert [(r.ok, r.noop) for r in again] == [(True, True), (True, True)]
        assert pool.connects == 2
