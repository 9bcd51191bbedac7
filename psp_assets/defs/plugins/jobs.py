import dagster as dg

from psp_assets.defs.github.assets import client_repository, github_release
from psp_assets.defs.plugins.assets import built_artifact, deployed_store, rendered_source, test_report
from psp_assets.defs.ranges import PER_PARTITION_TAG

# Every job runs its steps in the run's own process, however it was launched (the UI, GraphQL, a
# sensor, a retry): an executor chosen through run config is lost on a launch that carries none, and a
# process per step costs 1.5-2 s, more than most of our steps (docs/operations.md).
EXECUTOR = dg.in_process_executor
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
    executor_def=EXECUTOR,
    description="Record a platform template's version and content hash.",
)

client_config_job = dg.define_asset_job(
    "client_config_job",
    selection=dg.AssetSelection.assets("client_config"),
    executor_def=EXECUTOR,
    description="Validate a client's config and record its hash.",
)

# A template change rebuilds every client of its platform in one run over `first|P .. last|P`, each
# partition recorded on its own (defs/ranges.py); the rollout sensor deploys the builds in waves after.
BUILD_RUN_TAGS = {PER_PARTITION_TAG: "true"}

plugin_build_job = dg.define_asset_job(
    "plugin_build_job",
    selection=dg.AssetSelection.assets(rendered_source, test_report, built_artifact, github_release, client_repository),
    executor_def=EXECUTOR,
    tags=BUILD_RUN_TAGS,
    description="Render, test and build (and publish to GitHub) many clients' plugins in one run, each partition "
    "recorded on its own: a failing plugin is red, the others are built. Deploys follow with the fleet rollout.",
)

plugin_lineage_job = dg.define_asset_job(
    "plugin_lineage_job",
    selection=dg.AssetSelection.assets(
        rendered_source, test_report, built_artifact, deployed_store, github_release, client_repository
    ),
    executor_def=EXECUTOR,
    tags=LINEAGE_RUN_TAGS,
    description="Render, test, build and deploy one client's plugin for one platform, and publish its GitHub release "
    "and, for clients with a source repository, its source as a pull request.",
)

fleet_rollout_job = dg.define_asset_job(
    "fleet_rollout_job",
    selection=dg.AssetSelection.assets("fleet_rollout"),
    executor_def=EXECUTOR,
    description="Deploy the latest build of every client's plugin for one platform, wave by wave: a canary, then "
    "growing waves, stopping when a wave's share of failed health checks passes the limit (config: canary, growth, "
    "max_failure_share, canaries).",
)
