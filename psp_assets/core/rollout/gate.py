"""The payment gate between rollout waves: the state of a rollout waiting for its analysis, the analysis
of its last wave from the ledger, the rollback of the stores that failed it, and the alert.

A rollout whose wave switched stores with payment analysis on does not wait inside its run: it writes
its state (PSP_DATA_DIR/rollouts/<platform>/state.json) and ends. A sensor evaluates the held wave at each
planned look and starts the rollout again once there is a decision: next wave, or roll back and stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from psp_assets.core.alerts import Alert, run_link
from psp_assets.core.config.model import ClientConfig, RolloutAnalysis
from psp_assets.core.deploy.release import (
    Deployment,
    HealthCheck,
    Step,
    StoreFS,
    current_release,
    folder_live_before,
    live_folder,
    previous_live_folder,
    read_history,
    releases_dir_for,
    roll_back_to_previous,
    stored_manifest,
    verify_tree,
)
from psp_assets.core.deploy.stores import open_store, store_health
from psp_assets.core.errors import DeployError, PspError
from psp_assets.core.package import DeployFacts
from psp_assets.core.reconciliation.ledger import Ledger
from psp_assets.core.rollout.analysis import StoreVerdict, Switch, WaveDecision, analyse, decide

Status = Literal["holding", "done", "stopped", "superseded"]


def state_path(data_dir: Path, platform: str) -> Path:
    return data_dir / "rollouts" / platform / "state.json"


@dataclass
class RolloutState:
    """A platform's rollout across runs: its plan, the stores switched so far, and the last analysis."""

    platform: str
    rollout_id: str  # the run that planned it
    waves: list[list[str]]  # client|platform keys, as planned
    releases: dict[str, str]  # key -> release id the rollout deploys
    policy: dict[str, Any]
    stores_planned: int  # store targets in the rollout: the false-rollback budget is shared by them
    next_wave: int = 0  # index of the next wave to deploy
    analysed_wave: int | None = None  # wave number (1-based) under analysis
    status: Status = "holding"
    switches: list[dict[str, Any]] = field(default_factory=list)  # Switch.as_dict() + "analysed", "rolled_back"
    verdicts: list[dict[str, Any]] = field(default_factory=list)  # StoreVerdict.as_dict() of the last analysis
    decision: str = ""
    runs: list[str] = field(default_factory=list)
    updated_at: str = ""

    @classmethod
    def load(cls, path: Path) -> RolloutState | None:
        if not path.is_file():
            return None
        return cls(**json.loads(path.read_text()))

    def save(self, path: Path) -> None:
        """Written whole into a temporary file and renamed: a reader never sees half a state."""
        self.updated_at = datetime.now(UTC).isoformat()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))
        os.replace(tmp, path)

    def wave_switches(self, wave: int | None = None) -> list[Switch]:
        wave = self.analysed_wave if wave is None else wave
        return [
            Switch.from_dict({k: v for k, v in s.items() if k not in ("analysed", "rolled_back")})
            for s in self.switches
            if s["wave"] == wave and s.get("analysed") and not s.get("rolled_back")
        ]

    def verdict_objects(self) -> list[StoreVerdict]:
        return [StoreVerdict.from_dict(v) for v in self.verdicts]


def settings_for(clients: Mapping[str, ClientConfig], client_ids: Sequence[str]) -> dict[str, RolloutAnalysis]:
    """Each client's analysis settings; a client whose config is gone keeps the defaults, switched on."""
    return {c: clients[c].rollout_analysis if c in clients else RolloutAnalysis(enabled=True) for c in set(client_ids)}


def evaluate(
    ledger: Ledger, state: RolloutState, clients: Mapping[str, ClientConfig], now: datetime
) -> tuple[list[StoreVerdict], WaveDecision]:
    """The held wave's verdicts at the last planned look before `now`, and what the rollout does next."""
    switches = state.wave_switches()
    if not switches:
        return [], WaveDecision("proceed", "no store of this wave is analysed")
    settings = settings_for(clients, [s.client_id for s in switches])
    since = min(s.switched_at - timedelta(minutes=settings[s.client_id].baseline_minutes) for s in switches)
    events = ledger.store_authorizations(state.platform, since, now)
    upgraded = [(s["client_id"], s["platform"], s["target"]) for s in state.switches]
    verdicts = analyse(events, switches, upgraded, settings, now, state.stores_planned)
    return verdicts, decide(verdicts, settings)


# --- rolling a store back ---------------------------------------------------------------------------


