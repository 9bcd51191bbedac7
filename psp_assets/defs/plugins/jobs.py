import dagster as dg

from psp_assets.defs.plugins.assets import built_artifact, deployed_store, rendered_source, test_report

IN_PROCESS = {"execution": {"config": {"in_process": {}}}}

plugin_template_job = dg.define_asset_job(
    "plugin_template_job",
    selection=dg.AssetSelection.assets("plugin_template"),
    description="Record a platform template's version and content hash.",
)

client_config_job = dg.define_asset_job(
    "client_config_job",
    selection=dg.AssetSelection.assets("client_config"),
    description="Validate a client's config and record its hash.",
)

plugin_lineage_job = dg.define_asset_job(
    "plugin_lineage_job",
    selection=dg.AssetSelection.assets(rendered_source, test_report, built_artifact, deployed_store),
    config=IN_PROCESS,
    description="Render, test, build and deploy one client's plugin for one platform.",
)
