"""The payment gate between rollout waves: the state of a rollout waiting for its analysis, the analysis
of its last wave from the ledger, the rollback of the stores that failed it, and the alert.

A rollout whose wave switched stores with payment analysis on does not wait inside its run: it writes
its state (PSP_DATA_DIR/rollouts/<platform>/state.json) and ends. A sensor evaluates the held wave at each
planned look and starts the rollout again once there is a decision: next wave, or roll back and stop.
"""

from __future__ import annotations

import json
import os
import posixpath
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from . import deploy as deploy_core
from .alerts import Alert, run_link
from .config import ClientConfig, RolloutAnalysis
from .deploy import Deployment, HealthCheck, Step, StoreFS, current_release, releases_dir_for, stored_manifest
from .deploy import verify_tree as _verify_tree
from .errors import PspError
from .ledger import Ledger
from .rollout_analysis import StoreVerdict, Switch, WaveDecision, analyse, decide

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
    fs: StoreFS, live: str, target: str, bad_release: str, previous: str | None, health: HealthCheck
) -> Deployment:
    """Put the release that was live before `bad_release` back on the store, re-verify it, and only then
    leave the decision to mark to the caller.

    The one place the rollout gate calls the deploy core. Until the store's append-only release history
    (issue 12) lands, "the release live before" is what the deploy recorded as previous, and this uses
    today's lock, switch and manifest helpers of core/deploy.py; at that merge this function becomes a
    call to the history's roll-back-to-previous.
    """
    result = Deployment(target=target, release_id=bad_release, previous_version=None)
    releases = releases_dir_for(live)
    lock, token = deploy_core._acquire_lock(fs, releases, result, deploy_core.STALE_LOCK_SECONDS)
    try:
        serving = current_release(fs, live)
        result.previous_version = serving
        result.deployed_version = serving
        if serving != bad_release:
            result.error = f"{target}: serves {serving or 'no managed release'}, not {bad_release}; left alone"
            return result
        if previous is None:
            result.error = f"{target}: no release was live before {bad_release}; left on it (roll back by hand)"
            return result
        manifest = stored_manifest(fs, releases, previous)
        problems = _verify_tree(fs, posixpath.join(releases, previous), manifest) if manifest else ["no manifest kept"]
        result.steps.append(Step("verify previous", not problems, "; ".join(problems[:5]) or f"{previous} intact"))
        if problems:
            result.error = f"{target}: previous release {previous} is not complete on the store; left on {serving}"
            return result
        started = time.monotonic()
        deploy_core._switch(fs, live, previous)
        result.steps.append(Step("rollback", True, f"{live} -> {previous}", round(time.monotonic() - started, 4)))
        result.rolled_back = True
        check = health(live, previous, manifest)
        result.steps.append(Step("re-verify", check.ok, check.detail))
        result.health = "healthy" if check.ok else "unhealthy"
        result.deployed_version = current_release(fs, live)  # what the store serves, read back
        if not check.ok:
            result.error = f"rolled back to {previous}, but it is unhealthy too: {check.detail}"
        return result
    finally:
        deploy_core._HELD_LOCKS.discard(token)
        fs.rmtree(lock)


def mark_release(fs: StoreFS, live: str, release: str, evidence: StoreVerdict) -> str:
    """Mark `release` bad on this store with the KPI evidence: no deploy puts it back there."""
    marker = posixpath.join(releases_dir_for(live), f"{release}.bad.json")
    document = {
        "reason": f"payment KPIs worse after the switch: {evidence.evidence()}"[:500],
        "at": time.time(),
        "by": "rollout payment analysis",
        "evidence": evidence.as_dict(),
    }
    fs.write_bytes(marker, json.dumps(document, default=str).encode())
    return marker


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
    previous: str | None,
    evidence: StoreVerdict,
    php: Any,
    secret: Any,
    cache: Any = None,
    connections: Any = None,
) -> Deployment:
    """Roll one store target back from `bad_release` to `previous` with the deploy's own health gate
    (manifest, lint on local stores, the HTTP health route when configured), then mark `bad_release` on
    that store with the KPI evidence, only when the store is healthy on `previous` again."""
    from . import pipeline  # the deploy pipeline imports much; only a rollback needs it

    settings = config.platform(platform)
    target = next((t for t in settings.targets if t.name == target_name), None) if settings else None
    where = f"{config.id}|{platform} target {target_name}"
    if target is None:
        return Deployment(target_name, bad_release, error=f"{where}: no longer in the client config; left alone")
    template = pipeline.template_for(paths, platform, cache)
    context = pipeline.render_context(template, config, pipeline.catalog_for(template, config, cache))
    route = (
        pipeline.render_string(template.spec.deploy.health_route, context)
        if template.spec.deploy.health_route
        else None
    )
    try:
        with pipeline.open_store(paths, target, secret, where, connections) as fs:
            checks = [pipeline.manifest_health(fs)]
            if isinstance(fs, pipeline.LocalFS) and template.spec.lint_globs:
                checks.append(pipeline.local_health(fs, php, template.spec.lint_globs))
            if isinstance(fs, pipeline.LocalFS) and template.spec.js_check_globs:
                checks.append(pipeline.js_health(fs, template.spec.js_check_globs))
            if target.health is not None:
                checks.append(pipeline.http_health(pipeline.gate_settings(target.health, route, where)))
            result = restore_previous_release(
                fs, target.path, target_name, bad_release, previous, pipeline.combine(*checks)
            )
            if result.rolled_back and not result.error:
                marker = mark_release(fs, target.path, bad_release, evidence)
                result.steps.append(Step("mark", True, f"{bad_release} marked bad here ({posixpath.basename(marker)})"))
            return result
    except (PspError, OSError, EOFError) as exc:
        return Deployment(
            target_name, bad_release, error=f"{where}: rollback did not complete ({exc}); check what the store serves"
        )
