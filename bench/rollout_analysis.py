"""Simulation: does the payment analysis of rollout waves catch bad releases, and leave good ones alone?

    .venv/bin/python bench/rollout_analysis.py [--stores 20] [--no-change 100] [--faulty 20] [--seed 19]

A fleet of stores of one platform produces ledger traffic (authorization attempts with their outcome,
decline reason, PSP latency and the store's webhook outcome) at a given rate: about 85 % authorized,
declines spread over five reasons, about 2 % PSP errors, lognormal latency with a slow tail, a few webhook
failures. Each simulated release rolls out in waves (canary 1, doubling); after each wave the analysis of
psp_assets/core/rollout/analysis.py judges the wave at its planned looks, exactly as the sensor would, and
the rollout goes on, holds, or rolls back. A release either changes nothing or, from its switch on,
halves the authorization rate, doubles PSP errors, breaks webhook application, or adds 2 s to the P95.

Reports per fault and traffic level (payments per hour per store) the detection rate and the time from
the canary's switch to the rollback, and the false-rollback rate over releases that change nothing.
Targets: false rollbacks under 1 %; a halved authorization rate caught within the window at 200/h.
Prints a table, and the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from psp_assets.core.config.model import RolloutAnalysis
from psp_assets.core.rollout.analysis import Traffic, decide, judge, look_time
from psp_assets.core.rollout.waves import WavePolicy, plan_waves

EPOCH = datetime(2026, 11, 2, tzinfo=UTC)
REASONS = ("insufficient_funds", "do_not_honor", "expired_card", "suspected_fraud", "authentication_failed")
REASON_WEIGHTS = np.array([0.45, 0.25, 0.10, 0.08, 0.12])
FAULTS = ("none", "halve_authorization", "double_psp_errors", "break_webhooks", "p95_plus_2s")
APPROVED, DECLINED, ERROR = 0, 1, 2
NO_WEBHOOK, APPLIED, FAILED = -1, 0, 1


@dataclass(frozen=True)
class Profile:
    """A store's normal payment behaviour (merchants differ)."""

    authorization_rate: float
    error_rate: float
    webhook_failure_rate: float
    latency_median_ms: float


def profiles(n: int, rng: np.random.Generator) -> list[Profile]:
    return [
        Profile(
            float(rng.uniform(0.82, 0.88)),
            float(rng.uniform(0.015, 0.025)),
            float(rng.uniform(0.002, 0.01)),
            float(rng.uniform(280, 420)),
        )
        for _ in range(n)
    ]


@dataclass
class StoreEvents:
    """One store's authorization attempts, in time order (minutes since the simulation's start)."""

    t: np.ndarray
    outcome: np.ndarray
    reason: np.ndarray  # index into REASONS, -1 when not declined
    latency: np.ndarray
    webhook: np.ndarray

    def __post_init__(self) -> None:
        self.cum = {
            "approved": np.concatenate([[0], np.cumsum(self.outcome == APPROVED)]),
            "errors": np.concatenate([[0], np.cumsum(self.outcome == ERROR)]),
            "webhooks": np.concatenate([[0], np.cumsum(self.webhook != NO_WEBHOOK)]),
            "webhook_failures": np.concatenate([[0], np.cumsum(self.webhook == FAILED)]),
        }
        self.cum_reasons = [np.concatenate([[0], np.cumsum(self.reason == i)]) for i in range(len(REASONS))]

    def traffic(self, since: float, until: float) -> Traffic:
        lo, hi = np.searchsorted(self.t, [since, until])
        c = {k: int(v[hi] - v[lo]) for k, v in self.cum.items()}
        declines = {r: int(cum[hi] - cum[lo]) for r, cum in zip(REASONS, self.cum_reasons, strict=True)}
        return Traffic(
            attempts=int(hi - lo),
            approved=c["approved"],
            errors=c["errors"],
            declines={r: n for r, n in declines.items() if n},
            webhooks=c["webhooks"],
            webhook_failures=c["webhook_failures"],
            latencies=self.latency[lo:hi],
        )


