"""The instance's run coordinator: Dagster's queue, plus a refusal at launch of a plugin run whose upstream
was never recorded.

A run of `rendered_source[c|P]` without `client_config[c]` (or `plugin_template[P]`) recorded, or of
`deployed_store[c|P]` without `built_artifact[c|P]`, cannot do anything but fail at its first step. The
coordinator is what the webserver, the daemon's sensors and schedules, and the GraphQL client call to
submit a run, before any process starts: such a run is marked failed there, with the message, and is
not retried. Configured in `dagster.yaml` and `deploy/postgres/dagster.yaml` (`run_coordinator:`),
a documented extension point; its config is `QueuedRunCoordinator`'s. docs/operations.md, "A run for a
partition whose upstream is not recorded".
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import dagster as dg

from psp_assets.defs.ranges import PER_PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG

PARTITION_TAG = "dagster/partition"
PARENT_RUN_TAG = "dagster/parent_run_id"
REFUSED_TAG = "psp/refused"


@functools.cache
def plugin_upstream() -> Mapping[str, tuple[str, ...]]:
    """Each client|platform asset and the assets it reads, from the asset definitions themselves."""
    from psp_assets.defs.github.assets import client_repository, github_release
    from psp_assets.defs.plugins.assets import built_artifact, deployed_store, rendered_source, test_report

    assets = (rendered_source, test_report, built_artifact, deployed_store, github_release, client_repository)
    return {a.key.to_user_string(): tuple(k.to_user_string() for k in a.dependency_keys) for a in assets}


def run_partitions(instance: dg.DagsterInstance, tags: Mapping[str, str]) -> list[str]:
    """The client|platform partitions a run covers: its partition, or every key of its range."""
    from psp_assets.defs.partitions import plugin_partitions

    if "|" in tags.get(PARTITION_TAG, ""):
        return [tags[PARTITION_TAG]]
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if not (start and end and "|" in start):
        return []
    keys = plugin_partitions.get_partition_keys_in_range(
        dg.PartitionKeyRange(start, end), dynamic_partitions_store=instance
    )
    return [str(k) for k in keys]


def upstream_partition(asset: str, key: str) -> str:
    """The partition of `asset` that plugin partition `key` reads: its client's config, its platform's
    template, or the same plugin's partition."""
    client, _, platform = key.partition("|")
    return {"client_config": client, "plugin_template": platform}.get(asset, key)


def missing_upstream(instance: dg.DagsterInstance, assets: Sequence[str], keys: Sequence[str]) -> list[str]:
    """`asset[partition]` of every upstream record the run needs and the instance does not hold: for each
    plugin asset the run materializes, each asset it reads that the run does not materialize itself."""
    upstream = plugin_upstream()
    needed: dict[str, set[str]] = {}
    for asset in assets:
        for parent in upstream.get(asset, ()):
            if parent not in assets:
                needed.setdefault(parent, set()).update(upstream_partition(parent, k) for k in keys)
    missing = []
    for parent, partitions in sorted(needed.items()):
        recorded = instance.get_materialized_partitions(dg.AssetKey(parent))
        missing += [f"{parent}[{p}]" for p in sorted(partitions - recorded)]
    return missing


def refusal(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str | None:
    """Why `run` cannot start, or None. Judged for a run of one partition and for a range run whose
    partitions fail together (no per-partition tag). Not for a range recorded partition by partition,
    where a partition without upstream fails alone and the others go on, nor for a re-execution, which
    continues from its parent's handles."""
    if PARENT_RUN_TAG in run.tags or run.tags.get(PER_PARTITION_TAG) == "true":
        return None
    keys = run_partitions(instance, run.tags)
    if not keys:
        return None
    snapshot_id = run.execution_plan_snapshot_id
    plan = instance.get_execution_plan_snapshot(snapshot_id) if snapshot_id else None
    assets = [s.key for s in plan.steps] if plan else [k.to_user_string() for k in run.asset_selection or ()]
    if run.step_keys_to_execute:
        assets = [a for a in assets if a in run.step_keys_to_execute]
    missing = missing_upstream(instance, assets, keys)
    if not missing:
        return None
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    one = len(missing) == 1
    return (
        f"refused before it started: {shown} {'has' if one else 'have'} not been materialized yet, and this run "
        f"does not materialize {'it' if one else 'them'}. Materialize {'it' if one else 'them'} first (select "
        "in the asset graph, or let the sensors do it: client_configs_sensor records every valid client file, "
        "template_change_sensor every template), then launch this run again"
    )


class PspRunCoordinator(dg.QueuedRunCoordinator):
    """`QueuedRunCoordinator` that refuses, at submission, a plugin run whose upstream was never recorded:
    the run is marked failed with the reason and not retried, before any process starts."""

    def submit_run(self, context: dg.SubmitRunContext) -> dg.DagsterRun:
        run = context.dagster_run
        if run.status == dg.DagsterRunStatus.NOT_STARTED and (reason := refusal(self._instance, run)):
            # not retried: nothing changes until someone materializes the upstream
            self._instance.add_run_tags(run.run_id, {"dagster/max_retries": "0", REFUSED_TAG: "missing upstream"})
            self._instance.report_run_failed(self._instance.get_run_by_id(run.run_id) or run, message=reason)
            return self._instance.get_run_by_id(run.run_id) or run
        return super().submit_run(context)
