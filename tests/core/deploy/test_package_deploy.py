"""Packaging is reproducible; local deploys switch atomically, check health and roll back."""

import json
import os
import threading
import time
import zipfile
from pathlib import Path

import pytest

from psp_assets.core.deploy.release import (
    HealthResult,
    LocalFS,
    bad_mark,
    clear_bad,
    current_release,
    deploy,
    read_history,
    releases_dir_for,
    roll_back_to_previous,
)
from psp_assets.core.errors import DeployError, PackageError
from psp_assets.core.package import load_artifact, package
from psp_assets.core.render.engine import RenderedTree

LIVE = "shop/wp-content/plugins/acme-pay"


def tree(version: str = "1.0.0", build: str = "aaaaaaaaaaaa", body: bytes = b"<?php echo 1;\n") -> RenderedTree:
    files = {"acme-pay.php": body, "includes/core/a.php": b"<?php\n", "readme.txt": b"Stable tag: " + version.encode()}
    return RenderedTree("acme", "woocommerce", version, build, files)


def healthy(*_args) -> HealthResult:
    return HealthResult(True, "ok")


def test_two_builds_of_the_same_tree_are_byte_identical(tmp_path):
    a = package(tree(), "acme-pay", "acme-pay-1.0.0.zip", tmp_path / "a")
    time.sleep(1.1)  # a different wall clock must not change a byte
    os.utime(tmp_path, None)
    b = package(tree(), "acme-pay", "acme-pay-1.0.0.zip", tmp_path / "b")
    assert a.path.read_bytes() == b.path.read_bytes() and a.sha256 == b.sha256


def test_archive_layout_is_one_sorted_folder_with_fixed_times_and_modes(tmp_path):
    art = package(tree(), "acme-pay", "acme-pay-1.0.0.zip", tmp_path)
    with zipfile.ZipFile(art.path) as zf:
        names = zf.namelist()
        assert names == sorted(names)
        assert all(n.startswith("acme-pay/") for n in names)
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert {i.external_attr >> 16 for i in zf.infolist() if not i.is_dir()} == {0o100644}


def test_a_tampered_artifact_is_refused(tmp_path):
    art = package(tree(), "acme-pay", "acme-pay-1.0.0.zip", tmp_path)
    art.path.write_bytes(art.path.read_bytes() + b"x")
    with pytest.raises(PackageError, match="does not match its manifest"):
        load_artifact(art.path)


def test_deploy_switches_atomically_and_keeps_releases_side_by_side(tmp_path):
    fs = LocalFS(tmp_path)
    first = deploy(package(tree(build="b1"), "acme-pay", "a.zip", tmp_path / "art1"), fs, LIVE, "prod", healthy)
    second = deploy(package(tree(build="b2"), "acme-pay", "a.zip", tmp_path / "art2"), fs, LIVE, "prod", healthy)
    assert (first.deployed_version, first.previous_version) == ("1.0.0-b1", None)
    assert (second.deployed_version, second.previous_version, second.health) == ("1.0.0-b2", "1.0.0-b1", "healthy")
    live = tmp_path / LIVE
    assert live.is_symlink() and not os.path.isabs(os.readlink(live))
    assert (live / "acme-pay.php").read_bytes() == b"<?php echo 1;\n"
    assert sorted(os.listdir(tmp_path / releases_dir_for(LIVE))) == [
        "1.0.0-b1",
        "1.0.0-b1.manifest.json",
        "1.0.0-b2",
        "1.0.0-b2.manifest.json",
        "history.jsonl",
    ]
    assert [s.step for s in second.steps] == ["verify archive", "upload", "verify", "switch", "health", "prune"]
    assert [(e.event, e.folder, e.previous, e.verdict) for e in read_history(fs, LIVE)] == [
        ("switch", "1.0.0-b1", "", "healthy"),
        ("switch", "1.0.0-b2", "1.0.0-b1", "healthy"),
    ]


def test_redeploying_the_same_artifact_is_a_recorded_noop(tmp_path):
    fs = LocalFS(tmp_path)
    art = package(tree(), "acme-pay", "a.zip", tmp_path / "art")
    deploy(art, fs, LIVE, "prod", healthy)
    again = deploy(art, fs, LIVE, "prod", healthy)
    assert again.noop and again.health == "unchanged"
    assert [s.step for s in again.steps] == ["verify archive", "noop", "health", "prune"]


