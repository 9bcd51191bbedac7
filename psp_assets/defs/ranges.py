"""One run over many `client|platform` partitions (a fleet-wide rebuild), recorded partition by partition.

Each lineage asset works out one `Outcome` per partition of its run (produced, skipped, failed) and
hands them to `record`, which turns them into Dagster events in one of three ways:

- one partition, as always: an `Output` (and the check's `AssetCheckResult`), a `Failure` for a failed
  partition; exactly what a per-partition run did before ranges existed;
- a range run that carries `PER_PARTITION_TAG` (the sensors, `psp fleet` and `plugin_build_job` set it):
  one `AssetMaterialization` per produced partition with that partition's own metadata and data version,
  one `plugin_checks_pass` evaluation per tested partition, an observation with the error per failed
  partition; the output passes the produced partitions on, so the other partitions go on to be built
  while a failed one stays red. The run fails at the end of the chain, naming every failed partition;
- a range run without the tag (a UI backfill of the assets): Dagster records the step's output for
  every partition of the range, so a failed partition fails the whole range; a partition with nothing to
  do is recorded with `outcome: skipped` and the reason.

Why the tag: Dagster 1.13 records a range step's output as one materialization per partition of the
range, all with the same data version, and offers no way to leave a partition out or mark it failed
(dagster-io/dagster#17836, #15666, #34013). The tag (`dagster/defer_asset_events`, added for runs whose
asset events are reported by someone else, dagster-io/dagster#29810) makes Dagster leave the asset
events to the asset code; the tests pin that it still does. docs/operations.md, "Fleet-scale runs".

This module is also where every other non-public part of Dagster the layer uses lives: the pools a
deploy claims by a name made at run time (one per plugin's stores). Each has a canary in
tests/defs/test_ranges_canaries.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from psp_assets.core.handles import Handle
from psp_assets.core.ranges import chunked

PER_PARTITION_TAG = "dagster/defer_asset_events"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
DATA_VERSION_TAG = "dagster/data_version"
# A fleet-wide range is split into chunks of at most this many partitions, each its own run that any
# run worker can take (and that boots its PHP runtimes once): the sensors' range runs, `psp fleet`, and
# a backfill of the lineage assets from the UI alike. PSP_FLEET_CHUNK sets it (docs/operations.md).
FLEET_CHUNK = max(1, int(os.environ.get("PSP_FLEET_CHUNK", "") or 100))
FLEET_BACKFILL = dg.BackfillPolicy.multi_run(max_partitions_per_run=FLEET_CHUNK)
FAILED = "failed"  # the `outcome` of the observation recorded for a failed partition
HINT = (
    "Dagster records a range step for every partition of the range or for none (dagster-io/dagster#17836); "
    "launch fleet-wide work with plugin_build_job or plugin_lineage_job and the run tag "
    f"{PER_PARTITION_TAG}=true (the sensors and `psp fleet` do), which records each partition on its own"
)


def range_tags(start: str, end: str) -> dict[str, str]:
    """Run tags for one run over the partitions `start` .. `end`, recorded partition by partition.
    On a `client|platform` key a range is a rectangle: `a|woocommerce` .. `c|woocommerce` is three
    clients on one platform, `a|woocommerce` .. `a|opencart` one client on every platform."""
    return {RANGE_START_TAG: start, RANGE_END_TAG: end, PER_PARTITION_TAG: "true"}


def chunks(items: list[str], size: int | None = None) -> list[list[str]]:
    """`items` in order, cut into runs of at most `size` (default FLEET_CHUNK)."""
    return chunked(items, size or FLEET_CHUNK)


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    metadata: Mapping[str, Any]


@dataclass(frozen=True)
class Produced:
    handle: Handle
    metadata: Mapping[str, Any]
    data_version: str | None = None
    check: CheckOutcome | None = None


@dataclass(frozen=True)
class Skipped:
    """Nothing to do for this partition (the client does not enable the platform, nothing upstream);
    `observation`: metadata of an observation that records why (e.g. publishing is switched off)."""

    reason: str
    observation: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Failed:
    reason: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    observe: bool = False  # record an observation with `metadata` even in a one-partition run


Outcome = Produced | Skipped | Failed


def per_partition(context: dg.AssetExecutionContext) -> bool:
    return context.run.tags.get(PER_PARTITION_TAG) == "true"


def written_by_this_run(context: dg.AssetExecutionContext, handle: Handle) -> bool:
    """Whether an upstream handle was produced by this run (or the run it re-executes): the IO manager
    stamps every handle with the run that wrote it (core/handles.py Handle.run_id)."""
    run = context.run
    return handle.run_id in {run.run_id, run.parent_run_id, run.root_run_id} - {None}


def upstream(context: dg.AssetExecutionContext, input_name: str, value: Any) -> dict[str, Any]:
    """An input as {upstream partition key: handle}, however many partitions the run covers. Upstream
    partitions that are not materialized (or were not produced by this run) are absent."""
    keys = context.asset_partition_keys_for_input(input_name)
    if len(keys) == 1:
        return {keys[0]: value}
    return dict(value or {})


def record(
    context: dg.AssetExecutionContext, outcomes: Mapping[str, Outcome], check_name: str | None = None
) -> Iterator[Any]:
    """The events for one step's outcomes (see the module docstring); `check_name`: the blocking check
    the outcomes carry results for. Every asset of a per-partition run records through this: the last
    ones of the run fail it for every partition that failed anywhere in it."""
    if per_partition(context):
        yield from _per_partition(context, outcomes, check_name)
    elif len(outcomes) == 1:
        [(key, outcome)] = outcomes.items()
        yield from _one(context, key, outcome, check_name)
    else:
        yield from _whole_range(context, outcomes, check_name)


def _one(context: dg.AssetExecutionContext, key: str, outcome: Outcome, check_name: str | None) -> Iterator[Any]:
    if isinstance(outcome, Skipped):
        context.log.info(outcome.reason)
        if outcome.observation is not None:
            context.log_event(_observation(context, key, outcome.observation))
        return
    if isinstance(outcome, Failed):
        if outcome.observe:
            context.log_event(_observation(context, key, outcome.metadata))
        raise dg.Failure(description=outcome.reason, metadata=dict(outcome.metadata), allow_retries=False)
    version = dg.DataVersion(outcome.data_version) if outcome.data_version else None
    yield dg.Output(outcome.handle, data_version=version, metadata=dict(outcome.metadata))
    if outcome.check is not None and check_name:
        yield dg.AssetCheckResult(
            check_name=check_name,
            passed=outcome.check.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata=dict(outcome.check.metadata),
        )


def _observation(context: dg.AssetExecutionContext, key: str, metadata: Mapping[str, Any]) -> dg.AssetObservation:
    return dg.AssetObservation(asset_key=context.asset_key, partition=key, metadata=dict(metadata))


def _check_key(context: dg.AssetExecutionContext, check_name: str | None) -> dg.AssetCheckKey | None:
    if not check_name:
        return None
    key = dg.AssetCheckKey(context.asset_key, check_name)
    return key if key in context.selected_asset_check_keys else None


def _check_output(context: dg.AssetExecutionContext, key: dg.AssetCheckKey) -> dg.Output:
    """The check's own output: what lets the steps it blocks start (results are recorded as events)."""
    return dg.Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(key))


