"""The payment analysis of rollout waves (core/rollout/analysis.py): a seeded slice of the simulation in
bench/rollout_analysis.py, the same judgement read back from a real ledger, and the rules around it
(minimum sample, the control, multiple comparisons, planned looks, hold or promote)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from bench.rollout_analysis import EPOCH, Profile, generate, ledger_rows, simulate_release
from psp_assets.core.config.model import RolloutAnalysis
from psp_assets.core.reconciliation.ledger import MIGRATIONS, Ledger, metadata, migrations_table, sqlite_url
from psp_assets.core.rollout.analysis import (
    StoreVerdict,
    Switch,
    Traffic,
    analyse,
    decide,
    look_time,
    per_test_level,
    verdicts_text,
    worse_p,
)

SETTINGS = RolloutAnalysis(enabled=True)
NORMAL = Profile(0.85, 0.02, 0.005, 350)


def test_a_halved_authorization_rate_is_rolled_back_within_the_window_at_200_payments_an_hour():
    rng = np.random.default_rng(19)
    for _ in range(3):
        outcome = simulate_release("halve_authorization", 200, 8, SETTINGS, rng)
        assert outcome.rolled_back == ["client|woocommerce store-000"]  # the canary, before any other wave
        assert outcome.detected_after_minutes is not None
        assert outcome.detected_after_minutes <= SETTINGS.window_minutes


@pytest.mark.parametrize("fault", ["break_webhooks", "p95_plus_2s"])
def test_broken_webhooks_and_a_slow_tail_are_rolled_back_at_200_payments_an_hour(fault: str):
    outcome = simulate_release(fault, 200, 8, SETTINGS, np.random.default_rng(3))
    assert outcome.rolled_back and not outcome.completed


def test_releases_that_change_nothing_roll_out_completely_without_a_rollback():
    rng = np.random.default_rng(7)
    outcomes = [simulate_release("none", per_hour, 8, SETTINGS, rng) for per_hour in (50, 200, 1000) for _ in range(4)]
    assert [o.rolled_back for o in outcomes] == [[]] * len(outcomes)
    assert all(o.completed for o in outcomes)


def _ledger(tmp_path: Path) -> Ledger:
    ledger = Ledger(sqlite_url(tmp_path / "ledger.sqlite3"))
    ledger.migrate()
    return ledger


def _store_traffic(ledger: Ledger, store: tuple[str, str, str], fault: str, seed: int, per_hour: float = 300) -> None:
    rng = np.random.default_rng(seed)
    events = generate(NORMAL, per_hour, 24 * 60 + 90, 24 * 60, fault, rng)
    ledger.insert_store_events(ledger_rows(store, events, f"{store[0]}-{store[2]}"))


def test_a_store_whose_authorization_rate_halved_fails_on_ledger_data_and_the_others_pass(tmp_path: Path):
    ledger = _ledger(tmp_path)
    stores = [("bank-a", "woocommerce", "production"), ("bank-b", "woocommerce", "production")]
    controls = [("bank-c", "woocommerce", "production"), ("bank-d", "woocommerce", "eu")]
    _store_traffic(ledger, stores[0], "halve_authorization", 1)
    _store_traffic(ledger, stores[1], "none", 2)
    for seed, store in enumerate(controls, start=3):
        _store_traffic(ledger, store, "none", seed)
    _store_traffic(ledger, ("bank-e", "magento2", "production"), "halve_authorization", 9)  # another platform
    switched = EPOCH + timedelta(minutes=24 * 60)
    now = switched + timedelta(minutes=75)
    events = ledger.store_authorizations("woocommerce", switched - timedelta(days=1), now)
    assert set(events["platform"]) == {"woocommerce"}
    switches = [Switch(c, p, t, switched, "r2", "r1", 1) for c, p, t in stores]
    verdicts = analyse(events, switches, [], {c: SETTINGS for c in ["bank-a", "bank-b"]}, now, 4)
    failed, passed = verdicts
    assert failed.verdict == "fail" and passed.verdict == "pass", (failed.reason, passed.reason)
    assert failed.control_stores == 2 and failed.window_complete
    failing = {c.kpi: c for c in failed.comparisons if c.failed}
    assert "error_rate" not in failing and "webhook_failure_rate" not in failing  # the declines took the approvals
    auth = failing["authorization_rate"]
    assert auth.before > 0.8 and auth.after < 0.5
    assert auth.p_control is not None and auth.p_control < auth.alpha
    assert "authorization_rate" in failed.evidence() and "->" in failed.evidence()
    assert StoreVerdict.from_dict(failed.as_dict()) == failed
    decision = decide(verdicts, {"bank-a": SETTINGS, "bank-b": SETTINGS})
    assert decision.action == "roll back" and [v.store for v in decision.failing] == [failed.store]
    text = verdicts_text(verdicts)
    assert "bank-a|woocommerce production" in text and "fail" in text and "pass" in text


def test_a_drop_the_whole_platform_saw_is_not_blamed_on_the_release(tmp_path: Path):
    """The control moved as much as the store (a PSP incident at the switch): no rollback."""
    ledger = _ledger(tmp_path)
    upgraded = ("bank-a", "woocommerce", "production")
    for seed, store in enumerate([upgraded, ("bank-c", "woocommerce", "production")]):
        _store_traffic(ledger, store, "halve_authorization", seed, per_hour=600)
    switched = EPOCH + timedelta(minutes=24 * 60)
    now = switched + timedelta(minutes=75)
    events = ledger.store_authorizations("woocommerce", switched - timedelta(days=1), now)
    [verdict] = analyse(events, [Switch(*upgraded, switched, "r2", "r1", 1)], [], {"bank-a": SETTINGS}, now, 2)
    auth = next(c for c in verdict.comparisons if c.kpi == "authorization_rate")
    assert auth.p_baseline < auth.alpha  # against its own past the store looks broken ...
    assert auth.p_control is not None and auth.p_control > auth.alpha  # ... but so does everyone else
    assert verdict.verdict == "pass"


def test_too_little_traffic_is_inconclusive_and_hold_or_promote_decides_the_wave():
    switched = EPOCH
    now = switched + timedelta(minutes=SETTINGS.window_minutes)
    small = Traffic(attempts=40, approved=10, errors=0, declines={"do_not_honor": 30})
    big = Traffic(attempts=5000, approved=4250, errors=100, declines={"do_not_honor": 650})
    from psp_assets.core.rollout.analysis import judge

    verdict = judge(("bank-a", "woocommerce", "production"), switched, now, big, small, big, big, 3, SETTINGS, 5)
    assert verdict.verdict == "inconclusive" and "40 payments after the switch" in verdict.reason
    assert verdict.window_complete
    assert decide([verdict], {"bank-a": SETTINGS}).action == "hold"
    promote = SETTINGS.model_copy(update={"inconclusive": "promote"})
    assert decide([verdict], {"bank-a": promote}).action == "proceed"
    early = judge(("bank-a", "woocommerce", "production"), switched, switched + timedelta(minutes=5), big, small,
                  big, big, 3, promote, 5)  # fmt: skip
    assert early.verdict == "inconclusive" and not early.window_complete
    assert decide([early], {"bank-a": promote}).action == "hold"  # promote never skips an open window


def test_the_false_rollback_budget_is_shared_by_every_store_kpi_and_look():
    one = per_test_level(SETTINGS, 1, 9)
    assert per_test_level(SETTINGS, 20, 9) == pytest.approx(one / 20)
    assert one == pytest.approx(SETTINGS.false_rollback_rate / (9 * (SETTINGS.looks + 1)))
    # a rise that would pass a single test at 5 % does not survive the correction for 20 stores
    p = worse_p(30, 200, 100, 1000)  # 15 % -> 10 % bad
    assert p < 0.05 and p > per_test_level(SETTINGS, 20, 9)


def test_looks_are_planned_so_a_sensor_ticking_often_sees_the_same_traffic():
    switched = EPOCH
    step = timedelta(minutes=SETTINGS.window_minutes / SETTINGS.looks)
    assert look_time(switched, switched + step - timedelta(seconds=1), SETTINGS) is None
    assert look_time(switched, switched + step, SETTINGS) == switched + step
    assert look_time(switched, switched + 2 * step + timedelta(minutes=7), SETTINGS) == switched + 2 * step


def test_migration_2_adds_the_store_columns_to_a_ledger_created_before_them(tmp_path: Path):
    url = sqlite_url(tmp_path / "old.sqlite3")
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # a ledger as migration 1 left it, with a payment already recorded
        conn.execute(sa.text(
            "CREATE TABLE psp_payment_events (event_id VARCHAR(64) PRIMARY KEY, payment_id VARCHAR(64) NOT NULL, "
            "client_id VARCHAR(40) NOT NULL, platform VARCHAR(20) NOT NULL, event_type VARCHAR(16) NOT NULL, "
            "outcome VARCHAR(10) NOT NULL, status VARCHAR(24) NOT NULL, decline_reason VARCHAR(64), "
            "latency_ms INTEGER, occurred_at DATETIME NOT NULL)"
        ))  # fmt: skip
        conn.execute(sa.text(
            "CREATE TABLE psp_payments (payment_id VARCHAR(64) PRIMARY KEY, client_id VARCHAR(40) NOT NULL)"
        ))  # fmt: skip
        metadata.create_all(conn, tables=[metadata.tables["psp_healing_actions"], migrations_table])
        conn.execute(sa.text(
            "INSERT INTO psp_payment_events VALUES ('e1', 'p1', 'bank-a', 'woocommerce', 'authorization', "
            "'approved', 'authorized', NULL, 120, '2026-11-02 10:00:00')"
        ))  # fmt: skip
        conn.execute(migrations_table.insert().values(version=1, description=MIGRATIONS[0][1], applied_at=EPOCH))
    engine.dispose()
    ledger = Ledger(url)
    assert ledger.migrate() == [2]
    assert ledger.schema_version() == 2
    old = ledger.events()
    assert old.loc[0, "event_id"] == "e1" and old.loc[0, "store"] is None
    assert ledger.migrate() == []
    # writers that know nothing of stores keep working; their rows are not analysed
    assert ledger.insert_events([{**old.loc[0].to_dict(), "event_id": "e2"}]) == 1
    assert ledger.store_authorizations("woocommerce", EPOCH - timedelta(days=1), EPOCH + timedelta(days=1)).empty
