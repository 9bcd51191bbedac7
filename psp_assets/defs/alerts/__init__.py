"""Alerts: failed runs and failed checks (KPI breaches among them) to Slack and email, one Alert shape."""

from psp_assets.defs.alerts.resources import AlertsResource, SlackAlertResource, alerts_from_env

__all__ = ["AlertsResource", "SlackAlertResource", "alerts_from_env"]
