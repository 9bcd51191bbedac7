"""The canonical PSP payment statuses and the only transitions a store order may make between them.

This module is the single source of the status facts: the generated plugins' state machines are
rendered from it, and the reconciliation judges stores by it. Each platform's mapping of these statuses
to its own order states lives in `templates/<platform>/template.yaml` (`status_map`).
"""

from __future__ import annotations

from collections.abc import Mapping

CANONICAL_STATUSES: tuple[str, ...] = (
    "pending",
    "authorized",
    "paid",
    "failed",
    "cancelled",
    "expired",
    "refunded",
    "partially_refunded",
    "chargeback",
)

# Monotonic: an order only ever moves along these edges. The PSP's state is re-fetched before a
# transition, so a late success after a failed or expired attempt is real and allowed; a late
# "pending" after "paid" never is.
TRANSITIONS: Mapping[str, tuple[str, ...]] = {
    "pending": ("authorized", "paid", "failed", "cancelled", "expired"),
    "authorized": ("paid", "failed", "cancelled", "expired"),
    "failed": ("authorized", "paid"),
    "expired": ("authorized", "paid"),
    "cancelled": (),
    "paid": ("partially_refunded", "refunded", "chargeback"),
    "partially_refunded": ("partially_refunded", "refunded", "chargeback"),
    "refunded": (),
    "chargeback": (),
}

# Statuses in which the PSP holds (or held) the customer's money: a store showing anything "unpaid"
# for these is a divergence the reconciliation reports.
SETTLED_STATUSES: frozenset[str] = frozenset({"paid", "partially_refunded"})


def can_transition(current: str | None, new: str) -> bool:
    """True when an order in `current` (None: no status yet) may move to `new`."""
    if new not in TRANSITIONS:
        raise ValueError(f"unknown PSP status {new!r}; expected one of {', '.join(CANONICAL_STATUSES)}")
    if current is None:
        return True
    return new in TRANSITIONS[current]


def validate_status_map(status_map: Mapping[str, str], where: str) -> list[str]:
    """Problems with a platform's status map: every canonical status mapped, nothing else."""
    problems = []
    missing = [s for s in CANONICAL_STATUSES if s not in status_map]
    unknown = sorted(set(status_map) - set(CANONICAL_STATUSES))
    if missing:
        problems.append(f"{where}: status_map: missing canonical statuses {', '.join(missing)}")
    if unknown:
        problems.append(
            f"{where}: status_map: unknown statuses {', '.join(unknown)}; expected only {', '.join(CANONICAL_STATUSES)}"
        )
    for status, state in status_map.items():
        if not isinstance(state, str) or not state:
            problems.append(f"{where}: status_map.{status}: must be a non-empty platform order state")
    return problems