def test_a_retry_after_a_deploy_killed_before_its_health_check_still_gates_the_release(tmp_path):
    fs = LocalFS(tmp_path)
    deploy(package(tree(build="good"), "acme-pay", "a.zip", tmp_path / "g"), fs, LIVE, "prod", healthy)
    bad = package(tree(build="bad"), "acme-pay", "a.zip", tmp_path / "b")

    def killed(*_args):
        raise KeyboardInterrupt  # the worker dies right after the switch

    with pytest.raises(KeyboardInterrupt):
        deploy(bad, fs, LIVE, "prod", killed, holder="run-1")
    assert current_release(fs, LIVE) == "1.0.0-bad"  # live, but never verified; the lock is left behind
    # the run's retry (same holder, any host or pod) takes the lock over at once
    retry = deploy(
        bad, fs, LIVE, "prod", lambda live, release, _m: HealthResult(release != "1.0.0-bad", "fatal"), holder="run-1"
    )
    assert "earlier attempt of run-1" in retry.steps[1].detail
    assert not retry.noop and retry.rolled_back and retry.deployed_version == "1.0.0-good"
    assert current_release(fs, LIVE) == "1.0.0-good"


def test_failed_health_rolls_back_and_marks_the_release_bad(tmp_path):
    fs = LocalFS(tmp_path)
    deploy(package(tree(build="good"), "acme-pay", "a.zip", tmp_path / "g"), fs, LIVE, "prod", healthy)
    bad_art = package(tree(build="bad", body=b"<?php fatal("), "acme-pay", "a.zip", tmp_path / "b")
    result = deploy(
        bad_art,
        fs,
        LIVE,
        "prod",
        lambda live, *_: HealthResult("fatal" not in (tmp_path / live / "acme-pay.php").read_text(), "PHP fatal"),
    )
    assert result.rolled_back and result.health == "unhealthy" and result.deployed_version == "1.0.0-good"
    assert current_release(fs, LIVE) == "1.0.0-good"
    assert (tmp_path / LIVE / "acme-pay.php").read_bytes() == b"<?php echo 1;\n"
    mark = bad_mark(read_history(fs, LIVE), "1.0.0-bad")
    assert mark.reason == "PHP fatal" and mark.evidence["previous"] == "1.0.0-good" and result.marked_bad
    with pytest.raises(DeployError, match="marked bad"):
        deploy(bad_art, fs, LIVE, "prod", healthy)
    assert current_release(fs, LIVE) == "1.0.0-good"
    assert "cleared" in clear_bad(fs, LIVE, "1.0.0-bad", "the fatal came from a plugin the merchant removed")
    assert deploy(bad_art, fs, LIVE, "prod", healthy).deployed_version == "1.0.0-bad"


def test_a_failure_that_the_previous_release_shares_marks_nothing(tmp_path):
    fs = LocalFS(tmp_path)
    deploy(package(tree(build="good"), "acme-pay", "a.zip", tmp_path / "g"), fs, LIVE, "prod", healthy)
    art = package(tree(build="new"), "acme-pay", "a.zip", tmp_path / "n")
    result = deploy(art, fs, LIVE, "prod", lambda *_: HealthResult(False, "HTTP 503"))  # the store is sick
    assert result.rolled_back and not result.marked_bad and "unhealthy too" in result.error
    assert current_release(fs, LIVE) == "1.0.0-good" and bad_mark(read_history(fs, LIVE), "1.0.0-new") is None


def test_an_environment_failure_rolls_back_without_a_mark_and_a_retry_deploys(tmp_path):
    fs = LocalFS(tmp_path)
    deploy(package(tree(build="good"), "acme-pay", "a.zip", tmp_path / "g"), fs, LIVE, "prod", healthy)
    art = package(tree(build="new"), "acme-pay", "a.zip", tmp_path / "n")
    flaky = deploy(art, fs, LIVE, "prod", lambda _l, r, _m: HealthResult(r != "1.0.0-new", "timeout", "environment"))
    assert flaky.rolled_back and not flaky.marked_bad and current_release(fs, LIVE) == "1.0.0-good"
    retry = deploy(art, fs, LIVE, "prod", healthy)
    assert retry.ok and retry.live_folder == "1.0.0-new"  # the intact folder is reused, not uploaded again


def test_a_hot_patched_live_release_is_never_modified_a_redeploy_goes_to_a_new_folder(tmp_path):
    fs = LocalFS(tmp_path)
    art = package(tree(), "acme-pay", "a.zip", tmp_path / "a")
    deploy(art, fs, LIVE, "prod", healthy)
    patched = tmp_path / releases_dir_for(LIVE) / "1.0.0-aaaaaaaaaaaa" / "acme-pay.php"
    patched.write_bytes(b"<?php // hot fix\n")
    again = deploy(art, fs, LIVE, "prod", healthy)
    assert again.ok and again.live_folder == "1.0.0-aaaaaaaaaaaa~2"
    assert patched.read_bytes() == b"<?php // hot fix\n"  # the folder that was live is untouched
    assert (tmp_path / LIVE / "acme-pay.php").read_bytes() == b"<?php echo 1;\n"