def generate(
    profile: Profile, per_hour: float, minutes: float, switch_at: float, fault: str, rng: np.random.Generator
) -> StoreEvents:
    """Poisson arrivals at `per_hour`; from `switch_at` on, the fault changes the store's behaviour."""
    n = int(rng.poisson(per_hour * minutes / 60))
    t = np.sort(rng.uniform(0, minutes, n))
    after = t >= switch_at
    auth = np.full(n, profile.authorization_rate)
    err = np.full(n, profile.error_rate)
    hook_fail = np.full(n, profile.webhook_failure_rate)
    if fault == "halve_authorization":
        auth[after] /= 2
    elif fault == "double_psp_errors":
        err[after] *= 2
    elif fault == "break_webhooks":
        hook_fail[after] = 0.95
    u = rng.uniform(size=n)
    outcome = np.where(u < err, ERROR, np.where(u < err + auth * (1 - err), APPROVED, DECLINED))
    reason = np.where(outcome == DECLINED, rng.choice(len(REASONS), size=n, p=REASON_WEIGHTS), -1)
    # lognormal body, 3 % slow tail (acquirer timeouts and 3-D Secure round trips)
    latency = rng.lognormal(np.log(profile.latency_median_ms), 0.45, n)
    latency = np.where(rng.uniform(size=n) < 0.03, latency * rng.uniform(2, 5, n), latency)
    if fault == "p95_plus_2s":
        latency = np.where(after & (rng.uniform(size=n) < 0.10), latency + 2000, latency)
    webhook = np.where(outcome == ERROR, NO_WEBHOOK, np.where(rng.uniform(size=n) < hook_fail, FAILED, APPLIED))
    return StoreEvents(t, outcome, reason, np.round(latency), webhook)


def ledger_rows(store: tuple[str, str, str], events: StoreEvents, prefix: str, start: datetime = EPOCH) -> pd.DataFrame:
    """The store's attempts as psp_payment_events rows (store and webhook_outcome included), the
    simulation's minute 0 at `start`."""
    client_id, platform, target = store
    n = events.t.size
    outcome = np.array(["approved", "declined", "error"])[events.outcome]
    ids = [f"{prefix}-{i}" for i in range(n)]
    return pd.DataFrame(
        {
            "event_id": ids,
            "payment_id": ids,
            "client_id": client_id,
            "platform": platform,
            "event_type": "authorization",
            "outcome": outcome,
            "status": np.select([outcome == "approved", outcome == "declined"], ["authorized", "failed"], "pending"),
            "decline_reason": [REASONS[r] if r >= 0 else None for r in events.reason],
            "latency_ms": events.latency.astype(int),
            "occurred_at": [start + timedelta(minutes=float(m)) for m in events.t],
            "store": target,
            "webhook_outcome": np.array(["applied", "failed", None], dtype=object)[events.webhook],
        }
    )


@dataclass
class ReleaseOutcome:
    fault: str
    per_hour: float
    rolled_back: list[str]  # stores
    detected_after_minutes: float | None  # from the canary's switch to the rollback decision
    completed: bool  # every wave passed
    stuck: bool  # a hold outlasted the horizon


def simulate_release(
    fault: str,
    per_hour: float,
    stores: int,
    settings: RolloutAnalysis,
    rng: np.random.Generator,
    max_hold_hours: float = 12,
) -> ReleaseOutcome:
    names = [("client", "woocommerce", f"store-{i:03d}") for i in range(stores)]
    waves = plan_waves(list(range(stores)), WavePolicy())
    fleet_profiles = profiles(stores, rng)
    baseline = settings.baseline_minutes
    horizon = baseline + len(waves) * (max_hold_hours * 60 + settings.window_minutes)
    # every store's traffic, with the fault from its (not yet known) switch: generated per wave as it switches
    events: dict[int, StoreEvents] = {}
    unswitched = {i: generate(fleet_profiles[i], per_hour, horizon, horizon + 1, "none", rng) for i in range(stores)}
    settings_for = {"client": settings}
    switch_at, first_switch = float(baseline), float(baseline)
    step = settings.window_minutes / settings.looks
    for wave in waves:
        for i in wave:
            # same store, same profile: the release changes its behaviour from the switch on
            events[i] = generate(fleet_profiles[i], per_hour, horizon, switch_at, fault, rng)
        control = [i for i in range(stores) if i not in events]
        k = 1
        while True:
            now = switch_at + k * step
            if now > switch_at + max_hold_hours * 60 or now > horizon:
                return ReleaseOutcome(fault, per_hour, [], None, False, True)
            as_of = now
            pooled_before, pooled_after = Traffic(), Traffic()
            for i in control:
                pooled_before += unswitched[i].traffic(switch_at - baseline, switch_at)
                pooled_after += unswitched[i].traffic(switch_at, as_of)
            verdicts = [
                judge(
                    names[i],
                    EPOCH + timedelta(minutes=switch_at),
                    EPOCH + timedelta(minutes=now),
                    events[i].traffic(switch_at - baseline, switch_at),
                    events[i].traffic(switch_at, as_of),
                    pooled_before,
                    pooled_after,
                    len(control),
                    settings,
                    stores,
                )
                for i in wave
            ]
            decision = decide(verdicts, settings_for)
            if decision.action == "roll back":
                failed = [v.store for v in decision.failing]
                return ReleaseOutcome(fault, per_hour, failed, now - first_switch, False, False)
            if decision.action == "proceed":
                switch_at = now
                break
            k += 1
    return ReleaseOutcome(fault, per_hour, [], None, True, False)


