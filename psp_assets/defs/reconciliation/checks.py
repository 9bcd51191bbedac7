"""The reconciliation's and the KPIs' checks: specs here, evaluated inside the assets that own the data
(the report is computed once, judged where it is made)."""

import json

import dagster as dg
import pandas as pd

from psp_assets.core.alerts import kpi_alerts
from psp_assets.core.reconciliation.kpis import Breach
from psp_assets.core.reconciliation.reconcile import markdown_table

DIVERGENCES_WITHIN_LIMIT = dg.AssetCheckSpec(
    "divergences_within_age_limit",
    asset="payment_reconciliation",
    description="No divergence stays open past its client's limit (reconciliation.max_open_hours, default 24 h).",
)
NO_STORE_PAYMENT_WITHOUT_PSP = dg.AssetCheckSpec(
    "no_paid_in_store_without_psp_payment",
    asset="payment_reconciliation",
    description="No store order is paid without a PSP payment (a store marking orders paid on its own).",
)
KPIS_WITHIN_LIMITS = dg.AssetCheckSpec(
    "kpis_within_limits",
    asset="payment_kpis",
    description="Authorization rate, decline rate, error rate and P95 latency of the latest hours are within "
    "each client's kpis thresholds.",
)


def divergence_checks(report: pd.DataFrame) -> list[dg.AssetCheckResult]:
    overdue = report[report["overdue"].astype(bool)]
    columns = ["client_id", "platform", "order_ref", "divergence", "open_hours", "limit_hours"]
    oldest = overdue.sort_values("open_hours", ascending=False)[columns].round({"open_hours": 1})
    no_psp = report[report["divergence"] == "paid_in_store_no_psp_payment"]
    return [
        dg.AssetCheckResult(
            check_name=DIVERGENCES_WITHIN_LIMIT.name,
            passed=overdue.empty,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"{len(overdue)} divergence(s) open past their limit" if len(overdue) else None,
            metadata={
                "failed": len(overdue),
                "oldest_open_hours": float(overdue["open_hours"].max()) if len(overdue) else 0.0,
                "overdue": dg.MetadataValue.md(markdown_table(oldest)),
                "alert_summary": "; ".join(
                    f"{r.client_id}|{r.platform} {r.order_ref}: {r.divergence} open {r.open_hours:.0f} h"
                    for r in oldest.head(5).itertuples()
                ),
            },
        ),
        dg.AssetCheckResult(
            check_name=NO_STORE_PAYMENT_WITHOUT_PSP.name,
            passed=no_psp.empty,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"{len(no_psp)} store order(s) paid without any PSP payment" if len(no_psp) else None,
            metadata={
                "failed": len(no_psp),
                "orders": dg.MetadataValue.md(
                    markdown_table(no_psp[["client_id", "platform", "store", "order_ref", "store_state", "opened_at"]])
                ),
                "alert_summary": ", ".join(
                    f"{r.client_id}|{r.platform} {r.order_ref}" for r in no_psp.head(10).itertuples()
                ),
            },
        ),
    ]


def kpi_check(found: list[Breach]) -> dg.AssetCheckResult:
    alerts = kpi_alerts(found)
    return dg.AssetCheckResult(
        check_name=KPIS_WITHIN_LIMITS.name,
        passed=not found,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{len(found)} KPI breach(es)" if found else None,
        metadata={
            "failed": len(found),
            "alert_kind": "kpi_breach",
            "alert_summary": " | ".join(a.summary for a in alerts),
            "breaches": dg.MetadataValue.json(
                [json.loads(json.dumps({**b.__dict__, "hour": b.hour.isoformat()})) for b in found]
            ),
        },
    )
