"""The ledger's bulk payment read (on PostgreSQL the ADBC driver, or COPY parsed by pyarrow; on SQLite the ADBC
driver, or group_concat parsed by pyarrow) gives exactly what a row-by-row read gives, whatever the values hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from psp_assets.core.reconciliation import ledger as ledger_module
from psp_assets.core.reconciliation.ledger import Ledger, sqlite_url

pytestmark = pytest.mark.integration

AWKWARD_REFS = [
    "plain-1",
    ' quoted "ref", with comma ',
    "line\nbreak",
    "unit\x1fseparator",  # the SQLite reader's own separator: that chunk is read row by row
    "zażółć-ü-€",
    "NULL",
    "",
]


@pytest.fixture(params=["sqlite", "sqlite-group_concat", "postgresql", "postgresql-copy"])
def ledger(request, tmp_path, monkeypatch):
    if request.param == "postgresql-copy":  # the reader used without the ADBC PostgreSQL driver
        monkeypatch.setattr(ledger_module, "_ADBC_PG", None)
    if request.param.startswith("sqlite"):
        if request.param == "sqlite-group_concat":  # the reader used without the ADBC driver, or after it gave up
            monkeypatch.setattr(ledger_module, "_ADBC_SQLITE", None)
        db = Ledger(sqlite_url(tmp_path / "ledger.sqlite3"))
        yield db
        db.dispose()
    else:
        yield request.getfixturevalue("pg_ledger")


def _payments(n: int) -> pd.DataFrame:
    at = datetime(2026, 3, 29, 0, 59, 59, 123456, tzinfo=UTC)
    return pd.DataFrame(
        {
            "payment_id": [f"pay_{i}" for i in range(n)],
            "client_id": [("alpha", "beta")[i % 2] for i in range(n)],
            "platform": "woocommerce",
            "order_ref": [AWKWARD_REFS[i % len(AWKWARD_REFS)] + str(i) for i in range(n)],
            "amount_minor": [i * 7 for i in range(n)],
            "refunded_minor": [i % 3 for i in range(n)],
            "currency": "EUR",
            "status": "paid",
            "payment_method": [None if i % 4 == 0 else "card" for i in range(n)],
            "created_at": [at + timedelta(seconds=i) for i in range(n)],
            "status_changed_at": [at + timedelta(hours=1, microseconds=i) for i in range(n)],
            "last_event_id": [None if i % 5 == 0 else f"evt_{i}" for i in range(n)],
        }
    )


def _row_by_row(ledger: Ledger, clients=None) -> pd.DataFrame:
    # payments() reads the reconciliation's fields; the store columns (migration 2) are the rollout analysis's
    table = ledger_module.payments_table
    query = sa.select(*(table.c[name] for name in ledger_module.PAYMENT_FIELDS))
    if clients is not None:
        query = query.where(table.c.client_id.in_(clients))
    return ledger._read(query, ("created_at", "status_changed_at"))


def _same(bulk: pd.DataFrame, slow: pd.DataFrame) -> None:
    bulk = bulk.sort_values("payment_id", ignore_index=True)
    slow = slow.sort_values("payment_id", ignore_index=True)
    assert list(bulk.columns) == list(slow.columns)
    for column in bulk.columns:
        left, right = bulk[column].astype(object), slow[column].astype(object)
        if column in ("created_at", "status_changed_at"):
            left = pd.to_datetime(bulk[column], utc=True).dt.as_unit("us")
            right = pd.to_datetime(slow[column], utc=True).dt.as_unit("us")
        assert [None if pd.isna(v) else v for v in left] == [None if pd.isna(v) else v for v in right], column


def test_bulk_read_equals_a_row_by_row_read(ledger, monkeypatch):
    monkeypatch.setattr(ledger_module, "_SQLITE_CHUNK", 40)  # several chunks, one of them read row by row
    ledger.migrate()
    ledger.insert_payments(_payments(130))
    bulk = ledger.payments()
    assert len(bulk) == 130 and str(bulk["created_at"].dtype) == "datetime64[us, UTC]"
    _same(bulk, _row_by_row(ledger))
    _same(ledger.payments(["beta"]), _row_by_row(ledger, ["beta"]))
    assert ledger.payments([]).empty and ledger.payments(["nobody"]).empty
    assert bulk.loc[bulk["payment_id"] == "pay_1", "order_ref"].item() == ' quoted "ref", with comma 1'
    if ledger.engine.dialect.name == "postgresql" and ledger_module._ADBC_PG is not None:  # it did not fall back
        table = f'"{ledger.schema}".psp_payments' if ledger.schema else "psp_payments"
        _same(ledger._payments_adbc_pg(table), bulk)


def test_sqlite_adbc_read_types_columns_whose_first_rows_are_null(tmp_path, monkeypatch):
    if ledger_module._ADBC_SQLITE is None:
        pytest.skip("adbc-driver-sqlite is not installed")
    used = []
    read = ledger_module._adbc_chunk
    monkeypatch.setattr(ledger_module, "_adbc_chunk", lambda *a: used.append(t := read(*a)) or t)
    db = Ledger(sqlite_url(tmp_path / "ledger.sqlite3"))
    db.migrate()
    payments = _payments(3000)
    payments["payment_method"] = [None if i < 2000 else "card" for i in range(3000)]
    payments["last_event_id"] = None
    db.insert_payments(payments)
    bulk = db.payments()
    assert used and all(t is not None for t in used)  # no chunk fell back to group_concat
    assert bulk["last_event_id"].isna().all() and bulk["payment_method"].isna().sum() == 2000
    _same(bulk, _row_by_row(db))
    db.dispose()