def restore_previous_release(
    fs: StoreFS,
    live: str,
    target: str,
    bad_release: str,
    evidence: StoreVerdict,
    health: HealthCheck,
    holder: str | None = None,
) -> Deployment:
    """Put the release the store's history says was live before `bad_release` back on the store, re-verify
    it with the deploy's own health gate, and mark `bad_release` there with the KPI evidence only when the
    store is healthy again (core/deploy/release.py: roll_back_to_previous, under the store's lease lock).

    A store that no longer serves `bad_release` is left alone, and so is one whose earlier release is not
    complete on disk: a rollback never switches to a folder that differs from its manifest."""
    releases = releases_dir_for(live)
    serving = current_release(fs, live)
    history = read_history(fs, live)
    if serving != bad_release and (
        serving is None or folder_live_before(history, bad_release) != live_folder(fs, live)
    ):
        return Deployment(
            target,
            bad_release,
            previous_version=serving,
            deployed_version=serving,
            error=f"{target}: serves {serving or 'no managed release'}, not {bad_release}; left alone",
        )
    # serving something else, the store is on the release live before: an earlier attempt of this rollback
    # switched it and ended before it was recorded and marked; roll_back_to_previous finishes it
    previous = previous_live_folder(history, live_folder(fs, live)) if serving == bad_release else live_folder(fs, live)
    if previous is None:
        return Deployment(
            target,
            bad_release,
            previous_version=serving,
            deployed_version=serving,
            error=f"{target}: the store's history names no release live before {bad_release}; left on it "
            "(roll back by hand)",
        )
    manifest = stored_manifest(fs, releases, previous)
    problems = verify_tree(fs, posixpath.join(releases, previous), manifest) if manifest else ["no manifest kept"]
    if problems:
        return Deployment(
            target,
            bad_release,
            previous_version=serving,
            deployed_version=serving,
            steps=[Step("verify previous", False, "; ".join(problems[:5]))],
            error=f"{target}: previous release {previous} is not complete on the store; left on {serving}",
        )
    try:
        result = roll_back_to_previous(
            fs,
            live,
            f"payment KPIs worse after the switch: {evidence.evidence()}"[:500],
            evidence=evidence.as_dict(),
            health=health,
            holder=holder,
            target_name=target,
            mark_bad=True,
            from_release=bad_release,
        )
    except DeployError as exc:
        return Deployment(target, bad_release, previous_version=serving, deployed_version=serving, error=str(exc))
    with contextlib.suppress(OSError, EOFError):  # a dead connection keeps roll_back_to_previous's read-back
        result.deployed_version = current_release(fs, live)  # what the store serves, read back
    return result


def rollback_alert(
    platform: str,
    failing: Sequence[StoreVerdict],
    rollbacks: Mapping[str, Deployment],
    run_id: str,
    job_name: str,
    base_url: str | None = None,
) -> Alert:
    """One alert for a wave stopped by its payments: every failing store with its numbers and outcome."""
    lines = []
    for verdict in failing:
        done = rollbacks.get(verdict.store)
        outcome = (
            f"rolled back, serves {done.deployed_version}"
            if done and done.rolled_back and not done.error
            else f"NOT rolled back: {done.error if done else 'no rollback attempted'}"
        )
        lines.append(f"{verdict.store}: {verdict.evidence()} ({outcome})")
    partitions = sorted({f"{v.client_id}|{v.platform}" for v in failing})
    return Alert(
        kind="kpi_rollback",
        severity="critical",
        title=f"Rollout stopped by payment KPIs: {platform} ({len(failing)} store(s) rolled back)",
        summary="\n".join(lines)[:1500],
        facts=(
            ("platform", platform),
            ("partition", ", ".join(partitions)),
            ("stores", ", ".join(v.store for v in failing)),
            ("payments after switch", ", ".join(str(v.payments_after) for v in failing)),
            ("job", job_name),
            ("run", run_id),
        ),
        link=run_link(base_url, run_id),
        dedupe_key=f"kpi_rollback|{platform}|{run_id}",
    )


def roll_back_target(
    paths: Any,
    config: ClientConfig,
    platform: str,
    target_name: str,
    bad_release: str,
    evidence: StoreVerdict,
    php: Any,
    secret: Any,
    facts: DeployFacts,
    connections: Any = None,
    holder: str | None = None,
) -> Deployment:
    """Roll one store target back from `bad_release` to the release its history says was live before,
    with the deploy's own health gate (manifest, lint on local stores, the HTTP health route when
    configured, all from the deploy `facts` of the plugin's artifact); `bad_release` is marked on that
    store with the KPI evidence only when it is healthy again."""

    settings = config.platform(platform)
    target = next((t for t in settings.targets if t.name == target_name), None) if settings else None
    where = f"{config.id}|{platform} target {target_name}"
    if target is None:
        return Deployment(target_name, bad_release, error=f"{where}: no longer in the client config; left alone")
    try:
        with open_store(paths, target, secret, where, connections) as fs:
            health = store_health(fs, fs, facts, target, php, where)
            return restore_previous_release(fs, target.path, target_name, bad_release, evidence, health, holder)
    except (PspError, OSError, EOFError) as exc:
        return Deployment(
            target_name, bad_release, error=f"{where}: rollback did not complete ({exc}); check what the store serves"
        )
