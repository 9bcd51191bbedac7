"""The payment gate of fleet rollouts in Dagster: the check that records each wave's verdicts, their table,
and the sensor that decides, look after look, when a held rollout goes on (core/rollout/gate.py)."""

from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg

from psp_assets.core.rollout.analysis import TABLE_COLUMNS, StoreVerdict, WaveDecision
from psp_assets.core.rollout.gate import RolloutState, evaluate, state_path
from psp_assets.core.templates.spec import PLATFORMS
from psp_assets.defs.plugins.jobs import fleet_rollout_job
from psp_assets.defs.reconciliation.resources import LedgerResource
from psp_assets.defs.resources import PspWorkspace

PAYMENT_GATE = dg.AssetCheckSpec(
    "payment_kpis_after_switch",
    asset="fleet_rollout",
    description="Every store switched by the rollout's last wave kept its payment KPIs (authorization rate, "
    "declines by reason, PSP errors, webhook failures, P95 latency) against its own baseline and the stores "
    "not upgraded yet. Fails when a store got worse; it was rolled back.",
)
RESUME_TAG = "psp/rollout_resume"


def verdict_table(verdicts: Sequence[StoreVerdict]) -> dg.MetadataValue:
    return dg.MetadataValue.table(
        records=[dg.TableRecord({k: str(v) for k, v in verdict.row().items()}) for verdict in verdicts],
        schema=dg.TableSchema(columns=[dg.TableColumn(name, "string") for name in TABLE_COLUMNS]),
    )


def gate_check(state: RolloutState, verdicts: Sequence[StoreVerdict], decision: WaveDecision) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=PAYMENT_GATE.name,
        asset_key="fleet_rollout",
        passed=decision.action != "roll back",
        # WARN: the rollout run sends the rollback's own alert (core/rollout_gate.rollback_alert), with every
        # store's numbers; an ERROR check would have check_failure_alerts send a second one
        severity=dg.AssetCheckSeverity.WARN,
        description=decision.summary[:1000],
        metadata={
            "wave": state.analysed_wave or 0,
            "decision": decision.action,
            "verdicts": verdict_table(verdicts),
            "stores": len(verdicts),
            "failed": ", ".join(v.store for v in decision.failing) or "none",
            "alert_kind": "kpi_rollback",
            "alert_summary": "; ".join(f"{v.store}: {v.evidence()}" for v in decision.failing)[:1500],
        },
    )


@dg.sensor(job=fleet_rollout_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def rollout_payment_gate_sensor(
    context: dg.SensorEvaluationContext, workspace: PspWorkspace, ledger: LedgerResource
) -> dg.SensorResult:
    """A rollout holding for its payment analysis waits here, not in a run: at each planned look the held
    wave is judged from the ledger, and once there is a decision (every store passed, or one failed) the
    rollout starts again to deploy the next wave or to roll the failing stores back. Keyed by rollout,
    wave and decision: one run per decision, however often the sensor looks."""
    paths = workspace.paths
    clients = {cid: loaded.config for cid, loaded in paths.fleet().clients.items()}
    requests, waiting = [], []
    for platform in PLATFORMS:
        state = RolloutState.load(state_path(paths.data_dir, platform))
        if state is None or state.status != "holding":
            continue
        _, decision = evaluate(ledger.ledger(), state, clients, datetime.now(UTC))
        if decision.action == "hold":
            waiting.append(f"{platform} wave {state.analysed_wave}: {decision.summary}")
            continue
        requests.append(
            dg.RunRequest(
                run_key=f"{state.rollout_id}:wave{state.analysed_wave}:{decision.action}",
                partition_key=platform,
                tags={RESUME_TAG: state.rollout_id},
            )
        )
        context.log.info(f"{platform} wave {state.analysed_wave}: {decision.action}: {decision.summary}")
    if requests:
        return dg.SensorResult(run_requests=requests)
    return dg.SensorResult(skip_reason="; ".join(waiting)[:1000] or "no rollout is holding for its payment analysis")
