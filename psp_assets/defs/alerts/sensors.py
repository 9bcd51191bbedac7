import dagster as dg

from psp_assets.core.alerts import check_failure_alert, run_failure_alert
from psp_assets.core.errors import AlertError
from psp_assets.defs.alerts.resources import AlertsResource


def _raise_on_failed(deliveries: list, what: str) -> None:
    failed = [d.detail for d in deliveries if not d.ok]
    if failed:
        raise AlertError(f"{what}: " + "; ".join(failed))


@dg.run_failure_sensor(name="run_failure_alerts", default_status=dg.DefaultSensorStatus.RUNNING)
def run_failure_alerts(context: dg.RunFailureSensorContext, alerts: AlertsResource) -> None:
    """Every failed run becomes an alert (Slack and email) naming the job, partition, failed steps and error."""
    run = context.dagster_run
    steps = [e.step_key for e in context.get_step_failure_events() if e.step_key]
    alert = run_failure_alert(
        job_name=run.job_name,
        run_id=run.run_id,
        error=context.failure_event.message or "",
        partition=run.tags.get("dagster/partition"),
        steps=steps,
        base_url=alerts.webserver_base_url or None,
    )
    _raise_on_failed(alerts.send(alert), f"alert for failed run {run.run_id}")


@dg.run_status_sensor(
    name="check_failure_alerts", run_status=dg.DagsterRunStatus.SUCCESS, default_status=dg.DefaultSensorStatus.RUNNING
)
def check_failure_alerts(context: dg.RunStatusSensorContext, alerts: AlertsResource) -> None:
    """Every failed ERROR-severity asset check of a finished run becomes an alert. A check may name its
    alert kind and summary in its metadata (`alert_kind`, `alert_summary`): KPI breaches do."""
    run = context.dagster_run
    records = context.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    failures = []
    for record in records:
        evaluation = record.dagster_event.event_specific_data if record.dagster_event else None
        if not isinstance(evaluation, dg.AssetCheckEvaluation) or evaluation.passed:
            continue
        if evaluation.severity != dg.AssetCheckSeverity.ERROR:
            continue
        meta = {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()}
        facts = [(k, str(meta[k])) for k in ("failed", "client", "oldest_open_hours") if k in meta]
        alert = check_failure_alert(
            asset=evaluation.asset_key.to_user_string(),
            check=evaluation.check_name,
            run_id=run.run_id,
            partition=evaluation.partition,
            description=str(meta.get("alert_summary") or evaluation.description or ""),
            facts=facts,
            base_url=alerts.webserver_base_url or None,
        )
        if meta.get("alert_kind") == "kpi_breach":
            alert = type(alert)(**{**alert.__dict__, "kind": "kpi_breach"})
        failures += [d.detail for d in alerts.send(alert) if not d.ok]
    if failures:
        raise AlertError(f"alerts for failed checks of run {run.run_id}: " + "; ".join(failures))
