"""A seeded slice of the KPI-triggered rollback's fault campaign (bench/deploy_faults.py --rollback runs a
larger one): restore_previous_release over real SFTP, from a store's second release back to its first,
under a SIGKILL at a random SFTP request, a cut or black-holed connection, a full disk, a killed sshd and
a deploy holding the lock; the deploy-fault invariants checked after every fault, after the run's retry
and after the next deploy."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from psp_assets.core.deploy import release as deploy_module
from psp_assets.core.deploy.release import bad_mark, current_release, read_history
from psp_assets.core.rollout.gate import restore_previous_release
from tests.core.deploy.test_package_deploy import LIVE, healthy
from tests.core.rollout.test_rollout_gate_rollback import two_releases
from tests.integration.faults import EVIDENCE, ROLLBACK_CLASSES, fault_user, run_campaign, schedule


def test_a_retry_finishes_a_rollback_that_switched_and_died_before_recording_it(tmp_path, monkeypatch):
    fs = two_releases(tmp_path)

    def disk_full(*_a, **_k):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(deploy_module, "_append_history", disk_full)
        first = restore_previous_release(fs, LIVE, "prod", "1.0.0-b2", EVIDENCE, healthy, holder="run gate")
    assert first.error and not first.marked_bad and current_release(fs, LIVE) == "1.0.0-b1"
    retry = restore_previous_release(fs, LIVE, "prod", "1.0.0-b2", EVIDENCE, healthy, holder="run gate")
    assert (retry.rolled_back, retry.error, retry.deployed_version, retry.marked_bad) == (True, "", "1.0.0-b1", True)
    history = read_history(fs, LIVE)
    assert bad_mark(history, "1.0.0-b2") is not None
    assert [e.release for e in history if e.event == "rollback"] == ["1.0.0-b1"]


def test_retrying_a_finished_rollback_changes_nothing_and_reports_it_done(tmp_path):
    fs = two_releases(tmp_path)
    restore_previous_release(fs, LIVE, "prod", "1.0.0-b2", EVIDENCE, healthy)
    entries = len(read_history(fs, LIVE))
    retry = restore_previous_release(fs, LIVE, "prod", "1.0.0-b2", EVIDENCE, healthy)
    assert (retry.rolled_back, retry.error, retry.deployed_version, retry.marked_bad) == (True, "", "1.0.0-b1", True)
    assert len(read_history(fs, LIVE)) == entries and current_release(fs, LIVE) == "1.0.0-b1"


@pytest.mark.integration
def test_the_rollback_schedule_is_seeded_and_covers_every_fault_class():
    assert schedule(3, 18, rollback=True) == schedule(3, 18, rollback=True) != schedule(4, 18, rollback=True)
    assert set(schedule(3, 18, rollback=True)) == set(ROLLBACK_CLASSES)


@pytest.mark.integration
def test_every_invariant_holds_after_every_fault_of_a_kpi_rollback():
    work = Path(tempfile.mkdtemp(prefix="psp-rollback-faults-"))  # pytest's tmp_path is closed to the account
    work.chmod(0o755)
    try:
        figures = run_campaign(seed=3, total=18, workdir=work, user=fault_user(), rollback=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert figures["faults"] >= 18 and set(figures["classes"]) == set(ROLLBACK_CLASSES)
    assert figures["broken"] == []
    assert figures["held"] == figures["faults"] and figures["retry_succeeded"] == figures["faults"]
    # the slice reaches the store switched but not yet marked (the retry finishes it) and faults that bite
    assert sum(row["switched_unmarked"] for row in figures["classes"].values()) >= 1
    assert sum(row["interrupted"] for row in figures["classes"].values()) >= figures["faults"] // 2
    assert figures["reader"]["reads"] > 1000
    assert figures["reader"]["missing"] == 0 and figures["reader"]["torn"] == 0
