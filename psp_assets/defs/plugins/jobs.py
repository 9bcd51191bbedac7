import dagster as dg

from psp_assets.defs.github.assets import github_release
from psp_assets.defs.plugins.assets import built_artifact, deployed_store, rendered_source, test_report

IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
# A failed lineage run (lost worker or database, store unreachable, deploy lock held) is retried from the
# failed step, at most twice, by the daemon (run_retries in deploy/postgres/dagster.yaml): a re-deploy of
# the release already live is a recorded no-op, so a retry never deploys twice. A run still going after
# 30 minutes is failed by run monitoring, which frees its store for the next deploy (docs/operations.md).
LINEAGE_RUN_TAGS = {
    "dagster/max_retries": "2",
    "dagster/retry_strategy": "FROM_FAILURE",
    "dagster/retry_on_asset_or_op_failure": "true",
    "dagster/max_runtime": "1800",
}

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
    selection=dg.AssetSelection.assets(rendered_source, test_report, built_artifact, deployed_store, github_release),
    config=IN_PROCESS,
    tags=LINEAGE_RUN_TAGS,
    description="Render, test, build and deploy one client's plugin for one platform, and publish its GitHub release.",
)
