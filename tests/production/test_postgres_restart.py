"""A deploy run interrupted by a Postgres restart fails cleanly, and the daemon's retry succeeds without
deploying twice.

This test restarts PostgreSQL, so it runs its own cluster (same server binaries, own data directory,
own port): restarting the machine's cluster would cut the connections of every other test.

What "interrupted" means for Dagster: every storage call retries its connection for ~11 s, so a quick
restart is invisible to runs. A run is interrupted when Postgres stays away while the run worker writes
its events. The test holds the deploy at its health check, stops Postgres, lets the deploy finish (the
store is switched: files need no database), waits until the run worker has given up on a write (it says
so on stderr, then fails the step), and only then starts Postgres again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import pytest

from tests.production.conftest import (
    LINEAGE_RUN_CONFIG,
    Workspace,
    add_client,
    instance_at,
    make_home,
    make_workspace,
    seed_templates,
)
from tests.production.services import (
    PROD_WORKSPACE_YAML,
    Dagster,
    PrivateCluster,
    base_env,
    dagster_services,
    fresh_database,
    private_cluster,
    run_timeline,
    stop_automation,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# printed by the run worker when an event cannot be written (dagster's _EventListenerLogHandler)
WRITE_FAILED = "Exception while writing logger call to event log"
# after that message the worker spends one more connection-retry cycle (~11 s) reporting it, then fails
# the step; Postgres comes back after this much more, well inside the ~60 s the worker keeps trying
GIVE_UP_MARGIN_SECONDS = 20


@dataclass
class Stack:
    cluster: PrivateCluster
    workspace: Workspace
    dagster: Dagster
    instance: dg.DagsterInstance


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("pg-restart")
    with private_cluster() as cluster, fresh_database(cluster.server, "psp_dagster") as dbname:
        workspace = make_workspace(root / "workspace")
        home = make_home(root / "home")
        env = base_env(**cluster.server.env(dbname), **workspace.env())
        with (
            instance_at(home, cluster.server.env(dbname)) as instance,
            dagster_services(
                home=home, env=env, workspace=PROD_WORKSPACE_YAML, logs=root / "logs", before_daemon=stop_automation
            ) as dagster,
        ):
            seed_templates(instance, workspace, ["woocommerce"])
            yield Stack(cluster, workspace, dagster, instance)
            workspace.gate.release()
            if not cluster.running():
                cluster.start()


def _logged(dagster: Dagster, text: str) -> bool:
    return any(text in p.log.read_text(errors="replace") for p in dagster.processes)


def test_a_deploy_run_interrupted_by_a_postgres_restart_fails_cleanly_and_its_retry_does_not_deploy_twice(
    stack: Stack,
):
    dagster, instance, gate = stack.dagster, stack.instance, stack.workspace.gate
    partition = add_client(instance, stack.workspace, "restart-bank")
    gate.hold(stack.workspace.store("restart-bank"))
    run_id = dagster.launch("plugin_lineage_job", partition, LINEAGE_RUN_CONFIG)
    gate.wait_entered()

    stack.cluster.stop()
    outage = time.monotonic()
    gate.release()  # the deploy finishes on the store while the database is away
    wait_for("the run worker to fail writing an event", lambda: _logged(dagster, WRITE_FAILED), 180)
    time.sleep(GIVE_UP_MARGIN_SECONDS)
    stack.cluster.start()
    back = time.monotonic()

    def finished(rid: str) -> dg.DagsterRun | None:
        run = instance.get_run_by_id(rid)
        return run if run and run.is_finished else None

    original = wait_for("the interrupted run to be marked finished", lambda: finished(run_id), 300)
    failed_at = time.monotonic()
    assert original.status == dg.DagsterRunStatus.FAILURE, run_timeline(instance, run_id)

    def retry() -> dg.DagsterRun | None:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/parent_run_id": run_id}))
        return runs[0] if runs and runs[0].is_finished else None

    retried = wait_for("the daemon's retry to finish", retry, 420, interval=1)
    print(
        f"\nPostgres away {back - outage:.1f} s; run marked failed {failed_at - back:.1f} s after it came back; "
        f"retry finished {time.monotonic() - back:.1f} s after it came back"
    )
    assert retried.status == dg.DagsterRunStatus.SUCCESS, run_timeline(instance, retried.run_id)
    assert retried.tags["dagster/retry_number"] == "1"
    assert retried.tags["dagster/partition"] == partition

    # the interrupted run had already switched the store; the retry re-ran only the failed step and
    # recorded a no-op instead of uploading and switching again
    executed = {e.step_key for e in instance.all_logs(retried.run_id, of_type=dg.DagsterEventType.STEP_START)}
    assert "deployed_store" in executed and executed <= {"deployed_store", "github_release"}
    (materialization,) = [
        e.dagster_event.materialization
        for e in instance.all_logs(retried.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        if e.dagster_event.asset_key == dg.AssetKey("deployed_store")
    ]
    (target,) = materialization.metadata["targets"].value
    release = materialization.metadata["release_id"].value
    assert target["noop"] is True and target["deployed_version"] == release, target
    live = stack.workspace.stores / "restart-bank-shop/wp-content/plugins/restart-bank-pay"
    assert live.resolve().name == release
    releases = [p.name for p in (live.parent / ".psp-releases" / live.name).iterdir() if p.is_dir()]
    assert releases == [release]  # one upload, no leftover staging folder, no lock


def test_a_postgres_restart_between_writes_is_invisible_to_a_deploy_run(stack: Stack):
    """The other half of the story: a quick restart (no write attempted while it is down) costs nothing."""
    dagster, instance, gate = stack.dagster, stack.instance, stack.workspace.gate
    partition = add_client(instance, stack.workspace, "blip-bank")
    gate.hold(stack.workspace.store("blip-bank"))
    run_id = dagster.launch("plugin_lineage_job", partition, LINEAGE_RUN_CONFIG)
    gate.wait_entered()
    stack.cluster.stop()
    stack.cluster.start()
    gate.release()
    assert dagster.wait_run(run_id, timeout=300) == "SUCCESS", run_timeline(instance, run_id)
    assert not instance.get_runs(filters=dg.RunsFilter(tags={"dagster/parent_run_id": run_id}))
