"""Payment analysis of a rollout wave: did the release make a store's checkout worse?

For each store switched to a new release, its payment attempts in the PSP ledger after the switch are
compared with two references:

- its own baseline: the same store's attempts in the `baseline_minutes` before the switch;
- the control: the platform's stores not upgraded in this rollout, over the same two periods, so that a
  change the whole platform saw at that hour (a PSP incident, an evening peak of declines) is not blamed
  on the release (a difference-in-differences).

Every KPI becomes a share of "bad" attempts, so one test serves them all:

    authorization_rate     attempts not approved
    decline_rate:<reason>  attempts declined for that reason
    error_rate             attempts the PSP answered with an error
    webhook_failure_rate   webhooks the store did not apply
    p95_latency_ms         attempts slower than the store's baseline P95 (a quantile test: 5 % before)

The test is a one-sided two-proportion test on the log odds (Haldane's +0.5 keeps small counts finite),
replaced by Fisher's exact test wherever its p-value is small (the normal approximation overstates rare
events); against the control it is the difference of the two log-odds changes. A KPI fails only when the change is
material (worse than the client's threshold, in the KPI's own unit), significant against the baseline,
and, when the control has traffic, significant against the control too.

False rollbacks are bounded by Bonferroni: the client's `false_rollback_rate` is shared by every KPI of
every store in the rollout at every look, so the chance that a release changing nothing rolls back any
store is at most that rate. Looks are planned (`looks` per window): the analysis of a store at any moment
uses the traffic up to the last planned look, so a sensor ticking every minute spends no extra error.

Verdicts: `fail` (some KPI failed), `pass` (window over, enough payments, nothing failed), `inconclusive`
(fewer than `min_payments` attempts after or before the switch, or the window still open).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd

from psp_assets.core.config.model import RolloutAnalysis

Verdict = Literal["pass", "fail", "inconclusive"]
StoreId = tuple[str, str, str]  # (client_id, platform, store target)


@dataclass(frozen=True)
class Traffic:
    """One store's (or a pooled control's) authorization attempts in one period."""

    attempts: int = 0
    approved: int = 0
    errors: int = 0
    declines: Mapping[str, int] = field(default_factory=dict)  # reason -> count
    webhooks: int = 0  # webhooks sent to the store
    webhook_failures: int = 0
    latencies: np.ndarray = field(default_factory=lambda: np.empty(0))  # ms, of attempts that have one

    @classmethod
    def from_columns(
        cls,
        outcome: Sequence[str] | np.ndarray,
        decline_reason: Sequence[str | None] | np.ndarray,
        latency_ms: Sequence[float | None] | np.ndarray,
        webhook_outcome: Sequence[str | None] | np.ndarray,
    ) -> Traffic:
        outcome = np.asarray(outcome, dtype=object)
        declined = outcome == "declined"
        reasons = np.asarray(decline_reason, dtype=object)[declined]
        names, counts = np.unique(np.where(pd.isna(reasons), "unspecified", reasons).astype(str), return_counts=True)
        latency = pd.to_numeric(pd.Series(latency_ms, dtype=object), errors="coerce").to_numpy(dtype=float)
        webhook = np.asarray(webhook_outcome, dtype=object)
        return cls(
            attempts=int(outcome.size),
            approved=int(np.count_nonzero(outcome == "approved")),
            errors=int(np.count_nonzero(outcome == "error")),
            declines={str(n): int(c) for n, c in zip(names, counts, strict=True)},
            webhooks=int(np.count_nonzero((webhook == "applied") | (webhook == "failed"))),
            webhook_failures=int(np.count_nonzero(webhook == "failed")),
            latencies=latency[~np.isnan(latency)],
        )

    @classmethod
    def from_events(cls, events: pd.DataFrame) -> Traffic:
        """From ledger rows (Ledger.store_authorizations: outcome, decline_reason, latency_ms, webhook_outcome)."""
        return cls.from_columns(
            events["outcome"].to_numpy(),
            events["decline_reason"].to_numpy(),
            events["latency_ms"].to_numpy(),
            events["webhook_outcome"].to_numpy(),
        )

    def __add__(self, other: Traffic) -> Traffic:
        declines = dict(self.declines)
        for reason, count in other.declines.items():
            declines[reason] = declines.get(reason, 0) + count
        return Traffic(
            self.attempts + other.attempts,
            self.approved + other.approved,
            self.errors + other.errors,
            declines,
            self.webhooks + other.webhooks,
            self.webhook_failures + other.webhook_failures,
            np.concatenate([self.latencies, other.latencies]),
        )

    def p95(self) -> float:
        return float(np.quantile(self.latencies, 0.95, method="higher")) if self.latencies.size else math.nan

    def slower_than(self, limit: float) -> int:
        return int(np.count_nonzero(self.latencies > limit))


@dataclass(frozen=True)
class KpiComparison:
    """One KPI of one store: the values, the material change, the p-values and whether it failed."""

    kpi: str
    before: float
    after: float
    control_before: float | None
    control_after: float | None
    change: float  # worse is positive, in the KPI's unit (rate points, or ms for latency)
    margin: float  # the client's tolerated change
    p_baseline: float
    p_control: float | None  # None: no control with enough traffic
    alpha: float  # the per-test level after the multiple-comparison correction
    failed: bool

    def describe(self) -> str:
        if self.kpi == "p95_latency_ms":
            values = f"{self.before:.0f} ms -> {self.after:.0f} ms (+{self.change:.0f} ms, tolerated {self.margin:.0f})"
        else:
            values = (
                f"{self.before:.1%} -> {self.after:.1%} ({100 * self.change:+.1f} points, "
                f"tolerated {100 * self.margin:.1f})"
            )
        control = "no control" if self.p_control is None else f"p vs control {self.p_control:.2g}"
        return f"{self.kpi} {values}; p vs baseline {self.p_baseline:.2g}, {control}, level {self.alpha:.2g}"

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class StoreVerdict:
    client_id: str
    platform: str
    target: str
    verdict: Verdict
    reason: str
    window_complete: bool
    payments_before: int
    payments_after: int
    control_payments_after: int
    control_stores: int
    as_of: datetime | None  # the look the verdict is for; None before the first look
    comparisons: tuple[KpiComparison, ...] = ()

    @property
    def store(self) -> str:
        return f"{self.client_id}|{self.platform} {self.target}"

    @property
    def failing(self) -> list[KpiComparison]:
        return [c for c in self.comparisons if c.failed]

    def evidence(self) -> str:
        """What a person reads: the failing KPIs with their numbers, or why there is no verdict yet."""
        if self.failing:
            return "; ".join(c.describe() for c in self.failing)
        return self.reason

    def as_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "client_id": self.client_id,
            "platform": self.platform,
            "target": self.target,
            "verdict": self.verdict,
            "reason": self.reason,
            "window_complete": self.window_complete,
            "payments_before": self.payments_before,
            "payments_after": self.payments_after,
            "control_payments_after": self.control_payments_after,
            "control_stores": self.control_stores,
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "comparisons": [c.as_dict() for c in self.comparisons],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StoreVerdict:
        return cls(
            client_id=data["client_id"],
            platform=data["platform"],
            target=data["target"],
            verdict=data["verdict"],
            reason=data["reason"],
            window_complete=data["window_complete"],
            payments_before=data["payments_before"],
            payments_after=data["payments_after"],
            control_payments_after=data["control_payments_after"],
            control_stores=data["control_stores"],
            as_of=datetime.fromisoformat(data["as_of"]) if data.get("as_of") else None,
            comparisons=tuple(KpiComparison(**c) for c in data.get("comparisons", [])),
        )

    def row(self) -> dict[str, Any]:
        """The verdict as one table row (the UI table and `psp rollout status`)."""
        by_kpi = {c.kpi: c for c in self.comparisons}

        def rate(kpi: str) -> str:
            c = by_kpi.get(kpi)
            return f"{c.before:.1%} -> {c.after:.1%}" if c else "-"

        latency = by_kpi.get("p95_latency_ms")
        return {
            "store": self.store,
            "verdict": self.verdict,
            "payments (before / after)": f"{self.payments_before} / {self.payments_after}",
            "authorization": rate("authorization_rate"),
            "psp errors": rate("error_rate"),
            "webhook failures": rate("webhook_failure_rate"),
            "p95 latency": f"{latency.before:.0f} -> {latency.after:.0f} ms" if latency else "-",
            "evidence": self.evidence()[:400],
        }


# --- the statistics ---------------------------------------------------------------------------------


def _log_odds_change(bad_after: int, n_after: int, bad_before: int, n_before: int) -> tuple[float, float]:
    """Change of the log odds of a bad attempt, after vs before, and its variance (Haldane +0.5)."""
    a, b = bad_after + 0.5, n_after - bad_after + 0.5
    c, d = bad_before + 0.5, n_before - bad_before + 0.5
    return math.log(a / b) - math.log(c / d), 1 / a + 1 / b + 1 / c + 1 / d


def _upper_p(z: float) -> float:
    """P(Z >= z) for a standard normal Z: the one-sided p-value of a rise."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_upper_p(bad_after: int, n_after: int, bad_before: int, n_before: int) -> float:
    """Fisher's exact one-sided p-value: P(at least `bad_after` bad attempts after the switch) given the
    bad attempts of both periods (hypergeometric). Exact where the normal approximation of rare events
    (a few webhook failures, a few PSP errors) would call chance a regression."""
    total, bad = n_after + n_before, bad_after + bad_before
    top = min(bad, n_after)
    base = _log_choose(total, n_after)
    p = 0.0
    for x in range(bad_after, top + 1):
        term = math.exp(_log_choose(bad, x) + _log_choose(total - bad, n_after - x) - base)
        p += term
        if term < p * 1e-12:
            break
    return min(p, 1.0)