def _evaluation(context: dg.AssetExecutionContext, key: str, check: dg.AssetCheckKey, outcome: CheckOutcome):
    return dg.AssetCheckEvaluation(
        asset_key=context.asset_key,
        check_name=check.name,
        passed=outcome.passed,
        metadata=dict(outcome.metadata),
        severity=dg.AssetCheckSeverity.ERROR,
        blocking=True,
        partition=key,
    )


def _per_partition(
    context: dg.AssetExecutionContext, outcomes: Mapping[str, Outcome], check_name: str | None
) -> Iterator[Any]:
    check = _check_key(context, check_name)
    produced: dict[str, Handle] = {}
    failures: list[str] = []
    for key, outcome in outcomes.items():
        if isinstance(outcome, Skipped):
            context.log.info(f"{key}: {outcome.reason}")
            if outcome.observation is not None:
                context.log_event(_observation(context, key, outcome.observation))
        elif isinstance(outcome, Failed):
            context.log.error(f"{key}: {outcome.reason}")
            metadata = {**outcome.metadata, "outcome": FAILED, "error": outcome.reason[:4000]}
            context.log_event(_observation(context, key, metadata))
            failures.append(f"{context.asset_key.to_user_string()}[{key}]: {outcome.reason}")
            if check is not None:
                # red on its check too: a partition that could not be checked did not pass
                failed_check = CheckOutcome(passed=False, metadata={"error": outcome.reason[:4000]})
                context.log_event(_evaluation(context, key, check, failed_check))
        else:
            produced[key] = outcome.handle
            tags = {DATA_VERSION_TAG: outcome.data_version} if outcome.data_version else None
            yield dg.AssetMaterialization(
                asset_key=context.asset_key, partition=key, metadata=dict(outcome.metadata), tags=tags
            )
            if check is not None and outcome.check is not None:
                # logged, not yielded: a failed blocking result would fail the whole step, and with it
                # every other partition; the steps it blocks skip this partition instead
                context.log_event(_evaluation(context, key, check, outcome.check))
                if not outcome.check.passed:
                    failures.append(f"{context.asset_key.to_user_string()}[{key}]: {check.name} failed")
    keys = list(outcomes)
    if produced:
        yield dg.Output(produced[keys[0]] if len(keys) == 1 else produced)
    if check is not None:
        yield _check_output(context, check)
    # assets of this run that consume this one: while there are, they carry the run's verdict on
    layer = context.job_def.asset_layer
    consumers = layer.get(context.asset_key).child_keys & layer.executable_asset_keys
    if produced and consumers:
        if failures:
            context.log.warning(
                f"{len(failures)} partition(s) failed here; the run goes on with the other {len(produced)} "
                "and fails where the lineage ends"
            )
        return
    everything = _recorded_failures(context, failures)
    if everything:
        raise dg.Failure(
            description=f"{len(everything)} partition(s) of this run failed: " + "; ".join(everything[:20]),
            metadata={
                "failed": len(everything),
                "failures": dg.MetadataValue.md("\n".join(f"- {f}" for f in everything)),
            },
            allow_retries=False,
        )


