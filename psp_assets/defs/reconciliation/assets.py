import functools
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd

from psp_assets.core.config.fleet import Fleet, config_files, load_fleet
from psp_assets.core.errors import ReconciliationError
from psp_assets.core.reconciliation.demo import seed_demo
from psp_assets.core.reconciliation.kpis import Thresholds, breaches, compute_kpis, decline_reasons
from psp_assets.core.reconciliation.reconcile import (
    BAD_ROW_COLUMNS,
    ClientLimits,
    StatusRules,
    actions_frame,
    heal,
    markdown_table,
    read_parquet,
    reconcile,
    since_for,
    validate_orders,
    validate_payments,
    with_first_seen,
    write_parquet,
)
from psp_assets.core.reconciliation.store_orders import FileOrderSource, StoreRef, sources_for
from psp_assets.core.workspace import Paths
from psp_assets.defs.reconciliation.checks import (
    DIVERGENCES_WITHIN_LIMIT,
    KPIS_WITHIN_LIMITS,
    NO_STORE_PAYMENT_WITHOUT_PSP,
    divergence_checks,
    kpi_check,
)
from psp_assets.defs.reconciliation.resources import LedgerResource
from psp_assets.defs.resources import PspWorkspace

GROUP = "reconciliation"
RATES = {"authorization_rate": 3, "decline_rate": 3, "error_rate": 3}


def _out(paths: Paths) -> Path:
    return paths.data_dir / "reconciliation"


def _rules(context: dg.AssetExecutionContext, paths: Paths) -> StatusRules:
    stamp = tuple(sorted((str(f), f.stat().st_mtime_ns) for f in paths.templates_dir.glob("*/template.yaml")))
    rules, problems = _load_rules(paths.templates_dir, stamp)
    for problem in problems:
        context.log.warning(f"platform skipped by the reconciliation: {problem}")
    return rules


@functools.lru_cache(maxsize=4)
def _load_rules(templates_dir: Path, stamp: tuple) -> tuple[StatusRules, list[str]]:
    """The platforms' rules, parsed once per set of template files (every asset of a run asks for them)."""
    return StatusRules.load_available(templates_dir)


def _fleet(paths: Paths) -> Fleet:
    """The client configs, parsed once per set of config files (each asset of a run asks for them)."""
    stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in config_files(paths.configs_dir))
    return _load_fleet(paths.configs_dir, stamp)


@functools.lru_cache(maxsize=4)
def _load_fleet(configs_dir: Path, stamp: tuple) -> Fleet:
    return load_fleet(configs_dir, [Path(f) for f, *_ in stamp])


def _secret(name: str) -> str:
    value = dg.EnvVar(name).get_value()
    if not value:
        raise ReconciliationError(
            f"environment variable {name} (named in a client config's reconciliation.stores) "
            "is not set; it must hold the store API credential"
        )
    return value


def _stores(
    paths: Paths, rules: StatusRules, ledger: LedgerResource, clients: set[str] | None = None
) -> list[StoreRef]:
    demo_dir = ledger.demo_orders_dir(paths.data_dir) if ledger.embedded else None
    api_states = {p: r.api_states for p, r in rules.platforms.items()}
    refs: list[StoreRef] = []
    for cid, loaded in sorted(_fleet(paths).clients.items()):
        if clients is None or cid in clients:
            refs += sources_for(loaded.config, paths.data_dir, api_states, _secret, demo_dir)
    return refs


def _refs(groups, client_id: str, platform: str) -> list[str]:
    try:
        return groups.get_group((client_id, platform)).tolist()
    except KeyError:
        return []


