"""Plugin lineage: assets, jobs and sensors for every client x platform plugin."""

from psp_assets.defs.plugins.assets import (
    built_artifact,
    client_config,
    deployed_store,
    plugin_template,
    rendered_source,
    test_report,
)
from psp_assets.defs.plugins.jobs import client_config_job, plugin_lineage_job, plugin_template_job
from psp_assets.defs.plugins.sensors import (
    client_configs_sensor,
    lineage_on_upstream_change_sensor,
    template_change_sensor,
)

assets = [plugin_template, client_config, rendered_source, test_report, built_artifact, deployed_store]
jobs = [plugin_template_job, client_config_job, plugin_lineage_job]
sensors = [client_configs_sensor, template_change_sensor, lineage_on_upstream_change_sensor]
