"""What makes the platform react on its own: client files become partitions, template and config changes
become runs for exactly the partitions they touch."""

import hashlib
import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from psp_assets.core.config.fleet import validate_fleet
from psp_assets.core.errors import PspError
from psp_assets.core.ranges import client_ranges, platform_ranges
from psp_assets.core.templates.spec import PLATFORMS, available_platforms, load_template
from psp_assets.defs import ranges
from psp_assets.defs.partitions import client_partitions, platform_partitions
from psp_assets.defs.plugins.jobs import (
    client_config_job,
    fleet_rollout_job,
    plugin_build_job,
    plugin_lineage_job,
    plugin_template_job,
)
from psp_assets.defs.plugins.resources import TemplateRepository
from psp_assets.defs.plugins.staleness import latest_metadata, recorded, stale_partitions
from psp_assets.defs.ranges import range_tags
from psp_assets.defs.resources import PspWorkspace


@dg.sensor(job=client_config_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def client_configs_sensor(context: dg.SensorEvaluationContext, workspace: PspWorkspace) -> dg.SensorResult:
    """Adds a partition for every new valid client file, removes the partitions of deleted files (what is
    deployed stays deployed), and re-validates a file whose validated values differ from the ones
    `client_config` last recorded (whoever launched that run). An invalid file changes nothing and is
    reported with its file, field and reason, whether the model or the templates refuse it (the
    `validate_fleet` of `psp validate`). Keeps no cursor: a first tick starts nothing that is recorded."""
    fleet = validate_fleet(workspace.paths.configs_dir, workspace.paths.templates_dir)
    existing = set(context.instance.get_dynamic_partitions(client_partitions.name))
    current = {cid: loaded.config.config_hash() for cid, loaded in fleet.clients.items()}
    # A client whose file is invalid right now keeps its partitions: an edit in progress is not a removal.
    broken_ids = {cid for cid in existing if fleet.files_of(cid)}
    added = sorted(set(current) - existing)
    removed = sorted(existing - set(current) - broken_ids)
    known = recorded(context.instance, "client_config", sorted(set(current) & existing), "config_hash")
    changed = sorted(cid for cid, h in current.items() if cid in existing and known.get(cid) != h)
    for label, problems in fleet.problems.items():
        context.log.warning(f"{label}: not applied: " + "; ".join(problems))
    for cid in removed:
        context.log.info(f"{cid}: config file removed; partitions removed, deployed stores left untouched")
    requests = [
        # run_key: while the run for this content is queued or running, later ticks do not start it again
        dg.RunRequest(
            run_key=f"{cid}:{current[cid]}",
            partition_key=cid,
            tags={"psp/client": cid, "psp/trigger": f"config {cid} changed" if cid in known else f"new client {cid}"},
        )
        for cid in added + changed
    ]
    dynamic = []
    if added:
        dynamic.append(client_partitions.build_add_request(added))
    if removed:
        dynamic.append(client_partitions.build_delete_request(removed))
    skip = None
    if not requests and not dynamic:
        skip = "every client config is recorded as it is on disk" + (
            f"; {len(fleet.problems)} invalid file(s), see logs" if fleet.problems else ""
        )
    return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=dynamic, skip_reason=skip)


