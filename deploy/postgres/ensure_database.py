"""Create the Dagster database named by PSP_PG_DB when it does not exist yet (Dagster creates its tables
itself on first start). Used by `make prod-ui` and, optionally, as ExecStartPre of the systemd units.

    PSP_PG_HOST=db.internal PSP_PG_USER=dagster PSP_PG_PASSWORD=... PSP_PG_DB=psp_dagster \\
        .venv/bin/python deploy/postgres/ensure_database.py

Connects to the server's `postgres` maintenance database with the same credentials; the user needs the
CREATEDB privilege only the first time. Exits non-zero with the reason when the server is unreachable.
"""

from __future__ import annotations

import os
import sys

import psycopg2
from psycopg2 import sql

REQUIRED = ("PSP_PG_HOST", "PSP_PG_USER", "PSP_PG_DB")


def main() -> int:
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if missing:
        print(f"ensure_database: set {', '.join(missing)} (see docs/operations.md)", file=sys.stderr)
        return 2
    host, port = os.environ["PSP_PG_HOST"], int(os.environ.get("PSP_PG_PORT") or 5432)
    user, dbname = os.environ["PSP_PG_USER"], os.environ["PSP_PG_DB"]
    try:
        conn = psycopg2.connect(
            host=host,
            port=port,
            user=user,
            password=os.environ.get("PSP_PG_PASSWORD", ""),
            dbname="postgres",
            connect_timeout=10,
        )
    except psycopg2.OperationalError as exc:
        print(f"ensure_database: cannot reach PostgreSQL at {host}:{port} as {user}: {exc}".strip(), file=sys.stderr)
        return 1
    conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
            if cur.fetchone():
                print(f"ensure_database: {dbname} exists on {host}:{port}")
                return 0
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
            print(f"ensure_database: created {dbname} on {host}:{port}")
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
