"""The payment gate of fleet rollouts through Dagster: real builds, real local stores with their health
gate, the embedded SQLite ledger, the gate sensor and the alert channels (a local Slack API server and a
real SMTP server). A wave with payment analysis holds without a run; once the canary's authorization
rate is seen halved the sensor resumes the rollout, which rolls the canary back to the complete release
it served before, marks the release there with the evidence, records the verdicts and alerts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np
import yaml

from bench.rollout_analysis import Profile, generate, ledger_rows
from psp_assets.cli import main
from psp_assets.core.deploy.release import (
    LocalFS,
    bad_mark,
    current_release,
    read_history,
    releases_dir_for,
    stored_manifest,
    verify_tree,
)
from psp_assets.core.reconciliation.ledger import Ledger, sqlite_url
from psp_assets.core.rollout.gate import RolloutState, state_path
from psp_assets.core.workspace import Paths
from psp_assets.definitions import defs
from psp_assets.defs.alerts import AlertsResource, SlackAlertResource
from psp_assets.defs.alerts.sensors import run_findings
from psp_assets.defs.plugins.rollout_gate import RESUME_TAG, rollout_payment_gate_sensor
from psp_assets.defs.reconciliation.resources import LedgerResource
from psp_assets.defs.resources import PspWorkspace
from psp_assets.fleet import latest_metadata
from tests.defs.plugins.test_fleet_rollout import CLIENTS, IN_PROCESS, build_all, client, fleet, live, run  # noqa: F401
from tests.support.servers import SlackApi, serving

ANALYSIS = {"enabled": True, "window_minutes": 60, "min_payments": 100}
PATH = "{c}/wp-content/plugins/{c}-payments"


def _configs(paths: Paths, instance, analysis: bool) -> None:
    for cid in CLIENTS:
        config = client(cid)
        if analysis:
            config["rollout_analysis"] = ANALYSIS
        (paths.configs_dir / f"{cid}.yaml").write_text(yaml.safe_dump(config))
        run(instance, "client_config_job", cid)


def _roll_out(instance, alerts: AlertsResource, tags: dict | None = None) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("fleet_rollout_job").execute_in_process(
        partition_key="woocommerce",
        tags=tags,
        instance=instance,
        run_config=IN_PROCESS,
        raise_on_error=False,
        resources={"alerts": alerts},
    )


def _traffic(paths: Paths, switched_at: datetime, faulty: str | None = "bank-a") -> None:
    """A day of normal payments for every store, then, since the switch, the `faulty` store's approvals halved."""
    ledger = Ledger(sqlite_url(paths.data_dir / "ledger" / "ledger.sqlite3"))
    ledger.migrate()
    start = switched_at - timedelta(hours=24)
    for seed, cid in enumerate(CLIENTS):
        fault = "halve_authorization" if cid == faulty else "none"
        events = generate(Profile(0.85, 0.02, 0.005, 350), 300, 26 * 60, 24 * 60, fault, np.random.default_rng(seed))
        ledger.insert_store_events(ledger_rows((cid, "woocommerce", "production"), events, cid, start))
    ledger.dispose()