def worse_p(bad_after: int, n_after: int, bad_before: int, n_before: int) -> float:
    """One-sided p-value that the share of bad attempts rose: a two-proportion test on the log odds, made
    exact (Fisher) wherever it would be small enough to matter."""
    delta, variance = _log_odds_change(bad_after, n_after, bad_before, n_before)
    p = _upper_p(delta / math.sqrt(variance))
    return fisher_upper_p(bad_after, n_after, bad_before, n_before) if p < 0.01 else p


def worse_than_control_p(store: tuple[int, int, int, int], control: tuple[int, int, int, int]) -> float:
    """One-sided p-value that the store's share of bad attempts rose more than the control's over the same
    periods (bad_after, n_after, bad_before, n_before each): the difference of the log-odds changes."""
    d_store, v_store = _log_odds_change(*store)
    d_control, v_control = _log_odds_change(*control)
    return _upper_p((d_store - d_control) / math.sqrt(v_store + v_control))


def _share(bad: int, n: int) -> float:
    return bad / n if n else math.nan


@dataclass(frozen=True)
class _Counts:
    """One KPI as bad / total in the four cells: store after, store before, control after, control before."""

    kpi: str
    cells: tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]
    margin: float
    values: tuple[float, float, float | None, float | None] | None = None  # shown instead of the shares
    change: float | None = None  # in the KPI's unit, when not the share's rise


