"""The reconciliation area: the PSP ledger against the stores' orders every 15 minutes, KPIs hourly."""

import os

import dagster as dg

from psp_assets.defs.reconciliation.assets import (
    payment_healing,
    payment_kpis,
    payment_reconciliation,
    psp_payments,
    store_orders,
)
from psp_assets.defs.reconciliation.resources import LedgerResource
from psp_assets.defs.reconciliation.schedules import (
    kpis_schedule,
    payment_kpis_job,
    payment_reconciliation_job,
    reconciliation_schedule,
)


@dg.definitions
def reconciliation() -> dg.Definitions:
    # Production sets PSP_LEDGER_URL (PostgreSQL); without it the embedded SQLite ledger with demo data is used.
    ledger = (
        LedgerResource(url=dg.EnvVar("PSP_LEDGER_URL"), schema_name=os.environ.get("PSP_LEDGER_SCHEMA", ""))
        if os.environ.get("PSP_LEDGER_URL")
        else LedgerResource()
    )
    return dg.Definitions(
        assets=[psp_payments, store_orders, payment_reconciliation, payment_healing, payment_kpis],
        jobs=[payment_reconciliation_job, payment_kpis_job],
        schedules=[reconciliation_schedule, kpis_schedule],
        resources={"ledger": ledger},
    )
