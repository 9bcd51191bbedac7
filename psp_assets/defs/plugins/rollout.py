"""The fleet rollout: after a template change was built for every client of a platform, the new
releases go out wave by wave (core/rollout.py): a canary first, then growing waves, stopping as soon as
a wave's share of failed health checks passes the limit. What was not reached keeps its release."""

import json
from collections.abc import Iterator
from typing import Any

import dagster as dg
from pydantic import Field

from psp_assets.core import pipeline
from psp_assets.core.config import parse_client
from psp_assets.core.errors import PspError
from psp_assets.core.rollout import StoreVersion, WavePolicy, plan_waves, roll_out, versions_markdown
from psp_assets.core.sftp import SftpPool
from psp_assets.core.template_cache import TemplateCache
from psp_assets.defs.partitions import platform_partitions
from psp_assets.defs.plugins.assets import DEPLOY_POOL, GROUP, deploy_record, lineage_paths, run_deploy
from psp_assets.defs.resources import JsonHandleIOManager, PhpResource, PspWorkspace


class RolloutPolicy(dg.Config):
    """How a fleet rollout proceeds. The defaults: one canary, waves doubling, any failure stops."""

    canary: int = Field(1, ge=1, description="Client plugins (with all their store targets) in the first wave.")
    growth: float = Field(2.0, ge=1.0, description="Each wave this many times the size of the previous one.")
    max_failure_share: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Stop after a wave whose share of failed deploys (health check failed, rolled back) is above "
        "this; 0 stops at the first failure.",
    )
    canaries: list[str] = Field(
        default_factory=list, description="Client ids forming the canary wave, instead of the first `canary` clients."
    )


def _status(target: dict[str, Any]) -> str:
    if target["rolled_back"]:
        return "rolled back"
    if target["error"]:
        return "failed"
    return "unchanged" if target["noop"] else "deployed"


