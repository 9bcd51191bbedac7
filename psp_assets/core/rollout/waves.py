"""Rollout waves for fleet deploys: a canary group first, then growing waves, stopping as soon as the
share of failed health checks in a wave passes the limit. What was not reached keeps its release."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from psp_assets.core.deploy.parallel import Job, side_by_side

T = TypeVar("T")


@dataclass(frozen=True)
class WavePolicy:
    canary: int = 1  # stores in the first wave
    growth: float = 2.0  # each wave this many times the previous one
    max_failure_share: float = 0.0  # stop when failed / wave size exceeds this

    def __post_init__(self) -> None:
        if self.canary < 1 or self.growth < 1 or not 0 <= self.max_failure_share < 1:
            raise ValueError("canary >= 1, growth >= 1 and 0 <= max_failure_share < 1 are required")


def plan_waves(items: Sequence[T], policy: WavePolicy, canaries: Sequence[T] = ()) -> list[list[T]]:
    """Split `items` into waves: the named canaries (or the first `policy.canary`) first, then waves
    growing by `policy.growth`. Order within the fleet is kept, so plans are reproducible."""
    rest = [i for i in items if i not in canaries]
    first = list(canaries) or rest[: policy.canary]
    rest = rest[len(first) :] if not canaries else rest
    waves = [first] if first else []
    size = len(first)
    while rest:
        size = max(size + 1, math.ceil(size * policy.growth))
        waves.append(rest[:size])
        rest = rest[size:]
    return waves


@dataclass
class WaveResult(Generic[T]):
    number: int
    items: list[T]
    failed: list[T] = field(default_factory=list)

    @property
    def failure_share(self) -> float:
        return len(self.failed) / len(self.items) if self.items else 0.0


@dataclass
class RolloutReport(Generic[T]):
    waves: list[WaveResult[T]]
    stopped: bool
    reason: str
    versions: dict[str, str]  # store -> release it serves after the rollout

    @property
    def not_reached(self) -> int:
        return sum(1 for v in self.versions.values() if v.startswith("not reached"))


def roll_out(
    waves: list[list[T]],
    policy: WavePolicy,
    deploy: Callable[[T], tuple[bool, str]],
    label: Callable[[T], str] = str,
    current: Callable[[T], str] = lambda _item: "unchanged",
    stop_after: int | None = None,
    workers: int = 1,
    hosts: Callable[[T], frozenset[str]] | None = None,
) -> RolloutReport[T]:
    """Deploy wave by wave. `deploy(item)` returns (healthy, release now served); `current(item)` tells
    what an item not reached keeps serving. `stop_after`: return (not stopped) after that wave number,
    the later ones left for another call (a wave judged on its payments first). `workers`: the items of a
    wave deploy up to this many at once (`deploy` is then called from several threads), never two with a
    store host in common (`hosts(item)`); the wave is judged once all of them ended, exactly as when they
    deploy one by one."""
    results: list[WaveResult[T]] = []
    versions: dict[str, str] = {}
    for number, wave in enumerate(waves, start=1):
        outcome = WaveResult(number, list(wave))
        hosts_of = hosts or (lambda _item: frozenset())
        jobs = [Job(n, functools.partial(deploy, item), hosts_of(item)) for n, item in enumerate(wave)]
        done = list(side_by_side(jobs, workers).values())
        for item, (ok, serving) in zip(wave, done, strict=True):
            versions[label(item)] = serving
            if not ok:
                outcome.failed.append(item)
        results.append(outcome)
        if outcome.failure_share > policy.max_failure_share:
            for later in waves[number:]:
                for item in later:
                    versions[label(item)] = f"not reached ({current(item)})"
            what = "canary" if number == 1 else f"{len(wave)} stores"
            share = f"{outcome.failure_share:.0%} > {policy.max_failure_share:.0%}"
            left = sum(len(w) for w in waves[number:])
            reason = (
                f"wave {number} ({what}): {len(outcome.failed)} of {len(wave)} failed their health check "
                f"({share}); {left} stores not reached"
            )
            return RolloutReport(results, True, reason, versions)
        if stop_after is not None and number >= stop_after and number < len(waves):
            return RolloutReport(results, False, f"wave {number} deployed", versions)
    return RolloutReport(results, False, f"all {len(waves)} waves deployed", versions)


@dataclass(frozen=True)
class StoreVersion:
    """One store after a rollout: what it serves now, and how it got there."""

    store: str  # "<client>|<platform> <target>"
    wave: int | None  # None: not in any wave (nothing built for it)
    status: str  # deployed | unchanged | rolled back | failed | not reached | not built | no targets
    serving: str  # the release live on the store now ("" when unknown)
    previous: str = ""
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "store": self.store,
            "wave": self.wave,
            "status": self.status,
            "serving": self.serving,
            "previous": self.previous,
            "detail": self.detail,
        }


def versions_markdown(rows: Sequence[StoreVersion]) -> str:
    """The per-store version table, one row per store, in wave order. Cells are data: a `|` in a store
    key (`client|platform`) or an error is escaped, never a column break."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| store | wave | status | serving | before | detail |", "|---|---|---|---|---|---|"]
    for row in rows:
        wave = "-" if row.wave is None else str(row.wave)
        status = f"**{row.status}**" if row.status in ("rolled back", "failed") else row.status
        cells = [cell(row.store), wave, status, cell(row.serving or "unknown"), cell(row.previous or "-")]
        lines.append("| " + " | ".join([*cells, cell(row.detail[:160])]) + " |")
    return "\n".join(lines)
