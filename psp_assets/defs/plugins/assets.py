"""The plugin lineage: template -> config -> rendered source -> test report -> artifact -> store."""

import functools
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg

from psp_assets.core.config.fleet import validate_fleet
from psp_assets.core.config.model import ClientConfig
from psp_assets.core.deploy.parallel import Job, deploy_workers, side_by_side, store_hosts
from psp_assets.core.deploy.release import Deployment
from psp_assets.core.deploy.sftp import SftpPool
from psp_assets.core.deploy.stores import deploy_plugin
from psp_assets.core.errors import DeployError, PspError
from psp_assets.core.handles import (
    BuiltHandle,
    ConfigHandle,
    DeployedHandle,
    Lineage,
    RenderedHandle,
    TargetRecord,
    TemplateHandle,
    TestReportHandle,
    TreeRef,
)
from psp_assets.core.lineage import (
    build_plugin,
    deploy_facts_of,
    load_rendered,
    render_plugin,
    report_from_path,
    test_plugin,
)
from psp_assets.core.package import Artifact
from psp_assets.core.plan import plan_plugin
from psp_assets.core.templates.cache import TemplateCache
from psp_assets.core.templates.spec import PLATFORMS, available_platforms, load_template
from psp_assets.core.workspace import Paths
from psp_assets.defs import ranges
from psp_assets.defs.partitions import client_partitions, platform_partitions, plugin_partitions, split_key
from psp_assets.defs.resources import PhpResource, PspWorkspace

GROUP = "plugins"
# the client|platform assets; a pair whose client does not enable the platform is "not applicable" on each
PLUGIN_ASSETS = (
    "rendered_source",
    "test_report",
    "built_artifact",
    "deployed_store",
    "github_release",
    "client_repository",
)
NOT_APPLICABLE = "not applicable"
TESTS_PASS = "plugin_checks_pass"
# Every deploy step claims a slot in this pool: the instance caps concurrent deploys fleet-wide
# (deploy/postgres/dagster.yaml, docs/operations.md), however the run was launched.
DEPLOY_POOL = "psp_deploy"


def _fail(exc: PspError, **metadata: Any) -> dg.Failure:
    return dg.Failure(description=str(exc), metadata=metadata, allow_retries=False)


def _template_source(context: dg.AssetExecutionContext, templates_dir: str) -> dict[str, Any]:
    """Where the template came from: the commit github_template_sensor checked out, or the local directory."""
    tags = context.run.tags
    if "psp/template_commit" not in tags:
        return {"template_source": f"local directory {templates_dir}"}
    meta: dict[str, Any] = {
        "template_source": f"GitHub {tags.get('psp/template_repo', '')} at {tags['psp/template_commit'][:12]}",
        "template_commit": tags["psp/template_commit"],
        "template_commit_url": dg.MetadataValue.url(tags.get("psp/template_commit_url", "")),
    }
    if "psp/template_shared_commit" in tags:
        meta["template_shared_commit"] = tags["psp/template_shared_commit"]
    return meta


@dg.asset(
    partitions_def=platform_partitions,
    group_name=GROUP,
    kinds={"jinja", "yaml"},
    output_required=False,
)
def plugin_template(context: dg.AssetExecutionContext, workspace: PspWorkspace) -> Iterator[dg.Output]:
    """The platform's plugin template (templates/<platform>/): its declared version, supported platform
    and PHP versions, and its content hash. Any change to its files, the shared PHP core it includes, the
    translation catalogs or the PSP API contract (docs/contract.md) changes the hash, which makes every
    plugin of that platform stale."""
    platform = context.partition_key
    paths = workspace.paths
    if platform not in available_platforms(paths.templates_dir):
        context.log.info(f"no template for {platform} in {paths.templates_dir}; nothing to materialize")
        return
    try:
        template = load_template(paths.templates_dir, platform, paths.contract_file)
    except PspError as exc:
        raise _fail(exc) from None
    spec = template.spec
    handle = TemplateHandle(
        platform=platform,
        template_version=spec.version,
        template_hash=template.content_hash,
        php_versions=spec.php.versions() if spec.php else [],
        platform_versions=spec.platform_versions,
        templates_dir=str(paths.templates_dir),
    )
    yield dg.Output(
        handle,
        data_version=dg.DataVersion(template.content_hash),
        metadata={
            "template_version": spec.version,
            "template_hash": template.content_hash,
            "php_range": f"{spec.php.min} - {spec.php.max}" if spec.php else "none (no PHP in this template)",
            "platform_versions": ", ".join(spec.platform_versions),
            "source_files": len(template.source_files()),
            **_template_source(context, str(paths.templates_dir)),
        },
    )


