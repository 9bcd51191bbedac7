"""Benchmark: reconcile N PSP payments against N store orders (default 1,000,000 each).

    .venv/bin/python bench/reconcile.py [--orders 1000000] [--skip-baseline] [--skip-job] [--runs 3]
                                        [--postgres postgresql+psycopg2://postgres@127.0.0.1:5432/test]

The seeded demo generator writes the ledger (SQLite, or a fresh schema of PostgreSQL with --postgres, with
its payment events), the store orders as 20 CSV exports (10 clients x 2 platforms) with the client configs
naming them, and the same data as Parquet. Each measured variant then runs in its own fresh process, so its
peak memory (VmHWM) and CPU time are its own:
  core        psp_assets.core.reconciliation.reconcile on the Parquet snapshot: validate both sides, join, classify
  job         payment_reconciliation_job end to end, in process: the ledger read from the database, the
              20 CSV exports read, validated, reconciled, reports and Parquet written, healing (none opted in)
  baseline    the core's judgement as a plain Python loop over dicts (the practical floor of "no library")
All must find exactly the injected divergences. Targets: the job under 5 s end to end and under 2 GiB.
The machine is shared: the load average before and after each variant is printed with its CPU time;
with --runs N, core and job run N times each and the fastest run is reported (all wall times listed).
Prints figures, and the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PLATFORMS = ("woocommerce", "magento2")


def generate(directory: Path, orders: int, postgres: str | None) -> dict:
    import pandas as pd

    from psp_assets.core.reconciliation.demo import Partition, generate
    from psp_assets.core.reconciliation.reconcile import StatusRules

    rules = StatusRules.load(REPO / "templates", PLATFORMS)
    clients = [f"client-{i:02d}" for i in range(max(1, orders // 100_000))]
    partitions = [Partition(c, p, "EUR") for c in clients for p in PLATFORMS]
    started = time.perf_counter()
    data = generate(partitions, rules, orders_per_partition=orders // len(partitions), text_orders=False)
    frames = []
    for (client, platform, store), frame in data.orders.items():
        frames.append(frame.assign(client_id=client, platform=platform, store=store))
        _write_csv(frame, directory / "data" / "exports" / client / f"{platform}.csv")
    _write_configs(directory / "configs", clients)
    ledger_url = _write_ledger(directory, data.payments, data.events, postgres)
    all_orders = pd.concat(frames, ignore_index=True)
    # An export with typed columns: totals as numbers, timestamps with their zone; bad rows stay text.
    all_orders["total"] = all_orders["total"].astype(str)
    for column in ("created_at", "updated_at"):
        all_orders[column] = all_orders[column].astype(str)
    data.payments.to_parquet(directory / "payments.parquet", index=False)
    all_orders.to_parquet(directory / "orders.parquet", index=False)
    expected = sorted(list(k) for k in data.expected_divergences)
    (directory / "expected.json").write_text(
        json.dumps({"as_of": data.as_of.isoformat(), "divergences": expected, "ledger_url": ledger_url})
    )
    return {
        "payments": len(data.payments),
        "orders": len(all_orders),
        "exports": len(data.orders),
        "generate_s": time.perf_counter() - started,
    }


def _write_csv(frame, path: Path) -> None:
    """An export as a store writes it: text, amounts with two decimals, ISO 8601 times with their offset."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    text = frame.assign(
        total=frame["total"].map(lambda v: v if isinstance(v, str) else f"{v:.2f}"),
        created_at=frame["created_at"].map(lambda v: v if isinstance(v, str) else v.isoformat()),
        updated_at=frame["updated_at"].map(lambda v: v if isinstance(v, str) else v.isoformat()),
    ).astype(str)
    path.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(pa.Table.from_pandas(text, preserve_index=False), path)


