"""The queue on the production instance, driven by the real daemon: at most one deploy per store at a
time (tag concurrency limit on dagster/partition), and a fleet-wide cap on deploy steps (the psp_deploy
pool). A deploy is held in its health check by the test's PHP gate, so every assertion is about order,
never about time."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest

from psp_assets.defs.plugins.assets import DEPLOY_POOL, store_pool
from psp_assets.defs.ranges import range_tags
from psp_assets.fleet import latest_metadata
from tests.production.conftest import LINEAGE_RUN_CONFIG, Gate, Workspace, add_client
from tests.production.services import REPO, VENV_BIN, Dagster, run_timeline, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUN_TIMEOUT = 420

POOL = """
query Pool($key: String!) { instance { concurrencyLimit(concurrencyKey: $key) {
  slotCount activeSlotCount activeRunIds pendingStepRunIds limit usingDefaultLimit } } }"""
SET_LIMIT = "mutation Set($key: String!, $limit: Int!) { setConcurrencyLimit(concurrencyKey: $key, limit: $limit) }"
DELETE_LIMIT = "mutation Delete($key: String!) { deleteConcurrencyLimit(concurrencyKey: $key) }"


def _status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    return instance.get_run_by_id(run_id).status


def _record(instance: dg.DagsterInstance, run_id: str) -> dg.RunRecord:
    return instance.get_run_record_by_id(run_id)


def _pool(dagster: Dagster, key: str = DEPLOY_POOL) -> dict:
    return dagster.graphql(POOL, {"key": key})["instance"]["concurrencyLimit"]


def test_two_deploys_to_one_store_run_one_after_the_other_while_another_store_deploys(
    prod_dagster: Dagster, prod_instance: dg.DagsterInstance, prod_workspace: Workspace, gate: Gate
):
    store = add_client(prod_instance, prod_workspace, "queue-bank")
    other = add_client(prod_instance, prod_workspace, "other-bank")
    gate.hold(prod_workspace.store("queue-bank"))

    # two deploys of the same store launched at once, plus one for another store
    first_two = [prod_dagster.launch("plugin_lineage_job", store, LINEAGE_RUN_CONFIG) for _ in range(2)]
    third = prod_dagster.launch("plugin_lineage_job", other, LINEAGE_RUN_CONFIG)
    gate.wait_entered()

    running = [r for r in first_two if _status(prod_instance, r) == dg.DagsterRunStatus.STARTED]
    assert len(running) == 1, [(r, _status(prod_instance, r)) for r in first_two]
    (held,) = running
    (waiting,) = [r for r in first_two if r != held]
    # the other store is not blocked by the held one
    assert prod_dagster.wait_run(third, RUN_TIMEOUT) == "SUCCESS", run_timeline(prod_instance, third)
    # the held deploy holds a deploy slot of the fleet-wide pool while it runs
    assert held in _pool(prod_dagster)["activeRunIds"]
    # ... and the second deploy to its store is still in the queue, not started, not failed
    assert _status(prod_instance, waiting) == dg.DagsterRunStatus.QUEUED

    gate.release()
    for run_id in first_two:
        assert prod_dagster.wait_run(run_id, RUN_TIMEOUT) == "SUCCESS", run_timeline(prod_instance, run_id)
    held_record, waiting_record = _record(prod_instance, held), _record(prod_instance, waiting)
    assert waiting_record.start_time >= held_record.end_time  # strictly one after the other
    assert _record(prod_instance, third).end_time <= held_record.end_time

    # the second deploy found the release live: a recorded no-op, not a second upload
    first_deploy = _deployed_targets(prod_instance, held)
    second_deploy = _deployed_targets(prod_instance, waiting)
    assert [t["noop"] for t in first_deploy] == [False] and first_deploy[0]["health"] == "healthy"
    assert [t["noop"] for t in second_deploy] == [True] and second_deploy[0]["health"] == "unchanged"
    assert latest_metadata(prod_instance, "deployed_store", store)["targets"] == second_deploy


def test_the_fleet_wide_deploy_cap_holds_back_only_the_deploy_step(
    prod_dagster: Dagster, prod_instance: dg.DagsterInstance, prod_workspace: Workspace, gate: Gate
):
    held_store = add_client(prod_instance, prod_workspace, "cap-bank")
    next_store = add_client(prod_instance, prod_workspace, "next-bank")
    # the limit an operator sets from the UI (Deployment -> Concurrency) or `dagster instance concurrency set`
    prod_dagster.graphql(SET_LIMIT, {"key": DEPLOY_POOL, "limit": 1})
    try:
        gate.hold(prod_workspace.store("cap-bank"))
        held = prod_dagster.launch("plugin_lineage_job", held_store, LINEAGE_RUN_CONFIG)
        gate.wait_entered()
        queued_behind = prod_dagster.launch("plugin_lineage_job", next_store, LINEAGE_RUN_CONFIG)

        # a different store, so the queue starts it; it renders, tests and builds, then waits for a slot
        def waiting_for_slot() -> bool:
            return queued_behind in _pool(prod_dagster)["pendingStepRunIds"]

        wait_for("the second deploy step to wait for a psp_deploy slot", waiting_for_slot, RUN_TIMEOUT, interval=1)
        assert _status(prod_instance, queued_behind) == dg.DagsterRunStatus.STARTED
        assert latest_metadata(prod_instance, "built_artifact", next_store), "the build must not wait for the cap"
        assert not latest_metadata(prod_instance, "deployed_store", next_store)
        assert _pool(prod_dagster)["activeRunIds"] == [held]

        gate.release()
        for run_id in (held, queued_behind):
            assert prod_dagster.wait_run(run_id, RUN_TIMEOUT) == "SUCCESS", run_timeline(prod_instance, run_id)
        assert _deployed_targets(prod_instance, queued_behind)[0]["health"] == "healthy"
    finally:
        prod_dagster.graphql(DELETE_LIMIT, {"key": DEPLOY_POOL})  # back to the instance's default_limit


def test_a_ui_run_of_one_partition_and_a_range_run_over_its_client_never_deploy_to_its_store_at_once(
    prod_dagster: Dagster, prod_instance: dg.DagsterInstance, prod_workspace: Workspace, gate: Gate
):
    """The two runs share no run tag (the queue starts both), yet their deploys to the one store are
    serialized by Dagster: the store's own pool, one slot, which the second deploy waits for; it does not
    fail on the store's lease lock."""
    store = add_client(prod_instance, prod_workspace, "pool-bank")
    gate.hold(prod_workspace.store("pool-bank"))
    # what the UI puts on a run of one partition of the multi-partitioned asset
    ui_tags = {"dagster/partition/client": "pool-bank", "dagster/partition/platform": "woocommerce"}
    ui = prod_dagster.launch("plugin_lineage_job", store, LINEAGE_RUN_CONFIG, tags=ui_tags)
    gate.wait_entered()  # in the health check of its deploy, holding the store's pool
    # a range run over the client, as a UI backfill chunk carries it: no dagster/partition, no psp/client
    ranged = prod_dagster.launch("plugin_lineage_job", None, LINEAGE_RUN_CONFIG, tags=range_tags(store, store))

    def waiting_for_the_store() -> bool:
        return ranged in _pool(prod_dagster, store_pool(store))["pendingStepRunIds"]

    wait_for("the range run's deploy to wait for the store's pool", waiting_for_the_store, RUN_TIMEOUT, interval=1)
    assert _status(prod_instance, ranged) == dg.DagsterRunStatus.STARTED  # the queue did not hold it back
    pool = _pool(prod_dagster, store_pool(store))
    assert pool["activeRunIds"] == [ui] and pool["slotCount"] == 1

    gate.release()
    for run_id in (ui, ranged):
        assert prod_dagster.wait_run(run_id, RUN_TIMEOUT) == "SUCCESS", run_timeline(prod_instance, run_id)
    # one after the other: the range run found the UI run's release live, a recorded no-op
    first, second = _deployed_targets(prod_instance, ui), _deployed_targets(prod_instance, ranged)
    assert [t["noop"] for t in first] == [False] and [t["noop"] for t in second] == [True]
    assert _pool(prod_dagster, store_pool(store))["activeRunIds"] == []