def test_roll_back_to_previous_goes_where_the_history_says(tmp_path):
    fs = LocalFS(tmp_path)
    for b in ("b1", "b2", "b3"):
        deploy(package(tree(build=b), "acme-pay", "a.zip", tmp_path / b), fs, LIVE, "prod", healthy)
    os.utime(tmp_path / releases_dir_for(LIVE) / "1.0.0-b1", (2e9, 2e9))  # mtimes do not matter
    back = roll_back_to_previous(fs, LIVE, "auth rate fell to 61 %", {"auth_rate": 0.61}, healthy, mark_bad=True)
    assert back.rolled_back and back.deployed_version == "1.0.0-b2" and back.previous_version == "1.0.0-b3"
    assert bad_mark(read_history(fs, LIVE), "1.0.0-b3").evidence == {"auth_rate": 0.61}
    again = roll_back_to_previous(fs, LIVE, "still bad", None, healthy)
    assert again.deployed_version == "1.0.0-b1"  # b3 was rolled back: never a target again


def test_first_deploy_that_fails_health_leaves_nothing_live(tmp_path):
    fs = LocalFS(tmp_path)
    result = deploy(
        package(tree(), "acme-pay", "a.zip", tmp_path / "a"), fs, LIVE, "prod", lambda *_: HealthResult(False, "no")
    )
    assert result.rolled_back and result.deployed_version is None and not os.path.lexists(tmp_path / LIVE)


def test_a_hand_installed_plugin_folder_is_adopted_as_a_release_once(tmp_path):
    live = tmp_path / LIVE
    live.mkdir(parents=True)
    (live / "old.php").write_text("<?php // hand installed\n")
    fs = LocalFS(tmp_path)
    result = deploy(package(tree(), "acme-pay", "a.zip", tmp_path / "a"), fs, LIVE, "prod", healthy)
    assert result.previous_version.startswith("legacy-") and live.is_symlink()
    legacy = tmp_path / releases_dir_for(LIVE) / result.previous_version / "old.php"
    assert legacy.read_text() == "<?php // hand installed\n"
    assert json.loads((tmp_path / releases_dir_for(LIVE) / f"{result.previous_version}.manifest.json").read_text())
    assert not [e for e in os.listdir(tmp_path / releases_dir_for(LIVE)) if e.startswith(".")]  # moved aside, then gone


def test_only_the_last_n_releases_are_kept_never_live_or_previous(tmp_path):
    fs = LocalFS(tmp_path)
    for i in range(6):
        deploy(package(tree(build=f"b{i}"), "acme-pay", "a.zip", tmp_path / f"a{i}"), fs, LIVE, "prod", healthy, keep=3)
        os.utime(tmp_path / releases_dir_for(LIVE) / f"1.0.0-b{i}", (1000 + i, 1000 + i))
    kept = sorted(e for e in os.listdir(tmp_path / releases_dir_for(LIVE)) if e != "history.jsonl")
    assert kept == [f"1.0.0-b{i}{suffix}" for i in (3, 4, 5) for suffix in ("", ".manifest.json")]


def test_a_held_lock_refuses_a_second_deploy_and_a_stale_one_is_broken(tmp_path):
    fs = LocalFS(tmp_path)
    art = package(tree(), "acme-pay", "a.zip", tmp_path / "a")
    lock = tmp_path / releases_dir_for(LIVE) / ".lock"
    lock.mkdir(parents=True)
    owner = {"token": "t" * 24, "holder": "run-elsewhere", "what": "1.0.0-x", "lease_seconds": 120}
    (lock / f"owner-{'t' * 24}.json").write_text(json.dumps(owner))
    (lock / "lease").write_text("t" * 24)
    with pytest.raises(DeployError, match="another deploy holds"):
        deploy(art, fs, LIVE, "prod", healthy, holder="run-here")
    assert not os.path.lexists(tmp_path / LIVE)
    old = time.time() - 3600  # not renewed for an hour on the store's clock
    os.utime(lock / "lease", (old, old))
    result = deploy(art, fs, LIVE, "prod", healthy, holder="run-here")
    assert result.steps[1].detail.startswith("broke the lock of run-elsewhere: its lease") and not lock.exists()


def test_a_lock_without_an_owner_never_blocks_a_retry(tmp_path):
    fs = LocalFS(tmp_path)
    art = package(tree(), "acme-pay", "a.zip", tmp_path / "a")
    (tmp_path / releases_dir_for(LIVE) / ".lock").mkdir(parents=True)  # mkdir done, owner never written
    assert deploy(art, fs, LIVE, "prod", healthy).ok


