"""SFTP deploys against a real sshd and a real WordPress store, including the faults stores have."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import threading
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from psp_assets.core.config.model import ClientConfig, parse_client
from psp_assets.core.deploy.release import HealthResult, acquire_lease, current_release, deploy, releases_dir_for
from psp_assets.core.deploy.sftp import SftpFS, SshEndpoint
from psp_assets.core.deploy.stores import deploy_plugin
from psp_assets.core.errors import DeployError
from psp_assets.core.package import Artifact, package
from psp_assets.core.plan import plan_plugin
from psp_assets.core.render.engine import RenderedTree, render
from psp_assets.core.workspace import Paths
from tests.conftest import TEMPLATES, client_dict
from tests.integration.conftest import Sshd, WordPressStore, chown_tree, keygen

pytestmark = pytest.mark.integration

KEY_ENV = "PSP_TEST_STORE_SSH_KEY"
PLUGIN = "nordbank-payments"
MAIN = f"{PLUGIN}.php"


def sftp_config(
    sshd: Sshd, live: str, health: dict | None = None, title: str = "Betalen met Nord Bank"
) -> ClientConfig:
    target = {
        "name": "production",
        "transport": "sftp",
        "host": "127.0.0.1",
        "port": sshd.port,
        "user": "pspdeploy",
        "private_key_env": KEY_ENV,
        "known_host": sshd.known_host(),
        "path": live,
        "connect_timeout_seconds": 5,
        "command_timeout_seconds": 20,
    }
    if health:
        target["health"] = health
    data = client_dict(checkout={"title": title})
    data["platforms"] = {"woocommerce": {"slug": PLUGIN, "targets": [target]}}
    return parse_client(data, "nordbank.yaml")


def build(config: ClientConfig, out: Path, edit=None, build_id: str | None = None) -> Artifact:
    """The plugin as built_artifact makes it (render + package, the manifest carrying the plan's deploy
    facts), optionally altered to fake a bad release."""
    plan = plan_plugin(Paths(out, TEMPLATES, out, out), config, "woocommerce")
    tree = render(plan.template, config, plan.catalog, plan.context)
    files = dict(tree.files)
    if edit:
        files = edit(files)
    tree = RenderedTree(tree.client_id, tree.platform, tree.plugin_version, build_id or tree.build, files)
    root = plan.render_value(plan.template.spec.packaging.root)
    return package(tree, root, f"{PLUGIN}.zip", out / tree.release_id, plan.deploy_facts())


def endpoint(sshd: Sshd, known_host: str | None = None) -> SshEndpoint:
    return SshEndpoint("127.0.0.1", sshd.port, "pspdeploy", known_host or sshd.known_host(), sshd.client_private, 5, 20)


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path / "configs", TEMPLATES, tmp_path / "data", tmp_path / "stores", tmp_path / "keys")


@pytest.fixture
def secret(sshd: Sshd):
    return {KEY_ENV: sshd.client_private}.get


def served_version(store: WordPressStore) -> dict:
    with urllib.request.urlopen(f"{store.url}wp-json/{PLUGIN}/v1/health", timeout=10) as response:
        return json.loads(response.read())


def storefront_status(store: WordPressStore) -> int:
    try:
        with urllib.request.urlopen(store.url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def hand_install(artifact: Artifact, live: Path, user) -> None:
    """What a merchant did before this platform: unzip the plugin into wp-content/plugins by hand."""
    with zipfile.ZipFile(artifact.path) as zf:
        zf.extractall(live.parent)
    chown_tree(live, user)


# --- the real store ----------------------------------------------------------------------------------


def test_woocommerce_plugin_deploys_over_sftp_into_wordpress_and_its_health_route_answers(
    sshd, wordpress, paths, secret, php, deploy_user, tmp_path
):
    live = wordpress.docroot / "wp-content" / "plugins" / PLUGIN
    gate = {"store_url": wordpress.url, "count": 2, "interval_seconds": 0.2}
    old = build(sftp_config(sshd, str(live), gate, title="Old title"), tmp_path / "old")
    hand_install(old, live, deploy_user)
    assert wordpress.activate(f"{PLUGIN}/{MAIN}") == [None]  # no WooCommerce
    assert served_version(wordpress)["build"] == old.release_id.rsplit("-", 1)[1]

    config = sftp_config(sshd, str(live), gate)
    new = build(config, tmp_path / "new")
    [result] = deploy_plugin(paths, config, "woocommerce", new, php, secret)

    assert result.ok, result
    assert result.health == "healthy" and result.deployed_version == new.release_id
    assert result.previous_version.startswith("legacy-")  # the hand-installed folder, adopted once
    assert [s.step for s in result.steps][:6] == ["verify archive", "adopt", "upload", "verify", "switch", "health"]
    assert live.is_symlink()
    report = served_version(wordpress)
    assert (report["version"], report["build"]) == tuple(new.release_id.rsplit("-", 1))
    assert wordpress.php(f"echo json_encode(is_plugin_active('{PLUGIN}/{MAIN}'));").strip() == "true"


def test_a_release_that_makes_wordpress_fatal_is_rolled_back_and_the_store_is_healthy_again(
    sshd, wordpress, paths, secret, php, deploy_user, tmp_path
):
    live = wordpress.docroot / "wp-content" / "plugins" / PLUGIN
    gate = {"store_url": wordpress.url, "count": 2, "interval_seconds": 0.2}
    config = sftp_config(sshd, str(live), gate)
    good = build(config, tmp_path / "good")
    hand_install(good, live, deploy_user)
    wordpress.activate(f"{PLUGIN}/{MAIN}")
    [first] = deploy_plugin(paths, config, "woocommerce", good, php, secret)
    assert first.ok

    def fatal(files: dict[str, bytes]) -> dict[str, bytes]:
        text = files[MAIN].decode()
        return {
            **files,
            MAIN: text.replace(
                "defined( 'ABSPATH' ) || exit;", "defined( 'ABSPATH' ) || exit;\npsp_no_such_function();", 1
            ).encode(),
        }

    bad = build(config, tmp_path / "bad", edit=fatal, build_id="badbadbadbad")
    [result] = deploy_plugin(paths, config, "woocommerce", bad, php, secret)

    assert result.rolled_back and result.health == "unhealthy"
    assert "PHP error output" in next(s.detail for s in result.steps if s.step == "health")
    assert result.deployed_version == good.release_id
    # rollback first, then re-verify, then the mark: a 5xx/fatal with the release, healthy without it
    assert [s.step for s in result.steps][-3:] == ["rollback", "re-verify", "marked bad"] and result.steps[-2].ok
    assert result.marked_bad
    assert storefront_status(wordpress) == 200
    assert served_version(wordpress)["build"] == good.release_id.rsplit("-", 1)[1]
    with pytest.raises(DeployError, match="marked bad"), SftpFS(endpoint(sshd)) as fs:
        deploy(bad, fs, str(live), "production", healthy)


# --- faults ------------------------------------------------------------------------------------------


@pytest.fixture
def plain_store(store_root: Path) -> Path:
    return store_root / "shop" / "wp-content" / "plugins" / PLUGIN


def healthy(*_args) -> HealthResult:
    return HealthResult(True, "ok")


def sftp_deploy(sshd: Sshd, artifact: Artifact, live: Path, known_host: str | None = None, holder: str | None = None):
    with SftpFS(endpoint(sshd, known_host), target="production") as fs:
        return deploy(artifact, fs, str(live), "production", healthy, holder=holder)


def serves_complete(live: Path, artifact: Artifact) -> bool:
    """The live path resolves to a release whose every file matches the artifact's manifest."""
    return all(
        (live / rel).is_file() and hashlib.sha256((live / rel).read_bytes()).hexdigest() == digest
        for rel, digest in artifact.manifest.items()
    )