def _kpi_counts(
    after: Traffic, before: Traffic, c_after: Traffic, c_before: Traffic, settings: RolloutAnalysis
) -> list[_Counts]:
    four = (after, before, c_after, c_before)
    out = [
        _Counts(
            "authorization_rate",
            tuple((t.attempts - t.approved, t.attempts) for t in four),  # type: ignore[arg-type]
            settings.max_authorization_rate_drop,
            values=tuple(_share(t.approved, t.attempts) for t in four),  # type: ignore[arg-type]
        ),
        _Counts("error_rate", tuple((t.errors, t.attempts) for t in four), settings.max_error_rate_increase),  # type: ignore[arg-type]
        _Counts(
            "webhook_failure_rate",
            tuple((t.webhook_failures, t.webhooks) for t in four),  # type: ignore[arg-type]
            settings.max_webhook_failure_rate_increase,
        ),
    ]
    for reason in sorted(set(after.declines) | set(before.declines)):
        out.append(
            _Counts(
                f"decline_rate:{reason}",
                tuple((t.declines.get(reason, 0), t.attempts) for t in four),  # type: ignore[arg-type]
                settings.max_decline_rate_increase,
            )
        )
    if after.latencies.size and before.latencies.size:
        # Quantile test: above the store's baseline P95 (the control's own P95 for the control).
        limit, c_limit = before.p95(), c_before.p95()
        cells = (
            (after.slower_than(limit), after.latencies.size),
            (before.slower_than(limit), before.latencies.size),
            (c_after.slower_than(c_limit), c_after.latencies.size),
            (c_before.slower_than(c_limit), c_before.latencies.size),
        )
        p95 = (after.p95(), before.p95(), c_after.p95(), c_before.p95())
        out.append(
            _Counts(
                "p95_latency_ms",
                cells,
                settings.max_p95_latency_increase_ms,
                values=p95,
                change=p95[0] - p95[1],
            )
        )
    return out


def kpi_count(after: Traffic, before: Traffic) -> int:
    """How many KPIs a store is tested on (its share of the false-rollback budget)."""
    return 4 + len(set(after.declines) | set(before.declines))


def per_test_level(settings: RolloutAnalysis, stores_in_rollout: int, kpis: int) -> float:
    """The per-test level: the false-rollback budget shared by every KPI of every store at every look
    (the planned looks in the window, and one more for a hold past it)."""
    return settings.false_rollback_rate / (max(stores_in_rollout, 1) * max(kpis, 1) * (settings.looks + 1))


