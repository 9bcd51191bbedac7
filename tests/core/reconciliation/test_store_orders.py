"""Each platform's order API client against a local server answering like the documented API."""

from __future__ import annotations

import pandas as pd
import pytest

from psp_assets.core.errors import ReconciliationError
from psp_assets.core.reconciliation.reconcile import validate_orders
from psp_assets.core.reconciliation.store_orders import (
    FileOrderSource,
    Magento2Orders,
    OpenCartOrders,
    PrestaShopOrders,
    ShopifyOrders,
    WooCommerceOrders,
)
from tests.support.servers import MagentoStore, OpenCartStore, PrestaShopStore, ShopifyStore, WooCommerceStore, serving


def test_woocommerce_client_reads_every_page_and_takes_gmt_dates_as_utc():
    orders = [
        {
            "id": i,
            "number": f"W{i}",
            "status": "processing",
            "total": "12.50",
            "currency": "EUR",
            "date_created_gmt": "2025-03-01T10:00:00",
            "date_modified_gmt": "2025-03-01T10:05:00",
            "date_created": "2025-03-01T11:00:00",
            "payment_method": "psp",
        }
        for i in range(1, 6)
    ]
    with serving(WooCommerceStore(orders, "ck", "cs")) as store:
        frame = WooCommerceOrders(base_url=store.url, key="ck", secret="cs", page_size=2).fetch_orders()
        pages = [r["query"]["page"][0] for r in store.calls("GET", "/wp-json/wc/v3/orders")]
    assert list(frame["order_ref"]) == ["W1", "W2", "W3", "W4", "W5"] and pages == ["1", "2", "3"]
    assert set(frame["created_at"]) == {"2025-03-01T10:00:00+00:00"}


def test_store_api_errors_name_the_store_and_status_but_not_the_secret():
    with serving(WooCommerceStore([], "ck", "cs")) as store:
        client = WooCommerceOrders(base_url=store.url, key="ck", secret="wrong-secret-123", label="nordbank/shop")
        with pytest.raises(ReconciliationError) as err:
            client.fetch_orders()
    assert "nordbank/shop" in str(err.value) and "HTTP 401" in str(err.value)
    assert "wrong-secret-123" not in str(err.value)


def test_magento_client_pages_search_results_and_reads_the_order_state():
    orders = [
        {
            "entity_id": i,
            "increment_id": f"00000{i}",
            "state": "pending_payment",
            "status": "pending",
            "grand_total": 49.9,
            "order_currency_code": "EUR",
            "created_at": "2025-03-01 10:00:00",
            "updated_at": "2025-03-01 10:01:00",
            "payment": {"method": "psp_card"},
        }
        for i in range(1, 4)
    ]
    with serving(MagentoStore(orders, "tok")) as store:
        client = Magento2Orders(base_url=store.url, secret="tok", page_size=2)
        frame = client.fetch_orders()
        order = client.fetch_order("2")
        client.push_state(order, "processing", "evt_9", "paid at the PSP")
        healed = client.fetch_order("2")
    assert list(frame["order_ref"]) == ["000001", "000002", "000003"]
    assert set(frame["state"]) == {"pending_payment"} and frame["updated_at"][0] == "2025-03-01T10:01:00+00:00"
    assert healed.state == "processing" and healed.applied_event_ids == {"evt_9"}


def test_shopify_client_follows_the_link_header_and_marks_paid_once():
    orders = [
        {
            "id": 1000 + i,
            "name": f"#{1000 + i}",
            "financial_status": "pending",
            "total_price": "10.00",
            "currency": "PLN",
            "created_at": "2025-03-01T10:00:00-05:00",
            "updated_at": "2025-03-01T10:00:00-05:00",
            "payment_gateway_names": ["psp"],
        }
        for i in range(5)
    ]
    with serving(ShopifyStore(orders, "shpat_x")) as store:
        client = ShopifyOrders(base_url=store.url, secret="shpat_x", page_size=2)
        frame = client.fetch_orders()
        order = client.fetch_order("1001")
        client.push_state(order, "paid", "evt_1", "paid at the PSP")
        again = client.fetch_order("1001")
        with pytest.raises(ReconciliationError, match="cannot be marked as paid"):
            client.push_state(again, "paid", "evt_1", "paid at the PSP")
    assert list(frame["order_ref"]) == ["1000", "1001", "1002", "1003", "1004"]
    assert again.state == "paid" and again.applied_event_ids == {"evt_1"}


