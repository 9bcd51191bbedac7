"""Alerts reach Slack (a local server speaking chat.postMessage) and email (a real aiosmtpd server), and a
failed run, a failed check and a KPI breach all arrive in the same shape."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
from slack_sdk import WebClient

from psp_assets.core.alerts import EmailChannel, SlackChannel, deliver, kpi_alerts
from psp_assets.core.reconciliation.kpis import Breach
from psp_assets.defs.alerts import AlertsResource, SlackAlertResource
from psp_assets.defs.alerts.sensors import check_failure_alerts, run_failure_alerts
from tests.support.servers import SlackApi, serving

BREACH = Breach("nordbank", "woocommerce", datetime(2025, 3, 1, 10, tzinfo=UTC), "authorization_rate", 0.4, 0.8, 40)


def test_kpi_breach_alert_reaches_slack_and_email(smtp_server):
    host, port, inbox = smtp_server
    with serving(SlackApi("xoxb-test")) as slack:
        client = WebClient("xoxb-test", base_url=slack.url + "/api/")
        channels = [
            SlackChannel(client, "#psp-alerts"),
            EmailChannel(host, port, "alerts@psp.example", ["ops@psp.example"], security="none"),
        ]
        results = deliver(kpi_alerts([BREACH])[0], channels)
    assert [r.ok for r in results] == [True, True]
    message = slack.messages[0]
    assert message["channel"] == "#psp-alerts" and "authorization_rate 40.0%" in message["text"]
    assert message["blocks"][0]["text"]["text"].startswith("Payment KPIs out of limits: nordbank|woocommerce")
    sender, rcpts, mail = inbox.messages[0]
    assert (sender, rcpts) == ("alerts@psp.example", ["ops@psp.example"])
    assert (
        mail["Subject"].startswith("[CRITICAL] Payment KPIs out of limits") and mail["X-PSP-Alert-Kind"] == "kpi_breach"
    )


def test_a_failing_channel_is_reported_and_never_stops_the_others(smtp_server):
    host, port, inbox = smtp_server
    with serving(SlackApi("xoxb-right")) as slack:
        client = WebClient("xoxb-wrong", base_url=slack.url + "/api/")
        results = deliver(
            kpi_alerts([BREACH])[0],
            [
                SlackChannel(client, "#psp-alerts"),
                EmailChannel(host, port, "alerts@psp.example", ["ops@psp.example"], security="none"),
            ],
        )
    assert not results[0].ok and "invalid_auth" in results[0].detail and "xoxb" not in results[0].detail
    assert results[1].ok and len(inbox.messages) == 1


def _resource(slack_url: str, host: str, port: int, log) -> AlertsResource:
    return AlertsResource(
        slack=SlackAlertResource(token="xoxb-test", channel="#psp-alerts", base_url=slack_url + "/api/"),
        smtp_host=host,
        smtp_port=port,
        smtp_security="none",
        email_from="alerts@psp.example",
        email_to=["ops@psp.example"],
        webserver_base_url="http://dagster.local",
        log_path=str(log),
    )


@dg.op
def boom() -> None:
    raise RuntimeError("ledger unreachable: connection refused")


@dg.job
def failing_job() -> None:
    boom()


@dg.asset(check_specs=[dg.AssetCheckSpec("amounts_match", asset="ledger_snapshot")])
def ledger_snapshot():
    yield dg.Output(1)
    yield dg.AssetCheckResult(
        check_name="amounts_match",
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"failed": 3, "alert_summary": "3 payments differ from the store"},
    )


def test_failed_run_and_failed_check_become_the_same_alert_shape(smtp_server, tmp_path):
    host, port, inbox = smtp_server
    instance = dg.DagsterInstance.ephemeral()
    failed = failing_job.execute_in_process(instance=instance, raise_on_error=False)
    checked = dg.materialize([ledger_snapshot], instance=instance)
    with serving(SlackApi("xoxb-test")) as slack:
        resource = _resource(slack.url, host, port, tmp_path / "alerts.jsonl")
        with dg.build_run_status_sensor_context(
            sensor_name="run_failure_alerts",
            dagster_instance=instance,
            dagster_run=failed.dagster_run,
            dagster_event=failed.get_run_failure_event(),
            resources={"alerts": resource},
        ) as context:
            run_failure_alerts(context.for_run_failure())
        success = instance.all_logs(checked.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)[0]
        success_event = success.dagster_event
        with dg.build_run_status_sensor_context(
            sensor_name="check_failure_alerts",
            dagster_instance=instance,
            dagster_run=checked.dagster_run,
            dagster_event=success_event,
            resources={"alerts": resource},
        ) as context:
            check_failure_alerts(context)
    run_text, check_text = (m["text"] for m in slack.messages)
    assert run_text.startswith("[CRITICAL] Run failed: failing_job") and "boom" in run_text
    assert f"http://dagster.local/runs/{failed.run_id}" in run_text
    assert check_text.startswith("[CRITICAL] Check failed: amounts_match on ledger_snapshot")
    assert "3 payments differ from the store" in check_text
    assert [m["X-PSP-Alert-Kind"] for _, _, m in inbox.messages] == ["run_failure", "check_failure"]
    assert len((tmp_path / "alerts.jsonl").read_text().splitlines()) == 2
