"""Keeps the `client` partitions in step with the files in client_configs/."""

import json

import dagster as dg

from psp_assets.defs.partitions import client_partitions
from psp_assets.defs.plugins.jobs import client_config_job
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