@dg.asset(partitions_def=client_partitions, group_name=GROUP, kinds={"yaml"})
def client_config(context: dg.AssetExecutionContext, workspace: PspWorkspace) -> dg.Output:
    """One client's validated configuration (client_configs/<client>.yaml): locales, currencies, payment
    methods, features and per-platform targets. Its hash covers the validated values, so comment and
    formatting edits rebuild nothing."""
    client_id = context.partition_key
    fleet = validate_fleet(workspace.paths.configs_dir, workspace.paths.templates_dir)
    try:
        config = fleet.client(client_id)
    except PspError as exc:
        raise _fail(exc, problems=dg.MetadataValue.json(fleet.problems)) from None
    handle = ConfigHandle(
        client=client_id,
        config_hash=config.config_hash(),
        path=str(fleet.clients[client_id].path),
        enabled_platforms=config.enabled_platforms(),
        config=config,
    )
    # A platform the client does not enable has no plugin: each plugin asset's partition says so, where
    # the UI lists its events, instead of only looking "missing" (docs/operations.md, "Not applicable")
    for platform in PLATFORMS:
        if platform in handle.enabled_platforms:
            continue
        for asset in PLUGIN_ASSETS:
            context.log_event(
                dg.AssetObservation(
                    asset_key=asset,
                    partition=f"{client_id}|{platform}",
                    metadata={
                        "status": NOT_APPLICABLE,
                        "reason": f"{client_id} does not enable {platform} ({handle.path})",
                        "config_hash": handle.config_hash,
                    },
                )
            )
    return dg.Output(
        handle,
        data_version=dg.DataVersion(handle.config_hash),
        metadata={
            "config_hash": handle.config_hash,
            "file": handle.path,
            "enabled_platforms": ", ".join(handle.enabled_platforms),
            "locales": ", ".join(config.locales),
            "currencies": ", ".join(config.currencies),
        },
    )


@dg.asset(
    partitions_def=plugin_partitions,
    group_name=GROUP,
    kinds={"php"},
    output_required=False,
    backfill_policy=ranges.FLEET_BACKFILL,
    ins={
        "plugin_template": dg.AssetIn(partition_mapping=dg.MultiToSingleDimensionPartitionMapping("platform")),
        "client_config": dg.AssetIn(partition_mapping=dg.MultiToSingleDimensionPartitionMapping("client")),
    },
)
def rendered_source(
    context: dg.AssetExecutionContext,
    workspace: PspWorkspace,
    plugin_template: Any,
    client_config: Any,
) -> Iterator[Any]:
    """The plugin's source code for one client on one platform, rendered from the template with the
    client's values (every value escaped for the language it lands in). Platforms the client has not
    enabled are skipped, together with everything downstream of them."""
    templates = ranges.upstream(context, "plugin_template", plugin_template)
    configs = ranges.upstream(context, "client_config", client_config)
    cache = TemplateCache()  # each template loaded once for all the partitions of the run
    outcomes = {}
    for key in context.partition_keys:
        client_id, platform = split_key(key)
        outcomes[key] = _render(workspace, client_id, platform, templates.get(platform), configs.get(client_id), cache)
    yield from ranges.record(context, outcomes)