def test_a_canary_whose_authorization_rate_halved_is_rolled_back_marked_recorded_and_alerted(
    fleet: Paths,  # noqa: F811  (the fixture imported above)
    instance,
    smtp_server,
    tmp_path,
    capsys,
):
    host, port, inbox = smtp_server
    first, _ = build_all(instance)
    with serving(SlackApi("xoxb-test")) as slack:
        alerts = AlertsResource(
            slack=SlackAlertResource(token="xoxb-test", channel="#psp-alerts", base_url=slack.url + "/api/"),
            smtp_host=host,
            smtp_port=port,
            smtp_security="none",
            email_to=["release-manager@psp.example"],
            webserver_base_url="http://dagster.local",
            log_path=str(tmp_path / "alerts.jsonl"),
        )
        assert _roll_out(instance, alerts).success  # analysis off: every wave in one run, as before
        assert all(live(fleet, c) == first[c] for c in CLIENTS)

        _configs(fleet, instance, analysis=True)
        template = fleet.templates_dir / "woocommerce" / "readme.txt.j2"
        template.write_text(template.read_text() + "\n== Changelog ==\n* Clearer refund notes.\n")
        second, _ = build_all(instance)

        held = _roll_out(instance, alerts)
        assert held.success  # the run ends: the wave waits for its payments outside any run
        assert live(fleet, "bank-a") == second["bank-a"]
        assert all(live(fleet, c) == first[c] for c in CLIENTS[1:])  # later waves wait
        state = RolloutState.load(state_path(fleet.data_dir, "woocommerce"))
        assert state is not None and (state.status, state.analysed_wave, state.next_wave) == ("holding", 1, 1)
        [switch] = state.switches
        assert (switch["release"], switch["previous"]) == (second["bank-a"], first["bank-a"])
        [check] = held.get_asset_check_evaluations()
        assert check.passed and check.metadata["decision"].value == "hold"
        summary = latest_metadata(instance, "fleet_rollout", "woocommerce")
        assert summary["status"] == "holding" and "holding for its payment analysis" in summary["result"]

        resources = {"workspace": PspWorkspace(), "ledger": LedgerResource()}
        context = dg.build_sensor_context(instance=instance, resources=resources, definitions=defs)
        waiting = rollout_payment_gate_sensor.evaluate_tick(context)
        assert not waiting.run_requests and "window open" in waiting.skip_message
        capsys.readouterr()
        assert main(["rollout", "status", "--refresh"]) == 0
        shown = capsys.readouterr().out
        assert "woocommerce: rollout" in shown and "holding, wave 1 of 3" in shown and "hold: waiting" in shown

        # two hours later: the canary's payments since the switch are in the ledger
        switched_at = datetime.now(UTC) - timedelta(hours=2)
        state.switches[0]["switched_at"] = switched_at.isoformat()
        state.save(state_path(fleet.data_dir, "woocommerce"))
        _traffic(fleet, switched_at)
        [request] = rollout_payment_gate_sensor.evaluate_tick(context).run_requests
        assert request.tags[RESUME_TAG] == state.rollout_id and request.run_key.endswith(":wave1:roll back")
        assert request.partition_key == "woocommerce"

        stopped = _roll_out(instance, alerts, tags={RESUME_TAG: request.tags[RESUME_TAG]})
        assert not stopped.success

        # the canary serves the release it served before, complete on the store; the others were not touched
        fs, live_path = LocalFS(fleet.stores_dir), PATH.format(c="bank-a")
        releases = releases_dir_for(live_path)
        assert current_release(fs, live_path) == first["bank-a"]
        manifest = stored_manifest(fs, releases, first["bank-a"])
        assert manifest and verify_tree(fs, f"{releases}/{first['bank-a']}", manifest) == []
        assert all(live(fleet, c) == first[c] for c in CLIENTS[1:])
        mark = bad_mark(read_history(fs, live_path), second["bank-a"])  # in the store's release history
        assert "authorization_rate" in mark.reason and mark.evidence["verdict"] == "fail"

        [check] = stopped.get_asset_check_evaluations()
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN  # the run alerts itself
        [row] = check.metadata["verdicts"].value.records
        assert row.data["store"] == "bank-a|woocommerce production" and row.data["verdict"] == "fail"
        observations = [
            e.event_specific_data.asset_observation
            for e in stopped.all_events
            if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION
            and e.event_specific_data.asset_observation.asset_key == dg.AssetKey("deployed_store")
        ]
        [observed] = [o for o in observations if "payment_verdicts" in o.metadata]
        assert observed.partition == "bank-a|woocommerce"
        [target] = observed.metadata["rollback_targets"].value
        assert target["rolled_back"] and target["deployed_version"] == first["bank-a"]
        assert RolloutState.load(state_path(fleet.data_dir, "woocommerce")).status == "stopped"
        capsys.readouterr()
        assert main(["rollout", "status", "--platform", "woocommerce"]) == 0
        shown = capsys.readouterr().out
        assert "stopped" in shown and "bank-a|woocommerce production  fail" in shown and "authorization_rate" in shown

        # one alert with the partition, the numbers and the run link, on Slack and by mail
        [message] = slack.messages
        text = json.dumps(message)
        assert "bank-a|woocommerce" in text and "authorization_rate" in text
        assert f"http://dagster.local/runs/{stopped.run_id}" in text
    [(_sender, _rcpts, mail)] = inbox.messages
    # the alert sensors add only the run's own failure to it: no second alert for the check or the store
    found, _ = run_findings(instance, stopped.dagster_run, "http://dagster.local")
    assert found == []
    assert "Rollout stopped by payment KPIs" in mail["Subject"]
    assert "authorization_rate" in mail.get_payload()

    # the stopped rollout is not resumed, and a new rollout of the same build never puts it back there
    assert not rollout_payment_gate_sensor.evaluate_tick(context).run_requests
    again = _roll_out(instance, alerts)
    assert not again.success
    failure = again.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert "wave 1 (canary)" in failure.description and "marked bad" in failure.metadata["stores"].value
    assert current_release(fs, live_path) == first["bank-a"]


