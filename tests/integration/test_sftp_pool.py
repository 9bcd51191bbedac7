"""One SSH connection per store endpoint for all the deploys of a run (core/deploy/sftp.py SftpPool), real sshd."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from psp_assets.core.config.model import parse_client
from psp_assets.core.deploy.release import HealthResult, current_release, deploy
from psp_assets.core.deploy.sftp import SftpFS, SftpPool
from psp_assets.core.deploy.stores import deploy_plugin
from psp_assets.core.workspace import Paths
from tests.conftest import TEMPLATES
from tests.integration.conftest import chown_tree
from tests.integration.test_sftp_deploy import KEY_ENV, PLUGIN, build, endpoint, sftp_config

pytestmark = pytest.mark.integration
WP_PLUGINS = "wp-content/plugins"  # where WordPress loads plugins from (template.yaml deploy.install_path)


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path / "configs", TEMPLATES, tmp_path / "data", tmp_path / "stores", tmp_path / "keys")


def two_targets(sshd, store_root: Path, client: str):
    """A client's plugin with a staging and a production target on the same SSH endpoint."""
    config = sftp_config(sshd, str(store_root / client / "staging" / WP_PLUGINS / PLUGIN))
    data = config.model_dump(mode="json")
    data["id"] = client
    first = data["platforms"]["woocommerce"]["targets"][0]
    data["platforms"]["woocommerce"]["targets"] = [
        {**first, "name": "staging", "path": str(store_root / client / "staging" / WP_PLUGINS / PLUGIN)},
        {**first, "name": "production", "path": str(store_root / client / "production" / WP_PLUGINS / PLUGIN)},
    ]
    return parse_client(data, f"{client}.yaml")


def test_every_deploy_of_a_run_rides_one_ssh_connection_per_endpoint(sshd, store_root, paths, php, tmp_path):
    secret = {KEY_ENV: sshd.client_private}.get
    released = {}
    with SftpPool() as pool:
        for client in ["nordbank", "zeta-bank"]:
            config = two_targets(sshd, store_root, client)
            artifact = build(config, tmp_path / client)
            results = deploy_plugin(paths, config, "woocommerce", artifact, php, secret, connections=pool)
            assert [(r.target, r.ok, r.health) for r in results] == [
                ("staging", True, "healthy"),
                ("production", True, "healthy"),
            ]
            released[client] = artifact.release_id
        assert pool.connects == 1  # two plugins x two targets, one SSH handshake
        [connection] = pool.open_connections
    assert not connection.alive()  # closed with the run
    with SftpFS(endpoint(sshd), target="check") as fs:
        for client, release in released.items():
            for target in ("staging", "production"):
                assert current_release(fs, str(store_root / client / target / WP_PLUGINS / PLUGIN)) == release


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


def test_the_pool_hands_each_connection_to_one_thread_at_a_time_and_reuses_it_after(sshd, store_root, tmp_path):
    config = two_targets(sshd, store_root, "nordbank")
    artifact = build(config, tmp_path / "a")
    inside: list[int] = []
    barrier = threading.Barrier(3)

    def deploy_one(i: int) -> str | None:
        with pool.lease(endpoint(sshd), target=f"t{i}") as fs:
            inside.append(id(fs))
            barrier.wait(timeout=30)  # all three hold a connection at the same time
            live = str(store_root / f"shop{i}" / PLUGIN)
            return deploy(artifact, fs, live, f"t{i}", lambda *_a: HealthResult(True, "ok")).deployed_version

    with SftpPool() as pool:
        with ThreadPoolExecutor(max_workers=3) as workers:
            versions = list(workers.map(deploy_one, range(3)))
        assert versions == [artifact.release_id] * 3
        assert len(set(inside)) == 3 and pool.connects == 3  # never one connection in two threads
        with pool.lease(endpoint(sshd)) as again:
            assert id(again) in inside and pool.connects == 3  # an idle one is reused


def test_an_account_without_a_shell_deploys_file_by_file(sshd, store_root, tmp_path, deploy_user):
    """The transport as it runs once it found the account has no shell (sftp-only): uploads, hashes and
    the adoption swap go through SFTP requests alone."""
    config = two_targets(sshd, store_root, "nordbank")
    artifact = build(config, tmp_path / "a")
    live = store_root / "shop" / PLUGIN
    live.mkdir(parents=True)
    (live / "old.php").write_text("<?php // by hand\n")
    chown_tree(store_root / "shop", deploy_user)
    with SftpFS(endpoint(sshd), target="t") as fs:
        fs._exec_ok = False
        result = deploy(artifact, fs, str(live), "t", lambda *_a: HealthResult(True, "ok"))
    assert result.ok and result.deployed_version == artifact.release_id
    assert result.previous_version.startswith("legacy-") and live.is_symlink()
