"""Seeded demo data: a PSP payment ledger, its payment events and store order exports that agree except
for known, injected divergences, bad rows and KPI breaches, so a laptop shows a real reconciliation.

The baseline is generated with numpy (a million orders take seconds, for bench/reconcile.py); the
injections are a short list appended to it, each on its own order reference, so the expected report is
known exactly: `DemoData.expected_divergences`, `expected_bad_refs`, `expected_breaches`,
`expected_healing`. Which store state a PSP status shows as comes from the platform's status_map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from psp_assets.core.config.fleet import Fleet
from psp_assets.core.reconciliation.ledger import EVENT_FIELDS, PAYMENT_FIELDS, Ledger
from psp_assets.core.reconciliation.reconcile import StatusRules
from psp_assets.core.reconciliation.store_orders import RAW_ORDER_COLUMNS, write_orders_file

DEMO_STORE = "shop"
# Final PSP status of a baseline order, and how often it occurs.
BASELINE_MIX: dict[str, float] = {
    "paid": 0.72,
    "failed": 0.07,
    "cancelled": 0.05,
    "expired": 0.03,
    "refunded": 0.04,
    "partially_refunded": 0.03,
    "authorized": 0.03,
    "chargeback": 0.01,
    "pending": 0.02,
}
DECLINE_REASONS = ("insufficient_funds", "do_not_honor", "expired_card", "suspected_fraud", "3ds_failed")


@dataclass(frozen=True)
class Partition:
    client_id: str
    platform: str
    currency: str


@dataclass
class DemoData:
    as_of: datetime
    payments: pd.DataFrame
    events: pd.DataFrame
    orders: dict[tuple[str, str, str], pd.DataFrame]  # (client, platform, store) -> raw export
    expected_divergences: set[tuple[str, str, str, str]] = field(default_factory=set)  # client, platform, ref, class
    expected_bad_refs: set[tuple[str, str, str]] = field(default_factory=set)  # client, platform, ref
    expected_breaches: set[tuple[str, str, str]] = field(default_factory=set)  # client, platform, kpi
    breach_hour: datetime | None = None
    expected_healing: dict[tuple[str, str, str], str] = field(default_factory=dict)  # key -> outcome


def _iso(ts: pd.Series) -> pd.Series:
    return ts.dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def generate(
    partitions: Sequence[Partition],
    rules: StatusRules,
    orders_per_partition: int = 1000,
    seed: int = 7,
    as_of: datetime | None = None,
    inject: bool = True,
    text_orders: bool = True,
) -> DemoData:
    """Ledger rows, events and store exports for `partitions`. With `text_orders` the exports hold text as
    a CSV export would (amounts and ISO timestamps as strings); otherwise typed columns as in Parquet."""
    as_of = (as_of or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    rng = np.random.default_rng(seed)
    pay_frames, event_frames, order_frames = [], [], {}
    data = DemoData(as_of=as_of, payments=pd.DataFrame(), events=pd.DataFrame(), orders={})
    for index, part in enumerate(partitions):
        pay, events, orders = _baseline(part, rules, orders_per_partition, rng, as_of, index)
        if inject:
            extra_pay, extra_events, extra_orders = _inject(part, rules, as_of, data, index)
            pay, events = pd.concat([pay, extra_pay], ignore_index=True), pd.concat([events, extra_events])
            orders = pd.concat([orders, extra_orders], ignore_index=True)
        pay_frames.append(pay)
        event_frames.append(events)
        if text_orders:
            orders = orders.assign(
                total=orders["total"].map(lambda v: v if isinstance(v, str) else f"{v:.2f}"),
                created_at=orders["created_at"].map(lambda v: v if isinstance(v, str) else v.isoformat()),
                updated_at=orders["updated_at"].map(lambda v: v if isinstance(v, str) else v.isoformat()),
            )
        order_frames[(part.client_id, part.platform, DEMO_STORE)] = orders[list(RAW_ORDER_COLUMNS)]
    if inject and partitions:
        kpi_events = _inject_kpi_breaches(partitions, as_of, data)
        event_frames.append(kpi_events)
    data.payments = pd.concat(pay_frames, ignore_index=True)[PAYMENT_FIELDS] if pay_frames else pd.DataFrame()
    data.events = pd.concat(event_frames, ignore_index=True)[EVENT_FIELDS] if event_frames else pd.DataFrame()
    data.orders = order_frames
    return data


def _baseline(
    part: Partition, rules: StatusRules, n: int, rng: np.random.Generator, as_of: datetime, index: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    platform = rules.rules(part.platform)
    prefix = f"{part.client_id[:3].upper()}{index}-"
    refs = pd.Series([f"{prefix}{i:07d}" for i in range(n)])
    statuses = rng.choice(list(BASELINE_MIX), size=n, p=list(BASELINE_MIX.values()))
    now = pd.Timestamp(as_of)
    age = rng.uniform(3600, 30 * 86400, size=n)
    pending = statuses == "pending"
    age[pending] = rng.uniform(60, 1200, size=int(pending.sum()))  # fresh: within any pending limit
    created = now - pd.to_timedelta(age, unit="s")
    changed = created + pd.to_timedelta(rng.uniform(1, 50, size=n), unit="s")
    amount = rng.integers(500, 250000, size=n)
    if part.currency in ("JPY", "KRW", "HUF", "ISK"):
        amount = amount // 100 * 100
    payment_ids = [f"pay_{index}_{i:07d}" for i in range(n)]
    event_ids = [f"evt_{index}_{i:07d}" for i in range(n)]
    payments = pd.DataFrame(
        {
            "payment_id": payment_ids,
            "client_id": part.client_id,
            "platform": part.platform,
            "order_ref": refs,
            "amount_minor": amount,
            "refunded_minor": np.where(
                statuses == "refunded", amount, np.where(statuses == "partially_refunded", amount // 3, 0)
            ),
            "currency": part.currency,
            "status": statuses,
            "payment_method": "card",
            "created_at": created,
            "status_changed_at": changed,
            "last_event_id": event_ids,
        }
    )
    # A share of orders had a declined attempt before the one that settled them: not a divergence.
    retried = rng.random(n) < 0.04
    retry = payments[retried].copy()
    retry["payment_id"] = retry["payment_id"] + "_r"
    retry["last_event_id"] = retry["last_event_id"] + "_r"
    retry["status"] = "failed"
    retry["refunded_minor"] = 0
    retry["created_at"] = retry["created_at"] - pd.Timedelta(minutes=3)
    retry["status_changed_at"] = retry["created_at"] + pd.Timedelta(seconds=5)
    payments = pd.concat([payments, retry], ignore_index=True)

    store_state = pd.Series(statuses).map(platform.status_map)
    # Shipped orders move on to a later state the template lists as still paid.
    later = [s for s, m in platform.meanings.items() if "paid" in m and s != platform.status_map["paid"]]
    if later:
        shipped = (statuses == "paid") & (rng.random(n) < 0.3)
        store_state[shipped] = later[0]
    orders = pd.DataFrame(
        {
            "order_ref": refs,
            "store_order_id": [str(100000 + i) for i in range(n)],
            "state": store_state,
            "total": amount / 100 if part.currency not in ("JPY", "KRW", "ISK") else amount.astype(float),
            "currency": part.currency,
            "created_at": created - pd.Timedelta(seconds=2),
            "updated_at": changed + pd.Timedelta(seconds=1),
            "payment_method": "psp",
        }
    )
    if part.currency in ("JPY", "KRW", "ISK"):
        orders["total"] = amount.astype(float)
    events = _events(payments, rng)
    return payments, events, orders


def _events(payments: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """One authorization event per payment (declined for failed payments), its latency lognormal."""
    n = len(payments)
    failed = (payments["status"] == "failed").to_numpy()
    pending = (payments["status"] == "pending").to_numpy()
    outcome = np.where(failed, "declined", "approved")
    reasons = np.where(failed, rng.choice(DECLINE_REASONS, size=n), None)
    return pd.DataFrame(
        {
            "event_id": payments["last_event_id"].to_numpy(),
            "payment_id": payments["payment_id"].to_numpy(),
            "client_id": payments["client_id"].to_numpy(),
            "platform": payments["platform"].to_numpy(),
            "event_type": np.where(pending, "authorization", "authorization"),
            "outcome": outcome,
            "status": payments["status"].to_numpy(),
            "decline_reason": reasons,
            "latency_ms": np.clip(rng.lognormal(np.log(350), 0.45, size=n), 40, 2900).astype(int),
            "occurred_at": payments["status_changed_at"].to_numpy(),
        }
    )


def _inject(
    part: Partition, rules: StatusRules, as_of: datetime, data: DemoData, index: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The known divergences and bad rows of one partition, each on its own order reference."""
    sm = rules.rules(part.platform).status_map
    now = pd.Timestamp(as_of)
    other_currency = "USD" if part.currency != "USD" else "EUR"
    key = (part.client_id, part.platform)
    pays: list[dict] = []
    orders: list[dict] = []

    def case(
        name: str,
        status: str | None,
        state: str | None,
        hours: float,
        expect: str | None,
        *,
        store_newer: bool = False,
        total: object = None,
        currency: str | None = None,
        extra_paid: bool = False,
        created: object = None,
    ) -> str:
        ref = f"{part.client_id[:3].upper()}{index}-X-{name}"
        at = now - pd.Timedelta(hours=hours)
        amount = 4990
        if status is not None:
            pays.append(_pay(part, ref, f"pay_{index}_{name}", status, amount, at))
            if extra_paid:
                pays.append(_pay(part, ref, f"pay_{index}_{name}_2", status, amount, at + pd.Timedelta(minutes=2)))
        if state is not None:
            orders.append(
                {
                    "order_ref": ref,
                    "store_order_id": f"9{index}{len(orders):04d}",
                    "state": state,
                    "total": total if total is not None else amount / 100,
                    "currency": currency or part.currency,
                    "created_at": created if created is not None else at - pd.Timedelta(minutes=1),
                    "updated_at": at + pd.Timedelta(hours=1) if store_newer else at - pd.Timedelta(seconds=30),
                    "payment_method": "psp",
                }
            )
        if expect:
            data.expected_divergences.add((*key, ref, expect))
        return ref

    heal_ok = case("lost-webhook", "paid", sm["pending"], 2, "paid_at_psp_unpaid_in_store")
    heal_old = case("lost-webhook-old", "paid", sm["pending"], 30, "paid_at_psp_unpaid_in_store")
    heal_newer = case("edited-in-store", "paid", sm["pending"], 3, "paid_at_psp_unpaid_in_store", store_newer=True)
    data.expected_healing[(*key, heal_ok)] = "applied"
    data.expected_healing[(*key, heal_old)] = "applied"
    data.expected_healing[(*key, heal_newer)] = "skipped_store_newer"
    case("cancelled-but-paid", "paid", sm["cancelled"], 5, "paid_at_psp_unpaid_in_store")
    case("no-psp-payment", None, sm["paid"], 1, "paid_in_store_no_psp_payment")
    case("paid-in-store-failed", "failed", sm["paid"], 4, "paid_in_store_unpaid_at_psp")
    case("no-store-order", "paid", None, 6, "paid_at_psp_no_store_order")
    case("amount", "paid", sm["paid"], 8, "amount_mismatch", total=49.00)
    case("currency", "paid", sm["paid"], 9, "currency_mismatch", currency=other_currency)
    # a platform whose order states cannot tell a refund or chargeback from a payment (Shopify's payment
    # session states) cannot show these divergences: the order is generated, no divergence is expected
    case(
        "refund-missed",
        "refunded",
        sm["paid"],
        26,
        "refunded_at_psp_not_in_store" if sm["refunded"] != sm["paid"] else None,
    )
    case(
        "chargeback-missed",
        "chargeback",
        sm["paid"],
        12,
        "chargeback_at_psp_not_in_store" if sm["chargeback"] != sm["paid"] else None,
    )
    case("double-capture", "paid", sm["paid"], 7, "duplicate_capture", extra_paid=True)
    case("stuck-pending", "pending", sm["pending"], 3, "stale_pending")

    # Bad input in the store export, each reported with its row and never judged as a divergence.
    for name, overrides in (
        ("no-state", {"state": ""}),
        ("bad-currency", {"currency": "XYZ"}),
        ("negative", {"total": "-49.90"}),
        ("not-a-number", {"total": "49,90 EUR"}),
        ("no-timezone", {"created_at": (now - pd.Timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S")}),
    ):
        ref = case(f"bad-{name}", "paid", sm["paid"], 2, None)
        orders[-1].update(overrides)
        data.expected_bad_refs.add((*key, ref))
    dup_ref = case("bad-duplicate", "paid", sm["paid"], 2, None)
    orders.append(dict(orders[-1], store_order_id=orders[-1]["store_order_id"] + "1"))
    data.expected_bad_refs.add((*key, dup_ref))

    pay_frame = pd.DataFrame(pays, columns=PAYMENT_FIELDS)
    events = _events(pay_frame, np.random.default_rng(index))
    return pay_frame, events, pd.DataFrame(orders, columns=list(RAW_ORDER_COLUMNS))


def _pay(part: Partition, ref: str, payment_id: str, status: str, amount: int, at: pd.Timestamp) -> dict:
    return {
        "payment_id": payment_id,
        "client_id": part.client_id,
        "platform": part.platform,
        "order_ref": ref,
        "amount_minor": amount,
        "refunded_minor": amount if status == "refunded" else 0,
        "currency": part.currency,
        "status": status,
        "payment_method": "card",
        "created_at": at - pd.Timedelta(seconds=40),
        "status_changed_at": at,
        "last_event_id": f"evt_{payment_id.removeprefix('pay_')}",
    }


def _inject_kpi_breaches(partitions: Sequence[Partition], as_of: datetime, data: DemoData) -> pd.DataFrame:
    """A decline spike on the first partition and a slow, erroring PSP hour on the last, in the last
    complete hour; baseline hours have too few attempts to be judged."""
    hour = pd.Timestamp(as_of).floor("h") - pd.Timedelta(hours=1)
    data.breach_hour = hour.to_pydatetime()
    rows = []
    first, last = partitions[0], partitions[-1]
    for i in range(40):  # 24 of 40 declined: authorization 40 %, declines 60 %
        rows.append(
            _kpi_event(
                first, f"spike{i}", "declined" if i < 24 else "approved", 300, hour + pd.Timedelta(seconds=60 * i + 5)
            )
        )
    data.expected_breaches |= {
        (first.client_id, first.platform, "authorization_rate"),
        (first.client_id, first.platform, "decline_rate"),
    }
    for i in range(40):  # 4 of 40 errors (10 %), every request slow
        rows.append(
            _kpi_event(
                last, f"slow{i}", "error" if i < 4 else "approved", 8000, hour + pd.Timedelta(seconds=60 * i + 7)
            )
        )
    data.expected_breaches |= {
        (last.client_id, last.platform, "error_rate"),
        (last.client_id, last.platform, "p95_latency_ms"),
    }
    return pd.DataFrame(rows, columns=EVENT_FIELDS)


def _kpi_event(part: Partition, name: str, outcome: str, latency: int, at: pd.Timestamp) -> dict:
    return {
        "event_id": f"evt_kpi_{part.client_id}_{part.platform}_{name}",
        "payment_id": f"pay_kpi_{part.client_id}_{part.platform}_{name}",
        "client_id": part.client_id,
        "platform": part.platform,
        "event_type": "authorization",
        "outcome": outcome,
        "status": {"approved": "authorized", "declined": "failed", "error": "pending"}[outcome],
        "decline_reason": "insufficient_funds" if outcome == "declined" else None,
        "latency_ms": latency,
        "occurred_at": at,
    }


def partitions_for(clients: Sequence[tuple[str, Sequence[str], str]], rules: StatusRules) -> list[Partition]:
    """(client id, enabled platforms, first currency) -> the partitions the rules can judge."""
    return [Partition(cid, p, cur) for cid, platforms, cur in clients for p in platforms if p in rules.platforms]


def since(as_of: datetime, days: int = 31) -> datetime:
    return as_of - timedelta(days=days)


def seed_demo(
    ledger: Ledger,
    fleet: Fleet,
    rules: StatusRules,
    orders_dir: Path,
    seed: int = 7,
    orders_per_partition: int = 1000,
    as_of: datetime | None = None,
) -> DemoData | None:
    """Fill an empty embedded ledger with demo payments and events, and write each demo store's order
    export (CSV) under `orders_dir/<client>/<platform>.csv`. A ledger that has payments is left alone."""
    ledger.migrate()
    if ledger.count("psp_payments"):
        return None
    clients = [(c.id, c.config.enabled_platforms(), c.config.currencies[0]) for c in fleet.clients.values()]
    data = generate(partitions_for(sorted(clients), rules), rules, orders_per_partition, seed, as_of)
    for (client, platform, _store), frame in data.orders.items():
        write_orders_file(frame, orders_dir / client / f"{platform}.csv")
    ledger.insert_payments(data.payments)
    ledger.insert_events(data.events)
    return data
