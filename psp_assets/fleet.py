"""The main job: materialize every client x enabled platform end to end on the current Dagster
instance (DAGSTER_HOME), then print what landed where. Runs are ordinary Dagster runs: they show in the
UI with their lineage and metadata. The lineage runs are range runs (defs/ranges.py): one per platform
over its clients, or one per client over its platforms, whichever is fewer runs (core/ranges.py, the
planner the lineage sensor uses too)."""

from __future__ import annotations

import sys
import time

import dagster as dg

from psp_assets.core.config.fleet import validate_fleet
from psp_assets.core.ranges import plan_ranges
from psp_assets.core.templates.spec import available_platforms
from psp_assets.core.workspace import Paths
from psp_assets.defs import ranges
from psp_assets.defs.partitions import client_partitions
from psp_assets.defs.ranges import range_tags

# The console shows warnings and errors; every event is still in the run's log in the UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def latest_metadata(instance: dg.DagsterInstance, key: str, partition: str) -> dict:
    """The metadata of the latest materialization of one asset partition ({} when there is none)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[partition]), limit=1, ascending=False
    ).records
    if not records or records[0].asset_materialization is None:
        return {}
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def run_fleet(paths: Paths, clients: list[str] | None = None, instance: dg.DagsterInstance | None = None) -> int:
    from psp_assets.definitions import defs

    instance = instance or dg.DagsterInstance.get()
    fleet = validate_fleet(paths.configs_dir, paths.templates_dir)
    for label, problems in fleet.problems.items():
        print(f"skipped {label}:\n  " + "\n  ".join(problems), file=sys.stderr)
    ids = sorted(c for c in fleet.clients if not clients or c in clients)
    unknown = sorted(set(clients or []) - set(fleet.clients))
    if unknown:
        print(f"unknown or invalid client(s): {', '.join(unknown)}", file=sys.stderr)
        return 1
    known = set(instance.get_dynamic_partitions(client_partitions.name))
    if missing := [c for c in ids if c not in known]:
        instance.add_dynamic_partitions(client_partitions.name, missing)
    keys = [k for k in fleet.partition_keys() if k.split("|")[0] in ids]
    platforms = available_platforms(paths.templates_dir)  # every template, so any partition can run later
    started = time.monotonic()
    failures: list[str] = []

    def run(job_name: str, partition: str | None, tags: dict[str, str] | None = None) -> bool:
        result = defs.resolve_job_def(job_name).execute_in_process(
            partition_key=partition,
            instance=instance,
            raise_on_error=False,
            tags={"psp/trigger": "psp fleet", **(tags or {})},
            run_config=QUIET,
        )
        if not result.success:
            covered = partition or " .. ".join(v for k, v in (tags or {}).items() if "partition_range" in k)
            failures.append(f"{job_name}[{covered}] run {result.run_id}")
        return result.success

    for platform in platforms:
        run("plugin_template_job", platform)
    for cid in ids:
        run("client_config_job", cid)
    order = list(instance.get_dynamic_partitions(client_partitions.name))
    enabled = {cid: fleet.clients[cid].config.enabled_platforms() for cid in ids}
    for first, last in plan_ranges(order, enabled, chunk=ranges.FLEET_CHUNK):
        run("plugin_lineage_job", None, range_tags(first, last))

    print(f"\nPSP plugin fleet: {len(keys)} plugin(s) for {len(ids)} client(s) in {time.monotonic() - started:.1f} s")
    print(f"{'partition':34} {'release':24} {'tests':7} {'artifact sha256':18} deploys")
    for key in keys:
        report = latest_metadata(instance, "test_report", key)
        artifact = latest_metadata(instance, "built_artifact", key)
        deployed = latest_metadata(instance, "deployed_store", key)
        targets = deployed.get("targets") or []
        deploys = ", ".join(
            f"{t['target']}={t['deployed_version'] if not t['rolled_back'] else 'ROLLED BACK'}"
            f"{' (unchanged)' if t.get('noop') else ''}"
            for t in targets
        ) or ("-" if not deployed else "no targets")
        tests = "-" if not report else ("pass" if report.get("passed") else "FAIL")
        sha = str(artifact.get("sha256", "-"))[:16]
        print(f"{key:34} {artifact.get('release_id', '-'):24} {tests:7} {sha:18} {deploys}")
    # The payment reconciliation and KPIs over the ledger (the embedded demo ledger unless PSP_LEDGER_URL is set).
    from psp_assets.defs.reconciliation.schedules import latest_summary

    if run("payment_reconciliation_job", None) and run("payment_kpis_job", None):
        print("\n" + latest_summary(instance))
    if failures:
        print("\nfailed runs (open them in the UI for the step logs):", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return 1
    return 0
