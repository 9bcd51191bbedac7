"""Ledger migration 2 on PostgreSQL, in a schema of its own: a ledger created before the store columns
gets them (and their index) without losing a row, and the rollout analysis reads its store traffic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from psp_assets.core.reconciliation.ledger import MIGRATIONS, events_table, metadata, migrations_table


def test_migration_2_upgrades_a_postgres_ledger_created_before_it(pg_ledger):
    schema = pg_ledger.schema
    at = datetime(2026, 11, 2, 10, tzinfo=UTC)
    with pg_ledger.engine.begin() as conn:  # migration 1 as it ran before the store columns existed
        metadata.create_all(
            conn, tables=[migrations_table, *(t for t in metadata.sorted_tables if t.name != "psp_ledger_migrations")]
        )
        for table, columns in (("psp_payment_events", ("store", "webhook_outcome")), ("psp_payments", ("store",))):
            for column in columns:
                conn.execute(sa.text(f'ALTER TABLE "{schema}".{table} DROP COLUMN {column}'))
        conn.execute(migrations_table.insert().values(version=1, description=MIGRATIONS[0][1], applied_at=at))
        conn.execute(
            sa.text(
                f'INSERT INTO "{schema}".psp_payment_events (event_id, payment_id, client_id, platform, event_type, '
                "outcome, status, latency_ms, occurred_at) VALUES ('e1', 'p1', 'bank-a', 'woocommerce', "
                "'authorization', 'approved', 'authorized', 120, :at)"
            ),
            {"at": at},
        )
    assert pg_ledger.migrate() == [2] and pg_ledger.schema_version() == 2
    with pg_ledger.engine.connect() as conn:
        inspector = sa.inspect(conn)
        assert {"store", "webhook_outcome"} <= {c["name"] for c in inspector.get_columns("psp_payment_events", schema)}
        assert "psp_payment_events_store" in {i["name"] for i in inspector.get_indexes("psp_payment_events", schema)}
    assert pg_ledger.events().loc[0, "event_id"] == "e1"
    row = {c.name: None for c in events_table.columns} | {
        "event_id": "e2", "payment_id": "p2", "client_id": "bank-a", "platform": "woocommerce",
        "event_type": "authorization", "outcome": "declined", "status": "failed", "decline_reason": "do_not_honor",
        "latency_ms": 300, "occurred_at": at + timedelta(minutes=1), "store": "production", "webhook_outcome": "failed",
    }  # fmt: skip
    assert pg_ledger.insert_store_events([row]) == 1
    traffic = pg_ledger.store_authorizations("woocommerce", at - timedelta(hours=1), at + timedelta(hours=1))
    assert traffic[["store", "outcome", "webhook_outcome"]].to_dict("records") == [
        {"store": "production", "outcome": "declined", "webhook_outcome": "failed"}
    ]