def _live_versions(instance: dg.DagsterInstance, partition: str) -> dict[str, str]:
    """target -> release live after the partition's last successful deploy (its deployed_store record)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("deployed_store"), asset_partitions=[partition]),
        limit=1,
        ascending=False,
    ).records
    if not records or records[0].asset_materialization is None:
        return {}
    targets = records[0].asset_materialization.metadata.get("targets")
    return {t["target"]: t.get("deployed_version") or "" for t in (getattr(targets, "value", None) or [])}


@dg.asset(
    partitions_def=platform_partitions,
    group_name=GROUP,
    kinds={"sftp"},
    pool=DEPLOY_POOL,
    deps=[dg.AssetDep("built_artifact", partition_mapping=dg.MultiToSingleDimensionPartitionMapping("platform"))],
    # the handle store is read directly (many partitions, some never built), so resources come by key
    required_resource_keys={"io_manager", "workspace", "php"},
)
def fleet_rollout(context: dg.AssetExecutionContext, config: RolloutPolicy) -> Iterator[Any]:
    """Which release every store of this platform serves after the last fleet rollout. The latest
    built_artifact of every client enabling the platform goes out wave by wave (canary first, then growing
    waves), each deploy with its health gate and rollback, each recorded as a deployed_store
    materialization. A wave whose share of failed deploys passes the limit stops the rollout: later waves
    are not touched and keep their release."""
    platform = context.partition_key
    workspace: PspWorkspace = context.resources.workspace
    php: PhpResource = context.resources.php
    handles: JsonHandleIOManager = context.resources.io_manager
    paths = workspace.paths
    fleet = paths.fleet()
    enabling = [c for c, loaded in sorted(fleet.clients.items()) if platform in loaded.config.enabled_platforms()]
    keys = [f"{c}|{platform}" for c in enabling]
    built = {key: handle for key in keys if (handle := handles.read("built_artifact", key))}
    policy = WavePolicy(config.canary, config.growth, config.max_failure_share)
    canaries = [f"{c}|{platform}" for c in config.canaries]
    if missing := [c for c in canaries if c not in built]:
        raise dg.Failure(
            f"{platform} rollout: canaries {', '.join(missing)} have no built_artifact (or do not enable {platform}); "
            f"choose among {', '.join(sorted(built)) or 'none'}",
            allow_retries=False,
        )
    waves = plan_waves(list(built), policy, canaries)
    wave_of = {key: number for number, wave in enumerate(waves, start=1) for key in wave}
    rows: dict[str, list[StoreVersion]] = {}
    # yielded after the rollout, before its verdict: events only logged are lost when the step then fails
    deploy_events: list[dg.AssetMaterialization | dg.AssetObservation] = []
    # one template load per platform and one SSH connection per store host for the whole rollout
    cache, connections = TemplateCache(), SftpPool()
    context.log.info(f"{platform}: {len(built)} plugin(s) in waves of " + ", ".join(str(len(w)) for w in waves))

    def deploy(key: str) -> tuple[bool, str]:
        handle = built[key]
        try:
            artifact = pipeline.artifact_from_handle(handle)
            client_config = parse_client(handle["config"], handle["config_path"])
        except PspError as exc:
            rows[key] = [StoreVersion(key, wave_of[key], "failed", "", detail=str(exc))]
            return False, "unchanged"
        deployments = run_deploy(
            context,
            lineage_paths(workspace, handle),
            client_config,
            platform,
            artifact,
            php,
            cache,
            connections,
            log_prefix=f"{key} ",
        )
        targets, metadata = deploy_record(handle, artifact, deployments)
        ok = all(d.ok for d in deployments)
        event = dg.AssetMaterialization if ok else dg.AssetObservation  # as deployed_store records a failure
        deploy_events.append(
            event(asset_key="deployed_store", partition=key, metadata={**metadata, "rollout_wave": wave_of[key]})
        )
        rows[key] = [
            StoreVersion(
                f"{key} {t['target']}",
                wave_of[key],
                _status(t),
                t["deployed_version"] or "",
                t["previous_version"] or "",
                t["error"] or next((s for s in t["steps"] if "FAILED" in s), ""),
            )
            for t in targets
        ] or [StoreVersion(key, wave_of[key], "no targets", "")]
        return ok, ", ".join(f"{t['target']}={t['deployed_version']}" for t in targets)

    with connections:
        report = roll_out(waves, policy, deploy)

    for key in keys:  # not reached (the rollout stopped) or never built: what they keep serving
        if key in rows:
            continue
        live = _live_versions(context.instance, key)
        handle = built.get(key)
        settings = parse_client(handle["config"], handle["config_path"]).platform(platform) if handle else None
        names = [t.name for t in settings.targets] if settings else sorted(live)
        status = "not reached" if handle else "not built"
        rows[key] = [StoreVersion(f"{key} {n}", wave_of.get(key), status, live.get(n, "")) for n in names] or [
            StoreVersion(key, wave_of.get(key), status, "")
        ]
    table = [row for key in sorted(rows, key=lambda k: (wave_of.get(k, len(waves) + 1), k)) for row in rows[key]]
    summary = {
        "platform": platform,
        "stopped": report.stopped,
        "reason": report.reason,
        "policy": {"canary": policy.canary, "growth": policy.growth, "max_failure_share": policy.max_failure_share},
        "waves": [
            {"wave": w.number, "plugins": w.items, "failed": w.failed, "failure_share": round(w.failure_share, 3)}
            for w in report.waves
        ],
        "stores": [row.as_dict() for row in table],
    }
    out = paths.data_dir / "rollouts" / platform / f"{context.run.run_id}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    metadata = {
        "result": report.reason,
        "waves": len(report.waves),
        "waves_planned": len(waves),
        "stores": dg.MetadataValue.md(versions_markdown(table)),
        "rollout": dg.MetadataValue.json(summary),
        "report_path": str(out),
    }
    yield from deploy_events
    if report.stopped:
        yield dg.AssetObservation(asset_key=context.asset_key, partition=platform, metadata=metadata)
        raise dg.Failure(
            description=f"{platform} rollout stopped: {report.reason}", metadata=metadata, allow_retries=False
        )
    yield dg.MaterializeResult(metadata=metadata)