def _render(
    workspace: PspWorkspace,
    client_id: str,
    platform: str,
    plugin_template: TemplateHandle | None,
    client_config: ConfigHandle | None,
    cache: TemplateCache,
) -> ranges.Outcome:
    if client_config is None:
        return ranges.Skipped(f"client_config[{client_id}] is not materialized; nothing to render")
    if platform not in client_config.enabled_platforms:
        return ranges.Skipped(f"{client_id} does not enable {platform}; skipped (nothing rendered, built or deployed)")
    if plugin_template is None:
        return ranges.Failed(f"{client_id} enables {platform} but plugin_template[{platform}] is not materialized")
    paths = workspace.lineage_paths(plugin_template)
    config = client_config.config
    try:
        source = render_plugin(plan_plugin(paths, config, platform, cache))
    except PspError as exc:
        return ranges.Failed(str(exc))
    if source.template_hash != plugin_template.template_hash:
        return ranges.Failed(
            f"templates/{platform} changed since plugin_template[{platform}] was materialized "
            f"({plugin_template.template_hash[:12]} -> {source.template_hash[:12]}); materialize plugin_template "
            "first so the lineage names the template actually used"
        )
    tree = source.tree
    # the validated config travels with the lineage: later steps use exactly what was rendered
    handle = RenderedHandle(
        client=tree.client_id,
        platform=tree.platform,
        lineage=Lineage(
            template_version=plugin_template.template_version,
            template_hash=source.template_hash,
            config_hash=source.config_hash,
            plugin_version=tree.plugin_version,
            build=tree.build,
        ),
        config=config,
        config_path=client_config.path,
        templates_dir=str(paths.templates_dir),
        tree=TreeRef(path=str(source.path), tree_sha256=tree.digest(), file_count=len(tree.files)),
    )
    return ranges.Produced(
        handle,
        metadata={**handle.lineage.metadata(), "path": handle.tree.path, "files": handle.tree.file_count},
        data_version=handle.tree.tree_sha256,
    )


@dg.asset(
    partitions_def=plugin_partitions,
    group_name=GROUP,
    kinds={"php"},
    output_required=False,
    backfill_policy=ranges.FLEET_BACKFILL,
    check_specs=[
        dg.AssetCheckSpec(
            TESTS_PASS,
            asset="test_report",
            blocking=True,
            description="Lint, contract, packaging, translation and secret checks all pass; blocks the build.",
            partitions_def=plugin_partitions,
        )
    ],
)
def test_report(
    context: dg.AssetExecutionContext, workspace: PspWorkspace, php: PhpResource, rendered_source: Any
) -> Iterator[Any]:
    """The plugin's test report: PHP lint of every file, contract tests that execute the generated code
    against the shared vectors (signatures, every status, late and duplicate webhooks), the platform's
    packaging conventions, translation completeness and a scan for secrets and build paths. A failure
    blocks built_artifact for this partition only."""
    sources = ranges.upstream(context, "rendered_source", rendered_source)
    cache = TemplateCache()
    outcomes: dict[str, ranges.Outcome] = {}
    # in a run recorded partition by partition, an enabled plugin whose source was not produced failed
    # upstream in this run: it is red here too (failed observation and check), not merely absent
    enabled = set(workspace.paths.fleet().partition_keys()) if ranges.per_partition(context) else set()
    for key in context.partition_keys:
        if key not in sources:
            if key in enabled:
                outcomes[key] = ranges.Failed(f"not tested: rendered_source[{key}] failed in this run")
            else:
                outcomes[key] = ranges.Skipped(f"rendered_source[{key}] was not produced; nothing to test")
            continue
        log_prefix = f"{key}: " if len(context.partition_keys) > 1 else ""
        outcomes[key] = _test(context, workspace, php, sources[key], cache, log_prefix)
    yield from ranges.record(context, outcomes, check_name=TESTS_PASS)


