from pathlib import Path

import dagster as dg

from psp_assets.core.reconciliation.ledger import Ledger, sqlite_url
from psp_assets.core.workspace import Paths


class LedgerResource(dg.ConfigurableResource):
    """The PSP payment ledger (core/reconciliation/ledger.py). `url` is a SQLAlchemy URL (PostgreSQL in production:
    postgresql+psycopg2://user:password@host/db, filled from dg.EnvVar("PSP_LEDGER_URL")). Empty: the
    embedded SQLite ledger under PSP_DATA_DIR/ledger/, seeded with demo data on first use."""

    url: str = ""
    schema_name: str = ""
    demo_seed: int = 7
    demo_orders_per_platform: int = 1000

    @property
    def embedded(self) -> bool:
        return not self.url

    def ledger(self) -> Ledger:
        url = self.url or sqlite_url(Paths.from_env().data_dir / "ledger" / "ledger.sqlite3")
        ledger = Ledger(url, schema=self.schema_name or None)
        ledger.migrate()
        return ledger

    @staticmethod
    def demo_orders_dir(data_dir: Path) -> Path:
        return data_dir / "demo" / "orders"
