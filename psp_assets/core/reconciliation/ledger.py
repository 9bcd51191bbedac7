"""The PSP payment ledger: the PSP's own record of every payment, its events, and the reconciliation's
healing actions.

PostgreSQL in production, SQLite for the embedded default; one schema, created and upgraded by the
numbered migrations below (`migrate`). The schema is documented in docs/reconciliation.md:

psp_payments          one row per payment: the order it pays (client, platform, order_ref), amount in
                      minor units, currency, canonical status (payments/statuses.py), when it was created and when
                      its status last changed, and the id of the PSP event that changed it.
psp_payment_events    every authorization / capture / refund / chargeback / cancel attempt with its
                      outcome, decline reason and latency: the input of the payment KPIs.
psp_healing_actions   every action the reconciliation took on a store, idempotent by event id.
psp_ledger_migrations the applied migrations.
"""

from __future__ import annotations

import io
import os
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from psp_assets.core.errors import ReconciliationError
from psp_assets.core.payments.statuses import CANONICAL_STATUSES

EVENT_TYPES: tuple[str, ...] = ("authorization", "capture", "refund", "chargeback", "cancel", "expire")
EVENT_OUTCOMES: tuple[str, ...] = ("approved", "declined", "error")
HEALING_OUTCOMES: tuple[str, ...] = ("applied", "skipped_store_newer", "skipped_state_changed", "failed")

metadata = sa.MetaData()


