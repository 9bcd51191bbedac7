"""An independent generator of messy store exports and a PSP ledger, with the truth of every injected case.

Nothing here comes from `psp_assets.core.reconciliation.demo` or the reconciliation's own tables: the platforms'
order states are written out below as a payments-operations person knows them, and every injected case
states, by hand, what a correct report says about it (its classes, whether it may be healed, whether it
is information only, when it opened, what was refunded). The baseline around the cases is seeded random
and consistent by construction, so any other row in a report is a false positive.

Stores: an API store (WooCommerce REST stand-in, healing on), CSV exports written byte by byte (so a
malformed line, padding and duplicate lines are exactly what a real export holds) and a Parquet export.
Currencies with 2, 0 (JPY) and 3 (KWD) decimals; timestamps with offsets; orders older than any API
window; events for first captures and refunds.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

WOO_KEY, WOO_SECRET = "ck_messy", "cs_messy"
WOO_KEY_ENV, WOO_SECRET_ENV = "MESSY_WOO_KEY", "MESSY_WOO_SECRET"
HEADER = ["order_ref", "store_order_id", "state", "total", "currency", "created_at", "updated_at", "payment_method"]
DECIMALS = {"EUR": 2, "USD": 2, "PLN": 2, "JPY": 0, "KWD": 3}

# What each platform's order shows for a PSP status, written out independently of the templates.
SHOWS: dict[str, dict[str, list[str]]] = {
    "woocommerce": {
        "paid": ["processing", "completed"],
        "partially_refunded": ["processing", "completed"],
        "refunded": ["refunded"],
        "authorized": ["on-hold"],
        "failed": ["failed"],
        "cancelled": ["cancelled"],
        "expired": ["cancelled"],
        "pending": ["pending"],
        "chargeback": ["on-hold"],
    },
    "magento2": {
        "paid": ["processing", "complete"],
        "partially_refunded": ["processing", "complete"],
        "refunded": ["closed"],
        "authorized": ["processing"],
        "failed": ["canceled"],
        "cancelled": ["canceled"],
        "expired": ["canceled"],
        "pending": ["pending_payment"],
        "chargeback": ["holded"],
    },
    "prestashop": {
        "paid": ["PS_OS_PAYMENT", "PS_OS_SHIPPING", "PS_OS_DELIVERED"],
        "partially_refunded": ["MODULE_OS_PARTIAL_REFUND", "PS_OS_SHIPPING"],
        "refunded": ["PS_OS_REFUND"],
        "authorized": ["MODULE_OS_AUTHORIZED"],
        "failed": ["PS_OS_ERROR"],
        "cancelled": ["PS_OS_CANCELED"],
        "expired": ["PS_OS_CANCELED"],
        "pending": ["MODULE_OS_AWAITING"],
        "chargeback": ["MODULE_OS_CHARGEBACK"],
    },
}
PENDING = {"woocommerce": "pending", "magento2": "pending_payment", "prestashop": "MODULE_OS_AWAITING"}
PAID = {"woocommerce": "processing", "magento2": "processing", "prestashop": "PS_OS_PAYMENT"}
CANCELLED = {"woocommerce": "cancelled", "magento2": "canceled", "prestashop": "PS_OS_CANCELED"}
MIX = {"paid": 0.6, "failed": 0.08, "cancelled": 0.06, "expired": 0.05, "refunded": 0.07, "authorized": 0.04}
OFFSETS = ["Z", "+00:00", "+02:00", "-05:00", "+05:30", "+09:00", "-03:30"]


@dataclass(frozen=True)
class Store:
    client_id: str
    platform: str
    currency: str
    kind: str  # api, csv, parquet
    name: str


@dataclass
class Truth:
    """What a correct reconciliation reports; keys use the reference as matched (trimmed, lower case)."""

    divergences: set[tuple[str, str, str, str]] = field(default_factory=set)
    info: set[tuple[str, str, str, str]] = field(default_factory=set)
    healable: set[tuple[str, str, str, str]] = field(default_factory=set)
    overdue: set[tuple[str, str, str, str]] = field(default_factory=set)
    never_overdue: set[tuple[str, str, str, str]] = field(default_factory=set)
    bad_refs: set[tuple[str, str, str]] = field(default_factory=set)  # a bad row exists for the reference
    held_refs: set[tuple[str, str, str]] = field(default_factory=set)  # its PSP payment is held back
    bad_lines: set[tuple[str, str, int]] = field(default_factory=set)  # (client, platform, line) of malformed lines
    ledger_blank_refs: int = 0  # ledger payments with a blank reference: bad rows of the ledger
    opened_at: dict[tuple[str, str, str, str], pd.Timestamp] = field(default_factory=dict)
    refunded_minor: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    heal_outcomes: dict[tuple[str, str, str], str] = field(default_factory=dict)
    never_moved: set[tuple[str, str, str]] = field(default_factory=set)  # orders healing must never touch


@dataclass
class World:
    seed: int
    as_of: datetime
    stores: list[Store]
    payments: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    csv_lines: dict[str, list[str]] = field(default_factory=dict)  # store name -> text lines (no header)
    parquet_rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    woo_orders: list[dict[str, Any]] = field(default_factory=list)
    truth: Truth = field(default_factory=Truth)

    # --- files and configs --------------------------------------------------------------------------

    def export_path(self, store: Store) -> str:
        return f"exports/{store.client_id}/{store.name}.{store.kind}"

    def write_exports(self, data_dir: Path) -> dict[tuple[str, str], Path]:
        paths = {}
        for store in self.stores:
            path = data_dir / self.export_path(store)
            path.parent.mkdir(parents=True, exist_ok=True)
            if store.kind == "csv":
                path.write_text(",".join(HEADER) + "\n" + "".join(line + "\n" for line in self.csv_lines[store.name]))
            elif store.kind == "parquet":
                pd.DataFrame(self.parquet_rows[store.name], columns=HEADER, dtype=object).to_parquet(path, index=False)
            else:
                continue
            paths[(store.client_id, store.name)] = path
        return paths

    def client_configs(self, configs_dir: Path, woo_url: str) -> None:
        import yaml

        base = yaml.safe_load((Path(__file__).resolve().parents[2] / "client_configs" / "nordbank.yaml").read_text())
        base.pop("github", None)
        configs_dir.mkdir(parents=True, exist_ok=True)
        for client in sorted({s.client_id for s in self.stores}):
            mine = [s for s in self.stores if s.client_id == client]
            stores = []
            for s in mine:
                entry: dict[str, Any] = {"name": s.name, "platform": s.platform}
                if s.kind == "api":
                    entry |= {"api_base_url": woo_url, "key_env": WOO_KEY_ENV, "secret_env": WOO_SECRET_ENV}
                else:
                    entry["export_file"] = self.export_path(s)
                stores.append(entry)
            config = dict(
                base,
                id=client,
                name=client.title(),
                currencies=sorted({s.currency for s in mine}),
                platforms={
                    s.platform: {
                        "slug": f"{client}-payments",
                        "targets": [{"name": "production", "transport": "local", "path": f"{client}/{s.platform}"}],
                    }
                    for s in mine
                },
                reconciliation={"healing": any(s.kind == "api" for s in mine), "stores": stores},
            )
            (configs_dir / f"{client}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def key(store: Store, ref: str, cls: str) -> tuple[str, str, str, str]:
    return (store.client_id, store.platform, ref.strip().lower(), cls)


def ref_key(store: Store, ref: str) -> tuple[str, str, str]:
    return (store.client_id, store.platform, ref.strip().lower())


def generate(seed: int, orders_per_store: int = 120, as_of: datetime | None = None) -> World:
    rng = np.random.default_rng(seed)
    as_of = (as_of or datetime.now(UTC)).replace(microsecond=0)
    # Which clients, currencies and export kinds: shuffled per seed, every kind and decimal count present.
    eur, other = ["EUR", "PLN"][seed % 2], ["JPY", "KWD"][(seed // 2) % 2]
    stores = [
        Store("acme", "woocommerce", "EUR", "api", "shop"),
        Store("acme", "magento2", eur, "csv", "mage"),
        Store("kasse", "prestashop", other, "csv", "presta"),
        Store("kasse", "woocommerce", "KWD" if other == "JPY" else "JPY", "parquet", "woo-export"),
    ]
    world = World(seed, as_of, stores)
    for index, store in enumerate(stores):
        _Builder(world, store, rng, index, orders_per_store).build()
    return world


class _Builder:
    def __init__(self, world: World, store: Store, rng: np.random.Generator, index: int, n: int) -> None:
        self.w, self.s, self.rng, self.index, self.n = world, store, rng, index, n
        self.now = pd.Timestamp(world.as_of)
        self.rows: list[tuple[dict[str, Any] | str, bool]] = []  # (order row or raw line, keep in place)
        self.serial = 0

    # --- primitives ----------------------------------------------------------------------------------

    def ref(self, name: str) -> str:
        self.serial += 1
        if self.s.kind == "api":  # WooCommerce order numbers are the order ids
            return str(70000 + self.index * 1000 + self.serial)
        return f"{self.s.client_id[:2].upper()}{self.index}-{name}-{self.serial:03d}"

    def amount(self) -> int:
        scale = 10 ** DECIMALS[self.s.currency]
        return (
            int(self.rng.integers(5, 900)) * scale + int(self.rng.integers(0, scale))
            if scale > 1
            else int(self.rng.integers(500, 90000))
        )

    def total_text(self, minor: int, currency: str | None = None) -> str:
        places = DECIMALS.get(currency or self.s.currency, 2)
        if places == 0:
            return str(minor)
        text = f"{minor / 10**places:.{places}f}"
        # Exports drop trailing zeros now and then ("49.9"); the value is the same.
        return text.rstrip("0").rstrip(".") if self.rng.random() < 0.3 and "." in text else text

    def when(self, hours_ago: float) -> pd.Timestamp:
        return self.now - pd.Timedelta(seconds=round(hours_ago * 3600))

    def stamp(self, at: pd.Timestamp) -> str:
        if self.s.kind == "api":
            return at.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S")
        offset = OFFSETS[int(self.rng.integers(len(OFFSETS)))]
        if offset == "Z":
            return at.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
        sign = 1 if offset[0] == "+" else -1
        delta = pd.Timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])) * sign
        local = at.tz_convert("UTC").tz_localize(None) + delta
        return local.strftime("%Y-%m-%dT%H:%M:%S") + offset

    def payment(
        self,
        ref: str,
        status: str,
        minor: int,
        hours_ago: float,
        *,
        suffix: str = "",
        refunded: int = 0,
        history: list[tuple[str, str, float]] | None = None,
        currency: str | None = None,
    ) -> dict[str, Any]:
        """A ledger payment and its events. `history`: (event_type, status after it, hours ago), oldest
        first; by default authorization then the event that set `status`."""
        pid = f"pay_{self.w.seed}_{self.index}_{self.serial}{suffix}"
        history = history or self.default_history(status, hours_ago)
        for n, (event_type, after, ago) in enumerate(history):
            self.w.events.append(
                {
                    "event_id": f"{pid}_e{n}",
                    "payment_id": pid,
                    "client_id": self.s.client_id,
                    "platform": self.s.platform,
                    "event_type": event_type,
                    "outcome": "declined" if after == "failed" else "approved",
                    "status": after,
                    "decline_reason": "do_not_honor" if after == "failed" else None,
                    "latency_ms": int(self.rng.integers(80, 900)),
                    "occurred_at": self.when(ago).to_pydatetime(),
                }
            )
        row = {
            "payment_id": pid,
            "client_id": self.s.client_id,
            "platform": self.s.platform,
            "order_ref": ref,
            "amount_minor": minor,
            "refunded_minor": refunded,
            "currency": currency or self.s.currency,
            "status": status,
            "payment_method": "card",
            "created_at": self.when(history[0][2] + 0.01).to_pydatetime(),
            "status_changed_at": self.when(history[-1][2]).to_pydatetime(),
            "last_event_id": f"{pid}_e{len(history) - 1}",
        }
        self.w.payments.append(row)
        return row

    @staticmethod
    def default_history(status: str, hours_ago: float) -> list[tuple[str, str, float]]:
        first = ("authorization", "authorized", hours_ago + 0.05)
        last = {
            "pending": [("authorization", "pending", hours_ago)],
            "authorized": [("authorization", "authorized", hours_ago)],
            "failed": [("authorization", "failed", hours_ago)],
            "expired": [first, ("expire", "expired", hours_ago)],
            "cancelled": [first, ("cancel", "cancelled", hours_ago)],
            "paid": [first, ("capture", "paid", hours_ago)],
            "refunded": [first, ("capture", "paid", hours_ago + 0.02), ("refund", "refunded", hours_ago)],
            "partially_refunded": [
                first,
                ("capture", "paid", hours_ago + 0.02),
                ("refund", "partially_refunded", hours_ago),
            ],
            "chargeback": [first, ("capture", "paid", hours_ago + 0.02), ("chargeback", "chargeback", hours_ago)],
        }
        return last[status]

    def order(
        self,
        ref: str,
        state: str,
        minor: int,
        hours_ago: float,
        *,
        updated_ago: float | None = None,
        currency: str | None = None,
        total: str | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        created = self.when(hours_ago + 0.1)
        updated = self.when(updated_ago if updated_ago is not None else hours_ago + 0.05)
        row = {
            "order_ref": ref,
            "store_order_id": str(70000 + self.index * 1000 + self.serial)
            if self.s.kind == "api"
            else f"{self.serial}",
            "state": state,
            "total": total if total is not None else self.total_text(minor, currency),
            "currency": currency or self.s.currency,
            "created_at": self.stamp(created),
            "updated_at": self.stamp(updated),
            "payment_method": "psp",
            **overrides,
        }
        self.rows.append((row, False))
        return row

    def expect(self, ref: str, cls: str, *, healable: bool = False, info: bool = False, opened: Any = None) -> None:
        k = key(self.s, ref, cls)
        self.w.truth.divergences.add(k)
        if healable:
            self.w.truth.healable.add(k)
        if info:
            self.w.truth.info.add(k)
            self.w.truth.never_overdue.add(k)
        if opened is not None:
            self.w.truth.opened_at[k] = pd.Timestamp(opened)

    def bad(self, ref: str, held: bool = True) -> None:
        self.w.truth.bad_refs.add(ref_key(self.s, ref))
        if held:
            self.w.truth.held_refs.add(ref_key(self.s, ref))

    # --- the store ----------------------------------------------------------------------------------

    def build(self) -> None:
        self.baseline()
        self.cases()
        self.write()

    def baseline(self) -> None:
        statuses = list(MIX)
        probs = np.array(list(MIX.values()))
        for _ in range(self.n):
            status = statuses[int(self.rng.choice(len(statuses), p=probs / probs.sum()))]
            ref = self.ref("b")
            minor = self.amount()
            # API stores: many orders untouched for longer than any API window (up to 90 days).
            ago = float(self.rng.uniform(2, 90 * 24 if self.s.kind == "api" else 30 * 24))
            refunded = minor if status == "refunded" else 0
            self.payment(ref, status, minor, ago, refunded=refunded)
            if self.rng.random() < 0.05:  # a declined attempt before the one that counts
                self.payment(ref, "failed", minor, ago + 0.2, suffix="_r")
            states = SHOWS[self.s.platform][status]
            self.order(ref, states[int(self.rng.integers(len(states)))], minor, ago)

    def cases(self) -> None:
        s, p = self.s, self.s.platform
        api = s.kind == "api"
        m = self.amount

        # Lost webhooks: paid at the PSP, pending in the store. Healable (an API store heals them).
        ref = self.ref("lost")
        self.payment(ref, "paid", (a := m()), 3)
        self.order(ref, PENDING[p], a, 3)
        self.expect(ref, "paid_at_psp_unpaid_in_store", healable=True, opened=self.when(3))
        if api:
            self.w.truth.heal_outcomes[ref_key(s, ref)] = "applied"
        # ... forty days old, beyond any API window: found, overdue, and healed.
        ref = self.ref("lost-old")
        self.payment(ref, "paid", (a := m()), 40 * 24)
        self.order(ref, PENDING[p], a, 40 * 24)
        self.expect(ref, "paid_at_psp_unpaid_in_store", healable=True, opened=self.when(40 * 24))
        self.w.truth.overdue.add(key(s, ref, "paid_at_psp_unpaid_in_store"))
        if api:
            self.w.truth.heal_outcomes[ref_key(s, ref)] = "applied"
        # ... edited in the store after the PSP's capture: a person must look.
        ref = self.ref("edited")
        self.payment(ref, "paid", (a := m()), 5)
        self.order(ref, PENDING[p], a, 5, updated_ago=1)
        self.expect(ref, "paid_at_psp_unpaid_in_store", healable=True)
        if api:
            self.w.truth.heal_outcomes[ref_key(s, ref)] = "skipped_store_newer"
        # ... paid, then partly refunded, the store still pending: opened at the first capture.
        ref = self.ref("capture-then-refund")
        first_capture = 9.0
        history = [
            ("authorization", "authorized", 9.2),
            ("capture", "paid", first_capture),
            ("refund", "partially_refunded", 2.0),
        ]
        self.payment(ref, "partially_refunded", (a := m()), 0, refunded=a // 4, history=history)
        self.order(ref, PENDING[p], a, 9.5)
        self.expect(ref, "paid_at_psp_unpaid_in_store", opened=self.when(first_capture))
        if api:
            self.w.truth.never_moved.add(ref_key(s, ref))

        # Mismatched amount or currency on an order otherwise healable: never healed, never moved.
        ref = amount_ref = self.ref("amount-heal")
        self.payment(ref, "paid", (a := m()), 4)
        bigger = a + 10 ** DECIMALS[s.currency] * 10
        self.order(ref, PENDING[p], bigger, 4)
        self.expect(ref, "paid_at_psp_unpaid_in_store")
        self.expect(ref, "amount_mismatch")
        ref = currency_ref = self.ref("currency-heal")
        foreign = "USD" if s.currency != "USD" else "EUR"
        self.payment(ref, "paid", (a := 4990 if DECIMALS[s.currency] == 2 else m()), 4)
        self.order(ref, PENDING[p], a, 4, currency=foreign, total=self.total_text(a, foreign))
        self.expect(ref, "paid_at_psp_unpaid_in_store")
        self.expect(ref, "currency_mismatch")
        if api:
            self.w.truth.never_moved |= {ref_key(s, amount_ref), ref_key(s, currency_ref)}

        # Paid at the PSP, the store cancelled it: money to act on, never healable (cancelled is final).
        ref = self.ref("cancelled-paid")
        self.payment(ref, "paid", (a := m()), 6)
        self.order(ref, CANCELLED[p], a, 6)
        self.expect(ref, "paid_at_psp_unpaid_in_store", opened=self.when(6))
        if p == "woocommerce":
            # on-hold with the PSP paid: unpaid in the store, not healable while on hold
            ref = self.ref("on-hold-paid")
            self.payment(ref, "paid", (a := m()), 7)
            self.order(ref, "on-hold", a, 7)
            self.expect(ref, "paid_at_psp_unpaid_in_store")
            if api:
                self.w.truth.never_moved.add(ref_key(s, ref))
        if p == "prestashop":
            # paid in the store, partially refunded at the PSP: a refund the store must book
            ref = self.ref("partial-refund")
            a = m()
            part = a // 3
            self.payment(ref, "partially_refunded", a, 8, refunded=part)
            self.order(ref, "PS_OS_PAYMENT", a, 8.5)
            k = key(s, ref, "refunded_at_psp_not_in_store")
            self.expect(ref, "refunded_at_psp_not_in_store", opened=self.when(8))
            self.w.truth.refunded_minor[k] = part

        # Full refund and chargeback missed by the store; the refund opened at the first refund event.
        ref = self.ref("refund-missed")
        history = [
            ("authorization", "authorized", 30.3),
            ("capture", "paid", 30.2),
            ("refund", "partially_refunded", 28.0),
            ("refund", "refunded", 11.0),
        ]
        self.payment(ref, "refunded", (a := m()), 0, refunded=a, history=history)
        self.order(ref, PAID[p], a, 31)
        self.expect(ref, "refunded_at_psp_not_in_store", opened=self.when(28.0))
        self.w.truth.overdue.add(key(s, ref, "refunded_at_psp_not_in_store"))
        if p != "woocommerce":  # WooCommerce's on-hold also means a chargeback: shown on WooCommerce only as held
            ref = self.ref("chargeback-missed")
            self.payment(ref, "chargeback", (a := m()), 12)
            self.order(ref, PAID[p], a, 13)
            self.expect(ref, "chargeback_at_psp_not_in_store", opened=self.when(12))

        # Duplicates: a refunded duplicate is resolved (info); two standing captures are a divergence.
        ref = self.ref("dup-refunded")
        a = m()
        self.payment(ref, "paid", a, 20)
        self.payment(ref, "refunded", a, 19, suffix="_dup", refunded=a)  # the later one, already returned
        self.order(ref, PAID[p], a, 20.5)
        self.expect(ref, "refunded_duplicate", info=True)
        ref = self.ref("dup-live")
        a = m()
        self.payment(ref, "paid", a, 10)
        self.payment(ref, "paid", a, 9.5, suffix="_dup")
        self.order(ref, PAID[p], a, 10.5)
        self.expect(ref, "duplicate_capture", opened=self.when(9.5))

        # Abandoned checkout: expired (or cancelled) at the PSP, pending in the store, even for months.
        for status, ago in (("expired", 2.0), ("expired", 50 * 24), ("cancelled", 30.0)):
            ref = self.ref("abandoned")
            self.payment(ref, status, (a := m()), ago)
            self.order(ref, PENDING[p], a, ago + 0.5)
            self.expect(ref, "abandoned_checkout", info=True)

        # Store paid without any PSP payment; store paid, PSP failed; PSP paid, no store order (old too).
        ref = self.ref("no-psp")
        self.order(ref, PAID[p], m(), 3)
        self.expect(ref, "paid_in_store_no_psp_payment")
        ref = self.ref("psp-failed")
        self.payment(ref, "failed", (a := m()), 4)
        self.order(ref, PAID[p], a, 4.5)
        self.expect(ref, "paid_in_store_unpaid_at_psp")
        ref = self.ref("no-order")
        self.payment(ref, "paid", m(), 6)
        self.expect(ref, "paid_at_psp_no_store_order", opened=self.when(6))
        ref = self.ref("stuck-pending")
        self.payment(ref, "pending", (a := m()), 3)
        self.order(ref, PENDING[p], a, 3.1)
        self.expect(ref, "stale_pending")

        # Old paid orders, consistent, untouched for 60 days: nothing to report (an API store fetches them).
        for _ in range(3):
            ref = self.ref("old-ok")
            self.payment(ref, "paid", (a := m()), 60 * 24)
            self.order(ref, PAID[p], a, 60 * 24)

        if api:
            # The ledger pads a reference of an old order the API window does not list: fetched, matched.
            ref = self.ref("old-padded")
            self.payment(ref + " ", "paid", (a := m()), 50 * 24)
            self.order(ref, PAID[p], a, 50 * 24)
            return
        self.export_cases()

    def export_cases(self) -> None:
        """Cases only a file export can hold: padding, case, duplicate and malformed lines."""
        s, p, m = self.s, self.s.platform, self.amount
        # Padded references, on either side, and padding with a non-breaking space: the same order.
        ref = self.ref("pad")
        self.payment(ref + " ", "paid", (a := m()), 5)
        self.order(ref, PAID[p], a, 5.5)
        ref = self.ref("pad")
        self.payment(ref, "paid", (a := m()), 5)
        self.order("  " + ref + "\t", PAID[p], a, 5.5)
        ref = self.ref("nbsp")
        self.payment("\u00a0" + ref, "paid", (a := m()), 5)
        self.order(ref + "\u00a0", PAID[p], a, 5.5)
        # ... and a padded lost webhook is still found under one reference.
        ref = self.ref("pad-lost")
        self.payment(" " + ref, "paid", (a := m()), 3)
        self.order(ref + "  ", PENDING[p], a, 3)
        self.expect(ref, "paid_at_psp_unpaid_in_store", healable=True)
        # Case-varied references: the same order.
        ref = self.ref("case")
        self.payment(ref.lower(), "paid", (a := m()), 5)
        self.order(ref.upper(), PAID[p], a, 5.5)
        # A bad row whose reference is padded still holds back its payment.
        ref = self.ref("pad-bad")
        self.payment(ref, "paid", (a := m()), 5)
        self.order(" " + ref + " ", PAID[p], a, 5.5, currency="XXY")
        self.bad(ref)
        # More decimals than the currency has (0 for JPY, 3 for KWD, 2 otherwise).
        ref = self.ref("decimals")
        self.payment(ref, "paid", (a := m()), 5)
        places = DECIMALS[s.currency]
        self.order(ref, PAID[p], a, 5.5, total=f"{a / 10**places:.{places}f}" + "5" if places else f"{a}.5")
        self.bad(ref)
        # A timestamp without its zone.
        ref = self.ref("no-zone")
        self.payment(ref, "paid", (a := m()), 5)
        self.order(ref, PAID[p], a, 5.5, created_at=self.when(5.6).strftime("%Y-%m-%d %H:%M:%S"))
        self.bad(ref)
        # Byte-identical duplicate rows (a repeated export): one order.
        ref = self.ref("twice")
        self.payment(ref, "paid", (a := m()), 5)
        row = self.order(ref, PAID[p], a, 5.5)
        self.rows.append((dict(row), False))
        # Conflicting duplicates: bad rows, the payment held back.
        ref = self.ref("conflict")
        self.payment(ref, "paid", (a := m()), 5)
        row = self.order(ref, PAID[p], a, 5.5)
        self.rows.append((dict(row, state=PENDING[p]), False))
        self.bad(ref)
        # References differing only in case: a conflict.
        ref = self.ref("CaseConflict")
        self.payment(ref, "paid", (a := m()), 5)
        row = self.order(ref.upper(), PAID[p], a, 5.5)
        self.rows.append((dict(row, order_ref=ref.lower()), False))
        self.bad(ref)
        if s.kind == "csv":
            # A malformed line (an unquoted comma in the total): reported with its line, its payment held
            # back; every well-formed row around it is read (the lost webhook after it is still found).
            ref = self.ref("malformed")
            self.payment(ref, "paid", (a := m()), 5)
            self.rows.append(
                (
                    f"{ref},{self.serial},{PAID[p]},1,234.50,{s.currency},{self.stamp(self.when(5))},"
                    f"{self.stamp(self.when(5))},psp",
                    False,
                )
            )
            self.bad(ref)
            ref = self.ref("after-malformed")
            self.payment(ref, "paid", (a := m()), 2.5)
            self.order(ref, PENDING[p], a, 2.5)
            self.expect(ref, "paid_at_psp_unpaid_in_store", healable=True)
        # The ledger's own bad row: a blank reference is reported, never matched.
        self.payment("   ", "paid", m(), 5, suffix="_blank")
        self.w.truth.ledger_blank_refs += 1

    def write(self) -> None:
        rows = list(self.rows)
        order = self.rng.permutation(len(rows))
        rows = [rows[i] for i in order]
        if self.s.kind == "api":
            self.w.woo_orders += [self.woo(r) for r, _ in rows if isinstance(r, dict)]
        elif self.s.kind == "parquet":
            self.w.parquet_rows[self.s.name] = [r for r, _ in rows if isinstance(r, dict)]
        else:
            lines = []
            for row, _ in rows:
                if isinstance(row, str):
                    self.w.truth.bad_lines.add((self.s.client_id, self.s.platform, len(lines) + 2))
                    lines.append(row)
                    continue
                buffer = io.StringIO()
                csv.writer(buffer, lineterminator="").writerow([row[h] for h in HEADER])
                lines.append(buffer.getvalue())
            self.w.csv_lines[self.s.name] = lines

    def woo(self, row: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": int(row["store_order_id"]),
            "number": row["order_ref"],
            "status": row["state"],
            "total": row["total"],
            "currency": row["currency"],
            "date_created_gmt": row["created_at"],
            "date_modified_gmt": row["updated_at"],
            "payment_method": "psp",
            "meta_data": [],
        }


def found(divergences: pd.DataFrame) -> set[tuple[str, str, str, str]]:
    refs = divergences["order_ref"].astype(str).str.strip().str.lower()
    return set(zip(divergences["client_id"], divergences["platform"], refs, divergences["divergence"], strict=True))


def dumps(world: World) -> str:
    """The truth as JSON, for a failing test's message."""
    return json.dumps(sorted(map(list, world.truth.divergences)), indent=0)


def since(as_of: datetime, days: int) -> datetime:
    return as_of - timedelta(days=days)
