"""The plugins area: templates and client configs to stores, the jobs over that lineage, and the sensors
that start them."""

import dagster as dg

from psp_assets.defs.plugins.assets import (
    built_artifact,
    client_config,
    deployed_store,
    plugin_template,
    rendered_source,
    test_report,
)
from psp_assets.defs.plugins.jobs import (
    client_config_job,
    fleet_rollout_job,
    plugin_build_job,
    plugin_lineage_job,
    plugin_template_job,
)
from psp_assets.defs.plugins.resources import template_repository_from_env
from psp_assets.defs.plugins.rollout import fleet_rollout
from psp_assets.defs.plugins.rollout_gate import rollout_payment_gate_sensor
from psp_assets.defs.plugins.sensors import (
    client_configs_sensor,
    github_template_sensor,
    lineage_on_upstream_change_sensor,
    rollout_after_build_sensor,
    template_change_sensor,
)


@dg.definitions
def plugins() -> dg.Definitions:
    return dg.Definitions(
        assets=[
            plugin_template,
            client_config,
            rendered_source,
            test_report,
            built_artifact,
            deployed_store,
            fleet_rollout,
        ],
        jobs=[plugin_template_job, client_config_job, plugin_lineage_job, plugin_build_job, fleet_rollout_job],
        sensors=[
            client_configs_sensor,
            template_change_sensor,
            github_template_sensor,
            lineage_on_upstream_change_sensor,
            rollout_after_build_sensor,
            rollout_payment_gate_sensor,
        ],
        resources={"template_repo": template_repository_from_env()},
    )