def _test(
    context: dg.AssetExecutionContext,
    workspace: PspWorkspace,
    php: PhpResource,
    rendered_source: RenderedHandle,
    cache: TemplateCache,
    log_prefix: str,
) -> ranges.Outcome:
    paths = workspace.lineage_paths(rendered_source)
    try:
        tree = load_rendered(rendered_source)
        plan = plan_plugin(paths, rendered_source.config, tree.platform, cache)
    except PspError as exc:
        return ranges.Failed(str(exc))
    runtimes = php.runtimes if php.on_every_php else None  # one boot per PHP version, shared by every partition
    root = Path(rendered_source.tree.path)
    report = test_plugin(plan, tree, root, php.runtime, runtimes)
    failures = report.failures()
    for failure in failures[:20]:
        on = f" [PHP {failure.php_version}]" if failure.php_version else ""
        context.log.error(f"{log_prefix}{failure.check}{on}: {failure.name}: {failure.detail}")
    by_php = report.by_php_version()
    handle = TestReportHandle(
        **rendered_source.fields(),
        report_path=str(paths.report_path(tree.client_id, tree.platform, tree.build)),
        passed=report.passed,
    )
    counts = report.counts()
    check = ranges.CheckOutcome(
        passed=report.passed,
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
    return ranges.Produced(
        handle,
        metadata={
            **rendered_source.lineage.metadata(),
            "passed": report.passed,
            "report_path": handle.report_path,
            "php_version": ", ".join(by_php) or php.runtime.version,
            "php_matrix": dg.MetadataValue.md(_php_matrix_md(by_php)),
            "checks": dg.MetadataValue.json(counts),
            "failed": len(failures),
        },
        check=check,
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


@dg.asset(
    partitions_def=plugin_partitions,
    group_name=GROUP,
    kinds={"zip"},
    output_required=False,
    backfill_policy=ranges.FLEET_BACKFILL,
)
def built_artifact(context: dg.AssetExecutionContext, workspace: PspWorkspace, test_report: Any) -> Iterator[Any]:
    """The installable package the platform's own installer accepts (zip laid out by the template's
    packaging rules), reproducible byte for byte, with its sha256 and a manifest of every file."""
    reports = ranges.upstream(context, "test_report", test_report)
    cache = TemplateCache()
    outcomes: dict[str, ranges.Outcome] = {}
    for key in context.partition_keys:
        report = reports.get(key)
        if report is None:
            outcomes[key] = ranges.Skipped(f"test_report[{key}] was not produced; nothing to build")
        # a report that failed in this very run is already red on its check: its partition is just not built
        elif not report.passed and ranges.written_by_this_run(context, report):
            outcomes[key] = ranges.Skipped(f"{TESTS_PASS} failed for build {report.lineage.build}; nothing built")
        else:
            outcomes[key] = _build(workspace, report, cache)
    yield from ranges.record(context, outcomes)


def _build(workspace: PspWorkspace, test_report: TestReportHandle, cache: TemplateCache) -> ranges.Outcome:
    paths = workspace.lineage_paths(test_report)
    try:
        report = report_from_path(Path(test_report.report_path))
        tree = load_rendered(test_report)
        artifact = build_plugin(plan_plugin(paths, test_report.config, tree.platform, cache), tree, report)
    except PspError as exc:
        return ranges.Failed(str(exc))
    handle = BuiltHandle(
        client=tree.client_id,
        platform=tree.platform,
        lineage=test_report.lineage,
        config=test_report.config,
        config_path=test_report.config_path,
        templates_dir=str(paths.templates_dir),
        release_id=artifact.release_id,
        artifact_path=str(artifact.path),
        sha256=artifact.sha256,
        size=artifact.size,
    )
    return ranges.Produced(
        handle,
        metadata={
            **handle.lineage.metadata(),
            "artifact_path": str(artifact.path),
            "sha256": artifact.sha256,
            "size_bytes": artifact.size,
            "release_id": artifact.release_id,
            "files": len(artifact.manifest),
        },
        data_version=artifact.sha256,
    )


# Every deploy to a plugin's stores holds the one slot of that plugin's own Dagster pool, however its run
# was launched (a UI run of one partition, a sensor's or `psp fleet`'s range run, a fleet rollout): a
# second deploy to the same stores waits for it. The store's lease lock stays the last line of defence.
STORE_POOL_PREFIX = "psp_store/"
STORE_POOL_WAIT = float(os.environ.get("PSP_STORE_POOL_WAIT", "") or 1800)  # seconds a deploy waits, at most


def store_pool(partition_key: str) -> str:
    """The pool of the stores of plugin `client|platform` (its deploy targets belong to it alone)."""
    return f"{STORE_POOL_PREFIX}{partition_key}"


@contextmanager
def holding_store_pool(
    context: dg.AssetExecutionContext, partition_key: str, log_prefix: str = "", wait: float | None = None
) -> Iterator[None]:
    """Hold the one slot of the plugin's store pool while its stores are deployed: claimed in the
    instance's concurrency table as Dagster's executor claims an asset's `pool`, but per plugin, which a
    static `pool=` cannot say. A slot left by a run that has ended (a killed worker, a killed `psp fleet`)
    is freed, as Dagster's run monitoring does; a deploy that waits longer than `wait` fails naming the
    holder, and the run retry tries again."""
    instance = context.instance
    if not ranges.pools_supported(instance):  # an ephemeral in-memory instance: nobody to wait for
        yield
        return
    pool, run_id = store_pool(partition_key), context.run.run_id
    step = f"{context.op_execution_context.op_def.name}[{partition_key}]"
    if ranges.pool_slot_count(instance, pool) != 1:
        ranges.set_pool_limit(instance, pool, 1)  # one deploy per store, whatever pools.default_limit says
    deadline, said = time.monotonic() + (STORE_POOL_WAIT if wait is None else wait), False
    try:
        while not ranges.claim_pool_slot(instance, pool, run_id, step):
            holders = ranges.pool_holders(instance, pool)
            for holder_run, holder_step in holders:
                holder = instance.get_run_by_id(holder_run)
                if holder is None or holder.is_finished:
                    ranges.free_pool_slot(instance, holder_run, holder_step)
            if not said:
                names = ", ".join(f"run {r} ({s})" for r, s in holders) or "another deploy"
                context.log.info(f"{log_prefix}waiting for pool {pool}: {names} is deploying to these stores")
                said = True
            if time.monotonic() > deadline:
                names = ", ".join(f"run {r}" for r, _ in holders) or "another deploy"
                raise DeployError(
                    f"{partition_key}: {names} held pool {pool} for more than {wait or STORE_POOL_WAIT:.0f} s; "
                    "not deployed. If that run is dead, free its slots in the UI (Deployment -> Concurrency -> "
                    f"{pool})"
                )
            time.sleep(1.0)
    except BaseException:  # given up, interrupted or terminated while waiting: leave no claim in the queue
        ranges.free_pool_slot(instance, run_id, step)
        raise
    try:
        yield
    finally:
        ranges.free_pool_slot(instance, run_id, step)


def run_deploy(
    context: dg.AssetExecutionContext,
    paths: Paths,
    config: ClientConfig,
    platform: str,
    artifact: Artifact,
    php: PhpResource,
    cache: TemplateCache,
    connections: SftpPool,
    log_prefix: str = "",
    config_file: str | None = None,
) -> list[Deployment]:
    """Deploy `artifact` to the platform's targets in `config` (what deployed_store and fleet_rollout do),
    logging every step of every target. An artifact built before its manifest carried the deploy facts
    gets them from its plan (the template the lineage recorded), and the log says so."""
    artifact, note = deploy_facts_of(artifact, lambda: plan_plugin(paths, config, platform, cache))
    if note:
        context.log.warning(f"{log_prefix}{note}")
    # SSH keys are read only here, through Dagster's EnvVar, by the names the config gives; never logged
    with holding_store_pool(context, f"{config.id}|{platform}", log_prefix):
        deployments = deploy_plugin(
            paths,
            config,
            platform,
            artifact,
            php.runtime,
            secret=lambda name: dg.EnvVar(name).get_value(),
            connections=connections,
            config_file=config_file,
            # the store lock's holder: the run, the same for all its retries (a retry takes over the lock its
            # killed attempt left, from whatever pod it runs in)
            holder=f"run {context.run.tags.get('dagster/root_run_id') or context.run.run_id} {config.id}|{platform}",
        )
    for d in deployments:
        for step in d.steps:
            (context.log.info if step.ok else context.log.error)(f"{log_prefix}{d.target}: {step.step}: {step.detail}")
    return deployments


def deploy_record(
    built_artifact: BuiltHandle, artifact: Artifact, deployments: list[Deployment]
) -> tuple[list[TargetRecord], dict[str, Any]]:
    """What a deploy of one partition records (deployed_store and the fleet rollout alike): per target its
    versions, health, rollback and steps, and the lineage of the artifact deployed."""
    targets = [
        TargetRecord(
            target=d.target,
            deployed_version=d.deployed_version,
            previous_version=d.previous_version,
            health=d.health,
            rolled_back=d.rolled_back,
            noop=d.noop,
            error=d.error,
            steps=[f"{s.step}: {'ok' if s.ok else 'FAILED'} {s.detail}".strip() for s in d.steps],
        )
        for d in deployments
    ]
    metadata = {
        **built_artifact.lineage.metadata(),
        "release_id": artifact.release_id,
        "sha256": artifact.sha256,
        "targets": dg.MetadataValue.json([t.model_dump() for t in targets]),
    }
    return targets, metadata


@dg.asset(
    partitions_def=plugin_partitions,
    group_name=GROUP,
    kinds={"sftp"},
    pool=DEPLOY_POOL,
    output_required=False,
    backfill_policy=ranges.FLEET_BACKFILL,
)
def deployed_store(
    context: dg.AssetExecutionContext, workspace: PspWorkspace, php: PhpResource, built_artifact: Any
) -> Iterator[Any]:
    """The plugin as it runs on the client's stores: each target in rollout order gets the release side
    by side with the previous ones, an atomic switch, a health check, and an automatic rollback when the
    check fails. A failure stops the rollout before the next target."""
    artifacts = ranges.upstream(context, "built_artifact", built_artifact)
    cache = TemplateCache()
    outcomes: dict[str, ranges.Outcome] = {}
    try:
        workers = deploy_workers()  # $PSP_DEPLOY_WORKERS, docs/deploys.md
    except PspError as exc:
        raise _fail(exc) from None
    jobs: list[Job[str, ranges.Outcome]] = []
    # the SSH connections to each store host, reused by all the deploys of this run, closed when they are
    # done; the plugins deploy side by side (core/deploy/parallel.py), each one's targets in order
    with SftpPool() as connections:
        for key in context.partition_keys:
            if key not in artifacts:
                outcomes[key] = ranges.Skipped(f"built_artifact[{key}] was not produced; nothing to deploy")
                continue
            log_prefix = f"{key}: " if len(context.partition_keys) > 1 else ""
            hosts = store_hosts(artifacts[key].config, split_key(key)[1])
            deploy = functools.partial(
                _deploy, context, workspace, php, key, artifacts[key], cache, connections, log_prefix
            )
            jobs.append(Job(key, deploy, hosts))
        deployed = side_by_side(jobs, workers)
    outcomes = {key: outcomes.get(key) or deployed[key] for key in context.partition_keys}
    yield from ranges.record(context, outcomes)


def _deploy(
    context: dg.AssetExecutionContext,
    workspace: PspWorkspace,
    php: PhpResource,
    key: str,
    built_artifact: BuiltHandle,
    cache: TemplateCache,
    connections: SftpPool,
    log_prefix: str,
) -> ranges.Outcome:
    paths = workspace.lineage_paths(built_artifact)
    client_id, platform = split_key(key)
    config = built_artifact.config  # deploy where the config that produced this artifact says
    try:
        artifact = built_artifact.artifact()
        deployments = run_deploy(
            context,
            paths,
            config,
            platform,
            artifact,
            php,
            cache,
            connections,
            log_prefix=log_prefix,
            config_file=built_artifact.config_path,
        )
    except PspError as exc:
        return ranges.Failed(str(exc))
    targets, metadata = deploy_record(built_artifact, artifact, deployments)
    failed = [d for d in deployments if not d.ok]
    if failed:
        first = failed[0]
        what = f"rolled back; the store serves {first.deployed_version or 'no managed release'}"
        if not first.rolled_back:
            what = f"the store serves {first.deployed_version or 'no managed release'}"
        return ranges.Failed(
            f"{client_id}|{platform}: deploy to {first.target} failed ({what}): "
            f"{first.error or next((s.detail for s in first.steps if not s.ok), '')}",
            metadata=metadata,
            observe=True,
        )
    if not deployments:
        context.log.info(f"{client_id}|{platform}: no deploy targets configured")
    deployed = DeployedHandle(**built_artifact.fields(), targets=targets)
    return ranges.Produced(deployed, metadata=metadata)
