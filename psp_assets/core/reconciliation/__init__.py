"""Reconciling merchants' orders with the PSP's payments: the classification (reconcile), order references
as both sides see them (references), the payment ledger (ledger), the store order sources (store_orders), the
payment KPIs (kpis), and the seeded demo data (demo)."""
