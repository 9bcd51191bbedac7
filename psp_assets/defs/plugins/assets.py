"""The plugin lineage: template -> config -> rendered source -> test report -> artifact -> store."""

import warnings
from collections.abc import Iterator
from typing import Any

import dagster as dg

from psp_assets.core import pipeline
from psp_assets.core.config import ClientConfig, parse_client
from psp_assets.core.errors import PspError
from psp_assets.core.templates import available_platforms, load_template
from psp_assets.defs.partitions import client_partitions, platform_partitions, plugin_partitions, split_key
from psp_assets.defs.resources import PhpResource, PspWorkspace

# Two documented APIs we rely on are marked beta: the multi-to-single partition mapping (fans a
# per-platform and a per-client asset into client|platform partitions) and Output.data_version (content
# hashes as data versions). The warnings say nothing to the people using the UI; the tests pin both.
warnings.filterwarnings(
    "ignore", message=".*(MultiToSingleDimensionPartitionMapping|data_version).*", category=dg.BetaWarning
)

GROUP = "plugins"
LINEAGE_KEYS = ("template_version", "template_hash", "config_hash", "plugin_version", "build")
TESTS_PASS = "plugin_checks_pass"
# Every deploy step claims a slot in this pool: the instance caps concurrent deploys fleet-wide
# (deploy/postgres/dagster.yaml, docs/operations.md), however the run was launched.
DEPLOY_POOL = "psp_deploy"


def _lineage(handle: dict[str, Any]) -> dict[str, Any]:
    return {k: handle[k] for k in LINEAGE_KEYS if k in handle}


def _config(handle: dict[str, Any]) -> ClientConfig:
    return parse_client(handle["config"], handle["config_path"])


def _fail(exc: PspError, **metadata: Any) -> dg.Failure:
    return dg.Failure(description=str(exc), metadata=metadata, allow_retries=False)


@dg.asset(
    partitions_def=platform_partitions,
    group_name=GROUP,
    kinds={"jinja", "yaml"},
    output_required=False,
)
def plugin_template(context: dg.AssetExecutionContext, workspace: PspWorkspace) -> Iterator[dg.Output]:
    """The platform's plugin template (templates/<platform>/): its declared version, supported platform
    and PHP versions, and its content hash. Any change to its files, the shared PHP core it includes or
    the translation catalogs changes the hash, which makes every plugin of that platform stale."""
    platform = context.partition_key
    paths = workspace.paths
    if platform not in available_platforms(paths.templates_dir):
        context.log.info(f"no template for {platform} in {paths.templates_dir}; nothing to materialize")
        return
    try:
        template = load_template(paths.templates_dir, platform)
    except PspError as exc:
        raise _fail(exc) from None
    spec = template.spec
    handle = {
        "platform": platform,
        "template_version": spec.version,
        "template_hash": template.content_hash,
        "php_versions": spec.php.versions() if spec.php else [],
        "platform_versions": spec.platform_versions,
    }
    yield dg.Output(
        handle,
        data_version=dg.DataVersion(template.content_hash),
        metadata={
            "template_version": spec.version,
            "template_hash": template.content_hash,
            "php_range": f"{spec.php.min} - {spec.php.max}" if spec.php else "none (no PHP in this template)",
            "platform_versions": ", ".join(spec.platform_versions),
            "source_files": len(template.source_files()),
        },
    )


@dg.asset(partitions_def=client_partitions, group_name=GROUP, kinds={"yaml"})
def client_config(context: dg.AssetExecutionContext, workspace: PspWorkspace) -> dg.Output:
    """One client's validated configuration (client_configs/<client>.yaml): locales, currencies, payment
    methods, features and per-platform targets. Its hash covers the validated values, so comment and
    formatting edits rebuild nothing."""
    client_id = context.partition_key
    fleet = workspace.paths.fleet()
    try:
        config = fleet.client(client_id)
    except PspError as exc:
        raise _fail(exc, problems=dg.MetadataValue.json(fleet.problems)) from None
    handle = {
        "client": client_id,
        "config_hash": config.config_hash(),
        "path": str(fleet.clients[client_id].path),
        "enabled_platforms": config.enabled_platforms(),
        "config": config.model_dump(mode="json"),
    }
    return dg.Output(
        handle,
        data_version=dg.DataVersion(handle["config_hash"]),
        metadata={
            "config_hash": handle["config_hash"],
            "file": handle["path"],
            "enabled_platforms": ", ".join(handle["enabled_platforms"]),
            "locales": ", ".join(config.locales),
            "currencies": ", ".join(config.currencies),
        },
    )