def _write_configs(configs: Path, clients: list[str]) -> None:
    import yaml

    base = yaml.safe_load((REPO / "client_configs" / "nordbank.yaml").read_text())
    base.pop("github", None)
    configs.mkdir(parents=True, exist_ok=True)
    for client in clients:
        config = dict(
            base,
            id=client,
            name=client,
            platforms={
                p: {"slug": f"{client}-pay", "targets": [{"name": "production", "transport": "local", "path": p}]}
                for p in PLATFORMS
            },
            reconciliation={
                "stores": [
                    {"name": f"{p[:5]}-shop", "platform": p, "export_file": f"exports/{client}/{p}.csv"}
                    for p in PLATFORMS
                ]
            },
        )
        (configs / f"{client}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def _write_ledger(directory: Path, payments, events, postgres: str | None) -> str:
    """The ledger in bulk (the generator's own concern, not measured): SQLite through executemany in the
    format SQLAlchemy writes, PostgreSQL through COPY into a fresh schema."""
    import io
    import sqlite3
    import uuid

    from psp_assets.core.reconciliation.ledger import EVENT_FIELDS, PAYMENT_FIELDS, Ledger, sqlite_url

    if postgres:
        schema = f"psp_bench_{uuid.uuid4().hex[:10]}"
        ledger = Ledger(postgres, schema=schema)
        with ledger.engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        ledger.migrate()
        raw = ledger.engine.raw_connection()
        try:
            cur = raw.cursor()
            for table, frame, fields in (
                ("psp_payments", payments, PAYMENT_FIELDS),
                ("psp_payment_events", events, EVENT_FIELDS),
            ):
                buffer = io.StringIO()
                frame[fields].to_csv(buffer, index=False, header=False)
                buffer.seek(0)
                cur.copy_expert(f'COPY "{schema}".{table} ({", ".join(fields)}) FROM STDIN WITH (FORMAT csv)', buffer)
            raw.commit()
        finally:
            raw.close()
        return f"{postgres}#{schema}"
    path = directory / "ledger.sqlite3"
    ledger = Ledger(sqlite_url(path))
    ledger.migrate()
    ledger.dispose()
    with sqlite3.connect(path) as conn:
        for table, frame, fields in (
            ("psp_payments", payments, PAYMENT_FIELDS),
            ("psp_payment_events", events, EVENT_FIELDS),
        ):
            out = frame[fields].copy()
            for column in out.columns:
                if str(out[column].dtype).startswith("datetime64"):
                    out[column] = out[column].dt.tz_convert("UTC").dt.strftime("%Y-%m-%d %H:%M:%S.%f")
            out = out.astype(object).where(out.notna(), None)
            marks = ", ".join("?" for _ in fields)
            conn.executemany(f"INSERT INTO {table} ({', '.join(fields)}) VALUES ({marks})", out.itertuples(index=False))
    return sqlite_url(path)


def load(directory: Path):
    import pandas as pd

    payments = pd.read_parquet(directory / "payments.parquet")
    orders = pd.read_parquet(directory / "orders.parquet")
    meta = json.loads((directory / "expected.json").read_text())
    return payments, orders, meta


def run_vectorised(directory: Path) -> dict:
    from datetime import datetime

    import pandas as pd

    from psp_assets.core.reconciliation.reconcile import StatusRules, reconcile, validate_orders, validate_payments

    payments, orders, meta = load(directory)
    rules = StatusRules.load(REPO / "templates", PLATFORMS)
    cpu0, started = _cpu_s(), time.perf_counter()
    clean_pay, bad_pay = validate_payments(payments, "payments.parquet")
    parts, bads = [], [bad_pay]
    for (client, platform, store), frame in orders.groupby(["client_id", "platform", "store"], sort=False):
        clean, bad = validate_orders(frame, client, platform, store, "orders.parquet", rules)
        parts.append(clean)
        bads.append(bad)
    result = reconcile(
        clean_pay,
        pd.concat(parts, ignore_index=True),
        rules,
        datetime.fromisoformat(meta["as_of"]),
        bad_rows=pd.concat(bads, ignore_index=True),
    )
    wall, cpu = time.perf_counter() - started, _cpu_s() - cpu0
    found = sorted(
        [c, p, r, d]
        for c, p, r, d in result.divergences[["client_id", "platform", "order_ref", "divergence"]].itertuples(
            index=False
        )
    )
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "divergences": len(found),
        "bad_rows": len(result.bad_rows),
        "exact": found == meta["divergences"],
        "peak_rss_mib": _peak_mib(),
    }