@dg.asset(group_name=GROUP, kinds={"postgres", "parquet"})
def psp_payments(context: dg.AssetExecutionContext, workspace: PspWorkspace, ledger: LedgerResource) -> dict:
    """The PSP's payment ledger as the reconciliation sees it: every payment with its canonical status,
    amount and the event that set it. This is the authority stores are reconciled against; rows the
    ledger holds that cannot be read (malformed, unknown currency, ...) are listed, never dropped."""
    paths = workspace.paths
    db = ledger.ledger()
    if ledger.embedded:
        seeded = seed_demo(
            db,
            _fleet(paths),
            _rules(context, paths),
            ledger.demo_orders_dir(paths.data_dir),
            seed=ledger.demo_seed,
            orders_per_partition=ledger.demo_orders_per_platform,
        )
        if seeded is not None:
            context.log.info(f"embedded ledger seeded with {len(seeded.payments)} demo payments")
    clean, bad = validate_payments(db.payments(), f"ledger {db.label}")
    path = write_parquet(clean, _out(paths) / "psp_payments.parquet", keep=True)
    bad_path = write_parquet(bad, _out(paths) / "psp_payments_bad_rows.parquet")
    context.add_output_metadata({
        "ledger": db.label, "payments": len(clean), "bad_rows": len(bad), "path": str(path),
        "by_client": dg.MetadataValue.md(markdown_table(clean.groupby(["client_id", "platform"]).size()
                                                        .rename("payments").reset_index())),
    })  # fmt: skip
    return {"path": str(path), "bad_rows_path": str(bad_path), "as_of": datetime.now(UTC).isoformat()}


@dg.asset(group_name=GROUP, kinds={"api", "parquet"}, deps=[psp_payments])
def store_orders(context: dg.AssetExecutionContext, workspace: PspWorkspace, ledger: LedgerResource) -> dict:
    """Every client store's orders with their platform status, read through the platform's own order API
    (WooCommerce, Magento 2, PrestaShop, OpenCart, Shopify) or an export file. A store that cannot be
    reached is listed and its orders are left out of the judgement (never reported as missing)."""
    paths = workspace.paths
    rules = _rules(context, paths)
    since = since_for(datetime.now(UTC))
    frames, bads, unreachable, counts = [], [], [], []
    stores = _stores(paths, rules, ledger)
    refs_by_store = None
    if not all(isinstance(ref.source, FileOrderSource) for ref in stores):  # exports are read whole
        columns = ["client_id", "platform", "order_ref"]
        payments = read_parquet(_out(paths) / "psp_payments.parquet", columns=columns)
        refs_by_store = payments.groupby(["client_id", "platform"], sort=False)["order_ref"]
    todo = []
    for ref in stores:
        if ref.platform not in rules.platforms:
            unreachable.append(
                {
                    "client_id": ref.client_id,
                    "platform": ref.platform,
                    "store": ref.store,
                    "error": f"no loadable template for {ref.platform}",
                }
            )
            continue
        # An API store is listed for the window and asked by reference for every other payment's order.
        todo.append((ref, [] if refs_by_store is None else _refs(refs_by_store, ref.client_id, ref.platform)))

    def read(item: tuple[StoreRef, list[str]]) -> tuple[pd.DataFrame, pd.DataFrame] | ReconciliationError:
        ref, known = item
        try:
            raw = ref.source.fetch_orders(since, known)
        except ReconciliationError as exc:
            return exc
        return validate_orders(raw, ref.client_id, ref.platform, ref.store, ref.source.label, rules)

    # Stores are read and validated two at a time: pyarrow's readers and kernels let go of the GIL, so the
    # second core works on the next store while this one's Python glue runs (and an API store's waits overlap).
    with ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1, len(todo)))) as pool:
        results = list(pool.map(read, todo))
    for (ref, _), result in zip(todo, results, strict=True):
        if isinstance(result, ReconciliationError):
            context.log.error(str(result))
            unreachable.append(
                {"client_id": ref.client_id, "platform": ref.platform, "store": ref.store, "error": str(result)}
            )
            continue
        clean, bad = result
        frames.append(clean)
        bads.append(bad)
        counts.append(
            {
                "client_id": ref.client_id,
                "platform": ref.platform,
                "store": ref.store,
                "orders": len(clean),
                "bad_rows": len(bad),
            }
        )
    orders = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    bad_rows = pd.concat(bads, ignore_index=True) if bads else pd.DataFrame(columns=BAD_ROW_COLUMNS)
    path = write_parquet(orders, _out(paths) / "store_orders.parquet", keep=True)
    bad_path = write_parquet(bad_rows, _out(paths) / "store_orders_bad_rows.parquet")
    context.add_output_metadata({
        "orders": len(orders), "bad_rows": len(bad_rows),
        "stores": dg.MetadataValue.md(markdown_table(pd.DataFrame(counts))),
        "unreachable": dg.MetadataValue.md(markdown_table(pd.DataFrame(unreachable))), "path": str(path),
    })  # fmt: skip
    return {"path": str(path), "bad_rows_path": str(bad_path), "unreachable": unreachable}