def _recorded_failures(context: dg.AssetExecutionContext, here: list[str]) -> list[str]:
    """This step's failures and those the earlier steps of this run recorded (and, for a retried run,
    the runs it re-executes, for the steps it did not run again)."""
    seen: dict[tuple[str, str], str] = {}
    run: dg.DagsterRun | None = context.run
    kinds = {dg.DagsterEventType.ASSET_OBSERVATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION}
    this_asset = context.asset_key.to_user_string()
    while run is not None:
        for entry in context.instance.all_logs(run.run_id, of_type=kinds):
            event = entry.dagster_event
            data = event.event_specific_data if event else None
            if isinstance(data, dg.AssetCheckEvaluation):
                what = f"{data.asset_key.to_user_string()}[{data.partition}]"
                failed = not data.passed and data.blocking and data.partition is not None
                reason = f"{data.check_name} failed"
            else:
                observation = getattr(data, "asset_observation", None)
                if observation is None:
                    continue
                what = f"{observation.asset_key.to_user_string()}[{observation.partition}]"
                outcome = observation.metadata.get("outcome")
                failed = outcome is not None and outcome.value == FAILED
                error = observation.metadata.get("error")
                reason = str(error.value) if error is not None else "failed"
            if failed and not (run.run_id != context.run.run_id and what.startswith(this_asset + "[")):
                seen.setdefault((what, reason), f"{what}: {reason}")
        parent = run.parent_run_id
        run = context.instance.get_run_by_id(parent) if parent else None
    here_set = set(here)
    return here + [f for f in seen.values() if f not in here_set]


