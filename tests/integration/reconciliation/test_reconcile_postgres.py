"""The reconciliation against the real PostgreSQL ledger: exactly the injected divergences, healing that
is idempotent, KPIs that find exactly the injected breaches."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from psp_assets.core.reconciliation.demo import generate
from psp_assets.core.reconciliation.kpis import breaches, compute_kpis
from psp_assets.core.reconciliation.ledger import MIGRATIONS
from psp_assets.core.reconciliation.reconcile import heal, reconcile, validate_orders, validate_payments
from psp_assets.core.reconciliation.store_orders import FileOrderSource, WooCommerceOrders, write_orders_file
from tests.support.servers import WooCommerceStore, serving

pytestmark = pytest.mark.integration


def _run(ledger, data, rules, tmp_path: Path, sources=None):
    payments, bad_pay = validate_payments(ledger.payments(), "ledger")
    orders, bads = [], [bad_pay]
    for (client, platform, store), frame in data.orders.items():
        path = write_orders_file(frame, tmp_path / client / f"{platform}.csv")
        source = (sources or {}).get((client, platform)) or FileOrderSource(path)
        clean, bad = validate_orders(source.fetch_orders(), client, platform, store, str(path), rules)
        orders.append(clean)
        bads.append(bad)
    return reconcile(
        payments, pd.concat(orders, ignore_index=True), rules, data.as_of, bad_rows=pd.concat(bads, ignore_index=True)
    )


def _found(result) -> set[tuple[str, str, str, str]]:
    d = result.divergences
    return set(zip(d["client_id"], d["platform"], d["order_ref"], d["divergence"], strict=True))


def test_migration_creates_the_ledger_once_and_records_its_version(pg_ledger):
    assert pg_ledger.schema_version() == 0
    assert pg_ledger.migrate() == [version for version, _, _ in MIGRATIONS]
    assert pg_ledger.migrate() == []
    assert pg_ledger.schema_version() == MIGRATIONS[-1][0]


def test_reconciliation_on_postgres_finds_exactly_the_injected_divergences(pg_ledger, rules, partitions, tmp_path):
    data = generate(partitions, rules, orders_per_partition=400, seed=11)
    pg_ledger.migrate()
    pg_ledger.insert_payments(data.payments)
    pg_ledger.insert_events(data.events)

    result = _run(pg_ledger, data, rules, tmp_path)

    assert _found(result) == data.expected_divergences
    bad_store_refs = {
        (c, p, r)
        for s, c, p, r in zip(
            result.bad_rows["source"],
            result.bad_rows["client_id"],
            result.bad_rows["platform"],
            result.bad_rows["order_ref"],
            strict=True,
        )
        if s != "psp_payments"
    }
    assert bad_store_refs == data.expected_bad_refs
    overdue = set(result.divergences.loc[result.divergences["overdue"], "order_ref"])
    assert all(ref.endswith(("lost-webhook-old", "refund-missed")) for ref in overdue) and overdue


def test_every_bad_row_is_reported_with_its_row_and_reason(pg_ledger, rules, partitions, tmp_path):
    data = generate(partitions[:1], rules, orders_per_partition=50, seed=3)
    pg_ledger.migrate()
    pg_ledger.insert_payments(data.payments)
    rows = _run(pg_ledger, data, rules, tmp_path).bad_rows
    held = rows[rows["source"] == "psp_payments"]
    bad = rows[rows["source"] != "psp_payments"].set_index("order_ref")
    prefix = "NOR0-X-bad-"
    assert bad.loc[prefix + "no-state", "reason"] == "state: missing"
    assert "'XYZ' is not an ISO 4217 code" in bad.loc[prefix + "bad-currency", "reason"]
    assert "is negative" in bad.loc[prefix + "negative", "reason"]
    assert "'49,90 EUR' is not a number" in bad.loc[prefix + "not-a-number", "reason"]
    assert "has no timezone" in bad.loc[prefix + "no-timezone", "reason"]
    export = next(iter(data.orders.values()))
    # rows of a CSV export are its line numbers (the header is line 1)
    dup_rows = [i + 2 for i in export.index[export["order_ref"] == prefix + "duplicate"]]
    assert len(dup_rows) == 2 and sorted(bad.loc[[prefix + "duplicate"], "row"]) == dup_rows
    assert set(held["order_ref"]) == set(bad.index)  # their payments are held back, and say why


def _woo_orders(frame: pd.DataFrame) -> list[dict]:
    return [
        {
            "id": int(r.store_order_id),
            "number": r.order_ref,
            "status": r.state,
            "total": str(r.total),
            "currency": r.currency,
            "date_created_gmt": str(r.created_at)[:19],
            "date_modified_gmt": str(r.updated_at)[:19],
            "payment_method": "psp",
            "meta_data": [],
        }
        for r in frame.itertuples()
    ]


def test_healing_pushes_the_psp_state_once_and_leaves_newer_orders_alone(pg_ledger, rules, partitions, tmp_path):
    part = partitions[0]
    data = generate([part], rules, orders_per_partition=60, seed=5)
    pg_ledger.migrate()
    pg_ledger.insert_payments(data.payments)
    key = (part.client_id, part.platform, "shop")
    good = data.orders[key][~data.orders[key]["order_ref"].str.contains("-bad-")]
    data.orders[key] = good
    with serving(WooCommerceStore(_woo_orders(good), "ck_test", "cs_test")) as store:
        api = WooCommerceOrders(base_url=store.url, key="ck_test", secret="cs_test", page_size=25)
        sources = {(part.client_id, part.platform): api}
        report = _run(pg_ledger, data, rules, tmp_path, sources).divergences

        first = heal(report, {(part.client_id, "shop"): api}, pg_ledger, rules, [part.client_id])
        second = heal(report, {(part.client_id, "shop"): api}, pg_ledger, rules, [part.client_id])
        puts = store.calls("PUT", r"/wp-json/wc/v3/orders/\d+")
        after = _run(pg_ledger, data, rules, tmp_path, sources).divergences

    outcomes = {(a.client_id, a.platform, a.order_ref): a.outcome for a in first}
    assert outcomes == data.expected_healing
    assert {a.outcome for a in second} == {"already_applied", "skipped_store_newer"}
    assert len(puts) == 2  # the two applied pushes; the second run pushed nothing
    assert all(p["body"] and b'"status": "processing"' in p["body"] for p in puts)
    healed = {ref for (_, _, ref), outcome in data.expected_healing.items() if outcome == "applied"}
    assert healed.isdisjoint(set(after["order_ref"]))
    assert len(after) == len(report) - len(healed)
    log = pg_ledger.actions()
    assert sorted(log["outcome"]) == ["applied", "applied", "skipped_store_newer", "skipped_store_newer"]


def test_kpis_from_the_ledger_find_exactly_the_injected_breaches(pg_ledger, rules, partitions):
    data = generate(partitions, rules, orders_per_partition=300, seed=9)
    pg_ledger.migrate()
    pg_ledger.insert_events(data.events)
    kpis = compute_kpis(pg_ledger.events())
    found = breaches(kpis)
    assert {(b.client_id, b.platform, b.kpi) for b in found} == data.expected_breaches
    assert {b.hour for b in found} == {data.breach_hour}
