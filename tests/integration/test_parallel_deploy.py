"""A client's plugins deploy side by side (core/deploy/parallel.py), as deployed_store runs them: each plugin
in its own thread over its own pooled SSH connection, its targets in order, real sshd. Overlap is proven by
what happened (two connections held at once, the order of events), never by how long anything took."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from psp_assets.core.config.model import ClientConfig, parse_client
from psp_assets.core.deploy.parallel import Job, side_by_side, store_hosts, threads_for
from psp_assets.core.deploy.release import Deployment, current_release
from psp_assets.core.deploy.sftp import SftpFS, SftpPool, SshEndpoint
from psp_assets.core.deploy.stores import deploy_plugin
from psp_assets.core.package import Artifact, package
from psp_assets.core.plan import PluginPlan, plan_plugin
from psp_assets.core.render.engine import render
from psp_assets.core.workspace import Paths
from tests.conftest import TEMPLATES, client_dict
from tests.integration.conftest import Sshd, keygen
from tests.integration.test_sftp_deploy import KEY_ENV, endpoint

pytestmark = pytest.mark.integration

PLATFORMS = ("woocommerce", "magento2")


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path / "configs", TEMPLATES, tmp_path / "data", tmp_path / "stores", tmp_path / "keys")


KEY_ENV_2 = KEY_ENV + "_2"


def two_plugins(hosts: dict[str, Sshd], store_root: Path, known_host: dict[str, str] | None = None) -> ClientConfig:
    """nordbank on WooCommerce and Magento, each with a staging and a production target over SFTP, each
    platform's stores on its own host (sshd)."""

    def target(platform: str, name: str) -> dict:
        sshd = hosts[platform]
        return {
            "name": name,
            "transport": "sftp",
            "host": "127.0.0.1",
            "port": sshd.port,
            "user": "pspdeploy",
            "private_key_env": KEY_ENV if platform == "woocommerce" else KEY_ENV_2,
            "known_host": (known_host or {}).get(f"{platform} {name}", sshd.known_host()),
            "path": str(store_root / platform / name / installs.get(platform, "nordbank-payments")),
            "connect_timeout_seconds": 5,
            "command_timeout_seconds": 20,
        }

    installs: dict[str, str] = {}
    data = client_dict()
    for _ in range(2):  # the targets end with the install path the platform loads the plugin from
        data["platforms"] = {
            p: {"slug": "nordbank-payments", "targets": [target(p, "staging"), target(p, "production")]}
            for p in PLATFORMS
        }
        config = parse_client(data, "nordbank.yaml")
        installs = {p: plan_of(config, p, store_root).deploy_facts().install_path or "" for p in PLATFORMS}
    return config


def plan_of(config: ClientConfig, platform: str, data_dir: Path) -> PluginPlan:
    paths = Paths(TEMPLATES.parent / "client_configs", TEMPLATES, data_dir, data_dir)
    return plan_plugin(paths, config, platform)


def build(config: ClientConfig, platform: str, out: Path) -> Artifact:
    plan = plan_of(config, platform, out)
    tree = render(plan.template, config)
    root = plan.render_value(plan.template.spec.packaging.root)
    return package(tree, root, f"nordbank-{platform}.zip", out / platform / tree.release_id, deploy=plan.deploy_facts())


