"""What makes the platform react on its own: client files become partitions, template and config changes
become runs for exactly the partitions they touch."""

import json

import dagster as dg

from psp_assets.core.errors import PspError
from psp_assets.core.templates import available_platforms, load_template
from psp_assets.defs.partitions import client_partitions
from psp_assets.defs.plugins.jobs import client_config_job, plugin_lineage_job, plugin_template_job
from psp_assets.defs.resources import PspWorkspace


@dg.sensor(job=client_config_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def client_configs_sensor(context: dg.SensorEvaluationContext, workspace: PspWorkspace) -> dg.SensorResult:
    """Adds a partition for every new valid client file, removes the partitions of deleted files (what is
    deployed stays deployed), and re-validates changed files. An invalid file changes nothing and is
    reported with its file, field and reason."""
    paths = workspace.paths
    fleet = paths.fleet()
    previous: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    existing = set(context.instance.get_dynamic_partitions(client_partitions.name))
    current = {cid: loaded.config.config_hash() for cid, loaded in fleet.clients.items()}
    # A client whose file is invalid right now keeps its partitions: an edit in progress is not a removal.
    broken_ids = {cid for cid in existing if any(cid in label for label in fleet.problems)}
    added = sorted(set(current) - existing)
    removed = sorted(existing - set(current) - broken_ids)
    changed = sorted(cid for cid, h in current.items() if cid in existing and previous.get(cid) != h)
    for label, problems in fleet.problems.items():
        context.log.warning(f"{label}: not applied: " + "; ".join(problems))
    for cid in removed:
        context.log.info(f"{cid}: config file removed; partitions removed, deployed stores left untouched")
    requests = [
        dg.RunRequest(run_key=f"{cid}:{current[cid]}", partition_key=cid, tags={"psp/client": cid})
        for cid in added + changed
    ]
    dynamic = []
    if added:
        dynamic.append(client_partitions.build_add_request(added))
    if removed:
        dynamic.append(client_partitions.build_delete_request(removed))
    skip = None
    if not requests and not dynamic:
        skip = "no client config changes" + (
            f"; {len(fleet.problems)} invalid file(s), see logs" if fleet.problems else ""
        )
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=dynamic,
        cursor=json.dumps({**{k: v for k, v in previous.items() if k in broken_ids}, **current}, sort_keys=True),
        skip_reason=skip,
    )


@dg.sensor(job=plugin_template_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def template_change_sensor(context: dg.SensorEvaluationContext, workspace: PspWorkspace) -> dg.SensorResult:
    """Re-records a platform's template when its content hash (its files, the shared PHP core it pulls
    in, the translation catalogs) differs from the one last materialized. Only that platform is touched;
    the lineage runs follow from `lineage_on_upstream_change_sensor`."""
    paths = workspace.paths
    requests, problems = [], []
    for platform in available_platforms(paths.templates_dir):
        try:
            content_hash = load_template(paths.templates_dir, platform).content_hash
        except PspError as exc:
            problems.append(str(exc))
            continue
        recorded = _latest_data_version(context.instance, "plugin_template", platform)
        if recorded != content_hash:
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


@dg.sensor(job=plugin_lineage_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def lineage_on_upstream_change_sensor(context: dg.SensorEvaluationContext, workspace: PspWorkspace) -> dg.SensorResult:
    """Rebuilds exactly what an upstream change touched: a new `plugin_template[P]` rebuilds `*|P` for the
    clients that enable P, a new `client_config[c]` rebuilds `c|*` for the platforms c enables. The
    cursor is the last event seen, so nothing is missed or started twice."""
    cursor = int(context.cursor) if context.cursor else 0
    fleet = workspace.paths.fleet()
    latest = cursor
    wanted: dict[str, str] = {}  # partition -> reason
    for key in ("plugin_template", "client_config"):
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), after_storage_id=cursor or None), limit=1000
        ).records
        for record in records:
            latest = max(latest, record.storage_id)
            partition = record.partition_key
            if partition is None:
                continue
            if key == "plugin_template":
                for cid, loaded in sorted(fleet.clients.items()):
                    if partition in loaded.config.enabled_platforms():
                        wanted[f"{cid}|{partition}"] = f"template {partition} changed"
            elif partition in fleet.clients:
                for platform in fleet.clients[partition].config.enabled_platforms():
                    wanted[f"{partition}|{platform}"] = f"config {partition} changed"
    requests = []
    for key, reason in sorted(wanted.items()):
        client, platform = key.split("|")
        template_version = _latest_data_version(context.instance, "plugin_template", platform)
        config_version = _latest_data_version(context.instance, "client_config", client)
        if template_version is None or config_version is None:
            continue  # the other input is not recorded yet; its materialization will trigger this partition
        # keyed by the inputs: the same template and config never start the lineage twice, however many
        # upstream materializations (or ticks) point at them
        requests.append(
            dg.RunRequest(
                run_key=f"lineage:{key}:{template_version[:16]}:{config_version[:16]}",
                partition_key=key,
                tags={"psp/trigger": reason},
            )
        )
    return dg.SensorResult(
        run_requests=requests,
        cursor=str(latest),
        skip_reason=None if requests else "no new template or config materializations",
    )


def _latest_data_version(instance: dg.DagsterInstance, key: str, partition: str) -> str | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[partition]), limit=1, ascending=False
    ).records
    if not records:
        return None
    tags = records[0].asset_materialization.tags or {}
    return tags.get("dagster/data_version")
