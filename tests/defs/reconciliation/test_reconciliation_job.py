"""The reconciliation area in Dagster: the demo ledger through the real job, its checks and schedules."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from psp_assets.core.reconciliation.demo import generate, partitions_for
from psp_assets.core.reconciliation.reconcile import StatusRules
from psp_assets.definitions import defs
from psp_assets.defs.reconciliation import LedgerResource
from psp_assets.defs.resources import PspWorkspace

pytestmark = pytest.mark.slow


def test_reconciliation_job_reports_the_demo_divergences_and_fails_its_checks(paths, monkeypatch, rules):
    monkeypatch.setenv("PSP_DATA_DIR", str(paths.data_dir))
    instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_job_def("payment_reconciliation_job")
    workspace = PspWorkspace(
        configs_dir=str(paths.configs_dir),
        templates_dir=str(paths.templates_dir),
        data_dir=str(paths.data_dir),
        stores_dir=str(paths.stores_dir),
    )
    result = job.execute_in_process(
        instance=instance, resources={"workspace": workspace, "ledger": LedgerResource(demo_orders_per_platform=200)}
    )
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"divergences_within_age_limit": False, "no_paid_in_store_without_psp_payment": False}

    fleet = paths.fleet()
    clients = [(c.id, c.config.enabled_platforms(), c.config.currencies[0]) for c in fleet.clients.values()]
    job_rules, _ = StatusRules.load_available(paths.templates_dir)  # what the job itself reconciles
    expected = generate(partitions_for(sorted(clients), job_rules), job_rules, 200, seed=7).expected_divergences
    report = pd.read_parquet(paths.data_dir / "reconciliation" / "payment_reconciliation.parquet")
    found = set(zip(report["client_id"], report["platform"], report["order_ref"], report["divergence"], strict=True))
    assert found == {e for e in expected if e[1] in job_rules.platforms}
    assert report["first_seen_at"].notna().all()
    healing = pd.read_parquet(paths.data_dir / "reconciliation" / "payment_healing.parquet")
    assert healing.empty  # no demo client opted in to healing


def test_reconciliation_runs_every_15_minutes_and_kpis_hourly():
    crons = {s.name: s.cron_schedule for s in defs.schedules if s.name.startswith("payment_")}
    assert crons == {"payment_reconciliation_every_15_minutes": "*/15 * * * *", "payment_kpis_hourly": "5 * * * *"}
