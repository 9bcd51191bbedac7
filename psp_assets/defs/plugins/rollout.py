"""The fleet rollout: after a template change was built for every client of a platform, the new
releases go out wave by wave (core/rollout/waves.py): a canary first, then growing waves, stopping as soon as
a wave's share of failed health checks passes the limit. What was not reached keeps its release.

With payment analysis on for a wave's clients (rollout_analysis in the client config), the run ends after
the wave's health gate and the rollout holds (core/rollout/gate.py): rollout_payment_gate_sensor judges
the wave's payments from the ledger and starts the rollout again, to deploy the next wave or to roll the
failing stores back and stop."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from pydantic import Field

from psp_assets.core.config.model import ClientConfig
from psp_assets.core.deploy.parallel import MAX_WORKERS, deploy_workers, store_hosts
from psp_assets.core.deploy.release import Deployment
from psp_assets.core.deploy.sftp import SftpPool
from psp_assets.core.errors import PspError
from psp_assets.core.handles import BuiltHandle
from psp_assets.core.package import DeployFacts
from psp_assets.core.plan import plan_plugin
from psp_assets.core.rollout.analysis import StoreVerdict, Switch, WaveDecision
from psp_assets.core.rollout.gate import RolloutState, evaluate, roll_back_target, rollback_alert, state_path
from psp_assets.core.rollout.waves import StoreVersion, WavePolicy, plan_waves, roll_out, versions_markdown
from psp_assets.core.templates.cache import TemplateCache
from psp_assets.core.workspace import Paths
from psp_assets.defs import ranges
from psp_assets.defs.partitions import platform_partitions
from psp_assets.defs.plugins.assets import DEPLOY_POOL, GROUP, deploy_record, run_deploy
from psp_assets.defs.plugins.rollout_gate import PAYMENT_GATE, RESUME_TAG, gate_check, verdict_table
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
    required_resource_keys={"io_manager", "workspace", "php", "ledger", "alerts"},
    check_specs=[PAYMENT_GATE],
)
def fleet_rollout(context: dg.AssetExecutionContext, config: RolloutPolicy) -> Iterator[Any]:
    """Which release every store of this platform serves after the last fleet rollout. The latest
    built_artifact of every client enabling the platform goes out wave by wave (canary first, then growing
    waves), each deploy with its health gate and rollback, each recorded as a deployed_store
    materialization. A wave whose share of failed deploys passes the limit stops the rollout: later waves
    are not touched and keep their release. A wave of clients with payment analysis on is then judged on
    its payments before the next one (check payment_kpis_after_switch): a store whose KPIs got worse is
    rolled back to the release live before and the rollout stops."""
    platform = context.partition_key
    workspace: PspWorkspace = context.resources.workspace
    php: PhpResource = context.resources.php
    handles: JsonHandleIOManager = context.resources.io_manager
    paths = workspace.paths
    fleet = paths.fleet()
    clients = {cid: loaded.config for cid, loaded in fleet.clients.items()}
    enabling = [c for c, loaded in sorted(fleet.clients.items()) if platform in loaded.config.enabled_platforms()]
    keys = [f"{c}|{platform}" for c in enabling]
    built = {key: handle for key in keys if (handle := handles.read("built_artifact", key))}
    where = state_path(paths.data_dir, platform)
    held = RolloutState.load(where)
    resuming = context.run.tags.get(RESUME_TAG)
    if resuming and (held is None or held.rollout_id != resuming or held.status != "holding"):
        raise dg.Failure(
            f"{platform}: rollout {resuming} is not holding (state: {held.status if held else 'none'} "
            f"{held.rollout_id if held else ''}); nothing to resume",
            allow_retries=False,
        )
    if resuming and held is not None:
        state = held
        policy = WavePolicy(**state.policy)
        waves = state.waves
        if changed := [k for k, r in state.releases.items() if k in built and built[k].release_id != r]:
            context.log.warning(f"{platform}: rebuilt since the rollout began: {', '.join(changed)}")
        built = {k: built[k] for k in state.releases if k in built and built[k].release_id == state.releases[k]}
    else:
        policy = WavePolicy(config.canary, config.growth, config.max_failure_share)
        canaries = [f"{c}|{platform}" for c in config.canaries]
        if missing := [c for c in canaries if c not in built]:
            raise dg.Failure(
                f"{platform} rollout: canaries {', '.join(missing)} have no built_artifact (or do not enable "
                f"{platform}); choose among {', '.join(sorted(built)) or 'none'}",
                allow_retries=False,
            )
        waves = plan_waves(list(built), policy, canaries)
        if held is not None and held.status == "holding":
            context.log.warning(f"{platform}: rollout {held.rollout_id} was holding; this rollout replaces it")
            held.status = "superseded"
            held.save(where.with_name(f"{held.rollout_id}.json"))
        state = RolloutState(
            platform=platform,
            rollout_id=context.run.run_id,
            waves=waves,
            releases={k: built[k].release_id for k in built},
            policy={"canary": policy.canary, "growth": policy.growth, "max_failure_share": policy.max_failure_share},
            stores_planned=sum(len(_targets(built[k], platform)) for k in built),
        )
    state.runs.append(context.run.run_id)
    wave_of = {key: number for number, wave in enumerate(waves, start=1) for key in wave}
    rows: dict[str, list[StoreVersion]] = {}
    # yielded after the rollout, before its verdict: events only logged are lost when the step then fails
    deploy_events: list[dg.AssetMaterialization | dg.AssetObservation] = []
    # a wave's stores deploy side by side, as many at once as the psp_deploy pool allows; what each deploy
    # records is kept per partition and put in wave order when its wave is done, however they finished
    deployed: dict[str, dg.AssetMaterialization | dg.AssetObservation] = {}
    switched: dict[str, list[dict[str, Any]]] = {}
    workers = deploy_slots(context.instance)
    context.log.info(f"{platform}: each wave deploys up to {workers} stores at once (pool {DEPLOY_POOL})")
    # one template load per platform and one SSH connection per store host for the whole rollout
    cache, connections = TemplateCache(), SftpPool()
    verdicts: list[StoreVerdict] = []  # every store judged in this run (the last wave decides)
    decision: WaveDecision | None = None
    rolled_back: dict[str, Any] = {}

    def deploy(key: str) -> tuple[bool, str]:
        handle = built[key]
        try:
            artifact = handle.artifact()
            client_config = handle.config
            deployments = run_deploy(
                context,
                workspace.lineage_paths(handle),
                client_config,
                platform,
                artifact,
                php,
                cache,
                connections,
                log_prefix=f"{key} ",
                config_file=handle.config_path,
            )
        except PspError as exc:
            rows[key] = [StoreVersion(key, wave_of[key], "failed", "", detail=str(exc))]
            return False, "unchanged"
        records, metadata = deploy_record(handle, artifact, deployments)
        targets = [t.model_dump() for t in records]
        ok = all(d.ok for d in deployments)
        event = dg.AssetMaterialization if ok else dg.AssetObservation  # as deployed_store records a failure
        deployed[key] = event(
            asset_key="deployed_store", partition=key, metadata={**metadata, "rollout_wave": wave_of[key]}
        )
        switched_at = datetime.now(UTC)
        switched[key] = []
        for d in deployments:
            if d.ok and not d.noop and d.deployed_version:
                client_id = key.split("|")[0]
                analysed = client_config.rollout_analysis.enabled
                switch = Switch(client_id, platform, d.target, switched_at, d.deployed_version, d.previous_version,
                                wave_of[key])  # fmt: skip
                switched[key].append({**switch.as_dict(), "analysed": analysed, "rolled_back": False})
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

    def hosts(key: str) -> frozenset[str]:
        """The store hosts a partition deploys to: two deploys to one host never run at once."""
        return store_hosts(built[key].config, platform)

    with connections:
        report = None
        start = state.next_wave
        if resuming:
            verdicts, decision = evaluate(context.resources.ledger.ledger(), state, clients, datetime.now(UTC))
            state.verdicts = [v.as_dict() for v in verdicts]
            state.decision = decision.summary
            context.log.info(f"{platform} wave {state.analysed_wave}: {decision.action}: {decision.summary}")
            if decision.action == "roll back":
                rolled_back = _roll_back(context, state, decision, built, clients, php, cache, connections, rows)
                state.status = "stopped"
            elif decision.action == "hold":
                start = len(waves)  # nothing new is deployed while the wave waits
        if state.status == "holding" and not (decision and decision.action == "hold"):
            for index in range(start, len(waves)):
                # earlier waves are empty here: the report numbers this wave as the plan does
                later = [[] for _ in range(index)] + waves[index:]
                report = roll_out(later, policy, deploy, stop_after=index + 1, workers=workers, hosts=hosts)
                for key in waves[index]:
                    state.switches.extend(switched.pop(key, []))
                    if key in deployed:
                        deploy_events.append(deployed.pop(key))
                state.next_wave = index + 1
                state.analysed_wave = index + 1
                if report.stopped:
                    state.status = "stopped"
                    break
                if state.wave_switches(index + 1):  # judged on payments before the next wave
                    judged, decision = evaluate(context.resources.ledger.ledger(), state, clients, datetime.now(UTC))
                    verdicts += judged
                    state.verdicts = [v.as_dict() for v in judged]
                    state.decision = decision.summary
                    break
            else:
                state.status = "done"
            if state.status == "holding" and state.next_wave >= len(waves) and not state.wave_switches():
                state.status = "done"
    state.save(where)

    for key in keys:  # earlier runs' waves, not reached, or never built: what they serve now
        if key in rows:
            continue
        live = _live_versions(context.instance, key)
        handle = built.get(key)
        settings = handle.config.platform(platform) if handle else None
        names = [t.name for t in settings.targets] if settings else sorted(live)
        number = wave_of.get(key)
        status = "not built" if not handle else "deployed" if number and number <= state.next_wave else "not reached"
        if status == "deployed" and state.status != "stopped" and number == state.analysed_wave:
            status = "deployed, payments under analysis"
        rows[key] = [StoreVersion(f"{key} {n}", number, status, live.get(n, "")) for n in names] or [
            StoreVersion(key, number, status, "")
        ]
    table = [row for key in sorted(rows, key=lambda k: (wave_of.get(k, len(waves) + 1), k)) for row in rows[key]]
    if report is not None and report.stopped:
        reason, stopped = report.reason, True
    elif decision is not None and decision.action == "roll back":
        reason, stopped = f"wave {state.analysed_wave} stopped by payment KPIs: {decision.summary}", True
    elif state.status == "holding":
        reason, stopped = f"wave {state.analysed_wave} holding for its payment analysis: {state.decision}", False
    else:
        reason, stopped = f"all {len(waves)} waves deployed", False
    summary = {
        "platform": platform,
        "rollout_id": state.rollout_id,
        "status": state.status,
        "stopped": stopped,
        "reason": reason,
        "policy": state.policy,
        "waves": [
            {"wave": w.number, "plugins": w.items, "failed": w.failed, "failure_share": round(w.failure_share, 3)}
            for w in (report.waves if report else [])
            if w.items
        ],
        "stores": [row.as_dict() for row in table],
        "payment_verdicts": state.verdicts,
    }
    out = paths.data_dir / "rollouts" / platform / f"{context.run.run_id}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    metadata = {
        "result": reason,
        "status": state.status,
        "waves": state.next_wave,
        "waves_planned": len(waves),
        "stores": dg.MetadataValue.md(versions_markdown(table)),
        "rollout": dg.MetadataValue.json(summary),
        "report_path": str(out),
    }
    if verdicts:
        metadata["payment_verdicts"] = verdict_table(verdicts)
        for key in sorted({f"{v.client_id}|{v.platform}" for v in verdicts}):
            mine = [v for v in verdicts if f"{v.client_id}|{v.platform}" == key]
            observed: dict[str, Any] = {"payment_verdicts": verdict_table(mine), "rollout_id": state.rollout_id}
            if key in rolled_back:
                observed.update(rolled_back[key])
            deploy_events.append(dg.AssetObservation(asset_key="deployed_store", partition=key, metadata=observed))
    yield from deploy_events
    if decision is not None:
        yield gate_check(state, verdicts, decision)
    else:
        yield dg.AssetCheckResult(
            check_name=PAYMENT_GATE.name,
            passed=True,
            metadata={"decision": "not analysed", "reason": "no store of this run's waves has payment analysis on"},
        )
    if stopped:
        yield dg.AssetObservation(asset_key=context.asset_key, partition=platform, metadata=metadata)
        raise dg.Failure(description=f"{platform} rollout stopped: {reason}", metadata=metadata, allow_retries=False)
    yield dg.MaterializeResult(metadata=metadata)


def deploy_slots(instance: dg.DagsterInstance) -> int:
    """Deploys a fleet rollout runs at once: the psp_deploy pool's limit (`dagster instance concurrency set
    psp_deploy N`, else the instance's pools.default_limit); without one, $PSP_DEPLOY_WORKERS (4)."""
    limit = ranges.pool_limit(instance, DEPLOY_POOL)
    if limit is None:
        limit = ranges.default_pool_limit(instance)
    return max(1, min(limit, MAX_WORKERS)) if limit else deploy_workers()


def _targets(handle: BuiltHandle, platform: str) -> list[str]:
    settings = handle.config.platform(platform)
    return [t.name for t in settings.targets] if settings else []


def _deploy_facts(
    paths: Paths, config: ClientConfig, platform: str, handle: BuiltHandle | None, cache: TemplateCache
) -> DeployFacts:
    """What the rollback's health gate needs: the deploy facts of the built artifact (from the plan when
    its manifest predates them, or when the partition has no built artifact recorded)."""
    recorded = handle.artifact().deploy if handle is not None else None
    return recorded or plan_plugin(paths, config, platform, cache).deploy_facts()


def _roll_back(
    context: dg.AssetExecutionContext,
    state: RolloutState,
    decision: WaveDecision,
    built: dict[str, BuiltHandle],
    clients: dict[str, Any],
    php: PhpResource,
    cache: TemplateCache,
    connections: SftpPool,
    rows: dict[str, list[StoreVersion]],
) -> dict[str, dict[str, Any]]:
    """Roll every failing store back to the release live before its switch, mark the release there with
    the KPI evidence, and alert. Returns, per partition, what deployed_store records of it."""
    workspace: PspWorkspace = context.resources.workspace
    platform = state.platform
    done = {}
    recorded: dict[str, dict[str, Any]] = {}
    switches = {(s.client_id, s.target): s for s in state.wave_switches()}
    for verdict in decision.failing:
        key = f"{verdict.client_id}|{platform}"
        switch = switches[(verdict.client_id, verdict.target)]
        handle = built.get(key)
        config = handle.config if handle else clients[verdict.client_id]
        paths = workspace.lineage_paths(handle) if handle else workspace.paths
        try:
            facts = _deploy_facts(paths, config, platform, handle, cache)
        except PspError as exc:
            result = Deployment(verdict.target, switch.release, error=f"{verdict.store}: rollback not attempted: {exc}")
        else:
            run_id = context.run.tags.get("dagster/root_run_id") or context.run.run_id
            result = roll_back_target(
                paths,
                config,
                platform,
                verdict.target,
                switch.release,
                verdict,
                php.runtime,
                secret=lambda name: dg.EnvVar(name).get_value(),
                facts=facts,
                connections=connections,
                # the store lock's holder, as the deploy names it: a retry of this run takes its lock over
                holder=f"run {run_id} {key}|{verdict.target}",
            )
        for step in result.steps:
            (context.log.info if step.ok else context.log.error)(f"{verdict.store}: {step.step}: {step.detail}")
        if result.error:
            context.log.error(f"{verdict.store}: {result.error}")
        done[verdict.store] = result
        for s in state.switches:
            if (s["client_id"], s["target"], s["wave"]) == (verdict.client_id, verdict.target, switch.wave):
                s["rolled_back"] = result.rolled_back
        target = {
            "target": verdict.target,
            "deployed_version": result.deployed_version,
            "previous_version": switch.release,
            "health": result.health,
            "rolled_back": result.rolled_back,
            "noop": False,
            "error": result.error,
            "steps": [f"{s.step}: {'ok' if s.ok else 'FAILED'} {s.detail}".strip() for s in result.steps],
            "reason": f"payment KPIs: {verdict.evidence()}",
        }
        # not `targets`: the alert sensors would announce a failed deploy on top of the rollback's own alert
        recorded.setdefault(key, {"rollback_targets": [], "rolled_back_by": "payment analysis"})
        recorded[key]["rollback_targets"].append(target)
        status = "rolled back" if result.rolled_back and not result.error else "failed"
        rows.setdefault(key, []).append(
            StoreVersion(
                verdict.store, switch.wave, status, result.deployed_version or "", switch.release, verdict.evidence()
            )
        )
    alerts = context.resources.alerts
    alert = rollback_alert(
        platform, decision.failing, done, context.run.run_id, context.job_name, alerts.webserver_base_url or None
    )
    for delivery in alerts.send(alert):
        context.log.info(f"alert {alert.dedupe_key}: {delivery.__dict__}")
    return {k: {**v, "rollback_targets": dg.MetadataValue.json(v["rollback_targets"])} for k, v in recorded.items()}