@dg.asset(
    partitions_def=plugin_partitions,
    group_name=GROUP,
    kinds={"php"},
    output_required=False,
    ins={
        "plugin_template": dg.AssetIn(partition_mapping=dg.MultiToSingleDimensionPartitionMapping("platform")),
        "client_config": dg.AssetIn(partition_mapping=dg.MultiToSingleDimensionPartitionMapping("client")),
    },
)
def rendered_source(
    context: dg.AssetExecutionContext,
    workspace: PspWorkspace,
    plugin_template: dict[str, Any],
    client_config: dict[str, Any],
) -> Iterator[dg.Output]:
    """The plugin's source code for one client on one platform, rendered from the template with the
    client's values (every value escaped for the language it lands in). Platforms the client has not
    enabled are skipped, together with everything downstream of them."""
    client_id, platform = split_key(context.partition_key)
    if platform not in client_config["enabled_platforms"]:
        context.log.info(f"{client_id} does not enable {platform}; skipped (nothing rendered, built or deployed)")
        return
    paths = workspace.paths
    config = parse_client(client_config["config"], client_config["path"])
    try:
        source = pipeline.render_plugin(paths, config, platform)
    except PspError as exc:
        raise _fail(exc) from None
    if source.template_hash != plugin_template["template_hash"]:
        raise dg.Failure(
            f"templates/{platform} changed since plugin_template[{platform}] was materialized "
            f"({plugin_template['template_hash'][:12]} -> {source.template_hash[:12]}); materialize plugin_template "
            "first so the lineage names the template actually used"
        )
    # the validated config travels with the lineage: later steps use exactly what was rendered
    handle = {
        **source.handle(),
        "template_version": plugin_template["template_version"],
        "config": client_config["config"],
        "config_path": client_config["path"],
    }
    yield dg.Output(
        handle,
        data_version=dg.DataVersion(handle["tree_sha256"]),
        metadata={**_lineage(handle), "path": handle["path"], "files": handle["file_count"]},
    )


@dg.asset(
    partitions_def=plugin_partitions,
    group_name=GROUP,
    kinds={"php"},
    check_specs=[
        dg.AssetCheckSpec(
            TESTS_PASS,
            asset="test_report",
            blocking=True,
            description="Lint, contract, packaging, translation and secret checks all pass; blocks the build.",
        )
    ],
)
def test_report(
    context: dg.AssetExecutionContext, workspace: PspWorkspace, php: PhpResource, rendered_source: dict[str, Any]
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """The plugin's test report: PHP lint of every file, contract tests that execute the generated code
    against the shared vectors (signatures, every status, late and duplicate webhooks), the platform's
    packaging conventions, translation completeness and a scan for secrets and build paths. A failure
    blocks built_artifact for this partition only."""
    paths = workspace.paths
    tree = pipeline.load_rendered(rendered_source)
    config = _config(rendered_source)
    runtimes = php.runtimes if php.matrix else None
    report = pipeline.test_plugin(paths, config, tree, pipeline.Path(rendered_source["path"]), php.runtime, runtimes)
    failures = report.failures()
    for failure in failures[:20]:
        on = f" [PHP {failure.php_version}]" if failure.php_version else ""
        context.log.error(f"{failure.check}{on}: {failure.name}: {failure.detail}")
    by_php = report.by_php_version()
    handle = {
        **_lineage(rendered_source),
        "client": tree.client_id,
        "platform": tree.platform,
        "report_path": str(paths.report_path(tree.client_id, tree.platform, tree.build)),
        "passed": report.passed,
        "rendered": rendered_source,
    }
    counts = report.counts()
    yield dg.Output(
        handle,
        metadata={
            **_lineage(rendered_source),
            "passed": report.passed,
            "report_path": handle["report_path"],
            "php_version": ", ".join(by_php) or php.runtime.version,
            "php_matrix": dg.MetadataValue.md(_php_matrix_md(by_php)),
            "checks": dg.MetadataValue.json(counts),
            "failed": len(failures),
        },
    )
    yield dg.AssetCheckResult(
        check_name=TESTS_PASS,
        passed=report.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "failed": len(failures),
            "php_matrix": dg.MetadataValue.md(_php_matrix_md(by_php)),
            "failures": dg.MetadataValue.md(
                "\n".join(
                    f"- **{f.check}**{f' (PHP {f.php_version})' if f.php_version else ''} `{f.name}`: {f.detail[:300]}"
                    for f in failures[:25]
                )
                or "none"
            ),
        },
    )


