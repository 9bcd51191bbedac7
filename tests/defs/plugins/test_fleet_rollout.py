"""The fleet rollout through Dagster: real builds (plugin_build_job over the platform's clients), the
sensor that starts the rollout when a build succeeds, real local stores and the real health gate. A
healthy rollout reaches every wave; a canary whose store fails its health check stops the rollout before
any other store is touched, and the report says which store serves which release."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
import yaml

from psp_assets.core.deploy.release import LocalFS, current_release
from psp_assets.core.workspace import Paths
from psp_assets.definitions import defs
from psp_assets.defs.alerts.sensors import run_findings
from psp_assets.defs.plugins.sensors import rollout_after_build_sensor
from psp_assets.defs.ranges import range_tags
from psp_assets.fleet import latest_metadata

CLIENTS = ["bank-a", "bank-b", "bank-c", "bank-d"]  # waves with the defaults: [a], [b, c], [d]
IN_PROCESS: dict = {}  # the jobs run in process (executor_def)
# machine PHP only: the PHP matrix is tested elsewhere
BUILD_CONFIG = {**IN_PROCESS, "resources": {"php": {"config": {"matrix": False}}}}


def client(cid: str, health: dict | None = None) -> dict:
    target = {"name": "production", "transport": "local", "path": f"{cid}/wp-content/plugins/{cid}-payments"}
    if health:
        target["health"] = health
    return {
        "id": cid,
        "name": f"Bank {cid[-1].upper()}",
        "api_base_url": f"https://psp.{cid}.example/v1",
        "locales": ["en_GB"],
        "currencies": ["EUR"],
        "payment_methods": ["card"],
        "checkout": {"title": f"Pay with Bank {cid[-1].upper()}"},
        "platforms": {"woocommerce": {"slug": f"{cid}-payments", "targets": [target]}},
    }


@pytest.fixture
def fleet(env: Paths, instance) -> Paths:
    for old in env.configs_dir.glob("*.yaml"):
        old.unlink()
    for cid in CLIENTS:
        (env.configs_dir / f"{cid}.yaml").write_text(yaml.safe_dump(client(cid)))
    instance.add_dynamic_partitions("client", CLIENTS)
    for cid in CLIENTS:
        run(instance, "client_config_job", cid)
    return env


def run(instance, job: str, partition: str, **kwargs) -> dg.ExecuteInProcessResult:
    result = defs.resolve_job_def(job).execute_in_process(partition_key=partition, instance=instance, **kwargs)
    assert result.success
    return result


def build_all(instance) -> tuple[dict[str, str], dg.ExecuteInProcessResult]:
    """plugin_template[woocommerce], then one plugin_build_job run over every client, as the lineage
    sensor starts it: client -> release id, and the run."""
    run(instance, "plugin_template_job", "woocommerce")
    tags = {**range_tags(f"{CLIENTS[0]}|woocommerce", f"{CLIENTS[-1]}|woocommerce"), "psp/rollout": "woocommerce"}
    build = defs.resolve_job_def("plugin_build_job").execute_in_process(
        instance=instance, tags=tags, run_config=BUILD_CONFIG
    )
    assert build.success
    return {c: latest_metadata(instance, "built_artifact", f"{c}|woocommerce")["release_id"] for c in CLIENTS}, build


def sensor_tick(instance, cursor: str | None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    return rollout_after_build_sensor.evaluate_tick(context)


def roll_out(instance, request: dg.RunRequest | None = None, **policy) -> dg.ExecuteInProcessResult:
    config = {**IN_PROCESS, "ops": {"fleet_rollout": {"config": policy}}} if policy else IN_PROCESS
    return defs.resolve_job_def("fleet_rollout_job").execute_in_process(
        partition_key=request.partition_key if request else "woocommerce",
        tags=request.tags if request else None,
        instance=instance,
        run_config=config,
        raise_on_error=False,
    )


def break_bank_c(paths: Paths) -> None:
    """The next template version breaks PHP for bank-c only: its build is red, the others build."""
    uninstall = paths.templates_dir / "woocommerce" / "uninstall.php.j2"
    uninstall.write_text(uninstall.read_text() + '{% if client.id == "bank-c" %}\nfunction broken( {\n{% endif %}\n')


def launched_by_the_sensor(request: dg.RunRequest) -> dict[str, str]:
    """The tags the daemon puts on a run it starts for a sensor's request: the request's, its run key and
    the sensor's name (what Dagster's run-key dedup looks up)."""
    return {**request.tags, "dagster/run_key": request.run_key, "dagster/sensor_name": rollout_after_build_sensor.name}


def live(paths: Paths, cid: str) -> str | None:
    return current_release(LocalFS(paths.stores_dir), f"{cid}/wp-content/plugins/{cid}-payments")


def deploy_events(result: dg.ExecuteInProcessResult) -> dict[str, dg.DagsterEvent]:
    events = {}
    for event in result.all_events:
        data = event.event_specific_data
        record = getattr(data, "materialization", None) or getattr(data, "asset_observation", None)
        if record is not None and record.asset_key == dg.AssetKey("deployed_store"):
            events[record.partition] = event
    return events


def test_a_healthy_rollout_deploys_every_wave_and_a_failing_canary_stops_the_next_one(fleet: Paths, instance):
    cursor = sensor_tick(instance, None).cursor  # the sensor starts from now
    first, build = build_all(instance)
    tick = sensor_tick(instance, cursor)
    [request] = tick.run_requests  # the successful build starts exactly one rollout, for its platform
    assert (request.partition_key, request.run_key) == ("woocommerce", f"rollout:{build.run_id}")
    # until the rollout run exists, a tick asks again under the same key, which Dagster skips
    assert [r.run_key for r in sensor_tick(instance, tick.cursor).run_requests] == [request.run_key]
    healthy = roll_out(instance, request)
    assert healthy.success
    assert not sensor_tick(instance, tick.cursor).run_requests
    for cid in CLIENTS:
        assert live(fleet, cid) == first[cid]
        recorded = latest_metadata(instance, "deployed_store", f"{cid}|woocommerce")
        assert recorded["release_id"] == first[cid] and recorded["targets"][0]["health"] == "healthy"
    waves = {c: latest_metadata(instance, "deployed_store", f"{c}|woocommerce")["rollout_wave"] for c in CLIENTS}
    assert waves == {"bank-a": 1, "bank-b": 2, "bank-c": 2, "bank-d": 3}
    summary = latest_metadata(instance, "fleet_rollout", "woocommerce")
    assert summary["result"] == "all 3 waves deployed"
    assert {row["status"] for row in summary["rollout"]["stores"]} == {"deployed"}

    # the canary's store stops answering: its health gate fails after the switch and it is rolled back
    gate = {"store_url": "http://127.0.0.1:9/", "count": 1, "timeout_seconds": 0.5}
    (fleet.configs_dir / "bank-a.yaml").write_text(yaml.safe_dump(client("bank-a", health=gate)))
    run(instance, "client_config_job", "bank-a")
    template = fleet.templates_dir / "woocommerce" / "readme.txt.j2"
    template.write_text(template.read_text() + "\n== Changelog ==\n* Clearer refund notes.\n")
    second, _build = build_all(instance)
    assert all(second[c] != first[c] for c in CLIENTS)

    stopped = roll_out(instance)
    assert not stopped.success
    failure = stopped.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert "wave 1 (canary): 1 of 1 failed" in failure.description and "3 stores not reached" in failure.description
    assert live(fleet, "bank-a") == first["bank-a"]  # rolled back
    assert all(live(fleet, c) == first[c] for c in CLIENTS[1:])  # later waves untouched
    events = deploy_events(stopped)
    assert list(events) == ["bank-a|woocommerce"]  # only the canary was deployed
    [target] = events["bank-a|woocommerce"].event_specific_data.asset_observation.metadata["targets"].value
    assert target["rolled_back"] and target["deployed_version"] == first["bank-a"]
    assert "no answer" in " ".join(target["steps"])

    report = json.loads(Path(failure.metadata["report_path"].value).read_text())
    by_store = {row["store"]: row for row in report["stores"]}
    assert by_store["bank-a|woocommerce production"] | {"detail": ""} == {
        "store": "bank-a|woocommerce production",
        "wave": 1,
        "status": "rolled back",
        "serving": first["bank-a"],
        "previous": first["bank-a"],
        "detail": "",
    }
    for cid in CLIENTS[1:]:
        row = by_store[f"{cid}|woocommerce production"]
        assert (row["status"], row["serving"]) == ("not reached", first[cid])
    assert report["stopped"] and [w["failed"] for w in report["waves"]] == [["bank-a|woocommerce"]]
    # alerts: the canary's failed deploy, and the stopped rollout itself (its failure is not just that deploy)
    found, explained = run_findings(instance, stopped.dagster_run, "http://ui")
    assert [(a.kind, a.title) for a in found] == [
        ("deploy_failure", "Deploy health check failed: bank-a|woocommerce production")
    ]
    assert not explained
    table = failure.metadata["stores"].value
    assert f"| bank-d\\|woocommerce production | 3 | not reached | {first['bank-d']} |" in table


def test_a_failure_share_within_the_limit_lets_the_rollout_continue(fleet: Paths, instance):
    gate = {"store_url": "http://127.0.0.1:9/", "count": 1, "timeout_seconds": 0.5}
    (fleet.configs_dir / "bank-b.yaml").write_text(yaml.safe_dump(client("bank-b", health=gate)))
    run(instance, "client_config_job", "bank-b")
    releases, _build = build_all(instance)
    result = roll_out(instance, canary=2, max_failure_share=0.5)  # waves [a, b], [c, d]; b fails: 50% is allowed
    assert result.success
    assert live(fleet, "bank-b") is None  # a first deploy that fails health leaves nothing live
    assert [live(fleet, c) for c in ("bank-a", "bank-c", "bank-d")] == [
        releases[c] for c in ("bank-a", "bank-c", "bank-d")
    ]
    rows = {
        r["store"]: r["status"] for r in latest_metadata(instance, "fleet_rollout", "woocommerce")["rollout"]["stores"]
    }
    assert rows["bank-b|woocommerce production"] == "rolled back"
    assert rows["bank-d|woocommerce production"] == "deployed"
    # a successful rollout with a tolerated failure still alerts for that store (check_failure_alerts)
    found, _ = run_findings(instance, result.dagster_run, None)
    assert [a.dedupe_key for a in found] == [f"deploy|bank-b|woocommerce|production|{result.run_id}"]


def test_a_build_with_one_red_client_still_rolls_out_the_others(fleet: Paths, instance):
    first, _build = build_all(instance)
    assert roll_out(instance).success
    start = sensor_tick(instance, None).cursor  # the sensor starts from here
    # the next template version breaks PHP for bank-c only: its build is red, the others are built
    break_bank_c(fleet)
    run(instance, "plugin_template_job", "woocommerce")
    tags = {**range_tags(f"{CLIENTS[0]}|woocommerce", f"{CLIENTS[-1]}|woocommerce"), "psp/rollout": "woocommerce"}
    build = defs.resolve_job_def("plugin_build_job").execute_in_process(
        instance=instance, tags=tags, run_config=BUILD_CONFIG, raise_on_error=False
    )
    assert not build.success
    second = {c: latest_metadata(instance, "built_artifact", f"{c}|woocommerce")["release_id"] for c in CLIENTS}
    assert second["bank-c"] == first["bank-c"] and all(second[c] != first[c] for c in ("bank-a", "bank-b", "bank-d"))

    # the failed build starts exactly one rollout, of the three plugins it built
    tick = sensor_tick(instance, start)
    [request] = tick.run_requests
    assert (request.partition_key, request.run_key) == ("woocommerce", f"rollout:{build.run_id}")
    assert "3 plugin(s) built" in request.tags["psp/build_partial"]

    assert roll_out(instance, request).success
    assert not sensor_tick(instance, tick.cursor).run_requests  # started: not again
    for cid in ("bank-a", "bank-b", "bank-d"):
        assert live(fleet, cid) == second[cid]
    assert live(fleet, "bank-c") == first["bank-c"]  # the red client keeps serving its last good build
    rows = {
        r["store"]: r["status"] for r in latest_metadata(instance, "fleet_rollout", "woocommerce")["rollout"]["stores"]
    }
    assert rows["bank-c|woocommerce production"] == "unchanged"


def test_a_rebuild_cut_into_chunks_rolls_out_once_after_its_last_chunk(fleet: Paths, instance):
    from psp_assets.defs.plugins.sensors import BATCH_SIZE_TAG, BATCH_TAG

    run(instance, "plugin_template_job", "woocommerce")
    start = sensor_tick(instance, None).cursor
    batch = {"psp/rollout": "woocommerce", BATCH_TAG: "woocommerce:rebuild", BATCH_SIZE_TAG: "2"}
    ticks = []
    cursor = start
    for first, last in [(CLIENTS[0], CLIENTS[1]), (CLIENTS[2], CLIENTS[-1])]:
        tags = {**range_tags(f"{first}|woocommerce", f"{last}|woocommerce"), **batch}
        assert (
            defs.resolve_job_def("plugin_build_job")
            .execute_in_process(instance=instance, tags=tags, run_config=BUILD_CONFIG)
            .success
        )
        tick = sensor_tick(instance, cursor)
        ticks.append(tick.run_requests)
        cursor = tick.cursor
    assert ticks[0] == []  # the first chunk alone does not roll out
    [request] = ticks[1]
    assert request.partition_key == "woocommerce" and request.run_key == "rollout:woocommerce:rebuild"
    assert request.tags[BATCH_TAG] == "woocommerce:rebuild" and request.tags["psp/platform"] == "woocommerce"


def build_chunk(instance, batch: str, first: str, last: str) -> dg.ExecuteInProcessResult:
    """One of the two chunk runs of a rebuild, as the lineage sensor cuts it: bank-a, bank-b; bank-c, bank-d."""
    from psp_assets.defs.plugins.sensors import BATCH_SIZE_TAG, BATCH_TAG

    tags = {"psp/rollout": "woocommerce", BATCH_TAG: batch, BATCH_SIZE_TAG: "2"}
    return defs.resolve_job_def("plugin_build_job").execute_in_process(
        instance=instance,
        tags={**range_tags(f"{first}|woocommerce", f"{last}|woocommerce"), **tags},
        run_config=BUILD_CONFIG,
        raise_on_error=False,
    )


def roll_out_as_daemon(instance, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("fleet_rollout_job").execute_in_process(
        partition_key=request.partition_key, tags=launched_by_the_sensor(request), instance=instance
    )


def rollouts(instance) -> list[dg.DagsterRun]:
    return list(instance.get_runs(dg.RunsFilter(job_name="fleet_rollout_job")))


def test_two_chunks_ending_in_one_tick_one_green_one_red_start_exactly_one_rollout(fleet: Paths, instance):
    """The race of two sensors (one for successful builds, one for failed) is gone: one sensor sees both
    outcomes, and its run key is the rebuild's, so a second request for it is skipped by Dagster."""
    run(instance, "plugin_template_job", "woocommerce")
    start = sensor_tick(instance, None).cursor
    break_bank_c(fleet)
    run(instance, "plugin_template_job", "woocommerce")
    # both chunks end before the next tick, the first green, the second red (bank-c)
    green = build_chunk(instance, "woocommerce:one-tick", CLIENTS[0], CLIENTS[1])
    red = build_chunk(instance, "woocommerce:one-tick", CLIENTS[2], CLIENTS[-1])
    assert green.success and not red.success
    tick = sensor_tick(instance, start)
    [request] = tick.run_requests
    assert request.run_key == "rollout:woocommerce:one-tick"
    assert "3 plugin(s) built" in request.tags["psp/build_partial"]
    # a replay of the tick before the rollout run exists (a daemon that died before saving the cursor) asks
    # under the same run key, which Dagster skips for this sensor
    assert [r.run_key for r in sensor_tick(instance, start).run_requests] == [request.run_key]
    assert roll_out_as_daemon(instance, request).success
    # once it exists, neither the next tick (its window overlaps this one) nor a replay asks again
    assert not sensor_tick(instance, tick.cursor).run_requests
    assert not sensor_tick(instance, start).run_requests
    [rollout] = rollouts(instance)
    assert rollout.tags["dagster/run_key"] == request.run_key


