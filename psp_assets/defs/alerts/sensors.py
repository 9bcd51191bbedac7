from collections.abc import Iterator
from typing import Any

import dagster as dg

from psp_assets.core.alerts import Alert, check_failure_alert, deploy_failure_alert, run_failure_alert
from psp_assets.core.errors import AlertError
from psp_assets.defs.alerts.resources import AlertsResource

# The asset whose records (materializations, observations of failed deploys, the failure itself) carry
# per-target deploy results; the fleet rollout records its deploys under the same key.
DEPLOYED = dg.AssetKey("deployed_store")
_FINDINGS = {
    dg.DagsterEventType.ASSET_CHECK_EVALUATION,
    dg.DagsterEventType.ASSET_OBSERVATION,
    dg.DagsterEventType.ASSET_MATERIALIZATION,
    dg.DagsterEventType.STEP_FAILURE,
}


def _value(metadata: Any, key: str) -> Any:
    found = (metadata or {}).get(key)
    return getattr(found, "value", found)


def _failed_targets(targets: Any) -> Iterator[dict[str, Any]]:
    for target in targets or []:
        if isinstance(target, dict) and (target.get("error") or target.get("rolled_back")):
            yield target


def run_findings(
    instance: dg.DagsterInstance, run: dg.DagsterRun, base_url: str | None
) -> tuple[list[Alert], set[str]]:
    """What a finished run recorded that someone must look at: every failed ERROR-severity check (the
    blocking plugin_checks_pass among them) and every store target whose deploy failed, one alert each
    (a check or target seen twice in the run alerts once), with the partition and a link to the run.
    Also the steps whose failure these alerts fully explain."""
    found: dict[str, Alert] = {}
    explained: set[str] = set()
    for entry in instance.all_logs(run.run_id, of_type=_FINDINGS):
        event = entry.dagster_event
        data = event.event_specific_data if event else None
        if isinstance(data, dg.AssetCheckEvaluation):
            if data.passed or data.severity != dg.AssetCheckSeverity.ERROR:
                continue
            meta = {k: getattr(v, "value", v) for k, v in data.metadata.items()}
            facts = [(k, str(meta[k])) for k in ("failed", "client", "oldest_open_hours") if k in meta]
            summary = meta.get("alert_summary") or data.description or meta.get("failures") or ""
            alert = check_failure_alert(
                asset=data.asset_key.to_user_string(),
                check=data.check_name,
                run_id=run.run_id,
                partition=data.partition,
                description=str(summary),
                facts=facts,
                base_url=base_url,
            )
            if meta.get("alert_kind") == "kpi_breach":
                alert = type(alert)(**{**alert.__dict__, "kind": "kpi_breach"})
            found.setdefault(alert.dedupe_key, alert)
            if data.blocking and entry.step_key:
                explained.add(entry.step_key)
            continue
        record = getattr(data, "materialization", None) or getattr(data, "asset_observation", None)
        if record is not None:
            if record.asset_key != DEPLOYED or record.partition is None:
                continue
            partition, targets = record.partition, _value(record.metadata, "targets")
        elif event is not None and event.event_type == dg.DagsterEventType.STEP_FAILURE:
            # a one-partition deploy that failed says so in its failure (an observation may not be recorded)
            failure = getattr(data, "user_failure_data", None)
            targets = _value(getattr(failure, "metadata", None), "targets")
            partition = run.tags.get("dagster/partition")
            if not targets or not partition:
                continue
            if entry.step_key and list(_failed_targets(targets)):
                explained.add(entry.step_key)
        else:
            continue
        for target in _failed_targets(targets):
            alert = deploy_failure_alert(partition, target, run.run_id, run.job_name, base_url)
            found.setdefault(alert.dedupe_key, alert)
    return list(found.values()), explained


def _send(alerts: AlertsResource, found: list[Alert], what: str) -> None:
    failed = [d.detail for alert in found for d in alerts.send(alert) if not d.ok]
    if failed:
        raise AlertError(f"{what}: " + "; ".join(failed))


@dg.run_failure_sensor(name="run_failure_alerts", default_status=dg.DefaultSensorStatus.RUNNING)
def run_failure_alerts(context: dg.RunFailureSensorContext, alerts: AlertsResource) -> None:
    """Every failed run alerts (Slack and email) with its failed checks and failed store deploys, one
    alert each with the partition and a link to the run, and the run itself with its job, partition,
    failed steps and error, unless those alerts already explain every failed step. The sensor's cursor
    visits each run once: nothing is alerted twice."""
    run = context.dagster_run
    base_url = alerts.webserver_base_url or None
    found, explained = run_findings(context.instance, run, base_url)
    steps = [e.step_key for e in context.get_step_failure_events() if e.step_key]
    if not steps or set(steps) - explained:
        found.append(
            run_failure_alert(
                job_name=run.job_name,
                run_id=run.run_id,
                error=context.failure_event.message or "",
                partition=run.tags.get("dagster/partition"),
                steps=steps,
                base_url=base_url,
            )
        )
    _send(alerts, found, f"alerts for failed run {run.run_id}")


@dg.run_status_sensor(
    name="check_failure_alerts", run_status=dg.DagsterRunStatus.SUCCESS, default_status=dg.DefaultSensorStatus.RUNNING
)
def check_failure_alerts(context: dg.RunStatusSensorContext, alerts: AlertsResource) -> None:
    """A run can succeed and still have recorded a failed ERROR-severity check (a KPI breach, which names
    its kind and summary in its metadata: `alert_kind`, `alert_summary`) or a failed store deploy (a
    rollout wave within its failure limit): each alerts once, with the partition and a link to the run."""
    run = context.dagster_run
    found, _explained = run_findings(context.instance, run, alerts.webserver_base_url or None)
    _send(alerts, found, f"alerts for failed checks and deploys of run {run.run_id}")