def _php_matrix_md(by_php: dict[str, dict[str, Any]]) -> str:
    """One row per PHP version the checks ran on: pass/fail and the lint and contract counts."""
    if not by_php:
        return "no PHP checks"
    rows = ["| PHP | result | lint failed | contract failed |", "|---|---|---|---|"]
    for version, row in by_php.items():
        lint, contract = row.get("lint", {}), row.get("contract", {})
        verdict = "pass" if row["passed"] else "**FAIL**"
        rows.append(f"| {version} | {verdict} | {lint.get('failed', 0)} | {contract.get('failed', 0)} |")
    return "\n".join(rows)


@dg.asset(partitions_def=plugin_partitions, group_name=GROUP, kinds={"zip"})
def built_artifact(
    context: dg.AssetExecutionContext, workspace: PspWorkspace, test_report: dict[str, Any]
) -> dg.Output:
    """The installable package the platform's own installer accepts (zip laid out by the template's
    packaging rules), reproducible byte for byte, with its sha256 and a manifest of every file."""
    paths = workspace.paths
    rendered = test_report["rendered"]
    report = pipeline.report_from_path(pipeline.Path(test_report["report_path"]))
    tree = pipeline.load_rendered(rendered)
    config = _config(rendered)
    try:
        artifact = pipeline.build_plugin(paths, config, tree, report)
    except PspError as exc:
        raise _fail(exc) from None
    handle = {
        **_lineage(test_report),
        "client": tree.client_id,
        "platform": tree.platform,
        "release_id": artifact.release_id,
        "artifact_path": str(artifact.path),
        "sha256": artifact.sha256,
        "size": artifact.size,
        "config": rendered["config"],
        "config_path": rendered["config_path"],
    }
    return dg.Output(
        handle,
        data_version=dg.DataVersion(artifact.sha256),
        metadata={
            **_lineage(handle),
            "artifact_path": str(artifact.path),
            "sha256": artifact.sha256,
            "size_bytes": artifact.size,
            "release_id": artifact.release_id,
            "files": len(artifact.manifest),
        },
    )


@dg.asset(partitions_def=plugin_partitions, group_name=GROUP, kinds={"sftp"}, pool=DEPLOY_POOL)
def deployed_store(
    context: dg.AssetExecutionContext, workspace: PspWorkspace, php: PhpResource, built_artifact: dict[str, Any]
) -> dg.Output:
    """The plugin as it runs on the client's stores: each target in rollout order gets the release side
    by side with the previous ones, an atomic switch, a health check, and an automatic rollback when the
    check fails. A failure stops the rollout before the next target."""
    paths = workspace.paths
    client_id, platform = split_key(context.partition_key)
    config = _config(built_artifact)  # deploy where the config that produced this artifact says
    artifact = pipeline.artifact_from_handle(built_artifact)
    # SSH keys are read only here, through Dagster's EnvVar, by the names the config gives; never logged
    deployments = pipeline.deploy_plugin(
        paths, config, platform, artifact, php.runtime, secret=lambda name: dg.EnvVar(name).get_value()
    )
    targets = [
        {
            "target": d.target,
            "deployed_version": d.deployed_version,
            "previous_version": d.previous_version,
            "health": d.health,
            "rolled_back": d.rolled_back,
            "noop": d.noop,
            "error": d.error,
            "steps": [f"{s.step}: {'ok' if s.ok else 'FAILED'} {s.detail}".strip() for s in d.steps],
        }
        for d in deployments
    ]
    for d in deployments:
        for step in d.steps:
            (context.log.info if step.ok else context.log.error)(f"{d.target}: {step.step}: {step.detail}")
    metadata = {
        **_lineage(built_artifact),
        "release_id": artifact.release_id,
        "sha256": artifact.sha256,
        "targets": dg.MetadataValue.json(targets),
    }
    failed = [d for d in deployments if not d.ok]
    if failed:
        context.log_event(
            dg.AssetObservation(asset_key=context.asset_key, partition=context.partition_key, metadata=metadata)
        )
        first = failed[0]
        what = f"rolled back to {first.deployed_version}" if first.rolled_back else "store unchanged"
        raise dg.Failure(
            description=f"{client_id}|{platform}: deploy to {first.target} failed ({what}): "
            f"{first.error or next((s.detail for s in first.steps if not s.ok), '')}",
            metadata=metadata,
            allow_retries=False,
        )
    if not deployments:
        context.log.info(f"{client_id}|{platform}: no deploy targets configured")
    return dg.Output({**built_artifact, "targets": targets}, metadata=metadata)
