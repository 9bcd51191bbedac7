"""The alerts area: failed runs and failed checks to Slack and email."""

import dagster as dg

from psp_assets.defs.alerts.resources import alerts_from_env
from psp_assets.defs.alerts.sensors import check_failure_alerts, run_failure_alerts


@dg.definitions
def alerts() -> dg.Definitions:
    return dg.Definitions(sensors=[run_failure_alerts, check_failure_alerts], resources={"alerts": alerts_from_env()})