def compare(
    after: Traffic,
    before: Traffic,
    control_after: Traffic,
    control_before: Traffic,
    settings: RolloutAnalysis,
    stores_in_rollout: int,
) -> tuple[KpiComparison, ...]:
    """Every KPI of one store against its baseline and the control."""
    alpha = per_test_level(settings, stores_in_rollout, kpi_count(after, before))
    control_usable = min(control_after.attempts, control_before.attempts) >= settings.min_payments
    out = []
    for k in _kpi_counts(after, before, control_after, control_before, settings):
        (bad_a, n_a), (bad_b, n_b), (cbad_a, cn_a), (cbad_b, cn_b) = k.cells
        if n_a == 0 or n_b == 0:
            continue  # e.g. no webhooks sent in one period: nothing to compare
        p_base = worse_p(bad_a, n_a, bad_b, n_b)
        p_control = (
            worse_than_control_p((bad_a, n_a, bad_b, n_b), (cbad_a, cn_a, cbad_b, cn_b))
            if control_usable and cn_a and cn_b
            else None
        )
        after_v, before_v, c_after_v, c_before_v = k.values or (
            _share(bad_a, n_a),
            _share(bad_b, n_b),
            _share(cbad_a, cn_a),
            _share(cbad_b, cn_b),
        )
        change = k.change if k.change is not None else _share(bad_a, n_a) - _share(bad_b, n_b)
        failed = change > k.margin and p_base < alpha and (p_control is None or p_control < alpha)
        out.append(
            KpiComparison(
                kpi=k.kpi,
                before=float(before_v),
                after=float(after_v),
                control_before=None if p_control is None or c_before_v is None else float(c_before_v),
                control_after=None if p_control is None or c_after_v is None else float(c_after_v),
                change=float(change),
                margin=float(k.margin),
                p_baseline=p_base,
                p_control=p_control,
                alpha=alpha,
                failed=bool(failed),
            )
        )
    return tuple(out)


# --- looks and verdicts -----------------------------------------------------------------------------


def look_time(switched_at: datetime, now: datetime, settings: RolloutAnalysis) -> datetime | None:
    """The last planned look at or before `now` (None before the first one). Looks come every
    window/looks after the switch, and go on at that pace while a hold waits for traffic."""
    step = timedelta(minutes=settings.window_minutes) / settings.looks
    done = int((now - switched_at) / step)
    return switched_at + done * step if done >= 1 else None


def judge(
    store: StoreId,
    switched_at: datetime,
    now: datetime,
    before: Traffic,
    after: Traffic,
    control_before: Traffic,
    control_after: Traffic,
    control_stores: int,
    settings: RolloutAnalysis,
    stores_in_rollout: int,
) -> StoreVerdict:
    """One store's verdict at the last planned look (`after` must be the traffic up to that look)."""
    client_id, platform, target = store
    as_of = look_time(switched_at, now, settings)
    complete = as_of is not None and as_of >= switched_at + timedelta(minutes=settings.window_minutes)

    def verdict(kind: Verdict, reason: str, comparisons: tuple[KpiComparison, ...] = ()) -> StoreVerdict:
        return StoreVerdict(
            client_id,
            platform,
            target,
            kind,
            reason,
            complete,
            before.attempts,
            after.attempts,
            control_after.attempts,
            control_stores,
            as_of,
            comparisons,
        )

    if as_of is None:
        minutes = settings.window_minutes / settings.looks
        return verdict("inconclusive", f"first look {minutes:g} min after the switch; window open")
    if before.attempts < settings.min_payments or after.attempts < settings.min_payments:
        return verdict(
            "inconclusive",
            f"too little traffic: {after.attempts} payments after the switch, {before.attempts} before "
            f"(at least {settings.min_payments} each)",
        )
    comparisons = compare(after, before, control_after, control_before, settings, stores_in_rollout)
    failing = [c.kpi for c in comparisons if c.failed]
    if failing:
        return verdict("fail", f"worse after the switch: {', '.join(failing)}", comparisons)
    if not complete:
        elapsed = (as_of - switched_at).total_seconds() / 60
        return verdict(
            "inconclusive",
            f"nothing worse so far; window open ({elapsed:g} of {settings.window_minutes} min)",
            comparisons,
        )
    return verdict("pass", f"no KPI worse over {settings.window_minutes} min after the switch", comparisons)


