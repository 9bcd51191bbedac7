"""The plugin on GitHub: one release per build in the client's organization and, for clients with a
source repository, each tested build's source as a pull request there (client_repository)."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from psp_assets.core.errors import PspError
from psp_assets.core.github import client_repo
from psp_assets.core.handles import BuiltHandle, ReleaseHandle, SourceRepoHandle, TestReportHandle
from psp_assets.core.lineage import load_rendered, report_from_path
from psp_assets.core.plan import plan_plugin
from psp_assets.defs import ranges
from psp_assets.defs.github.resources import PUBLISH_ENV, GitHubPublisher
from psp_assets.defs.partitions import plugin_partitions, split_key
from psp_assets.defs.resources import PspWorkspace


@dg.asset(
    partitions_def=plugin_partitions,
    group_name="plugins",
    kinds={"github"},
    ins={"built_artifact": dg.AssetIn()},
    output_required=False,
    backfill_policy=ranges.FLEET_BACKFILL,
)
def github_release(context: dg.AssetExecutionContext, github: GitHubPublisher, built_artifact: Any) -> Iterator[Any]:
    """The plugin build as a GitHub release in the client's organization (github.com or GitHub
    Enterprise): tag `<client>-<platform>-v<version>-<build>`, with the installable archive, its
    manifest and SHA256SUMS, so merchants and integrators download exactly what the stores run.
    Clients without a `github:` section are skipped; publishing is off unless PSP_GITHUB_PUBLISH=1."""
    artifacts = ranges.upstream(context, "built_artifact", built_artifact)
    outcomes: dict[str, ranges.Outcome] = {}
    for key in context.partition_keys:
        if key not in artifacts:
            outcomes[key] = ranges.Skipped(f"built_artifact[{key}] was not produced; nothing to publish")
            continue
        log_prefix = f"{key}: " if len(context.partition_keys) > 1 else ""
        outcomes[key] = _publish(context, github, key, artifacts[key], log_prefix)
    yield from ranges.record(context, outcomes)


def _unless_publishing(
    github: GitHubPublisher, key: str, lineage: dict[str, Any], purpose: str, repository: str
) -> ranges.Outcome | None:
    """None when publishing is on; else what the partition records: skipped (with an observation saying
    how to switch it on), or failed for a switch that is neither on nor off."""
    try:
        enabled = github.enabled()
    except PspError as exc:
        return ranges.Failed(str(exc))
    if enabled:
        return None
    reason = f"publishing to GitHub is off; set {PUBLISH_ENV}=1 {purpose}"
    return ranges.Skipped(
        f"{key}: {reason}",
        observation={**lineage, "status": "skipped", "reason": reason, "repository": repository},
    )


def _publish(
    context: dg.AssetExecutionContext,
    github: GitHubPublisher,
    key: str,
    built_artifact: BuiltHandle,
    log_prefix: str,
) -> ranges.Outcome:
    client_id, platform = split_key(key)
    lineage = built_artifact.lineage.metadata()
    settings = built_artifact.config.github
    if settings is None:
        where = built_artifact.config_path
        return ranges.Skipped(f"{client_id} has no github section in {where}; nothing to publish")
    repository = f"{settings.organization}/{settings.repository_for(platform)}"
    gate = _unless_publishing(github, key, lineage, f"to publish to {repository}", repository)
    if gate is not None:
        return gate
    try:
        artifact = built_artifact.artifact()
        if artifact.sha256 != built_artifact.sha256:
            return ranges.Failed(
                f"{artifact.path}: sha256 {artifact.sha256} is not the built_artifact's {built_artifact.sha256}; "
                "re-materialize built_artifact"
            )
        log = lambda message: context.log.info(log_prefix + message)  # noqa: E731
        result = github.publish_artifact(artifact, settings, platform, lineage, log)
    except PspError as exc:
        return ranges.Failed(str(exc), metadata={**lineage, "repository": repository})
    assets = result.asset_rows()
    handle = ReleaseHandle(
        client=client_id,
        platform=platform,
        lineage=built_artifact.lineage,
        release_id=built_artifact.release_id,
        sha256=artifact.sha256,
        repository=result.repository,
        tag=result.tag,
        release_url=result.release_url,
        github_release_id=result.release_id,
        assets=assets,
    )
    return ranges.Produced(
        handle,
        metadata={
            **lineage,
            "release_id": built_artifact.release_id,
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


@dg.asset(
    partitions_def=plugin_partitions,
    group_name="plugins",
    kinds={"github"},
    ins={"test_report": dg.AssetIn(), "built_artifact": dg.AssetIn()},
    output_required=False,
    backfill_policy=ranges.FLEET_BACKFILL,
)
def client_repository(
    context: dg.AssetExecutionContext,
    github: GitHubPublisher,
    workspace: PspWorkspace,
    test_report: Any,
    built_artifact: Any,
) -> Iterator[Any]:
    """The plugin's source in the client's own GitHub repository: each tested build as a pull request
    from branch `psp/<platform>/<version>-<build>`, with a CI workflow that lints it and runs its
    contract tests on every PHP (or Node) version the template declares, so the client's engineers
    review and check exactly what was built. Clients without `github.source` are skipped; publishing
    is off unless PSP_GITHUB_PUBLISH=1."""
    reports = ranges.upstream(context, "test_report", test_report)
    artifacts = ranges.upstream(context, "built_artifact", built_artifact)
    outcomes: dict[str, ranges.Outcome] = {}
    for key in context.partition_keys:
        report, artifact = reports.get(key), artifacts.get(key)
        if artifact is None or report is None:
            outcomes[key] = ranges.Skipped(f"built_artifact[{key}] was not produced; no source to publish")
            continue
        log_prefix = f"{key}: " if len(context.partition_keys) > 1 else ""
        outcomes[key] = _publish_source(context, github, workspace, key, report, artifact, log_prefix)
    yield from ranges.record(context, outcomes)


def _publish_source(
    context: dg.AssetExecutionContext,
    github: GitHubPublisher,
    workspace: PspWorkspace,
    key: str,
    test_report: TestReportHandle,
    built_artifact: BuiltHandle,
    log_prefix: str,
) -> ranges.Outcome:
    client_id, platform = split_key(key)
    lineage = built_artifact.lineage.metadata()
    config = built_artifact.config
    settings = config.github
    if settings is None or settings.source is None:
        return ranges.Skipped(f"{client_id} has no github.source in {built_artifact.config_path}; no repository")
    repository = f"{settings.organization}/{settings.source.repository}"
    gate = _unless_publishing(github, key, lineage, f"to publish the source to {repository}", repository)
    if gate is not None:
        return gate
    built = test_report.lineage.build
    if not test_report.passed or built != built_artifact.lineage.build:
        return ranges.Failed(
            f"{key}: test_report (build {built}, passed={test_report.passed}) is not the passing report of "
            f"built_artifact (build {built_artifact.lineage.build}); materialize the lineage again"
        )
    paths = workspace.lineage_paths(test_report)
    try:
        tree = load_rendered(test_report)
        report = report_from_path(Path(test_report.report_path))
        plan = client_repo.plan_for(plan_plugin(paths, config, platform), tree, lineage, report.counts())
        result = github.publish_source(plan, settings, lambda m: context.log.info(log_prefix + m))
    except PspError as exc:
        return ranges.Failed(str(exc), metadata={**lineage, "repository": repository})
    handle = SourceRepoHandle(
        client=client_id,
        platform=platform,
        lineage=built_artifact.lineage,
        repository=result.repository,
        branch=result.branch,
        base_branch=result.base_branch,
        commit_sha=result.commit_sha,
        pull_request_url=result.pull_url,
        pull_request=result.pull_number,
        files=list(result.files),
    )
    metadata: dict[str, Any] = {
        **lineage,
        "repository": result.repository,
        "branch": result.branch,
        "branch_state": result.branch_state,
        "commit_sha": result.commit_sha,
        "pull_request_state": result.pull_state,
        "files": dg.MetadataValue.json(list(result.files)),
        "file_count": len(result.files),
        "changed_files": len(result.changed_files),
        "workflow": client_repo.workflow_path(platform),
        "contract_cases": plan.contract_cases,
        "changed": result.changed,
        "retries": result.retries,
        "waited_seconds": result.waited_seconds,
    }
    if result.pull_url:
        metadata["pull_request_url"] = dg.MetadataValue.url(result.pull_url)
    return ranges.Produced(handle, metadata=metadata)
