"""Fixtures of the reconciliation tests: the machine's real PostgreSQL (a private schema per test run,
dropped after), an aiosmtpd SMTP server on loopback, and the local HTTP servers in servers.py."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from psp_assets.core.reconciliation.demo import Partition
from psp_assets.core.reconciliation.ledger import Ledger
from psp_assets.core.reconciliation.reconcile import StatusRules

PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


@pytest.fixture(scope="session")
def rules() -> StatusRules:
    return StatusRules.load(TEMPLATES, ["woocommerce", "magento2"])


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


class _Inbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes

        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[tuple[str, int, _Inbox]]:
    """A real SMTP server (aiosmtpd) on a free loopback port."""
    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield "127.0.0.1", port, inbox
    finally:
        controller.stop()
