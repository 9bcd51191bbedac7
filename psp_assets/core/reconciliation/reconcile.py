"""Payment reconciliation: the PSP's ledger against the stores' orders.

Webhooks are advisory, not authoritative: a lost webhook leaves a store showing "pending" for an order the
PSP has been paid for. This module joins payments and orders by (client, platform, order reference) and
reports every divergence with its class and how long it has been open; `heal` pushes the PSP's state to
the store for the safe cases.

What a store state means is data: a platform's `status_map` (the state each PSP status sets) plus its
template's `reconciliation.other_states` (states the platform moves orders on to, e.g. shipped). A state
is consistent with a PSP status when it can mean that status. Healing is safe exactly when the plugin
itself would have made the move had the webhook arrived: every status the store state can mean may
transition to the PSP's status (statuses.TRANSITIONS).

The join runs on integer codes (pyarrow dictionary encoding, numpy), so a million payments against a
million orders reconcile in seconds (bench/reconcile.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from psp_assets.core.errors import PspError, ReconciliationError
from psp_assets.core.payments.iso4217 import ISO_4217, THREE_DECIMAL, ZERO_DECIMAL
from psp_assets.core.payments.statuses import CANONICAL_STATUSES, SETTLED_STATUSES, can_transition
from psp_assets.core.reconciliation.references import is_missing, normalize_refs, reference_keys, text_values
from psp_assets.core.reconciliation.store_orders import OrderSnapshot, OrderSource
from psp_assets.core.templates.spec import Template, available_platforms, load_template

# Statuses in which the PSP captured the customer's money at some point.
CAPTURED_STATUSES: frozenset[str] = SETTLED_STATUSES | {"refunded", "chargeback"}

DIVERGENCE_CLASSES: dict[str, str] = {
    "paid_at_psp_unpaid_in_store": "paid at the PSP, pending, cancelled or failed in the store",
    "paid_in_store_no_psp_payment": "paid in the store, no PSP payment at all",
    "paid_in_store_unpaid_at_psp": "paid in the store, not paid at the PSP",
    "paid_at_psp_no_store_order": "paid at the PSP, the store has no such order",
    "amount_mismatch": "store order total differs from the PSP payment amount",
    "currency_mismatch": "store order currency differs from the PSP payment currency",
    "refunded_at_psp_not_in_store": "refunded at the PSP, not in the store",
    "chargeback_at_psp_not_in_store": "charged back at the PSP, not in the store",
    "duplicate_capture": "more than one PSP payment whose money stands for one order",
    "stale_pending": "pending at the PSP for longer than the client's limit",
    "status_mismatch": "store state contradicts the PSP status in another way",
    "refunded_duplicate": "a duplicate payment of an order the PSP already refunded: resolved, for information",
    "abandoned_checkout": "the PSP attempt ended without money (expired, cancelled, failed), the store order is "
    "still pending: for information",
}
# Classes that need no action: reported for the record, never overdue, never healed.
INFO_CLASSES: frozenset[str] = frozenset({"refunded_duplicate", "abandoned_checkout"})
CLASS_CODES = list(DIVERGENCE_CLASSES)
# PSP statuses of an attempt that ended without moving money, and store meanings of "still awaiting payment".
_NO_MONEY: frozenset[str] = frozenset({"failed", "cancelled", "expired"})
_AWAITING: frozenset[str] = frozenset({"pending", "authorized"})
_OK, _UNKNOWN = -1, -2

PAYMENT_COLUMNS = [
    "payment_id", "client_id", "platform", "order_ref", "status", "amount_minor", "refunded_minor", "currency",
    "created_at", "status_changed_at", "last_event_id",
]  # fmt: skip
ORDER_COLUMNS = [
    "client_id", "platform", "store", "order_ref", "store_order_id", "state", "amount_minor", "currency",
    "created_at", "updated_at", "source", "source_row",
]  # fmt: skip
BAD_ROW_COLUMNS = ["source", "row", "client_id", "platform", "order_ref", "reason", "record"]
REPORT_COLUMNS = [
    "divergence_id", "client_id", "platform", "store", "order_ref", "store_order_id", "divergence", "detail",
    "psp_status", "store_state", "psp_amount_minor", "store_amount_minor", "psp_currency", "store_currency",
    "psp_refunded_minor", "payment_id", "last_event_id", "opened_at", "open_hours", "limit_hours", "overdue",
    "healable", "severity",
]  # fmt: skip


# --- what store states mean -------------------------------------------------------------------------


@dataclass(frozen=True)
class PlatformRules:
    platform: str
    status_map: Mapping[str, str]
    meanings: Mapping[str, frozenset[str]]  # store state -> PSP statuses it is consistent with
    api_states: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_template(cls, template: Template) -> PlatformRules:
        spec = template.spec
        meanings: dict[str, set[str]] = {}
        for status, state in spec.status_map.items():
            meanings.setdefault(state, set()).add(status)
        for state, statuses in spec.reconciliation.other_states.items():
            meanings.setdefault(state, set()).update(statuses)
        return cls(
            platform=spec.platform,
            status_map=dict(spec.status_map),
            meanings={k: frozenset(v) for k, v in meanings.items()},
            api_states=dict(spec.reconciliation.api_states),
        )

    def verdict(self, status: str, state: str) -> tuple[str | None, bool]:
        """(divergence class or None when consistent, whether healing may push `status`).

        Money moved at the PSP but not in the store comes first, whatever else the store state may mean:
        a WooCommerce `on-hold` (authorized or charged back) with the PSP paid is unpaid in the store, and
        healable only when every meaning of the state may move to the PSP's status (never while on hold)."""
        meaning = self.meanings[state]
        if status in meaning:
            return None, False
        if status in SETTLED_STATUSES and not meaning & SETTLED_STATUSES and meaning - CAPTURED_STATUSES:
            return "paid_at_psp_unpaid_in_store", all(can_transition(m, status) for m in meaning)
        if status == "refunded" or (status == "partially_refunded" and meaning & SETTLED_STATUSES):
            return "refunded_at_psp_not_in_store", False
        if status == "chargeback":
            return "chargeback_at_psp_not_in_store", False
        if status in _NO_MONEY and meaning <= _AWAITING:
            return "abandoned_checkout", False
        if status not in CAPTURED_STATUSES and meaning & SETTLED_STATUSES:
            return "paid_in_store_unpaid_at_psp", False
        return "status_mismatch", False

    def claims_paid(self, state: str) -> bool:
        return bool(self.meanings.get(state, frozenset()) & SETTLED_STATUSES)


