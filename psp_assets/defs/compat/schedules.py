"""The compatibility matrix runs every night."""

import dagster as dg

from psp_assets.defs.compat.assets import compatibility_matrix

compatibility_matrix_job = dg.define_asset_job(
    "compatibility_matrix_job",
    selection=dg.AssetSelection.assets(compatibility_matrix),
    description="Build the platform x platform version x PHP version matrix and compare it with the last one.",
)

nightly_compatibility_matrix = dg.ScheduleDefinition(
    name="nightly_compatibility_matrix",
    job=compatibility_matrix_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="02:00 UTC: every generated plugin on every declared PHP version, and the platform-API checks.",
)
