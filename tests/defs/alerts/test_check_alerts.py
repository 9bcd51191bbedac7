"""A failed blocking check and a failed deploy health check alert on Slack (the local server speaking
chat.postMessage) and by email (a real aiosmtpd on loopback), each with its partition and a link to the
run, once: the sensor's cursor never visits a run twice."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import yaml

from psp_assets.core.workspace import Paths
from psp_assets.definitions import defs
from psp_assets.defs.alerts import AlertsResource, SlackAlertResource
from psp_assets.defs.alerts.sensors import run_failure_alerts
from tests.support.servers import SlackApi, serving

KEY = "nordbank|woocommerce"
UI = "http://dagster.psp.example"
RUN_CONFIG = {"resources": {"php": {"config": {"matrix": False}}}}


def alerts_to(slack_url: str, host: str, port: int, log: Path) -> AlertsResource:
    return AlertsResource(
        slack=SlackAlertResource(token="xoxb-test", channel="#psp-alerts", base_url=slack_url + "/api/"),
        smtp_host=host,
        smtp_port=port,
        smtp_security="none",
        email_from="alerts@psp.example",
        email_to=["ops@psp.example"],
        webserver_base_url=UI,
        log_path=str(log),
    )


def tick(instance, resource: AlertsResource, cursor: str | None) -> str | None:
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"alerts": resource}) as context:
        return run_failure_alerts.evaluate_tick(context).cursor


def lineage(instance, env: Paths) -> dg.ExecuteInProcessResult:
    instance.add_dynamic_partitions("client", ["nordbank"])
    for job, partition in (("plugin_template_job", "woocommerce"), ("client_config_job", "nordbank")):
        assert defs.resolve_job_def(job).execute_in_process(partition_key=partition, instance=instance).success
    return defs.resolve_job_def("plugin_lineage_job").execute_in_process(
        partition_key=KEY, instance=instance, run_config=RUN_CONFIG, raise_on_error=False
    )


def test_a_failed_blocking_check_alerts_once_with_partition_and_run_link(env, instance, smtp_server, tmp_path):
    host, port, inbox = smtp_server
    uninstall = env.templates_dir / "woocommerce" / "uninstall.php.j2"
    uninstall.write_text(uninstall.read_text() + "\n$left_over = ;\n")  # a PHP syntax error: lint fails
    with serving(SlackApi("xoxb-test")) as slack:
        resource = alerts_to(slack.url, host, port, tmp_path / "alerts.jsonl")
        cursor = tick(instance, resource, None)  # the sensor starts from now
        failed = lineage(instance, env)
        assert not failed.success
        cursor = tick(instance, resource, cursor)
        tick(instance, resource, cursor)  # the same run is never alerted again
    [message] = slack.messages  # the check explains the failed step: no second, generic run alert
    text = message["text"]
    assert text.startswith(f"[CRITICAL] Check failed: plugin_checks_pass on test_report[{KEY}]")
    assert f"partition: {KEY}" in text and f"{UI}/runs/{failed.run_id}" in text
    assert "uninstall.php" in text  # the failures themselves, not just the check's name
    assert [m["X-PSP-Alert-Kind"] for _, _, m in inbox.messages] == ["check_failure"]
    assert f"{UI}/runs/{failed.run_id}" in inbox.messages[0][2].get_payload(decode=True).decode()


def test_a_failed_deploy_health_check_alerts_once_with_partition_target_and_run_link(
    env,
    instance,
    smtp_server,
    tmp_path,
):
    host, port, inbox = smtp_server
    path = env.configs_dir / "nordbank.yaml"
    config = yaml.safe_load(path.read_text())
    staging = config["platforms"]["woocommerce"]["targets"][0]
    staging["health"] = {"store_url": "http://127.0.0.1:9/", "count": 1, "timeout_seconds": 0.5}  # nothing answers
    path.write_text(yaml.safe_dump(config))
    with serving(SlackApi("xoxb-test")) as slack:
        resource = alerts_to(slack.url, host, port, tmp_path / "alerts.jsonl")
        cursor = tick(instance, resource, None)
        failed = lineage(instance, env)
        assert not failed.success
        cursor = tick(instance, resource, cursor)
        tick(instance, resource, cursor)
    [message] = slack.messages
    text = message["text"]
    assert text.startswith(f"[CRITICAL] Deploy health check failed: {KEY} {staging['name']}")
    assert "no answer" in text and f"{UI}/runs/{failed.run_id}" in text and f"partition: {KEY}" in text
    [(_, rcpts, mail)] = inbox.messages
    assert rcpts == ["ops@psp.example"] and mail["X-PSP-Alert-Kind"] == "deploy_failure"
    assert mail["X-PSP-Alert-Key"].strip() == f"deploy|{KEY}|{staging['name']}|{failed.run_id}"
    assert len((tmp_path / "alerts.jsonl").read_text().splitlines()) == 1
