"""Alerts: failed runs and failed checks (KPI breaches among them) to Slack and email, one Alert shape."""

from psp_assets.defs.alerts.resources import AlertsResource, SlackAlertResource, alerts_from_env
from psp_assets.defs.alerts.sensors import check_failure_alerts, run_failure_alerts

sensors = [run_failure_alerts, check_failure_alerts]
resources = {"alerts": alerts_from_env()}

__all__ = ["AlertsResource", "SlackAlertResource", "alerts_from_env"]
