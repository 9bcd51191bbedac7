"""A seeded slice of the deploy fault campaign (bench/deploy_faults.py runs the full one): every fault
class injected into real SFTP deploys, every invariant checked after every fault and after the retry."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.integration.faults import CLASSES, PARALLEL_CLASSES, fault_user, run_campaign, schedule

pytestmark = pytest.mark.integration


def test_the_schedule_is_seeded_and_covers_every_fault_class():
    assert schedule(11, 26) == schedule(11, 26) and schedule(11, 26) != schedule(12, 26)
    assert set(schedule(11, 26)) == set(CLASSES) and len(schedule(5, 160)) >= 150


def test_every_invariant_holds_after_every_fault_of_a_seeded_slice():
    work = Path(tempfile.mkdtemp(prefix="psp-faults-"))  # pytest's tmp_path is closed to the deploy account
    work.chmod(0o755)
    try:
        figures = run_campaign(seed=11, total=20, workdir=work, user=fault_user())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert figures["faults"] >= 20 and set(figures["classes"]) == set(CLASSES)
    assert figures["broken"] == []
    assert figures["held"] == figures["faults"] and figures["retry_succeeded"] == figures["faults"]
    assert figures["reader"]["reads"] > 1000
    assert figures["reader"]["missing"] == 0 and figures["reader"]["torn"] == 0


def test_every_invariant_holds_on_every_store_when_faults_land_in_deploys_side_by_side():
    """Four seeded faults (a SIGKILL of the deployer, a store host's sshd killed, a release that 500s, a
    held lock under a clock 1000 s ahead), each into a client's three plugins deploying side by side to
    six stores on two store hosts (bench/deploy_faults.py --parallel runs the full mix)."""
    assert schedule(2, 4, parallel=True) == ["kill_sftp", "sshd_killed", "release_5xx", "clock_ahead"]
    assert set(schedule(3, 60, parallel=True)) == set(PARALLEL_CLASSES)
    work = Path(tempfile.mkdtemp(prefix="psp-faults-"))
    work.chmod(0o755)
    try:
        figures = run_campaign(seed=2, total=4, workdir=work, user=fault_user(), parallel=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert figures["faults"] == 4 and figures["broken"] == [], figures["broken"]
    assert figures["held"] == 4 and figures["retry_succeeded"] == 4
    assert 0 < figures["same_host_at_once"] < 4  # both ways of sharing a host are in the slice
    assert all(row["checked"] > 0 and row["broken"] == 0 for row in figures["invariants"].values()), figures
    assert figures["reader"]["missing"] == 0 and figures["reader"]["torn"] == 0
