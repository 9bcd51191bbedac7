"""Fixtures of the reconciliation tests on the machine's real PostgreSQL: a private schema per test run,
dropped after. (The status rules are tests/conftest.py's `rules`.)"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from psp_assets.core.reconciliation.demo import Partition
from psp_assets.core.reconciliation.ledger import Ledger

PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def partitions() -> list[Partition]:
    return [
        Partition("nordbank", "woocommerce", "EUR"),
        Partition("nordbank", "magento2", "EUR"),
        Partition("baltic-credit", "woocommerce", "PLN"),
    ]


@pytest.fixture
def pg_ledger() -> Iterator[Ledger]:
    """A ledger in a fresh PostgreSQL schema of the `test` database, dropped afterwards."""
    engine = sa.create_engine(PG_URL)
    schema = f"psp_ledger_{uuid.uuid4().hex[:12]}"
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 (db test) is required for these tests: {exc}")
    ledger = Ledger(PG_URL, schema=schema)
    try:
        yield ledger
    finally:
        ledger.dispose()
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
