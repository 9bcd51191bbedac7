"""Payment reconciliation and payment KPIs: the PSP ledger against the stores' orders, every 15 minutes;
KPIs hourly. Alerts for failed checks and runs live in defs/alerts."""

from psp_assets.defs.reconciliation.resources import LedgerResource

__all__ = ["LedgerResource"]