@dataclass(frozen=True)
class Switch:
    """A store switched to a new release during the rollout, and what was live before."""

    client_id: str
    platform: str
    target: str
    switched_at: datetime
    release: str
    previous: str | None
    wave: int

    @property
    def store_id(self) -> StoreId:
        return (self.client_id, self.platform, self.target)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "switched_at": self.switched_at.isoformat()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Switch:
        return cls(**{**data, "switched_at": datetime.fromisoformat(data["switched_at"])})


def _traffic_by_store(events: pd.DataFrame) -> dict[StoreId, pd.DataFrame]:
    if events.empty:
        return {}
    return {
        (str(c), str(p), str(s)): group
        for (c, p, s), group in events.groupby(["client_id", "platform", "store"], sort=False)
    }


def _window(frame: pd.DataFrame | None, since: datetime, until: datetime) -> Traffic:
    if frame is None or frame.empty:
        return Traffic()
    at = frame["occurred_at"]
    return Traffic.from_events(frame[(at >= pd.Timestamp(since)) & (at < pd.Timestamp(until))])


def analyse(
    events: pd.DataFrame,
    switches: Sequence[Switch],
    upgraded: Iterable[StoreId],
    settings_for: Mapping[str, RolloutAnalysis],
    now: datetime,
    stores_in_rollout: int,
) -> list[StoreVerdict]:
    """The verdict of every switched store at `now`, from ledger rows (Ledger.store_authorizations,
    covering every switch's baseline up to `now`). `upgraded`: every store switched in this rollout so far,
    kept out of the control; the control is every other store of the platform in the ledger."""
    by_store = _traffic_by_store(events)
    excluded = set(upgraded) | {s.store_id for s in switches}
    control = [frame for store, frame in by_store.items() if store not in excluded]
    control_frame = pd.concat(control) if control else None
    out = []
    for switch in switches:
        settings = settings_for[switch.client_id]
        as_of = look_time(switch.switched_at, now, settings) or switch.switched_at
        baseline_start = switch.switched_at - timedelta(minutes=settings.baseline_minutes)
        frame = by_store.get(switch.store_id)
        out.append(
            judge(
                switch.store_id,
                switch.switched_at,
                now,
                _window(frame, baseline_start, switch.switched_at),
                _window(frame, switch.switched_at, as_of),
                _window(control_frame, baseline_start, switch.switched_at),
                _window(control_frame, switch.switched_at, as_of),
                len(control),
                settings,
                stores_in_rollout,
            )
        )
    return out


# --- the wave's decision ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WaveDecision:
    action: Literal["proceed", "roll back", "hold"]
    summary: str
    failing: tuple[StoreVerdict, ...] = ()
    waiting: tuple[StoreVerdict, ...] = ()


def decide(verdicts: Sequence[StoreVerdict], settings_for: Mapping[str, RolloutAnalysis]) -> WaveDecision:
    """What the rollout does next: roll back the failing stores and stop; wait for the open windows (and,
    under `hold`, for traffic); or go on to the next wave."""
    failing = tuple(v for v in verdicts if v.verdict == "fail")
    if failing:
        names = ", ".join(v.store for v in failing)
        return WaveDecision("roll back", f"{len(failing)} store(s) worse after the switch: {names}", failing)
    waiting = tuple(
        v
        for v in verdicts
        if v.verdict == "inconclusive" and (not v.window_complete or settings_for[v.client_id].inconclusive == "hold")
    )
    if waiting:
        return WaveDecision(
            "hold",
            f"waiting for {len(waiting)} store(s): " + "; ".join(f"{v.store}: {v.reason}" for v in waiting),
            waiting=waiting,
        )
    promoted = sum(1 for v in verdicts if v.verdict == "inconclusive")
    summary = f"{sum(1 for v in verdicts if v.verdict == 'pass')} store(s) passed"
    return WaveDecision("proceed", summary + (f", {promoted} inconclusive promoted" if promoted else ""))


TABLE_COLUMNS = (
    "store", "verdict", "payments (before / after)", "authorization", "psp errors", "webhook failures",
    "p95 latency", "evidence",
)  # fmt: skip


def verdicts_text(verdicts: Sequence[StoreVerdict]) -> str:
    """The verdict table for a terminal."""
    rows = [[str(v.row()[c]) for c in TABLE_COLUMNS] for v in verdicts]
    widths = [min(max([len(c)] + [len(r[i]) for r in rows]), 60) for i, c in enumerate(TABLE_COLUMNS[:-1])]
    widths.append(0)  # the evidence, last, is printed whole

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell[:w].ljust(w) if w else cell for cell, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(TABLE_COLUMNS), *(line(r) for r in rows)])