class WatchedPool(SftpPool):
    """The real pool; it records when a deploy thread takes and gives back a connection, and holds each
    staging lease until both plugins hold one (a barrier: with one deploy at a time it breaks, and the
    deploy fails)."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.events: list[str] = []
        self.held: list[int] = []
        self.barrier = threading.Barrier(parties)
        self._events_lock = threading.Lock()

    @contextlib.contextmanager
    def lease(self, endpoint: SshEndpoint, target: str = "") -> Iterator[SftpFS]:
        with super().lease(endpoint, target) as fs:
            with self._events_lock:
                self.events.append(f"take {target}")
                self.held.append(id(fs))
            if target.endswith("target staging"):
                self.barrier.wait(timeout=60)
            try:
                yield fs
            finally:
                with self._events_lock:
                    self.events.append(f"give {target}")


def deploy_side_by_side(paths, config, artifacts, php, secret, pool) -> dict[str, list[Deployment]]:
    jobs = [
        Job(
            f"{config.id}|{platform}",
            functools.partial(
                deploy_plugin, paths, config, platform, artifacts[platform], php, secret, connections=pool
            ),
            store_hosts(config, platform),
        )
        for platform in PLATFORMS
    ]
    return side_by_side(jobs, workers=4)


@pytest.fixture
def hosts(sshd, own_sshd) -> dict[str, Sshd]:
    return {"woocommerce": sshd, "magento2": own_sshd}


def keys(hosts: dict[str, Sshd]):
    return {KEY_ENV: hosts["woocommerce"].client_private, KEY_ENV_2: hosts["magento2"].client_private}.get


def test_two_plugins_of_one_client_deploy_at_the_same_time_each_on_its_own_connection(
    hosts, store_root, paths, php, tmp_path
):
    config = two_plugins(hosts, store_root)
    artifacts = {p: build(config, p, tmp_path) for p in PLATFORMS}
    secret = keys(hosts)
    with WatchedPool(parties=2) as pool:
        results = deploy_side_by_side(paths, config, artifacts, php, secret, pool)
        connects = pool.connects
    for platform in PLATFORMS:
        assert [(d.target, d.ok, d.health) for d in results[f"nordbank|{platform}"]] == [
            ("staging", True, "healthy"),
            ("production", True, "healthy"),
        ], results[f"nordbank|{platform}"]
    events = pool.events
    staging = [f"nordbank|{p} target staging" for p in PLATFORMS]
    # both staging deploys held a connection before either gave one back: they overlapped
    first_give = min(events.index(f"give {s}") for s in staging)
    assert all(events.index(f"take {s}") < first_give for s in staging), events
    # one connection per host, each in one thread at a time, reused by the plugin's production target
    assert connects == 2 and len(set(pool.held)) == 2
    for platform in PLATFORMS:
        where = f"nordbank|{platform} target"
        assert events.index(f"give {where} staging") < events.index(f"take {where} production"), events
    for platform in PLATFORMS:
        with SftpFS(endpoint(hosts[platform]), target="check") as fs:
            for target in config.platform(platform).targets:
                assert current_release(fs, target.path) == artifacts[platform].release_id


def test_a_failing_target_stops_its_own_plugin_and_not_the_other(hosts, store_root, paths, php, tmp_path):
    impostor = keygen(tmp_path / "impostor")[1]  # magento2's staging answers with a key it did not pin
    config = two_plugins(hosts, store_root, known_host={"magento2 staging": impostor})
    artifacts = {p: build(config, p, tmp_path) for p in PLATFORMS}
    secret = keys(hosts)
    with SftpPool() as pool:
        results = deploy_side_by_side(paths, config, artifacts, php, secret, pool)
    [staging] = results["nordbank|magento2"]  # production never attempted
    assert not staging.ok and staging.target == "staging" and "CHANGED" in (staging.error or ""), staging
    assert [(d.target, d.ok) for d in results["nordbank|woocommerce"]] == [("staging", True), ("production", True)]
    with SftpFS(endpoint(hosts["woocommerce"]), target="check") as fs:
        for target in config.platform("woocommerce").targets:
            assert current_release(fs, target.path) == artifacts["woocommerce"].release_id
    assert not (store_root / "magento2").exists()  # nothing touched on the refused host


def test_threads_follow_the_store_hosts_within_the_bound(hosts, store_root):
    config = two_plugins(hosts, store_root)
    jobs = [Job(p, lambda: None, store_hosts(config, p)) for p in PLATFORMS]
    assert store_hosts(config, "woocommerce") == {f"127.0.0.1:{hosts['woocommerce'].port}"}
    assert threads_for(jobs, workers=8) == 2 and threads_for(jobs, workers=1) == 1
    same = [Job(p, lambda: None, store_hosts(config, "woocommerce")) for p in PLATFORMS]
    assert threads_for(same, workers=8) == 1  # one store host: one thread
    local = [Job(i, lambda: None, frozenset({f"local:/shop{i}"})) for i in range(5)]
    assert threads_for(local, workers=3) == 3 and threads_for(local, workers=8) == 5