@dg.sensor(job=plugin_template_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def template_change_sensor(
    context: dg.SensorEvaluationContext, workspace: PspWorkspace, template_repo: TemplateRepository
) -> dg.SensorResult:
    """Re-records a platform's template when its content hash (its files, the shared PHP core it pulls
    in, the translation catalogs, the PSP API contract) differs from the one last materialized. Only
    that platform is touched; the lineage runs follow from `lineage_on_upstream_change_sensor`. Stands
    down while the templates come from a GitHub repository (`github_template_sensor`)."""
    if template_repo.enabled:
        return dg.SensorResult(
            skip_reason=f"templates come from {template_repo.repository}; see github_template_sensor"
        )
    paths = workspace.paths
    requests, problems = [], []
    known = recorded(context.instance, "plugin_template", PLATFORMS, "template_hash")
    for platform in available_platforms(paths.templates_dir):
        try:
            content_hash = load_template(paths.templates_dir, platform, paths.contract_file).content_hash
        except PspError as exc:
            problems.append(str(exc))
            continue
        if known.get(platform) != content_hash:
            # run_key: the same content never starts twice, however many ticks see it
            requests.append(
                dg.RunRequest(
                    run_key=f"template:{platform}:{content_hash}",
                    partition_key=platform,
                    tags={"psp/trigger": "template change"},
                )
            )
    for problem in problems:
        context.log.warning(f"template not applied: {problem}")
    skip = None if requests else "no template changes" + (f"; {len(problems)} unusable, see logs" if problems else "")
    return dg.SensorResult(run_requests=requests, skip_reason=skip)


@dg.sensor(job=plugin_template_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def github_template_sensor(
    context: dg.SensorEvaluationContext, workspace: PspWorkspace, template_repo: TemplateRepository
) -> dg.SensorResult:
    """Follows the template repository on GitHub: when the last commit that changed
    `templates/<platform>` (or the shared files) moves, checks the template out as that commit left it and
    re-records `plugin_template[<platform>]` from the checkout, with the commit in its metadata. Other
    platforms are not touched. The cursor keeps each platform's commits: nothing is missed or started twice."""
    if not template_repo.enabled:
        return dg.SensorResult(skip_reason="no template repository configured (PSP_TEMPLATE_REPO)")
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    paths = workspace.paths
    client = template_repo.client()
    # a failure here (GitHub down, bad token) fails the tick with the reason; the cursor stays, the next tick retries
    revisions = client.revisions(platform_partitions.get_partition_keys())
    # what plugin_template last recorded, whoever launched it: a first tick (no cursor) starts nothing new
    recorded_commits = latest_metadata(context.instance, "plugin_template", sorted(revisions))
    requests = []
    for platform, revision in sorted(revisions.items()):
        if seen.get(platform) == revision.key:
            continue
        was = recorded_commits.get(platform, {})
        if was.get("template_commit") == revision.commit.sha and was.get("template_shared_commit") == (
            revision.shared.sha if revision.shared else None
        ):
            seen[platform] = revision.key
            continue
        try:
            root = client.checkout(revision, template_repo.checkouts(paths))
        except PspError as exc:
            context.log.warning(f"{platform}: not checked out, retried next tick: {exc}")
            continue
        seen[platform] = revision.key
        if not (root / platform).is_dir():
            context.log.info(
                f"{platform}: {template_repo.path}/{platform} is gone at {revision.head[:12]}; nothing to record"
            )
            continue
        tags = {
            "psp/trigger": f"template commit {revision.commit.sha[:12]}",
            "psp/template_repo": template_repo.repository,
            "psp/template_commit": revision.commit.sha,
            "psp/template_commit_url": revision.commit.url,
            "psp/template_checkout": revision.head,
        }
        if revision.shared:
            tags["psp/template_shared_commit"] = revision.shared.sha
        requests.append(
            dg.RunRequest(
                run_key=f"github-template:{platform}:{revision.key}",
                partition_key=platform,
                run_config={"resources": {"workspace": {"config": {"templates_dir": str(root)}}}},
                tags=tags,
            )
        )
    return dg.SensorResult(
        run_requests=requests,
        cursor=json.dumps(seen, sort_keys=True),
        skip_reason=None if requests else f"no new template commits on {template_repo.spec().describe()}",
    )


@dg.sensor(
    jobs=[plugin_build_job, plugin_lineage_job],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def lineage_on_upstream_change_sensor(context: dg.SensorEvaluationContext, workspace: PspWorkspace) -> dg.SensorResult:
    """Rebuilds exactly the plugins whose recorded inputs are out of date (staleness.py: the template and
    config hashes each `rendered_source` recorded against the latest `plugin_template` and
    `client_config` records), in one run per cause: a platform whose template changed gets
    `plugin_build_job` over `first|P .. last|P` of its stale clients (render, test, build; tagged
    `psp/rollout=P`, the fleet rollout deploys afterwards); a client whose config changed, or that was
    never built, gets `plugin_lineage_job` over `c|first .. c|last` of its stale platforms (through
    deploy). The ranges come from core/ranges.py, the planner of `psp fleet`: a range is a rectangle
    that passes over plugins a client does not enable and ends at one that is up to date.
    Keeps no cursor: what `psp fleet`, a UI launch or another daemon recorded counts the same. The run
    key is the digest of the inputs, so a run in flight is not requested twice."""
    fleet = workspace.paths.fleet()
    # the client dimension's own order: a range runs from one client to another in this order
    clients = [c for c in context.instance.get_dynamic_partitions(client_partitions.name) if c in fleet.clients]
    stale = stale_partitions(context.instance, fleet, clients)
    enabled = {c: fleet.clients[c].config.enabled_platforms() for c in clients}
    requests = []
    for platform, stale_clients in sorted(stale.by_platform.items()):
        inputs = _digest([stale.templates[platform], *(f"{c}={stale.configs[c]}" for c in stale_clients)])
        wanted = {c: [platform] for c in stale_clients}
        parts = platform_ranges(clients, wanted, enabled, chunk=ranges.FLEET_CHUNK, platforms=[platform])
        for number, (first, last) in enumerate(parts, start=1):
            requests.append(
                dg.RunRequest(
                    job_name=plugin_build_job.name,
                    run_key=f"build:{platform}:{inputs}:{number}",
                    tags={
                        **range_tags(first, last),
                        "psp/rollout": platform,
                        # the rollout waits for every chunk of the same rebuild (_rollout_request)
                        BATCH_TAG: f"{platform}:{inputs}",
                        BATCH_SIZE_TAG: str(len(parts)),
                        "psp/trigger": f"template {platform} changed ({len(stale_clients)} plugin(s) out of date"
                        + (f", chunk {number} of {len(parts)})" if len(parts) > 1 else ")"),
                    },
                )
            )
    for client, platforms in stale.by_client.items():
        inputs = _digest([stale.configs[client], *(f"{p}={stale.templates[p]}" for p in platforms)])
        parts = client_ranges([client], {client: platforms}, enabled)
        for number, (first, last) in enumerate(parts, start=1):
            requests.append(
                dg.RunRequest(
                    job_name=plugin_lineage_job.name,
                    run_key=f"lineage:{client}:{inputs}" + (f":{number}" if number > 1 else ""),
                    tags={
                        **range_tags(first, last),
                        "psp/client": client,
                        "psp/trigger": f"config {client} changed ({', '.join(platforms)} out of date)",
                    },
                )
            )
    return dg.SensorResult(
        run_requests=requests,
        skip_reason=None if requests else "every enabled plugin was rendered from the recorded template and config",
    )


def _digest(parts: list[str]) -> str:
    """A short, stable key for the inputs of a run: the same inputs never start the same run twice."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


BATCH_TAG = "psp/build_batch"
BATCH_SIZE_TAG = "psp/build_batch_runs"


# How far each tick looks back before its cursor: a build run that finished while the last tick ran, or
# whose end the database stamped a little late, is seen again; the run key makes that harmless.
ROLLOUT_LOOKBACK = timedelta(minutes=5)
FINISHED_BUILDS = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE]


def rollout_key(run: dg.DagsterRun) -> str:
    """The identity of one rebuild, the run key of its one rollout: the batch of its chunks (the same for
    every chunk of a rebuild), or the build run itself when it was not cut into chunks."""
    batch, runs = run.tags.get(BATCH_TAG), int(run.tags.get(BATCH_SIZE_TAG, "1"))
    return f"rollout:{batch}" if batch and runs > 1 else f"rollout:{run.run_id}"


def _builds_of(instance: dg.DagsterInstance, runs: list[dg.DagsterRun]) -> int:
    """How many `built_artifact` partitions these runs recorded."""
    ids = {r.run_id for r in runs}
    records = [instance.get_run_record_by_id(r.run_id) for r in runs]
    since = min((r.create_timestamp.timestamp() for r in records if r), default=None)
    records_filter = dg.AssetRecordsFilter(asset_key=dg.AssetKey("built_artifact"), after_timestamp=since)
    built, cursor = 0, None
    while True:  # the builds recorded since the first run was created, page by page
        page = instance.fetch_materializations(records_filter, limit=1000, cursor=cursor, ascending=True)
        built += sum(1 for r in page.records if r.run_id in ids)
        if not page.has_more:
            return built
        cursor = page.cursor


def _rollout_request(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dg.RunRequest | str:
    """The one rollout of the rebuild `run` belongs to, or why there is none (yet)."""
    platform = run.tags["psp/rollout"]
    key = rollout_key(run)
    batch, runs = run.tags.get(BATCH_TAG), int(run.tags.get(BATCH_SIZE_TAG, "1"))
    chunks = [run]
    if batch and runs > 1:
        chunks = list(instance.get_runs(dg.RunsFilter(tags={BATCH_TAG: batch})))
        if len(chunks) < runs or any(not r.is_finished for r in chunks):
            return f"{platform}: {len(chunks)} of {runs} build chunks started; rollout after the last"
    started = instance.get_runs(dg.RunsFilter(job_name=fleet_rollout_job.name, tags={ROLLOUT_KEY_TAG: key}), limit=1)
    if started:
        return f"{platform}: rollout {key} already started (run {started[0].run_id})"
    # psp/platform: the queue runs one rollout per platform at a time (dagster.yaml tag limits)
    tags = {
        "psp/trigger": f"{run.job_name} run {run.run_id}",
        "psp/build_run": run.run_id,
        "psp/platform": platform,
        ROLLOUT_KEY_TAG: key,
    }
    if batch:
        tags[BATCH_TAG] = batch
    if any(r.status == dg.DagsterRunStatus.FAILURE for r in chunks):
        built = _builds_of(instance, chunks)
        if not built:
            return f"{platform}: {key} failed and built nothing; nothing to roll out"
        tags["psp/build_partial"] = f"{built} plugin(s) built; failed ones stay on their last good build"
    return dg.RunRequest(run_key=key, partition_key=platform, tags=tags)


ROLLOUT_KEY_TAG = "psp/rollout_key"


@dg.sensor(job=fleet_rollout_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def rollout_after_build_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """When a template change has been built for a platform's fleet (`plugin_build_job` runs tagged
    `psp/rollout=<platform>`), rolls the new builds out wave by wave (`fleet_rollout_job`), once per
    rebuild: after its last chunk, whether the chunks succeeded or some clients failed (those keep their
    last good build; a rebuild that built nothing starts no rollout). One sensor looks at both outcomes,
    and the run key is the rebuild's identity (`rollout_key`), so Dagster itself skips a second request
    for the same rebuild, whichever chunk finished last and in whichever tick. Starts from now on its
    first tick, as a run status sensor does."""
    now = datetime.now(UTC)
    if context.cursor is None:
        cursor = {"floor": now.isoformat(), "tick": now.isoformat()}
        return dg.SensorResult(skip_reason="first tick: builds ending from now on roll out", cursor=json.dumps(cursor))
    cursor = json.loads(context.cursor)
    # never before the first tick; otherwise the last tick's time, less the overlap
    since = max(datetime.fromisoformat(cursor["floor"]), datetime.fromisoformat(cursor["tick"]) - ROLLOUT_LOOKBACK)
    cursor["tick"] = now.isoformat()
    finished = context.instance.get_runs(
        dg.RunsFilter(job_name=plugin_build_job.name, statuses=FINISHED_BUILDS, updated_after=since)
    )
    requests: dict[str, dg.RunRequest] = {}
    reasons = []
    for run in finished:
        if "psp/rollout" not in run.tags or rollout_key(run) in requests:
            continue
        answer = _rollout_request(context.instance, run)
        if isinstance(answer, dg.RunRequest):
            requests[answer.run_key] = answer
        elif answer not in reasons:
            reasons.append(answer)
    skip = None if requests else ("; ".join(reasons) or "no build run finished")
    return dg.SensorResult(run_requests=list(requests.values()), skip_reason=skip, cursor=json.dumps(cursor))