def test_waves_whose_payments_hold_up_go_on_one_decision_at_a_time_until_the_rollout_is_done(
    fleet: Paths,  # noqa: F811
    instance,
    tmp_path,
):
    alerts = AlertsResource(slack=SlackAlertResource(token=""), log_path=str(tmp_path / "alerts.jsonl"))
    build_all(instance)
    assert _roll_out(instance, alerts).success
    _configs(fleet, instance, analysis=True)
    template = fleet.templates_dir / "woocommerce" / "readme.txt.j2"
    template.write_text(template.read_text() + "\n== Changelog ==\n* Clearer refund notes.\n")
    second, _ = build_all(instance)
    where = state_path(fleet.data_dir, "woocommerce")
    context = dg.build_sensor_context(
        instance=instance, resources={"workspace": PspWorkspace(), "ledger": LedgerResource()}, definitions=defs
    )
    now = datetime.now(UTC)
    _traffic(fleet, now - timedelta(hours=2), faulty=None)  # every store healthy, before and after

    assert _roll_out(instance, alerts).success  # wave 1: bank-a, holding
    for wave, expected in ((1, ["bank-a"]), (2, ["bank-a", "bank-b", "bank-c"]), (3, CLIENTS)):
        state = RolloutState.load(where)
        assert (state.status, state.analysed_wave) == ("holding", wave)
        assert [c for c in CLIENTS if live(fleet, c) == second[c]] == expected
        for switch in state.switches:  # as if two hours had passed since this wave's switch
            if switch["wave"] == wave:
                switch["switched_at"] = (now - timedelta(hours=2)).isoformat()
        state.save(where)
        [request] = rollout_payment_gate_sensor.evaluate_tick(context).run_requests
        assert request.run_key == f"{state.rollout_id}:wave{wave}:proceed"
        resumed = _roll_out(instance, alerts, tags={RESUME_TAG: request.tags[RESUME_TAG]})
        assert resumed.success
        checks = resumed.get_asset_check_evaluations()
        assert [c.passed for c in checks] == [True]
        verdicts = {r.data["store"]: r.data["verdict"] for r in checks[0].metadata["verdicts"].value.records}
        assert {v for s, v in verdicts.items() if s.startswith(tuple(expected[-1:]))} == {"pass"}

    done = RolloutState.load(where)
    assert done.status == "done" and all(live(fleet, c) == second[c] for c in CLIENTS)
    summary = latest_metadata(instance, "fleet_rollout", "woocommerce")
    assert summary["status"] == "done" and summary["result"] == "all 3 waves deployed"
    assert not rollout_payment_gate_sensor.evaluate_tick(context).run_requests
    assert not fleet.data_dir.joinpath("alerts", "alerts.jsonl").exists() and not (tmp_path / "alerts.jsonl").exists()
