"""A rollback ordered by the payment analysis (core/rollout/gate.py) keeps the deploy's invariants: the
store ends on a complete previous release or is left alone, the lock is honoured, the previous release is
re-verified, the target comes from the store's release history, and the bad release is marked (in that
history, with the KPI evidence) only when the store is healthy again."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from psp_assets.core.deploy.release import (
    HealthResult,
    LocalFS,
    acquire_lease,
    bad_mark,
    current_release,
    deploy,
    read_history,
    releases_dir_for,
)
from psp_assets.core.errors import DeployError
from psp_assets.core.package import package
from psp_assets.core.rollout.analysis import StoreVerdict
from psp_assets.core.rollout.gate import RolloutState, restore_previous_release, state_path
from tests.core.deploy.test_package_deploy import LIVE, healthy, tree

EVIDENCE = StoreVerdict(
    "acme", "woocommerce", "prod", "fail", "worse after the switch: authorization_rate", True, 4800, 200, 9000, 3,
    datetime(2026, 11, 2, tzinfo=UTC),
)  # fmt: skip


def two_releases(tmp_path) -> LocalFS:
    fs = LocalFS(tmp_path / "store")
    for build in ("b1", "b2"):
        deploy(package(tree(build=build), "acme-pay", "a.zip", tmp_path / f"art-{build}"), fs, LIVE, "prod", healthy)
    return fs


def test_the_store_goes_back_to_the_complete_previous_release_and_the_bad_one_is_marked(tmp_path):
    fs = two_releases(tmp_path)
    seen = []

    def health(live: str, release: str, manifest):
        seen.append((release, bool(manifest)))
        return HealthResult(True, "ok")

    result = restore_previous_release(fs, LIVE, "prod", "1.0.0-b2", EVIDENCE, health)
    assert (result.rolled_back, result.error, result.deployed_version) == (True, "", "1.0.0-b1")
    assert current_release(fs, LIVE) == "1.0.0-b1" and ("1.0.0-b1", True) in seen
    assert result.marked_bad and result.health == "healthy"
    mark = bad_mark(read_history(fs, LIVE), "1.0.0-b2")
    assert "authorization_rate" in mark.reason and mark.evidence["payments_after"] == 200
    with pytest.raises(DeployError, match="marked bad"):  # never deployed to this store again
        deploy(package(tree(build="b2"), "acme-pay", "a.zip", tmp_path / "art-again"), fs, LIVE, "prod", healthy)


def test_an_incomplete_previous_release_is_never_switched_to(tmp_path):
    fs = two_releases(tmp_path)
    os.remove(tmp_path / "store" / releases_dir_for(LIVE) / "1.0.0-b1" / "includes" / "core" / "a.php")
    result = restore_previous_release(fs, LIVE, "prod", "1.0.0-b2", EVIDENCE, healthy)
    assert not result.rolled_back and "not complete" in result.error
    assert current_release(fs, LIVE) == "1.0.0-b2"  # left on a complete release, for a person to decide


def test_a_store_already_moved_on_is_left_alone(tmp_path):
    fs = two_releases(tmp_path)
    result = restore_previous_release(fs, LIVE, "prod", "1.0.0-b1", EVIDENCE, healthy)
    assert not result.rolled_back and "serves 1.0.0-b2, not 1.0.0-b1" in result.error
    assert current_release(fs, LIVE) == "1.0.0-b2"


def test_a_deploy_holding_the_lock_blocks_the_rollback(tmp_path):
    fs = two_releases(tmp_path)
    acquire_lease(fs, releases_dir_for(LIVE), "run elsewhere", "deploy of 1.0.0-b3")
    result = restore_previous_release(fs, LIVE, "prod", "1.0.0-b2", EVIDENCE, healthy, holder="run gate")
    assert not result.rolled_back and "another deploy holds" in result.error
    assert current_release(fs, LIVE) == "1.0.0-b2" and bad_mark(read_history(fs, LIVE), "1.0.0-b2") is None


def test_a_store_whose_history_names_no_earlier_release_is_left_on_it(tmp_path):
    fs = LocalFS(tmp_path / "store")
    deploy(package(tree(build="b1"), "acme-pay", "a.zip", tmp_path / "art-b1"), fs, LIVE, "prod", healthy)
    result = restore_previous_release(fs, LIVE, "prod", "1.0.0-b1", EVIDENCE, healthy)
    assert not result.rolled_back and "no release live before" in result.error
    assert current_release(fs, LIVE) == "1.0.0-b1"


def test_an_unhealthy_previous_release_is_reported_and_nothing_is_marked(tmp_path):
    fs = two_releases(tmp_path)
    result = restore_previous_release(
        fs, LIVE, "prod", "1.0.0-b2", EVIDENCE, lambda *_: HealthResult(False, "storefront 500")
    )
    assert result.rolled_back and result.health == "unhealthy" and "unhealthy too" in result.error
    assert not result.marked_bad and bad_mark(read_history(fs, LIVE), "1.0.0-b2") is None


def test_the_rollout_state_is_written_whole_and_read_back(tmp_path):
    state = RolloutState("woocommerce", "run-1", [["a|woocommerce"]], {"a|woocommerce": "r2"}, {"canary": 1}, 1)
    path = state_path(tmp_path, "woocommerce")
    state.save(path)
    assert RolloutState.load(path) == state
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]