def two_releases(sshd: Sshd, live: Path, tmp_path: Path) -> tuple[Artifact, Artifact]:
    a = build(sftp_config(sshd, str(live), title="Release A"), tmp_path / "a")
    b = build(sftp_config(sshd, str(live), title="Release B"), tmp_path / "b")
    return a, b


def test_an_unknown_host_key_is_refused_and_nothing_is_touched(sshd, plain_store, tmp_path):
    a, _ = two_releases(sshd, plain_store, tmp_path)
    other_type = keygen(tmp_path / "other_rsa", "rsa")[1]  # a pin of another key type: the host is unknown
    with pytest.raises(DeployError, match=r"does not match the pinned known_host|host key"):
        sftp_deploy(sshd, a, plain_store, known_host=other_type)
    assert not plain_store.parent.exists()


def test_a_changed_host_key_is_refused(sshd, plain_store, tmp_path):
    a, _ = two_releases(sshd, plain_store, tmp_path)
    impostor = keygen(tmp_path / "impostor")[1]  # same type, different key: the host was re-keyed or spoofed
    with pytest.raises(DeployError, match="CHANGED"):
        sftp_deploy(sshd, a, plain_store, known_host=impostor)
    assert not plain_store.parent.exists()


def test_a_dropped_connection_mid_upload_keeps_the_old_release_and_a_retry_succeeds(
    sshd, plain_store, tmp_path, monkeypatch
):
    a, b = two_releases(sshd, plain_store, tmp_path)
    sftp_deploy(sshd, a, plain_store)
    original = SftpFS.write_tree

    def flaky(self, root, files):
        self._client.get_transport().close()  # the network drops the connection as the upload starts
        return original(self, root, files)

    monkeypatch.setattr(SftpFS, "write_tree", flaky)
    failed = sftp_deploy(sshd, b, plain_store, holder="run-7")
    assert "connection" in failed.error and not failed.ok
    assert serves_complete(plain_store, a)
    monkeypatch.setattr(SftpFS, "write_tree", original)
    result = sftp_deploy(sshd, b, plain_store, holder="run-7")  # the run's retry
    assert result.deployed_version == b.release_id and serves_complete(plain_store, b)
    assert any(s.step == "lock" and "earlier attempt of run-7" in s.detail for s in result.steps)
    leftovers = [e for e in os.listdir(releases_dir_for(str(plain_store))) if e.startswith(".")]
    assert not leftovers  # the killed attempt's staging folder and lock are collected