def test_prestashop_client_places_shop_local_dates_in_the_shop_timezone_and_maps_state_ids():
    orders = [
        {
            "id": 7,
            "reference": "XKBKNABJK",
            "current_state": "10",
            "id_currency": "1",
            "total_paid": "20.000000",
            "date_add": "2025-07-01 12:00:00",
            "date_upd": "2025-07-01 12:00:00",
            "module": "psppayment",
        }
    ]
    with serving(PrestaShopStore(orders, "WSKEY")) as store:
        client = PrestaShopOrders(base_url=store.url, secret="WSKEY", api_states={"10": "awaiting", "2": "paid"})
        frame = client.fetch_orders()
        order = client.fetch_order("7")
        client.push_state(order, "paid", "evt_7", "paid at the PSP")
        healed = client.fetch_order("7")
    row = frame.iloc[0]
    assert (row["state"], row["currency"], row["created_at"]) == ("awaiting", "EUR", "2025-07-01T12:00:00+02:00")
    assert healed.state == "paid" and healed.applied_event_ids == {"evt_7"}


def test_opencart_client_logs_in_and_reads_orders_by_reference():
    orders = [
        {
            "order_id": n,
            "order_status_id": "1",
            "total": "5.00",
            "currency_code": "EUR",
            "date_added": "2025-03-01 10:00:00",
            "date_modified": "2025-03-01 10:00:00",
            "payment_code": "psp",
        }
        for n in (11, 12)
    ]
    with serving(OpenCartStore(orders, "Default", "k3y")) as store:
        client = OpenCartOrders(
            base_url=store.url, key="Default", secret="k3y", api_states={"1": "pending", "2": "paid"}
        )
        frame = client.fetch_orders(refs=["12"])
        client.push_state(client.fetch_order("12"), "paid", "evt_12", "paid at the PSP")
        healed = client.fetch_order("12")
        with pytest.raises(ReconciliationError, match="Incorrect API Key"):
            OpenCartOrders(base_url=store.url, key="Default", secret="nope").fetch_orders(refs=["11"])
    assert list(frame["order_ref"]) == ["12"] and frame["state"][0] == "pending"
    assert healed.state == "paid" and healed.applied_event_ids == {"evt_12"}


def test_csv_export_bad_rows_are_reported_and_good_rows_kept(tmp_path, rules):
    path = tmp_path / "orders.csv"
    pd.DataFrame(
        [
            {
                "order_ref": "A1",
                "state": "processing",
                "total": "10.00",
                "currency": "EUR",
                "created_at": "2025-03-01T10:00:00Z",
            },
            {
                "order_ref": "A2",
                "state": "processing",
                "total": "-1",
                "currency": "EUR",
                "created_at": "2025-03-01T10:00:00Z",
            },
            {
                "order_ref": "A3",
                "state": "shipped?",
                "total": "1.999",
                "currency": "EUR",
                "created_at": "yesterday+00:00",
            },
        ]
    ).to_csv(path, index=False)
    clean, bad = validate_orders(
        FileOrderSource(path).fetch_orders(), "nordbank", "woocommerce", "shop", str(path), rules
    )
    assert list(clean["order_ref"]) == ["A1"] and clean["amount_minor"][0] == 1000
    reasons = dict(zip(bad["order_ref"], bad["reason"], strict=True))
    assert "total: -1.0 is negative" in reasons["A2"]
    assert "state: 'shipped?' is not a woocommerce order state" in reasons["A3"]
    assert "more decimals than EUR allows" in reasons["A3"] and "'yesterday+00:00' is not a date" in reasons["A3"]
    assert list(bad["row"]) == [3, 4]  # line numbers in the CSV file: the header is line 1