def _in(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


payments_table = sa.Table(
    "psp_payments",
    metadata,
    sa.Column("payment_id", sa.String(64), primary_key=True),
    sa.Column("client_id", sa.String(40), nullable=False),
    sa.Column("platform", sa.String(20), nullable=False),
    sa.Column("order_ref", sa.String(128), nullable=False, comment="The store's order reference the plugin sent."),
    sa.Column("amount_minor", sa.BigInteger, nullable=False, comment="Amount in the currency's minor units."),
    sa.Column("refunded_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("payment_method", sa.String(32)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_event_id", sa.String(64), comment="The PSP event that set the current status."),
    sa.Column("store", sa.String(40), comment="The store target the plugin runs on (migration 2)."),
    sa.CheckConstraint(_in("status", CANONICAL_STATUSES), name="psp_payments_status_canonical"),
    sa.CheckConstraint("amount_minor >= 0 AND refunded_minor >= 0", name="psp_payments_amounts_non_negative"),
    sa.CheckConstraint("length(currency) = 3", name="psp_payments_currency_code"),
    sa.Index("psp_payments_order", "client_id", "platform", "order_ref"),
    sa.Index("psp_payments_status_changed", "status_changed_at"),
)

events_table = sa.Table(
    "psp_payment_events",
    metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("payment_id", sa.String(64), nullable=False),
    sa.Column("client_id", sa.String(40), nullable=False),
    sa.Column("platform", sa.String(20), nullable=False),
    sa.Column("event_type", sa.String(16), nullable=False),
    sa.Column("outcome", sa.String(10), nullable=False),
    sa.Column("status", sa.String(24), nullable=False, comment="The payment's canonical status after the event."),
    sa.Column("decline_reason", sa.String(64)),
    sa.Column("latency_ms", sa.Integer, comment="PSP processing time of the request, in milliseconds."),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("store", sa.String(40), comment="The store target the plugin runs on (migration 2)."),
    sa.Column("webhook_outcome", sa.String(10), comment="applied | failed: the store's answer to the event's webhook."),
    sa.CheckConstraint(_in("event_type", EVENT_TYPES), name="psp_payment_events_type"),
    sa.CheckConstraint(_in("outcome", EVENT_OUTCOMES), name="psp_payment_events_outcome"),
    sa.CheckConstraint(_in("status", CANONICAL_STATUSES), name="psp_payment_events_status_canonical"),
    sa.Index("psp_payment_events_occurred", "occurred_at"),
    sa.Index("psp_payment_events_payment", "payment_id"),
    sa.Index("psp_payment_events_store", "platform", "occurred_at", "store"),
)

actions_table = sa.Table(
    "psp_healing_actions",
    metadata,
    sa.Column("action_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("client_id", sa.String(40), nullable=False),
    sa.Column("platform", sa.String(20), nullable=False),
    sa.Column("store", sa.String(40), nullable=False),
    sa.Column("order_ref", sa.String(128), nullable=False),
    sa.Column("store_order_id", sa.String(64)),
    sa.Column("payment_id", sa.String(64)),
    sa.Column("event_id", sa.String(64), nullable=False, comment="The PSP event whose state was pushed."),
    sa.Column("divergence", sa.String(40), nullable=False),
    sa.Column("from_state", sa.String(40)),
    sa.Column("to_state", sa.String(40)),
    sa.Column("outcome", sa.String(24), nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("acted_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(_in("outcome", HEALING_OUTCOMES), name="psp_healing_actions_outcome"),
    # An event's state reaches an order at most once, whoever runs the healing and how often.
    sa.Index(
        "psp_healing_actions_applied_once",
        "client_id",
        "platform",
        "order_ref",
        "event_id",
        unique=True,
        postgresql_where=sa.text("outcome = 'applied'"),
        sqlite_where=sa.text("outcome = 'applied'"),
    ),
)

migrations_table = sa.Table(
    "psp_ledger_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
)


def _v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[payments_table, events_table, actions_table])


# Added by migration 2 for the rollout analysis (core/rollout/analysis.py): which store a payment went
# through, and whether the store applied the event's webhook. Nullable: older rows and writers omit them.
STORE_COLUMNS: dict[str, tuple[str, ...]] = {
    "psp_payments": ("store",),
    "psp_payment_events": ("store", "webhook_outcome"),
}


def _v2(conn: Connection) -> None:
    """Add the store columns and their index to a ledger created before them (a fresh ledger has them)."""
    schema = (conn.get_execution_options().get("schema_translate_map") or {}).get(None)
    inspector = sa.inspect(conn)
    prefix = f"{conn.dialect.identifier_preparer.quote_schema(schema)}." if schema else ""
    for table_name, columns in STORE_COLUMNS.items():
        table = metadata.tables[table_name]
        present = {c["name"] for c in inspector.get_columns(table_name, schema=schema)}
        for name in columns:
            if name not in present:
                column_type = table.c[name].type.compile(dialect=conn.dialect)
                conn.execute(sa.text(f"ALTER TABLE {prefix}{table_name} ADD COLUMN {name} {column_type}"))
    indexes = {i["name"] for i in inspector.get_indexes("psp_payment_events", schema=schema)}
    if "psp_payment_events_store" not in indexes:
        next(i for i in events_table.indexes if i.name == "psp_payment_events_store").create(conn)


# (version, description, upgrade). Append only; never edit an applied migration.
MIGRATIONS: tuple[tuple[int, str, Callable[[Connection], None]], ...] = (
    (1, "psp_payments, psp_payment_events, psp_healing_actions", _v1),
    (2, "store and webhook_outcome columns for the rollout analysis", _v2),
)

PAYMENT_FIELDS = [c.name for c in payments_table.columns if c.name not in STORE_COLUMNS["psp_payments"]]
EVENT_FIELDS = [c.name for c in events_table.columns if c.name not in STORE_COLUMNS["psp_payment_events"]]
STORE_PAYMENT_FIELDS = [c.name for c in payments_table.columns]
STORE_EVENT_FIELDS = [c.name for c in events_table.columns]
ROLLOUT_EVENT_COLUMNS = ("client_id", "platform", "store", "outcome", "decline_reason", "latency_ms", "webhook_outcome")
ACTION_FIELDS = [c.name for c in actions_table.columns if c.name != "action_id"]


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def redact_url(url: str) -> str:
    """The URL without its password, for messages and metadata."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable ledger URL>"


@dataclass
class Ledger:
    """A connection to the ledger database. `schema` (PostgreSQL only) puts the tables in that schema."""

    url: str
    schema: str | None = None

    def __post_init__(self) -> None:
        try:
            engine = sa.create_engine(self.url, future=True)
        except (sa.exc.ArgumentError, ModuleNotFoundError) as exc:
            raise ReconciliationError(
                f"ledger URL {redact_url(self.url)}: {exc}; expected e.g. postgresql+psycopg2://user@host/db "
                "or sqlite:///path/ledger.sqlite3"
            ) from None
        if engine.dialect.name == "sqlite":
            Path(engine.url.database or "").parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = engine.execution_options(schema_translate_map={None: self.schema})

    @property
    def label(self) -> str:
        return redact_url(self.url) + (f" (schema {self.schema})" if self.schema else "")

    def dispose(self) -> None:
        self.engine.dispose()

    # --- schema -----------------------------------------------------------------------------------

    def migrate(self) -> list[int]:
        """Apply the migrations not applied yet, in order, each in its own transaction; returns their
        versions. Safe to run concurrently on PostgreSQL (an advisory lock serialises the runners)."""
        applied: list[int] = []
        try:
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('psp_ledger_migrations'))"))
                metadata.create_all(conn, tables=[migrations_table])
                done = set(conn.execute(sa.select(migrations_table.c.version)).scalars())
                for version, description, upgrade in MIGRATIONS:
                    if version in done:
                        continue
                    with conn.begin_nested():
                        upgrade(conn)
                        conn.execute(
                            migrations_table.insert().values(
                                version=version, description=description, applied_at=datetime.now(UTC)
                            )
                        )
                    applied.append(version)
        except sa.exc.SQLAlchemyError as exc:
            raise ReconciliationError(
                f"ledger {self.label}: migration failed: {exc.__class__.__name__}: {exc}"
            ) from None
        return applied

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table("psp_ledger_migrations", schema=self.schema):
                return 0
            return int(conn.execute(sa.select(sa.func.max(migrations_table.c.version))).scalar() or 0)

    # --- writes -----------------------------------------------------------------------------------

    def insert_payments(self, rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> int:
        return self._insert(payments_table, rows, PAYMENT_FIELDS)

    def insert_events(self, rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> int:
        return self._insert(events_table, rows, EVENT_FIELDS)

    def _insert(self, table: sa.Table, rows: pd.DataFrame | Iterable[Mapping[str, Any]], fields: list[str]) -> int:
        records = _records(rows, fields)
        if not records:
            return 0
        try:
            with self.engine.begin() as conn:
                for start in range(0, len(records), 5000):
                    conn.execute(table.insert(), records[start : start + 5000])
        except sa.exc.SQLAlchemyError as exc:
            raise ReconciliationError(
                f"ledger {self.label}: {table.name}: insert failed, nothing written: {exc}"
            ) from None
        return len(records)

    # --- rollout analysis (migration 2) --------------------------------------------------------------

    def insert_store_payments(self, rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> int:
        """Payments with the store they went through (the columns of migration 2 included)."""
        return self._insert(payments_table, rows, STORE_PAYMENT_FIELDS)

    def insert_store_events(self, rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> int:
        """Payment events with their store and webhook outcome (the columns of migration 2 included)."""
        return self._insert(events_table, rows, STORE_EVENT_FIELDS)

    def store_authorizations(
        self, platform: str, since: datetime, until: datetime, clients: Iterable[str] | None = None
    ) -> pd.DataFrame:
        """The platform's authorization attempts in [since, until) that name their store: the input of the
        rollout analysis (ROLLOUT_EVENT_COLUMNS and occurred_at)."""
        c = events_table.c
        query = sa.select(*(c[name] for name in ROLLOUT_EVENT_COLUMNS), c.occurred_at).where(
            c.platform == platform,
            c.event_type == "authorization",
            c.store.is_not(None),
            c.occurred_at >= since,
            c.occurred_at < until,
        )
        if clients is not None:
            query = query.where(c.client_id.in_(list(clients)))
        return self._read(query, ("occurred_at",))

    def record_action(self, action: Mapping[str, Any]) -> bool:
        """Record one healing action; False when an `applied` action for the same event is already there."""
        values = {k: action.get(k) for k in ACTION_FIELDS}
        try:
            with self.engine.begin() as conn:
                conn.execute(actions_table.insert().values(**values))
        except sa.exc.IntegrityError:
            return False
        return True

    # --- reads ------------------------------------------------------------------------------------

    def payments(self, clients: Iterable[str] | None = None) -> pd.DataFrame:
        """Every payment (of `clients`), read in bulk into Arrow-backed columns: PostgreSQL through
        `COPY ... TO STDOUT`, SQLite through one aggregate per chunk of rows, both parsed by pyarrow's CSV
        reader; no Python object per row. Timestamps are UTC."""
        clients = None if clients is None else list(clients)
        try:
            dialect = self.engine.dialect.name
            if dialect == "postgresql":
                return self._payments_copy(clients)
            if dialect == "sqlite":
                return self._payments_sqlite(clients)
        except (sa.exc.SQLAlchemyError, sqlite3.Error, pa.ArrowException, OSError) as exc:
            raise ReconciliationError(
                f"ledger {self.label}: read failed ({exc.__class__.__name__}: {exc}); run the migration first "
                "(Ledger.migrate, done by the ledger resource on first use)"
            ) from None
        query = sa.select(payments_table)
        if clients is not None:
            query = query.where(payments_table.c.client_id.in_(clients))
        return self._read(query, ("created_at", "status_changed_at"))

    def _payments_copy(self, clients: list[str] | None) -> pd.DataFrame:
        table = f'"{self.schema}".psp_payments' if self.schema else "psp_payments"
        if clients is None:
            found = self._payments_adbc_pg(table)
            if found is not None:
                return found
        columns = ", ".join(
            f"(extract(epoch FROM {c}) * 1000000)::bigint" if c in _TIME_FIELDS else c for c in PAYMENT_FIELDS
        )
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            where = cursor.mogrify(" WHERE client_id = ANY(%s)", (clients,)).decode() if clients is not None else ""
            buffer = io.BytesIO()
            cursor.copy_expert(f"COPY (SELECT {columns} FROM {table}{where}) TO STDOUT WITH (FORMAT csv)", buffer)
            raw.rollback()
        finally:
            raw.close()
        if not buffer.getbuffer().nbytes:
            return _payments_frame(_SCHEMA.empty_table(), epoch=False)
        buffer.seek(0)
        table_ = pacsv.read_csv(
            buffer,
            read_options=pacsv.ReadOptions(column_names=PAYMENT_FIELDS),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={f.name: pa.int64() if f.name in _TIME_FIELDS else f.type for f in _SCHEMA},
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
        return _payments_frame(table_, epoch=True)

    def _payments_adbc_pg(self, table: str) -> pd.DataFrame | None:
        """Every payment through the ADBC PostgreSQL driver: libpq's binary COPY straight into Arrow columns,
        so the server formats no text and nothing is parsed here. None when the driver is missing or fails
        (the caller reads through COPY ... TO STDOUT, whose error, if any, is the one reported)."""
        if _ADBC_PG is None:
            return None
        uri = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            with _ADBC_PG.connect(uri) as conn, conn.cursor() as cursor:
                cursor.execute(f"SELECT {', '.join(PAYMENT_FIELDS)} FROM {table}")
                arrow = cursor.fetch_arrow_table()
            # timestamptz comes as UTC instants: the schema's microseconds, which _payments_frame marks as UTC
            return _payments_frame(arrow.cast(_SCHEMA), epoch=False)
        except (_ADBC_PG.Error, pa.ArrowException, OSError, ValueError):
            return None

    def _payments_sqlite(self, clients: list[str] | None) -> pd.DataFrame:
        # One group_concat per chunk of rowids: SQLite builds the text, pyarrow parses it. Chunks run on their
        # own read-only connections in threads (sqlite3 lets go of the GIL while it aggregates). Unit and
        # record separators (never in a ledger id) split it; a chunk whose row count does not come back is
        # read row by row.
        if clients is not None and not clients:
            return _payments_frame(_SCHEMA.empty_table(), epoch=False)
        path = self.engine.url.database or ""
        with self.engine.connect() as conn:
            low, high = conn.exec_driver_sql(
                "SELECT ifnull(min(rowid), 0), ifnull(max(rowid), 0) FROM psp_payments"
            ).one()
        starts = list(range(low - 1, high, _SQLITE_CHUNK))
        in_memory = path in ("", ":memory:")
        with ThreadPoolExecutor(max_workers=1 if in_memory else min(4, os.cpu_count() or 1)) as pool:
            chunks = list(pool.map(lambda start: self._sqlite_chunk_read(path, start, clients), starts))
        tables = [self._sqlite_rows(start, clients) if chunk is None else chunk for start, chunk in chunks]
        tables = [t for t in tables if t.num_rows]
        if not tables:
            return _payments_frame(_SCHEMA.empty_table(), epoch=False)
        return _payments_frame(pa.concat_tables(tables), epoch=False)

    def _sqlite_chunk_read(self, path: str, start: int, clients: list[str] | None) -> tuple[int, pa.Table | None]:
        if path not in ("", ":memory:") and _ADBC_SQLITE is not None:
            table = _adbc_chunk(path, start, clients)
            if table is not None:
                return start, table
        return self._sqlite_chunk(path, start, clients)

    def _sqlite_chunk(self, path: str, start: int, clients: list[str] | None) -> tuple[int, pa.Table | None]:
        # One format() per row builds its text in one allocation (|| would copy it once per column).
        row = (
            f"format('{chr(31).join('%s' for _ in PAYMENT_FIELDS)}', "
            + ", ".join(f"ifnull({c}, char(30))" for c in PAYMENT_FIELDS)
            + ")"
        )
        where = f" AND client_id IN ({', '.join('?' for _ in clients)})" if clients else ""
        sql = f"SELECT count(*), group_concat({row}, char(10)) FROM psp_payments WHERE rowid > ? AND rowid <= ?{where}"
        if path in ("", ":memory:"):
            with self.engine.connect() as conn:
                count, text = conn.exec_driver_sql(sql, (start, start + _SQLITE_CHUNK, *(clients or []))).one()
            text = text.encode() if isinstance(text, str) else text
        else:
            raw = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
            try:
                raw.text_factory = bytes  # the text goes to pyarrow as it is
                count, text = raw.execute(sql, (start, start + _SQLITE_CHUNK, *(clients or []))).fetchone()
            finally:
                raw.close()
        if not count:
            return start, _SCHEMA.empty_table()
        try:
            chunk = pacsv.read_csv(
                io.BytesIO(text),
                read_options=pacsv.ReadOptions(column_names=PAYMENT_FIELDS),
                parse_options=pacsv.ParseOptions(delimiter="\x1f", quote_char=False),
                convert_options=pacsv.ConvertOptions(
                    column_types=_SCHEMA, null_values=["\x1e"], strings_can_be_null=True
                ),
            )
        except pa.ArrowInvalid:
            return start, None
        return start, chunk if chunk.num_rows == count else None

    def _sqlite_rows(self, start: int, clients: list[str] | None) -> pa.Table:
        query = sa.select(payments_table).where(
            sa.text("rowid > :lo AND rowid <= :hi").bindparams(lo=start, hi=start + _SQLITE_CHUNK)
        )
        if clients is not None:
            query = query.where(payments_table.c.client_id.in_(clients))
        with self.engine.connect() as conn:
            frame = pd.read_sql(query, conn)
        for column in _TIME_FIELDS:
            utc = pd.to_datetime(frame[column], utc=True, format="ISO8601").dt.tz_localize(None)
            frame[column] = utc.astype("datetime64[us]")
        return pa.Table.from_pandas(frame[PAYMENT_FIELDS], schema=_SCHEMA, preserve_index=False)

    def events(self, since: datetime | None = None, until: datetime | None = None) -> pd.DataFrame:
        query = sa.select(events_table)
        if since is not None:
            query = query.where(events_table.c.occurred_at >= since)
        if until is not None:
            query = query.where(events_table.c.occurred_at < until)
        return self._read(query, ("occurred_at",))

    def payment_events(self, payment_ids: Iterable[str]) -> pd.DataFrame:
        """Every event of the given payments (read in batches: the reconciliation asks for the few payments
        its divergences concern, to date each by the event that opened it)."""
        ids = list(dict.fromkeys(payment_ids))
        frames = [
            self._read(sa.select(events_table).where(events_table.c.payment_id.in_(ids[i : i + 500])), ("occurred_at",))
            for i in range(0, len(ids), 500)
        ]
        return pd.concat(frames, ignore_index=True) if frames else self.events(until=datetime(1970, 1, 2, tzinfo=UTC))

    def actions(self) -> pd.DataFrame:
        return self._read(sa.select(actions_table).order_by(actions_table.c.action_id), ("acted_at",))

    def applied_events(self, client_id: str, platform: str, order_ref: str) -> set[str]:
        query = sa.select(actions_table.c.event_id).where(
            actions_table.c.client_id == client_id,
            actions_table.c.platform == platform,
            actions_table.c.order_ref == order_ref,
            actions_table.c.outcome == "applied",
        )
        with self.engine.connect() as conn:
            return set(conn.execute(query).scalars())

    def count(self, table: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(metadata.tables[table])).scalar() or 0)

    def _read(self, query: sa.Select, time_columns: Iterable[str]) -> pd.DataFrame:
        try:
            with self.engine.connect() as conn:
                frame = pd.read_sql(query, conn)
        except sa.exc.SQLAlchemyError as exc:
            raise ReconciliationError(
                f"ledger {self.label}: read failed ({exc.__class__.__name__}: {exc}); run the migration first "
                "(Ledger.migrate, done by the ledger resource on first use)"
            ) from None
        for column in time_columns:
            # The ledger writes UTC; SQLite hands it back without an offset.
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame


try:  # The ADBC SQLite driver (a dependency; optional here so a ledger stays readable without it).
    import adbc_driver_sqlite.dbapi as _ADBC_SQLITE
except ImportError:  # pragma: no cover - installed with the project
    _ADBC_SQLITE = None
try:  # The ADBC PostgreSQL driver (likewise: without it, COPY ... TO STDOUT parsed by pyarrow).
    import adbc_driver_postgresql.dbapi as _ADBC_PG
except ImportError:  # pragma: no cover - installed with the project
    _ADBC_PG = None

_TIME_FIELDS = ("created_at", "status_changed_at")
_SQLITE_CHUNK = 250_000
_ARROW_TYPES = {
    "amount_minor": pa.int64(),
    "refunded_minor": pa.int64(),
    "created_at": pa.timestamp("us"),
    "status_changed_at": pa.timestamp("us"),
}
_SCHEMA = pa.schema([(c, _ARROW_TYPES.get(c, pa.string())) for c in PAYMENT_FIELDS])


def _adbc_chunk(path: str, start: int, clients: list[str] | None) -> pa.Table | None:
    """A chunk of payments read by the ADBC SQLite driver straight into Arrow columns (no text in between),
    cast to the ledger's schema. None when the driver cannot (a column whose stored types differ from row
    to row, a timestamp it cannot parse): the caller reads that chunk through group_concat instead."""
    assert _ADBC_SQLITE is not None
    where = f" AND client_id IN ({', '.join('?' for _ in clients)})" if clients else ""
    # The driver types a column by its first rows: a nullable text column comes with a marker for NULL
    # (never in a ledger id), so a chunk that starts with NULLs is not typed as numbers.
    nullable = {c.name for c in payments_table.columns if c.nullable and c.name in PAYMENT_FIELDS}
    columns = ", ".join(f"ifnull({c}, char(30))" if c in nullable else c for c in PAYMENT_FIELDS)
    sql = f"SELECT {columns} FROM psp_payments WHERE rowid > ? AND rowid <= ?{where}"
    try:
        with _ADBC_SQLITE.connect(f"file:{path}?mode=ro") as conn, conn.cursor() as cursor:
            # Batches of the whole chunk, not the driver's 1,024 rows: fewer, longer columns to build and join.
            cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(_SQLITE_CHUNK)})
            cursor.execute(sql, (start, start + _SQLITE_CHUNK, *(clients or [])))
            table = cursor.fetch_arrow_table()
        if table.num_rows == 0:
            return _SCHEMA.empty_table()
        arrays = []
        for i, field in enumerate(_SCHEMA):
            values = pc.cast(table.column(i), field.type)
            if field.name in nullable:
                values = pc.if_else(pc.equal(values, "\x1e"), pa.scalar(None, field.type), values)
            arrays.append(values)
        return pa.table(arrays, schema=_SCHEMA)
    except (pa.ArrowException, OSError, _ADBC_SQLITE.Error):
        return None


def _payments_frame(table: pa.Table, epoch: bool) -> pd.DataFrame:
    """Payments as the reconciliation reads them: text as Arrow-backed strings, timestamps in UTC."""
    for column in _TIME_FIELDS:
        values = table[column]
        if epoch:  # PostgreSQL sent microseconds since the epoch
            values = pc.cast(pc.cast(values, pa.int64()), pa.timestamp("us"))
        table = table.set_column(table.schema.get_field_index(column), column, pc.assume_timezone(values, "UTC"))
    # pandas keeps text as large_string: cast chunk by chunk here, not concatenated again column by column.
    wide = pa.schema([f.with_type(pa.large_string()) if pa.types.is_string(f.type) else f for f in table.schema])
    return table.cast(wide).to_pandas()


def _records(rows: pd.DataFrame | Iterable[Mapping[str, Any]], fields: list[str]) -> list[dict[str, Any]]:
    if isinstance(rows, pd.DataFrame):
        frame = rows[[f for f in fields if f in rows.columns]].astype(object)
        frame = frame.where(frame.notna(), None)
        records = frame.to_dict("records")
        for record in records:
            for key, value in record.items():
                if isinstance(value, pd.Timestamp):
                    record[key] = value.to_pydatetime(warn=False)
        return records
    return [{k: r.get(k) for k in fields if k in r} for r in rows]