def test_sshd_stopped_mid_deploy_keeps_the_old_release_and_a_retry_succeeds(
    own_sshd, plain_store, tmp_path, monkeypatch, paths, php
):
    a, b = two_releases(own_sshd, plain_store, tmp_path)
    sftp_deploy(own_sshd, a, plain_store)
    original = SftpFS.write_tree

    def stop_midway(self, root, files):
        own_sshd.stop()
        return original(self, root, files)

    monkeypatch.setattr(SftpFS, "write_tree", stop_midway)
    config = sftp_config(own_sshd, str(plain_store))
    secret = {KEY_ENV: own_sshd.client_private}.get
    [failed] = deploy_plugin(paths, config, "woocommerce", b, php, secret, holder="run-9")
    assert not failed.ok and "connection" in failed.error
    assert failed.deployed_version is None and any(s.step == "read back" for s in failed.steps)  # unknown: said so
    assert serves_complete(plain_store, a)
    monkeypatch.setattr(SftpFS, "write_tree", original)
    own_sshd.start()
    [retried] = deploy_plugin(paths, config, "woocommerce", b, php, secret, holder="run-9")
    assert retried.ok and serves_complete(plain_store, b)


def test_a_remote_path_the_account_cannot_write_fails_clearly_and_succeeds_once_fixed(
    sshd, store_root, tmp_path, deploy_user
):
    locked = store_root / "readonly"
    locked.mkdir()
    os.chown(locked, 0, 0)
    locked.chmod(0o755)
    live = locked / "plugins" / PLUGIN
    a, _ = two_releases(sshd, live, tmp_path)
    with pytest.raises(DeployError, match=f"cannot create {locked}/plugins"):
        sftp_deploy(sshd, a, live)
    os.chown(locked, deploy_user.pw_uid, deploy_user.pw_gid)
    assert sftp_deploy(sshd, a, live).deployed_version == a.release_id