def test_csv_export_keeps_every_good_line_and_numbers_the_bad_ones_by_line(tmp_path, rules):
    header = "order_ref,store_order_id,state,total,currency,created_at,updated_at,payment_method\n"
    good = "{ref},1,processing,12.50,EUR,2025-03-01T10:00:00+02:00,2025-03-01T10:00:00Z,psp\n"
    path = tmp_path / "orders.csv"
    path.write_bytes(
        (
            header
            + good.format(ref="A1")  # line 2
            + "A2,2,processing,1,250.00,EUR,2025-03-01T10:00:00Z,2025-03-01T10:00:00Z,psp\n"  # 3: unquoted comma
            + "\n"  # 4: blank
            + good.format(ref='"A3\nwrapped"')  # 5-6: a quoted line break
            + good.format(ref="A4")  # 7
            + "A5,5,processing\n"  # 8: too few fields
        ).encode()
        + b"A6,6,processing,1.00,EUR,2025-03-01T10:00:00Z,2025-03-01T10:00:00Z,caf\xe9\n"  # 9: not UTF-8
        + good.format(ref="A7").encode()  # 10
    )
    fast = tmp_path / "fast.csv"
    fast.write_text(header + good.format(ref=" A8 ") + "\n" + good.format(ref="A9"))
    raw = FileOrderSource(path).fetch_orders()
    clean, bad = validate_orders(raw, "nordbank", "woocommerce", "shop", str(path), rules)
    assert list(clean["order_ref"]) == ["A1", "A3\nwrapped", "A4", "A7"]
    assert list(clean["source_row"]) == [2, 5, 7, 10]
    reasons = dict(zip(bad["row"], bad["reason"], strict=True))
    assert sorted(reasons) == [3, 8, 9]
    assert reasons[3].startswith("malformed CSV line 3: 9 field(s), the header has 8")
    assert reasons[8].startswith("malformed CSV line 8: 3 field(s)") and "not UTF-8" in reasons[9]
    assert list(bad["order_ref"]) == ["A2", "A5", "A6"]  # so their payments are held back, not missing
    clean, bad = validate_orders(FileOrderSource(fast).fetch_orders(), "nordbank", "woocommerce", "shop", "f", rules)
    assert list(clean["order_ref"]) == ["A8", "A9"] and list(clean["source_row"]) == [2, 4] and bad.empty


@pytest.mark.parametrize("last_newline", ["\n", "\r\n", ""])
def test_a_quoted_line_break_in_an_otherwise_clean_export_keeps_the_true_line_numbers(tmp_path, rules, last_newline):
    # Nothing else in the file sends it to the line-by-line read: the line count alone must catch the break.
    header = "order_ref,store_order_id,state,total,currency,created_at,updated_at,payment_method\r\n"
    good = "{ref},1,processing,12.50,EUR,2025-03-01T10:00:00+02:00,2025-03-01T10:00:00Z,psp"
    path = tmp_path / "orders.csv"
    lines = [good.format(ref="B1"), good.format(ref='"B2\nwrapped"'), good.format(ref="B3")]
    path.write_bytes((header + "\r\n".join(lines) + last_newline).encode())
    clean, bad = validate_orders(FileOrderSource(path).fetch_orders(), "nordbank", "woocommerce", "s", "f", rules)
    assert list(clean["order_ref"]) == ["B1", "B2\nwrapped", "B3"] and bad.empty
    assert list(clean["source_row"]) == [2, 3, 5]


def test_api_stores_list_the_window_and_fetch_older_orders_by_reference():
    def magento(i: int, updated: str) -> dict:
        return {
            "entity_id": i,
            "increment_id": f"00000{i}",
            "state": "processing",
            "grand_total": 10.0,
            "order_currency_code": "EUR",
            "created_at": updated,
            "updated_at": updated,
        }

    orders = [magento(1, "2025-01-01 10:00:00"), magento(2, "2025-03-01 10:00:00"), magento(3, "2024-12-01 10:00:00")]
    since = pd.Timestamp("2025-02-01", tz="UTC").to_pydatetime()
    with serving(MagentoStore(orders, "tok")) as store:
        client = Magento2Orders(base_url=store.url, secret="tok", page_size=2)
        frame = client.fetch_orders(since, [" 000001", "000002", "000009"])  # padded, listed, unknown
        asked = [r["query"] for r in store.calls("GET", "/rest/V1/orders")]
    assert sorted(frame["order_ref"]) == ["000001", "000002"]  # 000003: no payment asks for it
    conditions = [q["searchCriteria[filter_groups][0][filters][0][condition_type]"][0] for q in asked]
    assert conditions == ["gteq", "in"]
    assert asked[1]["searchCriteria[filter_groups][0][filters][0][value]"] == ["000001,000009"]