@dg.asset(
    group_name=GROUP,
    kinds={"pandas", "parquet"},
    ins={"payments": dg.AssetIn("psp_payments"), "orders": dg.AssetIn("store_orders")},
    check_specs=[DIVERGENCES_WITHIN_LIMIT, NO_STORE_PAYMENT_WITHOUT_PSP],
)
def payment_reconciliation(
    context: dg.AssetExecutionContext, workspace: PspWorkspace, ledger: LedgerResource, payments: dict, orders: dict
):
    """Every divergence between the PSP's payments and the stores' orders, with its class (paid at the
    PSP but pending in the store, paid in the store without a PSP payment, amount or currency mismatch,
    missed refund or chargeback, duplicate capture, stale pending, ...) and how long it has been open.
    Webhooks are advisory: this report is what ops works from. Stored as Parquet."""
    paths = workspace.paths
    rules = _rules(context, paths)
    fleet = _fleet(paths)
    # In one process (execute_in_process, the in-process executor) the frames the upstream assets wrote
    # are taken as they are; otherwise, or if the files changed since, the files are read.
    pay = read_parquet(payments["path"])
    ords = read_parquet(orders["path"])
    bad = pd.concat(
        [pd.read_parquet(payments["bad_rows_path"]), pd.read_parquet(orders["bad_rows_path"])], ignore_index=True
    )
    skipped = {(u["client_id"], u["platform"]) for u in orders["unreachable"]}
    unknown = [p for p in pay["platform"].unique() if p not in rules.platforms]  # one column hashed, not two
    if unknown:
        partitions = pay.loc[pay["platform"].isin(unknown), ["client_id", "platform"]].drop_duplicates()
        skipped |= {(c, p) for c, p in partitions.itertuples(index=False)}
    if skipped and not pay.empty:
        held = pd.MultiIndex.from_frame(pay[["client_id", "platform"]]).isin(list(skipped))
        pay = pay[~held].reset_index(drop=True)
        context.log.warning(
            f"{int(held.sum())} payment(s) not reconciled: their store could not be read ({sorted(skipped)})"
        )
    if ords.empty:
        ords = pd.DataFrame(
            columns=[
                "client_id",
                "platform",
                "store",
                "order_ref",
                "store_order_id",
                "state",
                "amount_minor",
                "currency",
                "created_at",
                "updated_at",
                "source",
                "source_row",
            ]
        )
        ords = ords.astype(
            {"amount_minor": "int64", "created_at": "datetime64[ns, UTC]", "updated_at": "datetime64[ns, UTC]"}
        )
    limits = {
        cid: ClientLimits(c.config.reconciliation.max_open_hours, c.config.reconciliation.pending_max_age_minutes)
        for cid, c in fleet.clients.items()
    }
    db = ledger.ledger()
    result = reconcile(pay, ords, rules, datetime.now(UTC), limits, bad_rows=bad, events=db.payment_events)
    latest = _out(paths) / "payment_reconciliation.parquet"
    previous = pd.read_parquet(latest) if latest.is_file() else None
    report = with_first_seen(result.divergences, previous, result.as_of)
    write_parquet(report, _out(paths) / "reports" / f"{result.as_of:%Y%m%dT%H%M%SZ}.parquet")
    write_parquet(report, latest)
    bad_path = write_parquet(result.bad_rows, _out(paths) / "payment_reconciliation_bad_rows.parquet")
    counts = result.counts_by_client()
    yield dg.Output(
        {"path": str(latest), "bad_rows_path": str(bad_path), "as_of": result.as_of.isoformat(),
         "divergences": len(report), "summary": result.summary()},
        metadata={
            "summary": result.summary(), "divergences": len(report), "bad_rows": len(result.bad_rows),
            "payments": result.payments, "orders": result.orders, "matched": result.matched,
            "overdue": int(report["overdue"].astype(bool).sum()) if len(report) else 0,
            "counts_by_class_and_client": dg.MetadataValue.md(markdown_table(counts, 60)),
            "oldest_open": dg.MetadataValue.md(markdown_table(result.oldest(10))),
            "bad_input": dg.MetadataValue.md(markdown_table(result.bad_rows[["source", "row", "order_ref", "reason"]])),
            "path": str(latest),
        },
    )  # fmt: skip
    yield from divergence_checks(report)