class FakeStore(http.server.ThreadingHTTPServer):
    """A tiny HTTP store front for health-gate faults: answers the storefront with 200 and the health
    route with whatever version/build it is told, optionally after a delay."""

    def __init__(self):
        self.version, self.build, self.delay = "", "", 0.0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if "health" in self.path:
                    time.sleep(outer.delay)
                    body = json.dumps({"plugin": PLUGIN, "version": outer.version, "build": outer.build}).encode()
                else:
                    body = b"<html>shop</html>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


@pytest.fixture
def fake_store():
    server = FakeStore()
    yield server
    server.shutdown()


@pytest.mark.parametrize("fault", ["wrong version", "health timeout"])
def test_a_failing_health_gate_rolls_back_and_a_retry_after_the_fault_succeeds(
    fault, sshd, plain_store, tmp_path, paths, php, secret, fake_store
):
    gate = {
        "store_url": fake_store.url,
        "health_url": fake_store.url + "health",
        "count": 2,
        "interval_seconds": 0.1,
        "timeout_seconds": 0.5,
    }
    config = sftp_config(sshd, str(plain_store), gate)
    a, b = two_releases(sshd, plain_store, tmp_path)
    fake_store.version, fake_store.build = a.release_id.rsplit("-", 1)
    assert deploy_plugin(paths, config, "woocommerce", a, php, secret)[0].ok

    if fault == "wrong version":
        pass  # the store keeps reporting release A: a stale cache, or a mislabelled build
    else:
        fake_store.version, fake_store.build = b.release_id.rsplit("-", 1)
        fake_store.delay = 2.0
    [result] = deploy_plugin(paths, config, "woocommerce", b, php, secret)
    assert result.rolled_back and result.deployed_version == a.release_id
    detail = next(s.detail for s in result.steps if s.step == "health")
    assert ("reports" in detail) if fault == "wrong version" else ("no answer" in detail)
    assert serves_complete(plain_store, a)

    fake_store.version, fake_store.build, fake_store.delay = (*b.release_id.rsplit("-", 1), 0.0)
    [retried] = deploy_plugin(paths, config, "woocommerce", b, php, secret)
    assert retried.ok and retried.deployed_version == b.release_id and serves_complete(plain_store, b)