def test_concurrent_deploys_to_one_store_never_interleave(tmp_path):
    fs = LocalFS(tmp_path)
    arts = [package(tree(build=f"c{i}"), "acme-pay", "a.zip", tmp_path / f"c{i}") for i in range(2)]
    inside, peak, outcomes = [0], [0], []
    guard = threading.Lock()

    def slow_health(*_args) -> HealthResult:
        with guard:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
        time.sleep(0.3)
        with guard:
            inside[0] -= 1
        return HealthResult(True, "ok")

    def run(art):
        try:
            outcomes.append(deploy(art, fs, LIVE, "prod", slow_health).deployed_version)
        except DeployError as exc:
            outcomes.append("locked" if "another deploy holds" in str(exc) else repr(exc))

    threads = [threading.Thread(target=run, args=(a,)) for a in arts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 1
    assert len(outcomes) == 2 and all(o in ("locked", "1.0.0-c0", "1.0.0-c1") for o in outcomes), outcomes


def test_a_zip_slip_entry_is_refused(tmp_path):
    art = package(tree(), "acme-pay", "a.zip", tmp_path / "a")
    with zipfile.ZipFile(art.path, "a") as zf:
        zf.writestr("acme-pay/../../evil.php", "<?php")
    with pytest.raises(DeployError, match="outside the plugin folder"):
        deploy(art, LocalFS(tmp_path / "store"), LIVE, "prod", healthy)
    assert not (tmp_path / "evil.php").exists()


def test_store_paths_cannot_leave_the_store_root(tmp_path):
    with pytest.raises(DeployError, match="outside the store root"):
        LocalFS(tmp_path).exists("../../etc/passwd")


def test_artifact_name_must_be_a_plain_zip_file(tmp_path):
    with pytest.raises(PackageError):
        package(tree(), "x", "../x.zip", tmp_path)
    assert not any(Path(tmp_path).iterdir())


def test_psp_release_clear_bad_takes_a_mark_back_on_the_named_target(tmp_path, monkeypatch, capsys):
    import yaml

    from psp_assets.cli import main
    from tests.conftest import client_dict

    configs, stores = tmp_path / "configs", tmp_path / "stores"
    configs.mkdir()
    data = client_dict()
    data["platforms"] = {
        "woocommerce": {"slug": "acme-pay", "targets": [{"name": "production", "transport": "local", "path": LIVE}]}
    }
    (configs / f"{data['id']}.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("PSP_CLIENT_CONFIGS_DIR", str(configs))
    monkeypatch.setenv("PSP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PSP_STORES_DIR", str(stores))
    fs = LocalFS(stores)
    deploy(package(tree(build="good"), "acme-pay", "a.zip", tmp_path / "g"), fs, LIVE, "production", healthy)
    bad = package(tree(build="bad"), "acme-pay", "a.zip", tmp_path / "b")
    deploy(bad, fs, LIVE, "production", lambda _l, r, _m: HealthResult(r != "1.0.0-bad", "HTTP 500"))
    args = ["release", "clear-bad", "--client", data["id"], "--platform", "woocommerce"]
    assert main([*args, "--target", "staging", "--release", "1.0.0-bad", "--reason", "x"]) == 1
    assert "no target named 'staging'" in capsys.readouterr().err
    assert main([*args, "--target", "production", "--release", "1.0.0-bad", "--reason", "cache, not code"]) == 0
    assert "bad mark cleared (HTTP 500)" in capsys.readouterr().out
    assert (
        read_history(fs, LIVE)[-1].reason == "cache, not code" and bad_mark(read_history(fs, LIVE), "1.0.0-bad") is None
    )
    assert main([*args, "--target", "production", "--release", "1.0.0-bad", "--reason", "again"]) == 1
    assert "is not marked bad" in capsys.readouterr().err


def test_a_deploy_whose_lease_was_broken_changes_nothing_more_and_leaves_the_new_lock(tmp_path):
    fs = LocalFS(tmp_path)
    deploy(package(tree(build="good"), "acme-pay", "a.zip", tmp_path / "g"), fs, LIVE, "prod", healthy)
    lock = tmp_path / releases_dir_for(LIVE) / ".lock"

    def stalled_then_failed(_live, release, _manifest):
        # the deployer stalled past its lease: another deploy broke the lock and holds it now
        os.rename(lock, lock.with_name(".lock.broken-other"))
        lock.mkdir()
        (lock / f"owner-{'o' * 24}.json").write_text(json.dumps({"holder": "run-other"}))
        return HealthResult(False, "HTTP 500")

    art = package(tree(build="new"), "acme-pay", "a.zip", tmp_path / "n")
    result = deploy(art, fs, LIVE, "prod", stalled_then_failed)
    assert "lease was broken" in result.error and "run-other" in result.error
    assert not result.rolled_back and result.deployed_version == "1.0.0-new"  # the holder decides now
    assert (lock / f"owner-{'o' * 24}.json").exists()  # not released: it is not this deploy's lock
    assert [e.folder for e in read_history(fs, LIVE)] == ["1.0.0-good"]  # nothing written without the lock