@dataclass(frozen=True)
class StatusRules:
    """Every platform's rules, and the verdict table the vectorised join looks up."""

    platforms: Mapping[str, PlatformRules]

    @classmethod
    def load(cls, templates_dir: Path, platforms: Iterable[str] | None = None) -> StatusRules:
        names = list(platforms) if platforms is not None else available_platforms(templates_dir)
        return cls({p: PlatformRules.from_template(load_template(templates_dir, p)) for p in names})

    @classmethod
    def load_available(cls, templates_dir: Path) -> tuple[StatusRules, list[str]]:
        """Every platform whose template loads, and the problems of those that don't (a broken template
        stops its own platform's reconciliation, not the others')."""
        found, problems = {}, []
        for platform in available_platforms(templates_dir):
            try:
                found[platform] = PlatformRules.from_template(load_template(templates_dir, platform))
            except PspError as exc:
                problems.append(str(exc))
        return cls(found), problems

    def rules(self, platform: str) -> PlatformRules:
        if platform not in self.platforms:
            raise ReconciliationError(
                f"platform {platform!r}: no template with a status_map (known: {', '.join(self.platforms)})"
            )
        return self.platforms[platform]

    @property
    def states(self) -> list[str]:
        return sorted({s for r in self.platforms.values() for s in r.meanings})

    def tables(self) -> tuple[list[str], list[str], np.ndarray, np.ndarray, np.ndarray]:
        """(platforms, states, verdict[p, status, state], healable[p, status, state], claims_paid[p, state])."""
        platforms, states = list(self.platforms), self.states
        shape = (len(platforms), len(CANONICAL_STATUSES), len(states))
        verdict = np.full(shape, _UNKNOWN, dtype=np.int8)
        healable = np.zeros(shape, dtype=bool)
        paid = np.zeros((len(platforms), len(states)), dtype=bool)
        for p, platform in enumerate(platforms):
            rules = self.platforms[platform]
            for t, state in enumerate(states):
                if state not in rules.meanings:
                    continue
                paid[p, t] = rules.claims_paid(state)
                for s, status in enumerate(CANONICAL_STATUSES):
                    cls_name, heal = rules.verdict(status, state)
                    verdict[p, s, t] = _OK if cls_name is None else CLASS_CODES.index(cls_name)
                    healable[p, s, t] = heal
        return platforms, states, verdict, healable, paid


# --- bad input --------------------------------------------------------------------------------------


class _Problems:
    """Reasons per row, collected check by check; only the (few) bad rows are ever formatted."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.reasons: dict[int, list[str]] = {}

    def add(self, mask: np.ndarray | pd.Series, message: Any) -> None:
        positions = np.flatnonzero(np.asarray(mask, dtype=bool))
        for pos in positions.tolist():
            self.reasons.setdefault(pos, []).append(message(pos) if callable(message) else message)

    def bad_mask(self) -> np.ndarray:
        mask = np.zeros(len(self.frame), dtype=bool)
        mask[list(self.reasons)] = True
        return mask

    def rows(
        self, source: str, raw: pd.DataFrame, client: Any, platform: Any, row_numbers: np.ndarray, refs: pa.Array
    ) -> pd.DataFrame:
        out = []
        for pos in sorted(self.reasons):
            record = {k: (None if is_missing(v) else str(v)) for k, v in raw.iloc[pos].items() if k != "source_row"}
            out.append(
                {
                    "source": source,
                    "row": int(row_numbers[pos]),
                    "client_id": client(pos) if callable(client) else client,
                    "platform": platform(pos) if callable(platform) else platform,
                    "order_ref": refs[pos].as_py(),
                    "reason": "; ".join(self.reasons[pos]),
                    "record": json.dumps(record, sort_keys=True)[:2000],
                }
            )
        return pd.DataFrame(out, columns=BAD_ROW_COLUMNS)


def _np(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def _blank(series: pd.Series) -> np.ndarray:
    return _np(pc.is_null(text_values(series)))


def _as_series(arr: pa.Array) -> pd.Series:
    return pd.Series(arr.to_pandas())


_ZONE = r"(?:Z|[+-]\d\d(?::?\d\d)?)$"
_ISO = r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d{1,9})?)?" + _ZONE
_NUMBER = r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$"


def _parse_times(series: pd.Series, name: str, problems: _Problems, required: bool = True) -> pd.Series:
    """UTC timestamps; rows without a timezone, or unparseable, are problems (never a guessed zone)."""
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        parsed = series.dt.tz_convert("UTC").reset_index(drop=True)
        if required:
            problems.add(parsed.isna(), f"{name}: missing")
        return parsed
    if pd.api.types.is_datetime64_dtype(series):
        problems.add(series.notna(), lambda p: f"{name}: {series.iloc[p]} has no timezone; expected UTC or an offset")
        return pd.to_datetime(series).dt.tz_localize("UTC").reset_index(drop=True)
    text = text_values(series)
    blank = _np(pc.is_null(text))
    # One regex over every row: the ISO form includes its zone. Only the few rows that fail it are asked
    # whether they have a zone at all (for the message). Arrow's cast reads "T" and " " alike.
    iso = _np(pc.match_substring_regex(text, _ISO))
    has_zone = iso.copy()
    others = np.flatnonzero(~blank & ~iso)
    if len(others):
        has_zone[others] = _np(pc.match_substring_regex(text.take(pa.array(others)), _ZONE))
    candidates = text if iso.all() else pc.if_else(pa.array(iso), text, None)
    try:
        parsed = _as_series(pc.cast(candidates, pa.timestamp("ns", tz="UTC")))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # a row of the ISO form that is no date
        candidates = pc.replace_substring(candidates, " ", "T", max_replacements=1)
        parsed = pd.to_datetime(_as_series(candidates), utc=True, errors="coerce", format="ISO8601")
    if required:
        problems.add(blank, f"{name}: missing")
    problems.add(
        ~blank & ~has_zone,
        lambda p: (
            f"{name}: {text[p].as_py()!r} has no timezone; expected ISO 8601 with an offset, e.g. "
            "2025-03-01T10:00:00+00:00"
        ),
    )
    problems.add(~blank & has_zone & parsed.isna().to_numpy(), lambda p: f"{name}: {text[p].as_py()!r} is not a date")
    return parsed


def _currencies(series: pd.Series, problems: _Problems) -> pa.Array:
    codes = text_values(series)
    blank = _np(pc.is_null(codes))
    problems.add(blank, "currency: missing")
    problems.add(
        ~blank & ~_np(pc.is_in(codes, value_set=pa.array(sorted(ISO_4217)))),
        lambda p: f"currency: {codes[p].as_py()!r} is not an ISO 4217 code (e.g. EUR, PLN)",
    )
    return codes


def _minor_units(amounts: pd.Series, currencies: pa.Array, name: str, problems: _Problems) -> np.ndarray:
    """A decimal amount (text or number) in the currency's minor units; more decimals than the currency has,
    non-numbers and negatives are problems."""
    if pd.api.types.is_numeric_dtype(amounts):
        values = amounts.to_numpy(dtype=float)
        bad_text = np.zeros(len(values), dtype=bool)
    else:
        text = text_values(amounts)
        numeric = _np(pc.match_substring_regex(text, _NUMBER))
        bad_text = ~_np(pc.is_null(text)) & ~numeric
        problems.add(bad_text, lambda p: f"{name}: {text[p].as_py()!r} is not a number")
        values = pc.cast(pc.if_else(pa.array(numeric), text, None), pa.float64()).to_numpy(zero_copy_only=False)
        values = np.asarray(values, dtype=float)
    missing = np.isnan(values) & ~bad_text
    problems.add(missing, f"{name}: missing")
    problems.add(~np.isnan(values) & (values < 0), lambda p: f"{name}: {values[p]} is negative")
    exponent = np.full(len(values), 2)
    exponent[_np(pc.is_in(currencies, value_set=pa.array(sorted(ZERO_DECIMAL))))] = 0
    exponent[_np(pc.is_in(currencies, value_set=pa.array(sorted(THREE_DECIMAL))))] = 3
    scaled = values * np.power(10.0, exponent)
    rounded = np.round(scaled)
    problems.add(
        # float noise only (0.1 + 0.2): half a minor unit of a large amount must never pass as rounding
        ~np.isnan(values) & (np.abs(scaled - rounded) > np.maximum(1e-6, 8 * np.finfo(float).eps * np.abs(scaled))),
        lambda p: f"{name}: {values[p]} has more decimals than {currencies[p].as_py()} allows ({exponent[p]})",
    )
    return np.where(np.isnan(rounded), 0, rounded).astype(np.int64)


def _row_numbers(raw: pd.DataFrame) -> np.ndarray:
    """Row numbers of the source: a CSV export's line numbers (the header is line 1), else 1-based records."""
    if "source_row" in raw.columns:
        return raw["source_row"].to_numpy()
    return np.arange(1, len(raw) + 1)