def run_job(directory: Path) -> dict:
    """payment_reconciliation_job end to end, in process (imports and the definitions' loading excluded)."""
    import os

    meta = json.loads((directory / "expected.json").read_text())
    os.environ["PSP_DATA_DIR"] = str(directory / "data")
    import dagster as dg
    import pandas as pd

    from psp_assets.definitions import defs
    from psp_assets.defs.reconciliation import LedgerResource
    from psp_assets.defs.resources import PspWorkspace

    url, _, schema = meta["ledger_url"].partition("#")
    workspace = PspWorkspace(
        configs_dir=str(directory / "configs"),
        templates_dir=str(REPO / "templates"),
        data_dir=str(directory / "data"),
        stores_dir=str(directory / "stores"),
    )
    job = defs.resolve_job_def("payment_reconciliation_job")
    instance = dg.DagsterInstance.ephemeral()
    cpu0, started = _cpu_s(), time.perf_counter()
    result = job.execute_in_process(
        instance=instance, resources={"workspace": workspace, "ledger": LedgerResource(url=url, schema_name=schema)}
    )
    wall, cpu = time.perf_counter() - started, _cpu_s() - cpu0
    steps = {
        e.step_key: round(e.event_specific_data.duration_ms / 1000, 2)
        for e in result.all_events
        if e.is_step_success and e.step_key
    }
    report = pd.read_parquet(directory / "data" / "reconciliation" / "payment_reconciliation.parquet")
    found = sorted(
        [c, p, r, d]
        for c, p, r, d in report[["client_id", "platform", "order_ref", "divergence"]].itertuples(index=False)
    )
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "steps_s": steps,
        "success": result.success,
        "divergences": len(found),
        "exact": found == meta["divergences"],
        "peak_rss_mib": _peak_mib(),
    }


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_baseline(directory: Path) -> dict:
    """The same judgement with dicts and a loop: parse each row, index orders, walk payments."""
    from datetime import datetime

    from psp_assets.core.payments.iso4217 import ISO_4217
    from psp_assets.core.payments.statuses import SETTLED_STATUSES
    from psp_assets.core.reconciliation.reconcile import CAPTURED_STATUSES, StatusRules

    payments, orders, meta = load(directory)
    rules = StatusRules.load(REPO / "templates", PLATFORMS)
    pay_rows, order_rows = payments.to_dict("records"), orders.to_dict("records")
    as_of = datetime.fromisoformat(meta["as_of"]).timestamp()
    cpu0, started = _cpu_s(), time.perf_counter()
    bad_keys, index, seen = set(), {}, {}
    for o in order_rows:
        key = (o["client_id"], o["platform"], o["order_ref"])
        r = rules.rules(o["platform"])
        try:
            total = float(o["total"])
            created = datetime.fromisoformat(o["created_at"])
            ok = o["state"] in r.meanings and o["currency"] in ISO_4217 and total >= 0 and created.tzinfo is not None
        except (TypeError, ValueError):
            ok = False
        if not ok:
            bad_keys.add(key)
            continue
        o["amount_minor"] = round(total * 100)
        seen[key] = seen.get(key, 0) + 1
        index[key] = o
    for key, n in seen.items():
        if n > 1:
            bad_keys.add(key)
    by_key: dict = {}
    for p in pay_rows:
        by_key.setdefault((p["client_id"], p["platform"], p["order_ref"]), []).append(p)
    found = []
    for key, pays in by_key.items():
        if key in bad_keys:
            continue
        captured = [p for p in pays if p["status"] in CAPTURED_STATUSES]
        primary = max(captured or pays, key=lambda p: p["created_at"])
        order = index.get(key)
        if len(captured) > 1:
            found.append([*key, "duplicate_capture"])
        if primary["status"] == "pending" and (as_of - primary["created_at"].timestamp()) > 3600:
            found.append([*key, "stale_pending"])
        if order is None:
            if primary["status"] in SETTLED_STATUSES:
                found.append([*key, "paid_at_psp_no_store_order"])
            continue
        verdict, _ = rules.rules(key[1]).verdict(primary["status"], order["state"])
        if verdict:
            found.append([*key, verdict])
        if primary["currency"] != order["currency"]:
            found.append([*key, "currency_mismatch"])
        elif primary["amount_minor"] != order["amount_minor"]:
            found.append([*key, "amount_mismatch"])
    for key, order in index.items():
        if key not in by_key and key not in bad_keys and rules.rules(key[1]).claims_paid(order["state"]):
            found.append([*key, "paid_in_store_no_psp_payment"])
    wall, cpu = time.perf_counter() - started, _cpu_s() - cpu0
    found.sort()
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "divergences": len(found),
        "exact": found == meta["divergences"],
        "peak_rss_mib": _peak_mib(),
    }


