import dagster as dg

payment_reconciliation_job = dg.define_asset_job(
    "payment_reconciliation_job",
    selection=["psp_payments", "store_orders", "payment_reconciliation", "payment_healing"],
    description="Read the ledger and every store's orders, report divergences, heal the safe ones.",
)
payment_kpis_job = dg.define_asset_job("payment_kpis_job", selection=["payment_kpis"])

# Lost webhooks are caught within 15 minutes; KPIs are judged per hour, a few minutes after it closes.
reconciliation_schedule = dg.ScheduleDefinition(
    name="payment_reconciliation_every_15_minutes",
    job=payment_reconciliation_job,
    cron_schedule="*/15 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
kpis_schedule = dg.ScheduleDefinition(
    name="payment_kpis_hourly",
    job=payment_kpis_job,
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)


def latest_summary(instance: dg.DagsterInstance) -> str:
    """One line for `psp fleet`: the latest reconciliation and KPI materializations."""

    def meta(key: str) -> dict:
        records = instance.fetch_materializations(dg.AssetKey(key), limit=1, ascending=False).records
        materialization = records[0].asset_materialization if records else None
        return {k: v.value for k, v in materialization.metadata.items()} if materialization else {}

    recon, kpis = meta("payment_reconciliation"), meta("payment_kpis")
    if not recon:
        return "payment reconciliation: not materialized"
    return f"payment reconciliation: {recon.get('summary')}; {recon.get('overdue', 0)} overdue; KPI breaches: " + str(
        kpis.get("breaches", "-")
    )