def validate_payments(raw: pd.DataFrame, source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Typed payment rows (PAYMENT_COLUMNS) and the bad rows with their reasons."""
    missing_cols = [c for c in PAYMENT_COLUMNS if c not in raw.columns and c not in ("refunded_minor", "last_event_id")]
    if missing_cols:
        raise ReconciliationError(f"{source}: missing payment columns {', '.join(missing_cols)}")
    raw = raw.reset_index(drop=True)
    problems = _Problems(raw)
    for column in ("payment_id", "client_id", "platform"):
        problems.add(_blank(raw[column]), f"{column}: missing")
    refs = normalize_refs(raw["order_ref"])
    problems.add(_np(pc.is_null(refs)), "order_ref: missing")
    status = text_values(raw["status"])
    problems.add(
        ~_np(pc.is_in(status, value_set=pa.array(CANONICAL_STATUSES))),
        lambda p: f"status: {status[p].as_py()!r} is not a PSP status ({', '.join(CANONICAL_STATUSES)})",
    )
    currency = _currencies(raw["currency"], problems)
    amount = _integers(raw["amount_minor"], "amount_minor", problems)
    refunded = (
        _integers(raw["refunded_minor"], "refunded_minor", problems, required=False)
        if "refunded_minor" in raw.columns
        else np.zeros(len(raw), dtype=np.int64)
    )
    created = _parse_times(raw["created_at"], "created_at", problems)
    changed = _parse_times(raw["status_changed_at"], "status_changed_at", problems)
    ids = raw["payment_id"]
    dup = (_duplicated(ids) & ~_blank(ids)) if len(ids) else np.zeros(0, dtype=bool)
    problems.add(dup, lambda p: f"payment_id: {ids.iloc[p]!r} appears more than once")
    clean = pd.DataFrame(
        {
            "payment_id": ids.astype(str),
            "client_id": raw["client_id"].astype(str),
            "platform": raw["platform"].astype(str),
            "order_ref": _as_series(refs),
            "status": _as_series(status),
            "amount_minor": amount,
            "refunded_minor": refunded,
            "currency": _as_series(currency),
            "created_at": created,
            "status_changed_at": changed,
            "last_event_id": raw["last_event_id"].astype(object) if "last_event_id" in raw.columns else None,
        }
    )
    bad = problems.bad_mask()
    rows = problems.rows(
        source, raw, lambda p: raw["client_id"].iloc[p], lambda p: raw["platform"].iloc[p], _row_numbers(raw), refs
    )
    return (clean[~bad].reset_index(drop=True) if bad.any() else clean), rows


def _duplicated(values: pd.Series) -> np.ndarray:
    """Every row whose value appears more than once. One hash pass (pyarrow's unique) answers the common
    case, no duplicate at all; pandas marks the rows only when there are some."""
    try:
        distinct = len(pc.unique(pa.array(values, from_pandas=True)))
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        distinct = -1
    if distinct == len(values):
        return np.zeros(len(values), dtype=bool)
    return values.duplicated(keep=False).to_numpy()


def _integers(series: pd.Series, name: str, problems: _Problems, required: bool = True) -> np.ndarray:
    if pd.api.types.is_integer_dtype(series):
        values = series.to_numpy(dtype=np.int64)
        problems.add(values < 0, lambda p: f"{name}: {values[p]} is negative")
        return values
    numbers = pd.to_numeric(series, errors="coerce")
    blank = _blank(series)
    bad = (~blank & numbers.isna().to_numpy()) | (numbers.notna().to_numpy() & (numbers.fillna(0) % 1 != 0).to_numpy())
    problems.add(bad, lambda p: f"{name}: {series.iloc[p]!r} is not a whole number of minor units")
    if required:
        problems.add(blank, f"{name}: missing")
    problems.add(numbers.fillna(0).to_numpy() < 0, lambda p: f"{name}: {series.iloc[p]} is negative")
    return numbers.fillna(0).to_numpy().astype(np.int64)


def validate_orders(
    raw: pd.DataFrame, client_id: str, platform: str, store: str, source: str, rules: StatusRules
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Typed order rows (ORDER_COLUMNS) of one store and its bad rows. A state the platform's rules
    don't know is a bad row, so an unmapped state is reported, not judged."""
    platform_rules = rules.rules(platform)
    raw = raw.reset_index(drop=True)
    problems = _Problems(raw)
    if "malformed" in raw.columns:  # lines of an export that could not be split into its columns
        reasons = raw["malformed"]
        problems.add(reasons.notna().to_numpy(), lambda p: str(reasons.iloc[p]))
    refs = normalize_refs(raw["order_ref"])
    problems.add(_np(pc.is_null(refs)), "order_ref: missing")
    state = text_values(raw["state"])
    blank_state = _np(pc.is_null(state))
    problems.add(blank_state, "state: missing")
    known = sorted(platform_rules.meanings)
    problems.add(
        ~blank_state & ~_np(pc.is_in(state, value_set=pa.array(known))),
        lambda p: (
            f"state: {state[p].as_py()!r} is not a {platform} order state the reconciliation knows "
            f"({', '.join(known)}); add it to templates/{platform}/template.yaml reconciliation.other_states"
        ),
    )
    currency = _currencies(raw["currency"], problems)
    amount = _minor_units(raw["total"], currency, "total", problems)
    created = _parse_times(raw["created_at"], "created_at", problems)
    updated = _parse_times(raw["updated_at"], "updated_at", problems, required=False)
    clean = pd.DataFrame(
        {
            "client_id": client_id,
            "platform": platform,
            "store": store,
            "order_ref": _as_series(refs),
            "store_order_id": _as_series(pc.coalesce(text_values(raw["store_order_id"]), refs)),
            "state": _as_series(state),
            "amount_minor": amount,
            "currency": _as_series(currency),
            "created_at": created,
            "updated_at": updated.fillna(created),
            "source": source,
            "source_row": _row_numbers(raw),
        }
    )
    bad = problems.bad_mask()
    rows = problems.rows(source, raw, client_id, platform, _row_numbers(raw), refs)
    return (clean[~bad].reset_index(drop=True) if bad.any() else clean), rows


# --- the reconciliation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientLimits:
    max_open_hours: float = 24.0
    pending_max_age_minutes: float = 60.0


@dataclass
class ReconciliationResult:
    as_of: datetime
    divergences: pd.DataFrame
    bad_rows: pd.DataFrame
    payments: int
    orders: int
    matched: int

    def counts(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.divergences["divergence"].value_counts().sort_index().items()}

    def counts_by_client(self) -> pd.DataFrame:
        if self.divergences.empty:
            return pd.DataFrame(columns=["client_id", "divergence", "count", "overdue", "oldest_open_hours"])
        grouped = self.divergences.groupby(["client_id", "divergence"], as_index=False).agg(
            count=("divergence_id", "size"), overdue=("overdue", "sum"), oldest_open_hours=("open_hours", "max")
        )
        return grouped.round({"oldest_open_hours": 1})

    def oldest(self, n: int = 10) -> pd.DataFrame:
        columns = ["client_id", "platform", "order_ref", "divergence", "open_hours", "overdue", "detail"]
        return self.divergences.sort_values("open_hours", ascending=False).head(n)[columns].round({"open_hours": 1})

    def summary(self) -> str:
        counts = self.counts()
        parts = ", ".join(f"{v} {k}" for k, v in counts.items()) or "none"
        return (
            f"{self.payments} payments vs {self.orders} orders: {len(self.divergences)} divergence(s) ({parts}), "
            f"{len(self.bad_rows)} bad row(s)"
        )


def _strings(frames: Sequence[pd.DataFrame], column: str) -> pa.Array:
    parts = [pa.array(f[column], type=pa.string(), from_pandas=True) for f in frames]
    chunks = [c for part in parts for c in (part.chunks if isinstance(part, pa.ChunkedArray) else [part])]
    return pa.concat_arrays(chunks) if chunks else pa.array([], type=pa.string())


def _key_column(frames: Sequence[pd.DataFrame], column: str) -> pa.Array:
    if column == "order_ref":
        parts = [reference_keys(f[column]) for f in frames]
        parts = [pc.cast(p, pa.string()) for p in parts]
        return pa.concat_arrays(parts) if parts else pa.array([], type=pa.string())
    return _strings(frames, column)


def _key_codes(
    payments: pd.DataFrame, orders: pd.DataFrame, others: pd.DataFrame | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense integer codes for (client, platform, order reference key) on both sides, and the codes of the
    rows of `others` (bad rows: -1 for a key neither side has). Client and platform, few, are coded first;
    the key is then that small code and the reference joined as text, hashed once for all three frames
    (keys are numbered in order of first appearance, so a key only `others` has is numbered last).
    References are matched by `reference_keys`, on every side and for bad rows alike."""
    n, m = len(payments), len(orders)
    frames = [payments, orders]
    if others is not None and len(others):
        # Bad rows hold whatever the source gave (None, numbers): their few values are made text one by one.
        frames.append(
            pd.DataFrame(
                {
                    c: pd.Series([None if is_missing(v) else str(v) for v in others[c]], dtype=object)
                    for c in ("client_id", "platform", "order_ref")
                }
            )
        )
    client = pc.dictionary_encode(_key_column(frames, "client_id"))
    platform = pc.dictionary_encode(_key_column(frames, "platform"))
    # The partition's code is digits, so the separator can only be the first one: no reference is ambiguous.
    partition = pc.add(pc.multiply(pc.cast(client.indices, pa.int64()), len(platform.dictionary)), platform.indices)
    keys = pc.binary_join_element_wise(pc.cast(partition, pa.string()), _key_column(frames, "order_ref"), "\x1f")
    codes = np.asarray(pc.fill_null(pc.dictionary_encode(keys).indices, -1).to_numpy(zero_copy_only=False))
    codes = codes.astype(np.int64, copy=False)
    n_keys = int(codes[: n + m].max(initial=-1)) + 1
    other_codes = codes[n + m :]
    other_codes = np.where(other_codes < n_keys, other_codes, -1)
    return codes[:n], codes[n : n + m], other_codes


def _codes(values: pd.Series, vocabulary: Sequence[str]) -> np.ndarray:
    """Index of each value in `vocabulary` (-1 when absent), via pyarrow."""
    return pc.fill_null(pc.index_in(pa.array(values, type=pa.string()), value_set=pa.array(vocabulary)), -1).to_numpy()


# What makes two rows of one order reference the same row: everything the reconciliation reads.
_SAME_ORDER = ["store", "order_ref", "store_order_id", "state", "amount_minor", "currency", "created_at", "updated_at"]


def _duplicates(orders: pd.DataFrame, o_codes: np.ndarray, dup: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
    """(rows to keep, bad rows) for orders sharing a reference key. Identical rows (overlapping API pages,
    an export repeated) collapse into the first; rows that differ in anything, the case of the reference
    included, are a conflict: every row of the key is bad input."""
    at = np.flatnonzero(dup)
    sub = orders.iloc[at]
    signature = sub[_SAME_ORDER].astype(str).agg("\x1f".join, axis=1).to_numpy()
    frame = pd.DataFrame({"key": o_codes[at], "signature": signature, "pos": at})
    variants = frame.groupby("key")["signature"].transform("nunique").to_numpy()
    keep = np.ones(len(orders), dtype=bool)
    keep[frame.loc[(variants == 1) & frame.duplicated("key").to_numpy(), "pos"].to_numpy()] = False
    conflicts = sub[variants > 1]
    if conflicts.empty:
        return keep, pd.DataFrame(columns=BAD_ROW_COLUMNS)
    keys = o_codes[at][variants > 1]
    refs = pd.Series(conflicts["order_ref"].to_numpy()).groupby(keys).agg(lambda r: sorted(set(r)))
    reasons = []
    for key, row in zip(keys, conflicts.itertuples(index=False), strict=True):
        spellings = refs.loc[key]
        if len(spellings) > 1:
            reasons.append(
                f"order_ref: {' and '.join(map(repr, spellings))} differ only in case; references are compared "
                "ignoring case, so the payment cannot be matched to one of them"
            )
        else:
            reasons.append(
                f"order_ref: appears more than once in the client's {row.platform} orders with different values; "
                "the payment cannot be matched to one of them"
            )
    return keep, pd.DataFrame(
        {
            "source": conflicts["source"].to_numpy(),
            "row": conflicts["source_row"].to_numpy(),
            "client_id": conflicts["client_id"].to_numpy(),
            "platform": conflicts["platform"].to_numpy(),
            "order_ref": conflicts["order_ref"].to_numpy(),
            "reason": reasons,
            "record": [
                json.dumps({k: str(v) for k, v in r.items()}, sort_keys=True) for r in conflicts.to_dict("records")
            ],
        }
    )


EventSource = pd.DataFrame | Callable[[Sequence[str]], pd.DataFrame]
# Which event opens a divergence of each class: the first one after which the payment's status was one of these.
_OPENED_BY: dict[str, frozenset[str]] = {
    "captured": CAPTURED_STATUSES,
    "refunded": frozenset({"partially_refunded", "refunded"}),
    "chargeback": frozenset({"chargeback"}),
}
_CLASS_EVENT = {
    "paid_at_psp_unpaid_in_store": "captured",
    "paid_at_psp_no_store_order": "captured",
    "duplicate_capture": "captured",
    "refunded_at_psp_not_in_store": "refunded",
    "refunded_duplicate": "refunded",
    "chargeback_at_psp_not_in_store": "chargeback",
}


def first_event_times(events: pd.DataFrame) -> pd.DataFrame:
    """When each payment was first captured, first refunded and first charged back (columns `captured`,
    `refunded`, `chargeback`, indexed by payment_id), from the status each PSP event left it in."""
    if events.empty:
        return pd.DataFrame(columns=list(_OPENED_BY), dtype="datetime64[ns, UTC]")
    occurred = pd.to_datetime(events["occurred_at"], utc=True)
    status = events["status"].astype(str)
    columns = {
        kind: occurred[status.isin(statuses)].groupby(events["payment_id"][status.isin(statuses)]).min()
        for kind, statuses in _OPENED_BY.items()
    }
    return pd.DataFrame(columns)


def _first_events(report: pd.DataFrame, events: EventSource) -> pd.DataFrame:
    """opened_at of every PSP-driven divergence moved to the first event that made it true (e.g. the first
    capture, not a later partial refund); rows whose payment has no such event keep the status time."""
    needed = report["_opened_by"].notna() & report["_kind"].notna()
    if not needed.any():
        return report
    ids = sorted(set(report.loc[needed, "_opened_by"]))
    frame = events(ids) if callable(events) else events[events["payment_id"].isin(ids)]
    times = first_event_times(frame)
    if times.empty:
        return report
    stacked = times.stack()
    lookup = pd.Series(stacked.to_numpy(), index=pd.MultiIndex.from_tuples(stacked.index))
    keys = pd.MultiIndex.from_arrays([report.loc[needed, "_opened_by"], report.loc[needed, "_kind"]])
    first = pd.Series(lookup.reindex(keys).to_numpy(), index=report.index[needed])
    first = pd.to_datetime(first, utc=True)
    report.loc[needed, "opened_at"] = first.where(first.notna(), report.loc[needed, "opened_at"])
    return report


def reconcile(
    payments: pd.DataFrame,
    orders: pd.DataFrame,
    rules: StatusRules,
    as_of: datetime | None = None,
    limits: Mapping[str, ClientLimits] | None = None,
    bad_rows: pd.DataFrame | None = None,
    events: EventSource | None = None,
) -> ReconciliationResult:
    """Every divergence between validated payments and validated orders (see DIVERGENCE_CLASSES).

    `events` (the ledger's psp_payment_events, or a function returning them for a list of payment ids)
    dates each PSP-driven divergence by the first event that made it true; without them, the payment's
    last status change is used."""
    as_of = as_of or datetime.now(UTC)
    limits = dict(limits or {})
    bad = [bad_rows] if bad_rows is not None and not bad_rows.empty else []

    n_pay = len(payments)
    # Keys with a bad row on either side are not judged: a malformed order must not pose as a missing one.
    p_codes, o_codes, bad_codes = _key_codes(payments, orders, bad[0] if bad else None)
    n_keys = int(max(p_codes.max(initial=-1), o_codes.max(initial=-1))) + 1
    excluded = np.zeros(n_keys, dtype=bool)

    # An order reference used twice in a client's platform: identical rows are one order, others are bad input.
    o_dup = np.bincount(o_codes, minlength=n_keys)[o_codes] > 1
    if o_dup.any():
        keep, conflicts = _duplicates(orders, o_codes, o_dup)
        if not conflicts.empty:
            bad.append(conflicts)
        if not keep.all():
            orders, o_codes = orders[keep].reset_index(drop=True), o_codes[keep]
        conflicted = np.bincount(o_codes, minlength=n_keys)[o_codes] > 1
        excluded[o_codes[conflicted]] = True
    # (conflicting duplicates are excluded above; the bad rows given are encoded with the keys)
    bad_frame = pd.concat(bad, ignore_index=True) if bad else pd.DataFrame(columns=BAD_ROW_COLUMNS)
    excluded[bad_codes[bad_codes >= 0]] = True
    p_held = excluded[p_codes]
    if p_held.any():
        held = payments[p_held]
        bad_frame = pd.concat(
            [
                bad_frame,
                pd.DataFrame(
                    {
                        "source": "psp_payments",
                        "row": held.index.to_numpy() + 1,
                        "client_id": held["client_id"],
                        "platform": held["platform"],
                        "order_ref": held["order_ref"],
                        "reason": "not reconciled: the store order with this reference is bad input (see its row)",
                        "record": held["payment_id"].map(lambda i: json.dumps({"payment_id": i})),
                    }
                ),
            ],
            ignore_index=True,
        )

    status_code = _codes(payments["status"], CANONICAL_STATUSES)
    captured = np.isin(status_code, [CANONICAL_STATUSES.index(s) for s in CAPTURED_STATUSES])
    standing = np.isin(status_code, [CANONICAL_STATUSES.index(s) for s in SETTLED_STATUSES])
    created_ns = _ns(payments["created_at"])
    # The payment each order is judged against: the one whose money stands (the first of them), else one
    # captured and returned, else the latest attempt. Most orders have one payment; only the others are sorted.
    per_key = np.bincount(p_codes, minlength=n_keys)
    primary = np.full(n_keys, -1, dtype=np.int64)
    single = per_key[p_codes] == 1
    primary[p_codes[single]] = np.flatnonzero(single)
    multi = np.flatnonzero(~single)
    if len(multi):
        rank = standing[multi].astype(np.int8) * 2 + (captured[multi] & ~standing[multi])
        when = np.where(standing[multi], -created_ns[multi], created_ns[multi])
        ix = multi[np.lexsort((when, rank, p_codes[multi]))]
        last = np.ones(len(ix), dtype=bool)
        last[:-1] = p_codes[ix][1:] != p_codes[ix][:-1]
        primary[p_codes[ix][last]] = ix[last]
    n_captured = np.bincount(p_codes, weights=captured, minlength=n_keys)
    n_standing = np.bincount(p_codes, weights=standing, minlength=n_keys)
    order_at = np.full(n_keys, -1, dtype=np.int64)
    order_at[o_codes] = np.arange(len(o_codes))
    primary[excluded], order_at[excluded], n_captured[excluded], n_standing[excluded] = -1, -1, 0, 0

    platforms, states, verdict_t, healable_t, paid_t = rules.tables()
    now = pd.Timestamp(as_of).tz_convert("UTC") if pd.Timestamp(as_of).tzinfo else pd.Timestamp(as_of, tz="UTC")
    frames: list[pd.DataFrame] = []
    o_plat, o_state = _codes(orders["platform"], platforms), _codes(orders["state"], states)
    # _strings flattens the columns' chunks (pa.chunked_array of two ChunkedArrays would walk every value
    # as a Python object).
    currency_code = pc.dictionary_encode(_strings([payments, orders], "currency")).indices.to_numpy()
    p_cur, o_cur = currency_code[:n_pay], currency_code[n_pay:]
    p_amount, o_amount = payments["amount_minor"].to_numpy(), orders["amount_minor"].to_numpy()

    both = (primary >= 0) & (order_at >= 0)
    pi, oi = primary[both], order_at[both]
    verdict = verdict_t[o_plat[oi], status_code[pi], o_state[oi]]
    same_currency = p_cur[pi] == o_cur[oi]
    same_money = same_currency & (p_amount[pi] == o_amount[oi])
    # The plugins refuse a payment whose amount or currency differs from the order: so does healing.
    heal = healable_t[o_plat[oi], status_code[pi], o_state[oi]] & same_money
    # The few matched rows any report needs are taken from the big frames once (a take from a chunked
    # Arrow column costs as much for ten rows as for a million); each class then picks from those.
    judged = (verdict >= 0) | ~same_money
    judged_pay = payments.iloc[pi[judged]].reset_index(drop=True)
    judged_ord = orders.iloc[oi[judged]].reset_index(drop=True)
    at = np.cumsum(judged) - 1  # row of `both` -> row of the judged frames

    def rows(mask: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
        return judged_pay.iloc[at[mask]], judged_ord.iloc[at[mask]]

    for code in np.unique(verdict[verdict >= 0]).tolist():
        mask = verdict == code
        cls_name = CLASS_CODES[code]
        pay, orde = rows(mask)
        opened = _later(pay["status_changed_at"], orde["updated_at"])
        if cls_name in _CLASS_EVENT:
            opened = pay["status_changed_at"]
        detail = (
            _refund_detail
            if cls_name == "refunded_at_psp_not_in_store"
            else lambda p, o: f"PSP {p['status']} (event {p['last_event_id']}) but the store order is {o['state']}"
        )
        frames.append(_report(cls_name, pay, orde, opened, heal[mask], detail))
    amount_diff = same_currency & ~same_money
    if amount_diff.any():
        pay, orde = rows(amount_diff)
        frames.append(
            _report(
                "amount_mismatch",
                pay,
                orde,
                _later(pay["created_at"], orde["created_at"]),
                False,
                lambda p, o: f"PSP {p['amount_minor']} {p['currency']} (minor units), store {o['amount_minor']}",
            )
        )
    if (~same_currency).any():
        pay, orde = rows(~same_currency)
        frames.append(
            _report(
                "currency_mismatch",
                pay,
                orde,
                _later(pay["created_at"], orde["created_at"]),
                False,
                lambda p, o: f"PSP {p['currency']}, store {o['currency']}",
            )
        )

    only_pay = (primary >= 0) & (order_at < 0)
    pay_rows = primary[only_pay]
    settled_rows = pay_rows[standing[pay_rows]]
    if len(settled_rows):
        pay_only = payments.iloc[settled_rows]
        frames.append(
            _report(
                "paid_at_psp_no_store_order",
                pay_only,
                None,
                pay_only["status_changed_at"],
                False,
                lambda p, o: f"PSP {p['status']} for order {p['order_ref']}, which the store does not have",
            )
        )

    only_order = (primary < 0) & (order_at >= 0)
    only_rows = order_at[only_order]
    claims = paid_t[o_plat[only_rows], o_state[only_rows]]
    if claims.any():
        ord_only = orders.iloc[only_rows[claims]]
        frames.append(
            _report(
                "paid_in_store_no_psp_payment",
                None,
                ord_only,
                ord_only["updated_at"],
                False,
                lambda p, o: f"store order is {o['state']} but the PSP has no payment for it",
            )
        )

    # Two captures of one order: a divergence while both amounts stand, information once all but one
    # has been refunded or charged back.
    dup_keys = np.flatnonzero(n_captured >= 2)
    if len(dup_keys):
        in_dup = np.isin(p_codes, dup_keys) & captured & (np.arange(n_pay) != primary[p_codes])
        others = payments[in_dup].assign(_key=p_codes[in_dup]).sort_values(["_key", "created_at"])
        first_other = others.groupby("_key").head(1).set_index("_key")
        keys = first_other.index.to_numpy()
        ids = others.groupby("_key")["payment_id"].agg(", ".join).loc[keys].to_numpy()
        prim = payments.iloc[primary[keys]]
        order_rows = orders.reindex(order_at[keys]).reset_index(drop=True)
        live = n_standing[keys] >= 2
        for cls_name, mask in (("duplicate_capture", live), ("refunded_duplicate", ~live)):
            if not mask.any():
                continue
            dup_pay = (
                first_other[mask]
                .reset_index(drop=True)
                .assign(
                    _primary=prim["payment_id"].to_numpy()[mask], _ids=ids[mask], _n=n_captured[keys][mask].astype(int)
                )
            )
            frames.append(
                _report(
                    cls_name,
                    dup_pay,
                    order_rows[mask],
                    dup_pay["status_changed_at"],
                    False,
                    (lambda p, o: f"{p['_n']} captured payments for one order: {p['_primary']}, {p['_ids']}")
                    if cls_name == "duplicate_capture"
                    else lambda p, o: (
                        f"duplicate payment {p['_ids']} is {p['status']} at the PSP; {p['_primary']} pays the order"
                    ),
                )
            )

    pending = status_code == CANONICAL_STATUSES.index("pending")
    if pending.any():
        client_code, clients = pd.factorize(payments["client_id"])
        ages = np.array([limits.get(c, ClientLimits()).pending_max_age_minutes for c in clients], dtype=float)
        max_age = ages[client_code]
        age_min = (now.value - created_ns) / 6e10
        is_primary = np.zeros(len(payments), dtype=bool)
        is_primary[primary[primary >= 0]] = True
        stale = pending & is_primary & (age_min > max_age)
        if stale.any():
            stale_pay = payments[stale].reset_index(drop=True)
            order_rows = orders.reindex(order_at[p_codes[stale]]).reset_index(drop=True)
            frames.append(
                _report(
                    "stale_pending",
                    stale_pay,
                    order_rows,
                    stale_pay["created_at"],
                    False,
                    lambda p, o: f"pending at the PSP since {p['created_at']:%Y-%m-%d %H:%M} UTC",
                )
            )

    report = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*REPORT_COLUMNS, "_kind"])
    if events is not None and not report.empty:
        report = _first_events(report, events)
    report = _finish(report, now, limits)
    return ReconciliationResult(
        as_of=now.to_pydatetime(),
        divergences=report,
        bad_rows=bad_frame.reset_index(drop=True),
        payments=len(payments),
        orders=len(orders),
        matched=int(both.sum()),
    )


def _refund_detail(p: Mapping[str, Any], o: Mapping[str, Any]) -> str:
    return (
        f"PSP {p['status']}: {p['refunded_minor']} of {p['amount_minor']} {p['currency']} (minor units) refunded "
        f"(event {p['last_event_id']}) but the store order is {o['state']}"
    )


def _ns(series: pd.Series) -> np.ndarray:
    """Nanoseconds since the epoch (UTC) without a trip through Python objects."""
    return series.dt.as_unit("ns").array.asi8


def _later(a: pd.Series, b: pd.Series) -> pd.Series:
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    return a.where(a >= b, b)


def _report(
    cls_name: str,
    pay: pd.DataFrame | None,
    orde: pd.DataFrame | None,
    opened: pd.Series,
    healable: np.ndarray | bool,
    detail: Any,
) -> pd.DataFrame:
    n = len(pay) if pay is not None else len(orde)  # type: ignore[arg-type]
    pay = pay.reset_index(drop=True) if pay is not None else pd.DataFrame(index=range(n), columns=PAYMENT_COLUMNS)
    orde = orde.reset_index(drop=True) if orde is not None else pd.DataFrame(index=range(n), columns=ORDER_COLUMNS)
    out = pd.DataFrame(
        {
            "client_id": pay["client_id"].where(pay["client_id"].notna(), orde["client_id"]),
            "platform": pay["platform"].where(pay["platform"].notna(), orde["platform"]),
            "store": orde["store"],
            "order_ref": pay["order_ref"].where(pay["order_ref"].notna(), orde["order_ref"]),
            "store_order_id": orde["store_order_id"],
            "divergence": cls_name,
            "psp_status": pay["status"],
            "store_state": orde["state"],
            "psp_amount_minor": pay["amount_minor"],
            "store_amount_minor": orde["amount_minor"],
            "psp_currency": pay["currency"],
            "store_currency": orde["currency"],
            "psp_refunded_minor": pay["refunded_minor"],
            "payment_id": pay["payment_id"],
            "last_event_id": pay["last_event_id"],
            "opened_at": pd.to_datetime(opened.reset_index(drop=True), utc=True),
            "healable": np.broadcast_to(np.asarray(healable, dtype=bool), (n,)).copy(),
            "_opened_by": pay["payment_id"],
            "_kind": _CLASS_EVENT.get(cls_name),
        }
    )
    out["detail"] = [detail(p, o) for p, o in zip(pay.to_dict("records"), orde.to_dict("records"), strict=True)]
    return out


def _finish(report: pd.DataFrame, now: pd.Timestamp, limits: Mapping[str, ClientLimits]) -> pd.DataFrame:
    if report.empty:
        return report.reindex(columns=REPORT_COLUMNS)
    report["divergence_id"] = (
        report["client_id"] + "|" + report["platform"] + "|" + report["order_ref"] + "|" + report["divergence"]
    )
    report["severity"] = np.where(report["divergence"].isin(INFO_CLASSES), "info", "action")
    report["open_hours"] = ((now - report["opened_at"]).dt.total_seconds() / 3600).clip(lower=0)
    report["limit_hours"] = (
        report["client_id"].map(lambda c: limits.get(c, ClientLimits()).max_open_hours).astype(float)
    )
    # Information never turns overdue: nothing is waiting for a person.
    report["overdue"] = (report["open_hours"] > report["limit_hours"]) & (report["severity"] == "action")
    for column in ("psp_amount_minor", "store_amount_minor", "psp_refunded_minor"):
        report[column] = pd.array(pd.to_numeric(report[column]), dtype="Int64")
    report = report.reindex(columns=REPORT_COLUMNS)
    return report.sort_values(["client_id", "divergence", "order_ref"], ignore_index=True)


# --- healing ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HealingAction:
    client_id: str
    platform: str
    store: str
    order_ref: str
    store_order_id: str | None
    payment_id: str | None
    event_id: str
    divergence: str
    from_state: str | None
    to_state: str | None
    outcome: str  # applied, already_applied, skipped_store_newer, skipped_state_changed, failed
    detail: str
    acted_at: datetime


class ActionLog:
    """Where healing actions are recorded and looked up (the ledger's psp_healing_actions)."""

    def applied_events(self, client_id: str, platform: str, order_ref: str) -> set[str]: ...

    def record_action(self, action: Mapping[str, Any]) -> bool: ...


def heal(
    divergences: pd.DataFrame,
    sources: Mapping[tuple[str, str], OrderSource],
    log: ActionLog,
    rules: StatusRules,
    clients: Iterable[str],
    now: datetime | None = None,
) -> list[HealingAction]:
    """Push the PSP's state to the store for every healable divergence of the opted-in `clients`.

    Idempotent by event id: an event already applied (in the action log, or marked on the order by the
    store client) is never pushed again. An order changed in the store after the PSP's event is newer
    than what we know and is left alone. Every push, skip and failure is recorded."""
    opted = set(clients)
    actions: list[HealingAction] = []
    if divergences.empty:
        return actions
    # The plugins refuse a payment whose amount or currency differs from the order; so does healing, whatever
    # the report says.
    same_money = (divergences["psp_amount_minor"] == divergences["store_amount_minor"]).fillna(False) & (
        divergences["psp_currency"] == divergences["store_currency"]
    )
    todo = divergences[divergences["healable"].astype(bool) & same_money & divergences["client_id"].isin(opted)]
    for item in todo.to_dict("records"):
        # Re-judged from the rules, not taken from the report: only what the plugin itself would have done.
        if item["platform"] not in rules.platforms or item["store_state"] not in rules.rules(item["platform"]).meanings:
            continue
        if rules.rules(item["platform"]).verdict(item["psp_status"], item["store_state"]) != (
            "paid_at_psp_unpaid_in_store",
            True,
        ):
            continue
        event_id = str(item["last_event_id"])
        base = {
            "client_id": item["client_id"], "platform": item["platform"], "store": item["store"],
            "order_ref": item["order_ref"], "store_order_id": item["store_order_id"],
            "payment_id": item["payment_id"], "event_id": event_id, "divergence": item["divergence"],
            "from_state": item["store_state"],
        }  # fmt: skip
        target = rules.rules(item["platform"]).status_map[item["psp_status"]]

        def act(outcome: str, detail: str, to_state: str | None = target, base: dict = base) -> None:
            action = HealingAction(
                **base, to_state=to_state, outcome=outcome, detail=detail, acted_at=now or datetime.now(UTC)
            )
            if outcome != "already_applied":
                log.record_action(action.__dict__)
            actions.append(action)

        if event_id in log.applied_events(item["client_id"], item["platform"], item["order_ref"]):
            act("already_applied", "the action log has this event applied to this order")
            continue
        source = sources.get((item["client_id"], item["store"]))
        if source is None:
            act("failed", f"no order API configured for store {item['store']!r} of {item['client_id']}")
            continue
        try:
            order: OrderSnapshot = source.fetch_order(str(item["store_order_id"]))
            if event_id in order.applied_event_ids:
                act("already_applied", f"order {order.store_order_id} already carries event {event_id}")
                continue
            total = _snapshot_minor(order)
            if total is not None and (total != item["psp_amount_minor"] or order.currency != item["psp_currency"]):
                act(
                    "skipped_state_changed",
                    f"the order's total is now {total} {order.currency} (minor units), the PSP's "
                    f"payment {item['psp_amount_minor']} {item['psp_currency']}",
                    to_state=None,
                )
                continue
            if order.state != item["store_state"]:
                act(
                    "skipped_state_changed",
                    f"the store moved the order to {order.state!r} since the report",
                    to_state=None,
                )
                continue
            psp_time = pd.Timestamp(item["opened_at"]).to_pydatetime()
            if order.updated_at is not None and order.updated_at > psp_time:
                act(
                    "skipped_store_newer",
                    f"order updated {order.updated_at.isoformat()} after the PSP event "
                    f"({psp_time.isoformat()}); a person must look",
                    to_state=None,
                )
                continue
            note = f"PSP reconciliation: payment {item['payment_id']} is {item['psp_status']} at the PSP"
            detail = source.push_state(order, target, event_id, note)
            act("applied", detail)
        except ReconciliationError as exc:
            act("failed", str(exc))
    return actions


def _snapshot_minor(order: OrderSnapshot) -> int | None:
    """The re-read order's total in minor units (None when the store client did not say)."""
    if order.total is None or order.currency is None:
        return None
    try:
        value = float(order.total)
    except (TypeError, ValueError):
        return -1  # unreadable: never equal to a payment
    exponent = 0 if order.currency in ZERO_DECIMAL else 3 if order.currency in THREE_DECIMAL else 2
    return round(value * 10**exponent)


def actions_frame(actions: Sequence[HealingAction]) -> pd.DataFrame:
    columns = list(HealingAction.__dataclass_fields__)
    return pd.DataFrame([a.__dict__ for a in actions], columns=columns)


def since_for(as_of: datetime, days: float = 35) -> datetime:
    """How far back the store order APIs are read: orders change for refunds and chargebacks for weeks."""
    return as_of - timedelta(days=days)


def with_first_seen(report: pd.DataFrame, previous: pd.DataFrame | None, as_of: datetime) -> pd.DataFrame:
    """Add `first_seen_at`: when a reconciliation first reported each divergence (carried over from the
    previous report; now for new ones)."""
    report = report.copy()
    seen = pd.Series(pd.Timestamp(as_of), index=report.index, dtype="datetime64[ns, UTC]")
    if previous is not None and not previous.empty and "first_seen_at" in previous.columns:
        earlier = previous.set_index("divergence_id")["first_seen_at"]
        carried = report["divergence_id"].map(earlier)
        seen = pd.to_datetime(carried, utc=True).fillna(seen)
    report["first_seen_at"] = seen
    return report


def markdown_table(frame: pd.DataFrame, max_rows: int = 20) -> str:
    """A small Markdown table for the Dagster UI (no extra dependency)."""
    if frame.empty:
        return "_none_"
    shown = frame.head(max_rows)
    cells = [[str(v).replace("|", "\\|") for v in row] for row in shown.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, shown.columns)) + " |", "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    if len(frame) > max_rows:
        lines.append(f"\n_{len(frame) - max_rows} more row(s) in the Parquet report_")
    return "\n".join(lines)


def write_parquet(frame: pd.DataFrame, path: Path, keep: bool = False) -> Path:
    """Write `frame` to `path` atomically. Dictionary encoding only for columns that repeat (ids would be
    tried and given up at a cost) and LZ4, a third of the default writer's CPU time. With `keep`, the frame
    stays in this process for the next read_parquet of the same file (the next asset in an in-process
    run), as long as the file is the one written here."""
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    repeating = _repeating(table)
    # No min/max statistics for text that does not repeat (ids, references): nobody filters a read by them,
    # and they cost a sixth of the writer's time.
    unique_text = {
        f.name for f in table.schema if (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
    } - set(repeating)
    statistics = [name for name in table.column_names if name not in unique_text]
    pq.write_table(table, tmp, compression="lz4", use_dictionary=repeating, write_statistics=statistics)
    tmp.replace(path)
    _KEPT.pop(str(path), None)
    if keep:
        _KEPT[str(path)] = (_stamp(path), frame)
    return path


def read_parquet(path: Path | str, columns: list[str] | None = None) -> pd.DataFrame:
    """The Parquet file at `path`; the frame itself when this process wrote it with keep=True and the
    file has not changed since (taken once: the reader owns it)."""
    kept = _KEPT.get(str(path))
    if kept is not None and kept[0] == _stamp(Path(path)):
        if columns is not None:
            return kept[1][columns].copy()
        del _KEPT[str(path)]
        return kept[1]
    return pd.read_parquet(path, columns=columns)


_KEPT: dict[str, tuple[tuple[int, int, int], pd.DataFrame]] = {}


def _stamp(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def _repeating(table: pa.Table, sample: int = 10_000) -> list[str]:
    """Columns whose values repeat in the first rows (statuses, clients, currencies), worth a dictionary."""
    head = table.slice(0, sample)
    return [
        name
        for name, column in zip(head.column_names, head.columns, strict=True)
        if (pa.types.is_string(column.type) or pa.types.is_large_string(column.type))
        and len(column)
        and pc.count_distinct(column).as_py() <= len(column) // 2
    ]