@dg.asset(group_name=GROUP, kinds={"api"}, ins={"reconciliation": dg.AssetIn("payment_reconciliation")})
def payment_healing(
    context: dg.AssetExecutionContext, workspace: PspWorkspace, ledger: LedgerResource, reconciliation: dict
) -> dict:
    """The PSP's state pushed to the store for safe divergences (paid at the PSP, still pending in the
    store) of clients that opted in (reconciliation.healing). Idempotent by PSP event id; an order the
    store changed after the PSP's event is left for a person. Every action is recorded in the ledger."""
    paths = workspace.paths
    rules = _rules(context, paths)
    opted = {cid for cid, c in _fleet(paths).clients.items() if c.config.reconciliation.healing}
    report = pd.read_parquet(reconciliation["path"])
    sources = {(r.client_id, r.store): r.source for r in _stores(paths, rules, ledger, opted)}
    actions = heal(report, sources, ledger.ledger(), rules, opted)
    frame = actions_frame(actions)
    path = write_parquet(frame, _out(paths) / "payment_healing.parquet")
    outcomes = frame["outcome"].value_counts().to_dict() if len(frame) else {}
    context.add_output_metadata({
        "clients_opted_in": ", ".join(sorted(opted)) or "none", "actions": len(frame),
        **{f"outcome_{k}": int(v) for k, v in outcomes.items()},
        "log": dg.MetadataValue.md(markdown_table(frame[["client_id", "order_ref", "event_id", "outcome", "detail"]]
                                                  if len(frame) else frame)),
    })  # fmt: skip
    return {"path": str(path), "actions": len(frame), "outcomes": {k: int(v) for k, v in outcomes.items()}}


@dg.asset(group_name=GROUP, kinds={"postgres", "pandas"}, check_specs=[KPIS_WITHIN_LIMITS])
def payment_kpis(context: dg.AssetExecutionContext, workspace: PspWorkspace, ledger: LedgerResource):
    """Hourly payment KPIs per client x platform from the PSP's payment events: authorization rate,
    decline rate (and the decline reasons), P95 latency and error rate, judged against each client's
    thresholds (kpis in the client config). A breach fails the check and alerts like a failed run."""
    paths = workspace.paths
    now = datetime.now(UTC)
    events = ledger.ledger().events(since=now - timedelta(hours=48))
    fleet = _fleet(paths)
    thresholds = {cid: Thresholds(**c.config.kpis.model_dump()) for cid, c in fleet.clients.items()}
    kpis = compute_kpis(events, thresholds)
    reasons = decline_reasons(events)
    path = write_parquet(kpis, _out(paths) / "payment_kpis.parquet")
    write_parquet(reasons, _out(paths) / "payment_decline_reasons.parquet")
    # Judged: the last complete hour and the running one; older hours were judged by earlier runs.
    recent = kpis[kpis["hour"] >= pd.Timestamp(now).floor("h") - pd.Timedelta(hours=1)] if len(kpis) else kpis
    found = breaches(recent, thresholds)
    judged = kpis[kpis["judged"]] if len(kpis) else kpis
    yield dg.Output(
        {"path": str(path), "hours": len(kpis), "breaches": len(found)},
        metadata={
            "hours": len(kpis), "events": len(events), "breaches": len(found),
            "judged_hours": dg.MetadataValue.md(markdown_table(judged.round(RATES).tail(24))),
            "breach_list": dg.MetadataValue.md("\n".join(f"- {b.describe()}" for b in found) or "_none_"),
            "top_decline_reasons": dg.MetadataValue.md(markdown_table(
                reasons.groupby("decline_reason")["declines"].sum().sort_values(ascending=False).reset_index()
                if len(reasons) else reasons)),
        },
    )  # fmt: skip
    yield kpi_check(found)