def test_no_reader_ever_sees_the_plugin_missing_during_repeated_switches(sshd, plain_store, tmp_path):
    a, b = two_releases(sshd, plain_store, tmp_path)
    sftp_deploy(sshd, a, plain_store)
    contents = set()
    for art in (a, b):
        with zipfile.ZipFile(art.path) as zf:
            contents.add(zf.read(f"{PLUGIN}/{MAIN}"))
    stop = threading.Event()
    reads, misses, torn = [0], [], []

    def reader():
        while not stop.is_set():
            try:
                data = (plain_store / MAIN).read_bytes()
                reads[0] += 1
                if data not in contents:
                    torn.append(len(data))
            except OSError as exc:
                misses.append(repr(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        with SftpFS(endpoint(sshd), target="production") as fs:
            for i in range(10):
                art = b if i % 2 == 0 else a
                result = deploy(art, fs, str(plain_store), "production", healthy)
                assert result.deployed_version == art.release_id
    finally:
        stop.set()
        thread.join()
    assert reads[0] > 100 and not misses and not torn


def test_only_the_last_releases_are_kept_on_an_sftp_store(sshd, plain_store, tmp_path):
    releases = []
    for i in range(7):
        art = build(sftp_config(sshd, str(plain_store), title=f"Release {i}"), tmp_path / str(i))
        releases.append(art.release_id)
        with SftpFS(endpoint(sshd), target="production") as fs:
            deploy(art, fs, str(plain_store), "production", healthy, keep=3)
    # ordered by the store's history, not by mtimes (SFTP reports whole seconds)
    kept = sorted(e for e in os.listdir(releases_dir_for(str(plain_store))) if e.startswith("1.") and "." not in e[6:])
    assert kept == sorted(releases[-3:])
    with SftpFS(endpoint(sshd), target="production") as fs:
        assert current_release(fs, str(plain_store)) == releases[-1]


def test_targets_deploy_in_order_and_a_failure_stops_before_the_next(sshd, store_root, tmp_path, paths, php, secret):
    staging = store_root / "staging" / "wp-content" / "plugins" / PLUGIN
    production = store_root / "production" / "wp-content" / "plugins" / PLUGIN
    config = sftp_config(sshd, str(staging))
    data = config.model_dump(mode="json")
    first = data["platforms"]["woocommerce"]["targets"][0]
    data["platforms"]["woocommerce"]["targets"] = [
        {
            **first,
            "name": "staging",
            "path": str(staging),
            "health": {"store_url": "http://127.0.0.1:9/", "count": 1, "timeout_seconds": 0.5},
        },
        {**first, "name": "production", "path": str(production)},
    ]
    config = parse_client(data, "nordbank.yaml")
    art = build(config, tmp_path / "x")
    results = deploy_plugin(paths, config, "woocommerce", art, php, secret)
    assert [r.target for r in results] == ["staging"] and results[0].rolled_back
    assert not production.parent.exists()


def test_a_key_missing_from_the_environment_names_the_variable(sshd, plain_store, tmp_path, paths, php):
    config = sftp_config(sshd, str(plain_store))
    art = build(config, tmp_path / "x")
    [result] = deploy_plugin(paths, config, "woocommerce", art, php, {}.get)
    assert f"private_key_env {KEY_ENV} is not set" in result.error
    assert not plain_store.parent.exists()


def test_remote_output_is_read_to_its_end_not_only_up_to_the_exit_status(sshd):
    """sshd sends a command's exit status when its process ends, and may forward output still in the pipe
    after it: here a child the command left behind writes once the command has exited. A reader that
    stopped at the exit status lost that output (a `sha256sum` answer cut short that way named intact
    files missing, and a healthy release was rolled back)."""
    with SftpFS(endpoint(sshd), target="exec") as fs:
        assert fs._exec("echo early; (sleep 0.5; echo late) &") == "early\nlate\n"
        assert fs._exec("printf 'x%.0s' $(seq 1 70000)").count("x") == 70000  # more than one read
        with pytest.raises(DeployError, match=r"remote command failed \(3\)"):
            fs._exec("echo oops >&2; exit 3")


def test_a_deploy_refused_for_a_held_lock_reports_the_release_the_store_still_serves(
    sshd, plain_store, tmp_path, paths, php, secret
):
    """Found by the side-by-side fault campaign: a deploy refused before it touched the store (another
    run holds the store's lock) reported `deployed_version` None, and deployed_store said the store
    served 'no managed release' while it served its previous release."""
    a, b = two_releases(sshd, plain_store, tmp_path)
    config = sftp_config(sshd, str(plain_store))
    [first] = deploy_plugin(paths, config, "woocommerce", a, php, secret)
    assert first.ok and first.deployed_version == a.release_id
    with SftpFS(endpoint(sshd), target="other run") as fs:
        lease = acquire_lease(fs, releases_dir_for(str(plain_store)), "another-run", "1.9.9-x")
        try:
            [refused] = deploy_plugin(paths, config, "woocommerce", b, php, secret)
        finally:
            lease.release()
    assert "another deploy holds" in refused.error and not refused.ok
    assert refused.deployed_version == a.release_id and refused.live_folder == a.release_id
    with SftpFS(endpoint(sshd), target="check") as fs:
        assert current_release(fs, str(plain_store)) == a.release_id