def _peak_mib() -> float:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: Linux carries that over from the parent
    through fork and exec, so a worker started after the generator would report the generator's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(variant: str, directory: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", variant, str(directory)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _load() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-job", action="store_true")
    parser.add_argument("--postgres", metavar="URL", help="put the ledger in a fresh schema of this PostgreSQL")
    parser.add_argument(
        "--keep",
        metavar="DIR",
        help="generate into DIR once and reuse it on later runs (within the hour: the job reconciles as of now, "
        "so older data turns its pending payments into stale_pending and the job is no longer exact)",
    )
    parser.add_argument(
        "--runs", type=int, default=1, help="run core and job N times each (fresh processes); the fastest is reported"
    )
    parser.add_argument("--worker", nargs=2, metavar=("VARIANT", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        variant, directory = args.worker
        runner = {"core": run_vectorised, "job": run_job, "baseline": run_baseline}[variant]
        print(json.dumps(runner(Path(directory))))
        return
    with tempfile.TemporaryDirectory(prefix="psp-bench-") as tmp:
        directory = Path(args.keep or tmp)
        sizes_file = directory / "sizes.json"
        if args.keep and sizes_file.is_file():
            sizes = json.loads(sizes_file.read_text())
        else:
            directory.mkdir(parents=True, exist_ok=True)
            sizes = generate(directory, args.orders, args.postgres)
            sizes_file.write_text(json.dumps(sizes))
        ledger = "PostgreSQL" if args.postgres else "SQLite"
        print(
            f"data: {sizes['payments']:,} payments ({ledger} ledger), {sizes['orders']:,} orders in "
            f"{sizes['exports']} CSV exports (generated in {sizes['generate_s']:.1f} s)"
        )
        runs: dict[str, dict] = {}
        for variant in ("core", "job", "baseline"):
            if (variant == "job" and args.skip_job) or (variant == "baseline" and args.skip_baseline):
                continue
            tries = []
            for _ in range(1 if variant == "baseline" else max(1, args.runs)):
                before = _load()
                tries.append(_child(variant, directory))
                tries[-1]["load_before"], tries[-1]["load_after"] = before, _load()
            runs[variant] = result = min(tries, key=lambda r: r["wall_s"])
            result["walls_s"] = [round(r["wall_s"], 2) for r in tries]
            before = result["load_before"]
            steps = f", steps {result['steps_s']}" if "steps_s" in result else ""
            print(
                f"{variant}: {result['wall_s']:.2f} s wall, {result.get('cpu_s', 0):.2f} s CPU, peak RSS "
                f"{result['peak_rss_mib']:.0f} MiB, {result['divergences']} divergences, exact={result['exact']}"
                f"{steps}; load average {before[0]:.2f} before, {result['load_after'][0]:.2f} after"
                + (f"; fastest of runs {result['walls_s']} s" if len(result["walls_s"]) > 1 else "")
            )
        core, job, base = runs.get("core"), runs.get("job"), runs.get("baseline")
        summary = {
            "payments": sizes["payments"],
            "orders": sizes["orders"],
            "ledger": ledger,
            "core_s": round(core["wall_s"], 3),
            "core_cpu_s": round(core["cpu_s"], 3),
            "core_peak_rss_mib": round(core["peak_rss_mib"]),
            "core_exact": core["exact"],
            "job_s": round(job["wall_s"], 3) if job else None,
            "job_cpu_s": round(job["cpu_s"], 3) if job else None,
            "job_peak_rss_mib": round(job["peak_rss_mib"]) if job else None,
            "job_steps_s": job["steps_s"] if job else None,
            "job_walls_s": job["walls_s"] if job else None,
            "job_load_average": job["load_before"] if job else None,
            "job_exact": job["exact"] if job else None,
            "baseline_s": round(base["wall_s"], 3) if base else None,
            "baseline_peak_rss_mib": round(base["peak_rss_mib"]) if base else None,
            "baseline_exact": base["exact"] if base else None,
            "speedup": round(base["wall_s"] / core["wall_s"], 1) if base else None,
            "load_average": _load(),
            "target_met": bool(job and job["wall_s"] < 5 and job["peak_rss_mib"] < 2048),
        }
        if args.postgres and not args.keep:
            _drop_schema(args.postgres, json.loads((directory / "expected.json").read_text())["ledger_url"])
        print(json.dumps(summary))


def _drop_schema(url: str, ledger_url: str) -> None:
    import sqlalchemy as sa

    schema = ledger_url.partition("#")[2]
    if schema.startswith("psp_bench_"):
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        engine.dispose()


if __name__ == "__main__":
    main()