def test_two_chunks_ending_in_consecutive_ticks_start_exactly_one_rollout(fleet: Paths, instance):
    run(instance, "plugin_template_job", "woocommerce")
    cursor = sensor_tick(instance, None).cursor
    requests = []
    for first, last in [(CLIENTS[0], CLIENTS[1]), (CLIENTS[2], CLIENTS[-1])]:
        assert build_chunk(instance, "woocommerce:two-ticks", first, last).success
        tick = sensor_tick(instance, cursor)
        requests.append(tick.run_requests)
        cursor = tick.cursor
        for request in tick.run_requests:
            assert roll_out_as_daemon(instance, request).success
    assert requests[0] == []  # the first chunk alone rolls nothing out
    assert [r.run_key for r in requests[1]] == ["rollout:woocommerce:two-ticks"]
    assert not sensor_tick(instance, cursor).run_requests
    [rollout] = rollouts(instance)
    assert rollout.tags["dagster/run_key"] == "rollout:woocommerce:two-ticks"


def test_a_wave_deploys_as_many_stores_at_once_as_the_psp_deploy_pool_allows(fleet: Paths, instance, monkeypatch):
    from psp_assets.defs.plugins.rollout import deploy_slots

    monkeypatch.delenv("PSP_DEPLOY_WORKERS", raising=False)
    assert deploy_slots(instance) == 4  # no pool limit on this instance: PSP_DEPLOY_WORKERS' default
    instance.event_log_storage.set_concurrency_slots("psp_deploy", 1)
    assert deploy_slots(instance) == 1  # the embedded instance's default: one deploy at a time
    instance.event_log_storage.set_concurrency_slots("psp_deploy", 3)
    releases, _build = build_all(instance)
    result = roll_out(instance, canary=1, growth=3.0)  # waves [a], [b, c, d]: the second one at once
    assert result.success
    messages = [record.user_message for record in instance.all_logs(result.run_id)]
    assert any("each wave deploys up to 3 stores at once" in m for m in messages)
    assert all(live(fleet, c) == releases[c] for c in CLIENTS)
    events = deploy_events(result)
    assert list(events) == [f"{c}|woocommerce" for c in CLIENTS]  # recorded in wave order
    waves = {c: latest_metadata(instance, "deployed_store", f"{c}|woocommerce")["rollout_wave"] for c in CLIENTS}
    assert waves == {"bank-a": 1, "bank-b": 2, "bank-c": 2, "bank-d": 2}
