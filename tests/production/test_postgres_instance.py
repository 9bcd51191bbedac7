"""The production instance on the machine's PostgreSQL: schema, runs and materializations, and the
embedded default that needs no Postgres at all."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import dagster as dg
import pytest

from psp_assets.fleet import latest_metadata
from tests.production.conftest import LINEAGE_RUN_CONFIG, Workspace, add_client, instance_at, make_home
from tests.production.services import REPO, Dagster, PgServer, daemons_healthy, fresh_database

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LINEAGE = ("template_version", "template_hash", "config_hash", "plugin_version", "build")


def _tables(server: PgServer, dbname: str) -> set[str]:
    with server.connect(dbname) as conn, conn.cursor() as cur:
        cur.execute("select table_name from information_schema.tables where table_schema = 'public'")
        return {row[0] for row in cur.fetchall()}


def test_the_shipped_config_initialises_the_whole_dagster_schema_on_an_empty_database(
    pg_server: PgServer, tmp_path: Path
):
    with fresh_database(pg_server, prefix="psp_schema_test") as dbname:
        assert _tables(pg_server, dbname) == set()
        started = time.monotonic()
        with instance_at(make_home(tmp_path / "home"), pg_server.env(dbname)) as instance:
            seconds = time.monotonic() - started
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
            assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
            # Dagster's queue, which also refuses a plugin run whose upstream is missing (defs/run_coordinator.py)
            assert type(instance.run_coordinator).__name__ == "PspRunCoordinator"
            assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        tables = _tables(pg_server, dbname)
    print(f"\nschema init on an empty database: {seconds:.2f} s, {len(tables)} tables")
    # run storage, event log storage (with the concurrency tables), schedule storage, migrations stamp
    assert {"runs", "run_tags", "event_logs", "asset_keys", "concurrency_slots", "jobs", "job_ticks"} <= tables
    assert "alembic_version" in tables


def test_the_production_instance_queues_runs_with_per_store_and_fleet_wide_limits_retries_and_monitoring(
    prod_instance: dg.DagsterInstance,
):
    concurrency = prod_instance.get_concurrency_config()
    limits = concurrency.run_queue_config.tag_concurrency_limits
    assert {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
    assert concurrency.pool_config.default_pool_limit and concurrency.pool_config.default_pool_limit >= 1
    assert concurrency.pool_config.pool_granularity.value == "op"  # only the deploy step waits, not the run
    assert prod_instance.run_retries_enabled and prod_instance.run_retries_max_retries >= 1
    assert prod_instance.run_monitoring_enabled
    assert prod_instance.run_monitoring_settings.get("free_slots_after_run_end_seconds")


def test_the_embedded_default_runs_with_no_postgres_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name in ("PSP_PG_HOST", "PSP_PG_PORT", "PSP_PG_USER", "PSP_PG_PASSWORD", "PSP_PG_DB"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.chdir(tmp_path)  # the embedded default's paths are relative: var/dagster/...
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert type(instance.run_coordinator).__name__ == "PspRunCoordinator"
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
        result = dg.materialize([_probe], instance=instance)
        assert result.success
        assert instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.SUCCESS
    assert (tmp_path / "var" / "dagster" / "storage").is_dir()


@dg.asset
def _probe() -> int:
    return 1


def test_a_deploy_launched_like_the_ui_is_recorded_in_postgres_and_read_back_by_a_new_process(
    prod_dagster: Dagster,
    prod_instance: dg.DagsterInstance,
    prod_workspace: Workspace,
    prod_home: Path,
    pg_server: PgServer,
    pg_database: str,
):
    partition = add_client(prod_instance, prod_workspace, "readback-bank")
    started = time.monotonic()
    run_id = prod_dagster.launch("plugin_lineage_job", partition, LINEAGE_RUN_CONFIG)
    assert prod_dagster.wait_run(run_id, timeout=300) == "SUCCESS", prod_dagster.logs()
    print(f"\nlineage run through the queue, launch to success: {time.monotonic() - started:.1f} s")

    # a separate instance object: a new connection, nothing cached from the run
    with instance_at(prod_home, pg_server.env(pg_database)) as reader:
        record = reader.get_run_record_by_id(run_id)
        assert record is not None and record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        tags = record.dagster_run.tags
        assert tags["dagster/partition"] == partition
        assert tags["dagster/max_retries"] == "2" and tags["dagster/retry_on_asset_or_op_failure"] == "true"
        assert record.start_time and record.end_time and record.end_time >= record.start_time
        for asset in ("rendered_source", "test_report", "built_artifact", "deployed_store"):
            metadata = latest_metadata(reader, asset, partition)
            assert all(metadata.get(k) for k in LINEAGE), (asset, metadata)
        artifact = latest_metadata(reader, "built_artifact", partition)
        (target,) = latest_metadata(reader, "deployed_store", partition)["targets"]
        assert target["health"] == "healthy" and target["deployed_version"] == artifact["release_id"]
        live = prod_workspace.stores / "readback-bank-shop/wp-content/plugins/readback-bank-pay"
        assert live.resolve().name == artifact["release_id"]
        check = reader.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("test_report"), "plugin_checks_pass")]
        )
        assert check
        events = reader.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        assert {e.dagster_event.asset_key.to_user_string() for e in events} >= {"deployed_store", "built_artifact"}


def test_the_daemon_runs_the_queue_sensors_schedules_monitoring_and_retries(prod_dagster: Dagster):
    healthy = set(daemons_healthy(prod_dagster))
    assert {"QUEUED_RUN_COORDINATOR", "SENSOR", "SCHEDULER", "MONITORING", "EVENT_LOG_CONSUMER"} <= healthy
    # what the platform turns on by default (the fixture stopped them afterwards, to own the queue)
    started = prod_dagster.automation_at_start
    assert started["payment_reconciliation_every_15_minutes"] == {
        **started["payment_reconciliation_every_15_minutes"],
        "status": "RUNNING",
        "cron": "*/15 * * * *",
    }
    assert started["nightly_compatibility_matrix"]["status"] == "RUNNING"
    assert started["client_configs_sensor"]["status"] == "RUNNING"