def test_psp_fleet_in_process_waits_for_a_daemon_launched_deploy_of_the_same_store(
    prod_dagster: Dagster,
    prod_instance: dg.DagsterInstance,
    prod_home: Path,
    prod_env: dict[str, str],
    prod_workspace: Workspace,
    gate: Gate,
):
    """`psp fleet` runs its runs in its own process, outside the queue, on the same instance: its deploy of a
    store that a daemon-launched run is deploying waits in the store's pool, then records a no-op."""
    store = add_client(prod_instance, prod_workspace, "fleet-bank")
    gate.hold(prod_workspace.store("fleet-bank"))
    launched = prod_dagster.launch("plugin_lineage_job", store, LINEAGE_RUN_CONFIG)
    gate.wait_entered()  # the daemon's run is in its deploy, holding psp_store/fleet-bank|woocommerce
    fleet = subprocess.Popen(
        [str(VENV_BIN / "psp"), "fleet", "--client", "fleet-bank"],
        env={**prod_env, "DAGSTER_HOME": str(prod_home)},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def fleet_waiting() -> str | None:
            pending = set(_pool(prod_dagster, store_pool(store))["pendingStepRunIds"]) - {launched}
            return next(iter(pending), None)

        fleet_run = wait_for("psp fleet's deploy to wait for the store's pool", fleet_waiting, RUN_TIMEOUT, interval=1)
        assert prod_instance.get_run_by_id(fleet_run).tags["psp/trigger"] == "psp fleet"
        assert fleet.poll() is None  # waiting, not failed on the store's lease lock
        gate.release()
        output, _ = fleet.communicate(timeout=RUN_TIMEOUT)
    finally:
        if fleet.poll() is None:
            fleet.kill()
            fleet.wait()
    assert prod_dagster.wait_run(launched, RUN_TIMEOUT) == "SUCCESS", run_timeline(prod_instance, launched)
    assert prod_instance.get_run_by_id(fleet_run).status == dg.DagsterRunStatus.SUCCESS, output
    # one after the other: psp fleet found the daemon's release live
    assert [t["noop"] for t in _deployed_targets(prod_instance, launched)] == [False]
    assert [t["noop"] for t in _deployed_targets(prod_instance, fleet_run)] == [True], output


def test_a_run_for_a_partition_whose_client_config_was_never_materialized_is_refused_at_launch(
    prod_dagster: Dagster, prod_instance: dg.DagsterInstance
):
    from tests.e2e.test_refused_launch import assert_refused

    prod_instance.add_dynamic_partitions("client", ["unrecorded-bank"])  # a partition, nothing recorded
    run_id = prod_dagster.launch("plugin_lineage_job", "unrecorded-bank|woocommerce", LINEAGE_RUN_CONFIG)
    assert_refused(prod_dagster, run_id, "client_config[unrecorded-bank]")
    # a recorded client's run is accepted: the other tests here launch exactly that


def test_a_run_whose_worker_is_killed_is_failed_retried_and_its_store_is_free_again(
    prod_dagster: Dagster, prod_instance: dg.DagsterInstance, prod_workspace: Workspace, gate: Gate
):
    store = add_client(prod_instance, prod_workspace, "crash-bank")
    gate.hold(prod_workspace.data / "rendered" / "crash-bank")  # inside test_report, before any deploy
    run_id = prod_dagster.launch("plugin_lineage_job", store, LINEAGE_RUN_CONFIG)
    (worker,) = gate.wait_entered()
    code_server = prod_dagster.processes[0].popen.pid
    assert _descends_from(worker, code_server), f"{worker} is not a run worker of this test's code server"
    os.kill(worker, signal.SIGKILL)  # an OOM kill, a node going away
    killed = time.monotonic()
    gate.release()

    def finished(rid: str) -> dg.DagsterRun | None:
        run = prod_instance.get_run_by_id(rid)
        return run if run.is_finished else None

    original = wait_for("the killed run to be marked finished", lambda: finished(run_id), RUN_TIMEOUT)
    assert original.status == dg.DagsterRunStatus.FAILURE, run_timeline(prod_instance, run_id)
    failed_after = time.monotonic() - killed

    def retried() -> dg.DagsterRun | None:
        runs = prod_instance.get_runs(filters=dg.RunsFilter(tags={"dagster/parent_run_id": run_id}))
        return runs[0] if runs and runs[0].is_finished else None

    retry = wait_for("the daemon's retry of the killed run", retried, RUN_TIMEOUT, interval=1)
    assert retry.status == dg.DagsterRunStatus.SUCCESS, run_timeline(prod_instance, retry.run_id)
    done = time.monotonic() - killed
    print(f"\nkilled run marked failed after {failed_after:.1f} s, retry done {done:.1f} s after the kill")
    # the store's queue slot was given back: the retry, same partition, ran and deployed
    (target,) = _deployed_targets(prod_instance, retry.run_id)
    assert target["health"] == "healthy" and not target["noop"]


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return False


def _deployed_targets(instance: dg.DagsterInstance, run_id: str) -> list[dict]:
    (event,) = [
        e
        for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        if e.dagster_event.asset_key == dg.AssetKey("deployed_store")
    ]
    return event.dagster_event.materialization.metadata["targets"].value
