"""A seeded slice of the deploy fault campaign (bench/deploy_faults.py runs the full one): every fault
class injected into real SFTP deploys, every invariant checked after every fault and after the retry."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.integration.faults import CLASSES, fault_user, run_campaign, schedule

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
