"""Payment KPIs per client x platform x hour, from the PSP's payment events, and their breaches.

- authorization_rate: approved authorization attempts / attempts
- decline_rate: declined attempts / attempts (and the share of each decline reason)
- error_rate: attempts that failed for a technical reason (PSP or acquirer error, timeout) / attempts
- p95_latency_ms: 95th percentile of the PSP's processing time over the hour's attempts

An hour with fewer attempts than the client's `kpis.min_attempts` is reported but not judged: three
declines out of five attempts at night are not an incident.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

KPI_COLUMNS = [
    "client_id", "platform", "hour", "attempts", "approved", "declined", "errors", "authorization_rate",
    "decline_rate", "error_rate", "p95_latency_ms", "judged",
]  # fmt: skip


@dataclass(frozen=True)
class Thresholds:
    min_authorization_rate: float = 0.80
    max_decline_rate: float = 0.20
    max_error_rate: float = 0.02
    max_p95_latency_ms: float = 3000
    min_attempts: int = 20


@dataclass(frozen=True)
class Breach:
    client_id: str
    platform: str
    hour: datetime
    kpi: str
    value: float
    threshold: float
    attempts: int

    @property
    def comparison(self) -> str:
        return "below the minimum" if self.kpi == "authorization_rate" else "above the maximum"

    def describe(self) -> str:
        fmt = (lambda v: f"{v:.0f} ms") if self.kpi == "p95_latency_ms" else (lambda v: f"{v:.1%}")
        return (
            f"{self.client_id}|{self.platform} {self.hour:%Y-%m-%d %H:00} UTC: {self.kpi} {fmt(self.value)} is "
            f"{self.comparison} {fmt(self.threshold)} ({self.attempts} attempts)"
        )


def compute_kpis(events: pd.DataFrame, thresholds: Mapping[str, Thresholds] | None = None) -> pd.DataFrame:
    """One row per client x platform x hour with authorization attempts (KPI_COLUMNS)."""
    thresholds = thresholds or {}
    auth = events[events["event_type"] == "authorization"]
    if auth.empty:
        return pd.DataFrame(columns=KPI_COLUMNS)
    auth = auth.assign(
        hour=pd.to_datetime(auth["occurred_at"], utc=True).dt.floor("h"),
        approved=(auth["outcome"] == "approved").astype(int),
        declined=(auth["outcome"] == "declined").astype(int),
        errors=(auth["outcome"] == "error").astype(int),
    )
    grouped = auth.groupby(["client_id", "platform", "hour"], as_index=False, observed=True).agg(
        attempts=("event_id", "size"),
        approved=("approved", "sum"),
        declined=("declined", "sum"),
        errors=("errors", "sum"),
        p95_latency_ms=(
            "latency_ms",
            lambda s: float(s.quantile(0.95, interpolation="higher")) if s.notna().any() else float("nan"),
        ),
    )
    grouped["authorization_rate"] = grouped["approved"] / grouped["attempts"]
    grouped["decline_rate"] = grouped["declined"] / grouped["attempts"]
    grouped["error_rate"] = grouped["errors"] / grouped["attempts"]
    minimum = grouped["client_id"].map(lambda c: thresholds.get(c, Thresholds()).min_attempts)
    grouped["judged"] = grouped["attempts"] >= minimum
    return grouped[KPI_COLUMNS].sort_values(["client_id", "platform", "hour"], ignore_index=True)


def decline_reasons(events: pd.DataFrame) -> pd.DataFrame:
    """Declines per client x platform x hour x reason, with the reason's share of the hour's declines."""
    declined = events[(events["event_type"] == "authorization") & (events["outcome"] == "declined")]
    if declined.empty:
        return pd.DataFrame(columns=["client_id", "platform", "hour", "decline_reason", "declines", "share"])
    declined = declined.assign(
        hour=pd.to_datetime(declined["occurred_at"], utc=True).dt.floor("h"),
        decline_reason=declined["decline_reason"].fillna("unspecified"),
    )
    counts = declined.groupby(["client_id", "platform", "hour", "decline_reason"], as_index=False).agg(
        declines=("event_id", "size")
    )
    counts["share"] = counts["declines"] / counts.groupby(["client_id", "platform", "hour"])["declines"].transform(
        "sum"
    )
    return counts.sort_values(
        ["client_id", "platform", "hour", "declines"], ascending=[True, True, True, False], ignore_index=True
    )


def breaches(kpis: pd.DataFrame, thresholds: Mapping[str, Thresholds] | None = None) -> list[Breach]:
    """Every KPI of a judged hour outside its client's limits."""
    thresholds = thresholds or {}
    out: list[Breach] = []
    for row in kpis[kpis["judged"]].to_dict("records"):
        t = thresholds.get(row["client_id"], Thresholds())
        checks = (
            ("authorization_rate", row["authorization_rate"] < t.min_authorization_rate, t.min_authorization_rate),
            ("decline_rate", row["decline_rate"] > t.max_decline_rate, t.max_decline_rate),
            ("error_rate", row["error_rate"] > t.max_error_rate, t.max_error_rate),
            ("p95_latency_ms", row["p95_latency_ms"] > t.max_p95_latency_ms, t.max_p95_latency_ms),
        )
        for kpi, breached, limit in checks:
            if breached:
                hour = pd.Timestamp(row["hour"]).to_pydatetime()
                out.append(
                    Breach(
                        row["client_id"],
                        row["platform"],
                        hour,
                        kpi,
                        float(row[kpi]),
                        float(limit),
                        int(row["attempts"]),
                    )
                )
    return out