def _whole_range(
    context: dg.AssetExecutionContext, outcomes: Mapping[str, Outcome], check_name: str | None
) -> Iterator[Any]:
    failed = {key: o for key, o in outcomes.items() if isinstance(o, Failed)}
    if failed:
        listed = "; ".join(f"{key}: {o.reason}" for key, o in list(failed.items())[:20])
        raise dg.Failure(
            description=f"{len(failed)} of the {len(outcomes)} partitions of this range failed ({listed}). {HINT}",
            allow_retries=False,
        )
    # A partition with nothing to do (the client does not enable the platform) cannot be left out of a
    # range output: Dagster records it with the others, and its metadata says it was skipped and why, so a
    # backfill of the whole asset graph from the UI works. Its downstream steps skip it again.
    for key, outcome in outcomes.items():
        if isinstance(outcome, Skipped):
            context.log.info(f"{key}: {outcome.reason}")
            context.add_asset_metadata({"outcome": "skipped", "reason": outcome.reason}, partition_key=key)
    produced = {key: o for key, o in outcomes.items() if isinstance(o, Produced)}
    for key, outcome in produced.items():
        context.add_asset_metadata(dict(outcome.metadata), partition_key=key)
    yield dg.Output({key: o.handle for key, o in produced.items()})
    check = _check_key(context, check_name)
    if check is not None:
        for key, outcome in produced.items():
            if outcome.check is not None:
                # yielded: a failed result fails the step and blocks the range, as Dagster does for a range
                yield _evaluation(context, key, check, outcome.check)
        yield _check_output(context, check)


# --- Pools claimed by name at run time -------------------------------------------------------------------
# A deploy holds the pool of the stores it deploys to (`psp_store/<client|platform>`), which a static
# `pool=` on an asset cannot name. Dagster 1.13 claims an op's pool through its event log storage's
# concurrency table; these are the same calls, used nowhere else in the Dagster layer and pinned by
# tests/defs/test_ranges_canaries.py. Pool limits are public (`dagster instance concurrency set`, the UI).


def pools_supported(instance: dg.DagsterInstance) -> bool:
    """Whether the instance keeps a concurrency table (an ephemeral in-memory instance does not)."""
    return bool(instance.event_log_storage.supports_global_concurrency_limits)


def pool_limit(instance: dg.DagsterInstance, pool: str) -> int | None:
    """The slots pool `pool` has (set, or made by its first claim); None when it has none yet."""
    if not pools_supported(instance):
        return None
    info = instance.event_log_storage.get_concurrency_info(pool)
    return info.limit or info.slot_count or None


def pool_slot_count(instance: dg.DagsterInstance, pool: str) -> int:
    """The slots pool `pool` really has in the concurrency table. A pool only under the instance's
    `pools.default_limit` reports that limit but has no slot until Dagster's executor makes them; a claim
    made here would wait for ever, so a pool claimed here is given its slots first."""
    return int(instance.event_log_storage.get_concurrency_info(pool).slot_count)


def default_pool_limit(instance: dg.DagsterInstance) -> int | None:
    """The instance's `concurrency.pools.default_limit` (dagster.yaml), if it sets one."""
    return instance.get_concurrency_config().pool_config.default_pool_limit


def set_pool_limit(instance: dg.DagsterInstance, pool: str, slots: int) -> None:
    instance.event_log_storage.set_concurrency_slots(pool, slots)


def claim_pool_slot(instance: dg.DagsterInstance, pool: str, run_id: str, step: str) -> bool:
    """Claim one slot of `pool` for (`run_id`, `step`); False when every slot is held."""
    return bool(instance.event_log_storage.claim_concurrency_slot(pool, run_id, step).is_claimed)


def free_pool_slot(instance: dg.DagsterInstance, run_id: str, step: str) -> None:
    instance.event_log_storage.free_concurrency_slot_for_step(run_id, step)


def pool_holders(instance: dg.DagsterInstance, pool: str) -> list[tuple[str, str]]:
    """(run id, step) of every claimed slot of `pool`."""
    info = instance.event_log_storage.get_concurrency_info(pool)
    return [(slot.run_id, slot.step_key) for slot in info.claimed_slots]
