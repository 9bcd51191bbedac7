"""The plugin's releases on GitHub: one release per build, in the client's organization."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from psp_assets.core.config import parse_client
from psp_assets.core.errors import PspError
from psp_assets.core.package import load_artifact
from psp_assets.defs.github.resources import PUBLISH_ENV, GitHubPublisher
from psp_assets.defs.partitions import plugin_partitions, split_key

LINEAGE_KEYS = ("template_version", "template_hash", "config_hash", "plugin_version", "build")


@dg.asset(
    partitions_def=plugin_partitions,
    group_name="plugins",
    kinds={"github"},
    ins={"built_artifact": dg.AssetIn()},
    output_required=False,
)
def github_release(
    context: dg.AssetExecutionContext, github: GitHubPublisher, built_artifact: dict[str, Any]
) -> Iterator[dg.Output]:
    """The plugin build as a GitHub release in the client's organization (github.com or GitHub
    Enterprise): tag `<client>-<platform>-v<version>-<build>`, with the installable archive, its
    manifest and SHA256SUMS, so merchants and integrators download exactly what the stores run.
    Clients without a `github:` section are skipped; publishing is off unless PSP_GITHUB_PUBLISH=1."""
    client_id, platform = split_key(context.partition_key)
    lineage = {k: built_artifact[k] for k in LINEAGE_KEYS if k in built_artifact}
    config = parse_client(built_artifact["config"], built_artifact["config_path"])
    settings = config.github
    if settings is None:
        context.log.info(f"{client_id} has no github section in {built_artifact['config_path']}; nothing to publish")
        return
    repository = f"{settings.organization}/{settings.repository_for(platform)}"
    try:
        enabled = github.enabled()
    except PspError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    if not enabled:
        reason = f"publishing to GitHub is off; set {PUBLISH_ENV}=1 to publish to {repository}"
        context.log.info(f"{client_id}|{platform}: {reason}")
        context.log_event(
            dg.AssetObservation(
                asset_key=context.asset_key,
                partition=context.partition_key,
                metadata={**lineage, "status": "skipped", "reason": reason, "repository": repository},
            )
        )
        return
    try:
        artifact = load_artifact(Path(built_artifact["artifact_path"]))
        if artifact.sha256 != built_artifact["sha256"]:
            raise dg.Failure(
                f"{artifact.path}: sha256 {artifact.sha256} is not the built_artifact's {built_artifact['sha256']}; "
                "re-materialize built_artifact",
                allow_retries=False,
            )
        result = github.publish_artifact(artifact, settings, platform, lineage, context.log.info)
    except PspError as exc:
        raise dg.Failure(
            description=str(exc), metadata={**lineage, "repository": repository}, allow_retries=False
        ) from None
    assets = result.asset_rows()
    handle = {
        **lineage,
        "client": client_id,
        "platform": platform,
        "release_id": built_artifact["release_id"],
        "sha256": artifact.sha256,
        "repository": result.repository,
        "tag": result.tag,
        "release_url": result.release_url,
        "github_release_id": result.release_id,
        "assets": assets,
    }
    yield dg.Output(
        handle,
        metadata={
            **lineage,
            "release_id": built_artifact["release_id"],
            "sha256": artifact.sha256,
            "repository": result.repository,
            "tag": result.tag,
            "release_url": dg.MetadataValue.url(result.release_url),
            "release": result.release_state,
            "assets": dg.MetadataValue.json(assets),
            "asset_states": ", ".join(f"{a['name']}={a['state']}" for a in assets),
            "changed": result.changed,
            "retries": result.retries,
            "waited_seconds": result.waited_seconds,
        },
    )