def check_looks(settings: RolloutAnalysis) -> None:
    """The simulation's look times are the core's (a sanity check of the quantization)."""
    switched = EPOCH
    step = timedelta(minutes=settings.window_minutes / settings.looks)
    assert look_time(switched, switched + step, settings) == switched + step


def run(args: argparse.Namespace) -> dict:
    settings = RolloutAnalysis(enabled=True)
    check_looks(settings)
    rng = np.random.default_rng(args.seed)
    rows = []
    false_rollbacks = releases_no_change = 0
    started = time.perf_counter()
    for per_hour in args.levels:
        for fault in FAULTS:
            count = args.no_change if fault == "none" else args.faulty
            outcomes = [simulate_release(fault, per_hour, args.stores, settings, rng) for _ in range(count)]
            detected = [o for o in outcomes if o.rolled_back]
            times = sorted(o.detected_after_minutes for o in detected if o.detected_after_minutes is not None)
            row = {
                "fault": fault,
                "per_hour": per_hour,
                "releases": count,
                "rolled_back": len(detected),
                "rate": round(len(detected) / count, 4),
                "median_minutes": float(np.median(times)) if times else None,
                "max_minutes": max(times) if times else None,
                "within_window": round(sum(t <= settings.window_minutes for t in times) / count, 4),
                "completed": sum(o.completed for o in outcomes),
                "stuck": sum(o.stuck for o in outcomes),
            }
            rows.append(row)
            if fault == "none":
                false_rollbacks += len(detected)
                releases_no_change += count
            print(
                f"{fault:20s} {per_hour:6.0f}/h  rolled back {len(detected):4d}/{count:<4d} ({row['rate']:6.1%})  "
                f"median {row['median_minutes'] or '-':>6} min  max {row['max_minutes'] or '-':>6} min  "
                f"within window {row['within_window']:6.1%}  completed {row['completed']:3d}  stuck {row['stuck']}",
                flush=True,
            )
    halved_200 = next((r for r in rows if r["fault"] == "halve_authorization" and r["per_hour"] == 200), None)
    return {
        "benchmark": "rollout_analysis",
        "stores": args.stores,
        "seed": args.seed,
        "settings": settings.model_dump(),
        "rows": rows,
        "false_rollback_rate": round(false_rollbacks / releases_no_change, 4) if releases_no_change else None,
        "no_change_releases": releases_no_change,
        "halved_authorization_caught_within_window_at_200": halved_200["within_window"] if halved_200 else None,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=int, default=20)
    parser.add_argument("--levels", type=float, nargs="+", default=[20, 50, 200, 1000])
    parser.add_argument("--no-change", type=int, default=100, help="releases that change nothing, per level")
    parser.add_argument("--faulty", type=int, default=20, help="releases per fault and level")
    parser.add_argument("--seed", type=int, default=19)
    result = run(parser.parse_args())
    caught = result["halved_authorization_caught_within_window_at_200"]
    print(
        f"false rollbacks {result['false_rollback_rate']:.2%} over {result['no_change_releases']} releases; "
        f"halved authorization caught within the window at 200/h: {'-' if caught is None else f'{caught:.0%}'}"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
