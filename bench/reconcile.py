"""Benchmark: reconcile N PSP payments against N store orders (default 1,000,000 each).

    .venv/bin/python bench/reconcile.py [--orders 1000000] [--skip-baseline]

The seeded demo generator writes the ledger and the store orders as Parquet (typed, as an export or a
ledger snapshot arrives). Each measured variant then runs in its own fresh process, so its peak memory
(ru_maxrss) is its own:
  vectorised  psp_assets.core.reconciliation: validate both sides, join, classify (pyarrow + numpy)
  baseline    the same judgement as a plain Python loop over dicts (the practical floor of "no library")
Both must find the same divergences. Targets: vectorised under 5 s and under 2 GiB.
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


def generate(directory: Path, orders: int) -> dict:
    import pandas as pd

    from psp_assets.core.demo_data import Partition, generate
    from psp_assets.core.reconciliation import StatusRules

    rules = StatusRules.load(REPO / "templates", PLATFORMS)
    clients = [f"client-{i:02d}" for i in range(max(1, orders // 100_000))]
    partitions = [Partition(c, PLATFORMS[i % 2], "EUR") for i, c in enumerate(clients)]
    started = time.perf_counter()
    data = generate(partitions, rules, orders_per_partition=orders // len(partitions), text_orders=False)
    frames = []
    for (client, platform, store), frame in data.orders.items():
        frames.append(frame.assign(client_id=client, platform=platform, store=store))
    all_orders = pd.concat(frames, ignore_index=True)
    # An export with typed columns: totals as numbers, timestamps with their zone; bad rows stay text.
    all_orders["total"] = all_orders["total"].astype(str)
    for column in ("created_at", "updated_at"):
        all_orders[column] = all_orders[column].astype(str)
    data.payments.to_parquet(directory / "payments.parquet", index=False)
    all_orders.to_parquet(directory / "orders.parquet", index=False)
    expected = sorted(list(k) for k in data.expected_divergences)
    (directory / "expected.json").write_text(json.dumps({"as_of": data.as_of.isoformat(), "divergences": expected}))
    return {"payments": len(data.payments), "orders": len(all_orders), "generate_s": time.perf_counter() - started}


def load(directory: Path):
    import pandas as pd

    payments = pd.read_parquet(directory / "payments.parquet")
    orders = pd.read_parquet(directory / "orders.parquet")
    meta = json.loads((directory / "expected.json").read_text())
    return payments, orders, meta


def run_vectorised(directory: Path) -> dict:
    from datetime import datetime

    import pandas as pd

    from psp_assets.core.reconciliation import StatusRules, reconcile, validate_orders, validate_payments

    payments, orders, meta = load(directory)
    rules = StatusRules.load(REPO / "templates", PLATFORMS)
    started = time.perf_counter()
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
    wall = time.perf_counter() - started
    found = sorted(
        [c, p, r, d]
        for c, p, r, d in result.divergences[["client_id", "platform", "order_ref", "divergence"]].itertuples(
            index=False
        )
    )
    return {
        "wall_s": wall,
        "divergences": len(found),
        "bad_rows": len(result.bad_rows),
        "exact": found == meta["divergences"],
        "peak_rss_mib": _peak_mib(),
    }


def run_baseline(directory: Path) -> dict:
    """The same judgement with dicts and a loop: parse each row, index orders, walk payments."""
    from datetime import datetime

    from psp_assets.core.iso4217 import ISO_4217
    from psp_assets.core.reconciliation import CAPTURED_STATUSES, StatusRules
    from psp_assets.core.statuses import SETTLED_STATUSES

    payments, orders, meta = load(directory)
    rules = StatusRules.load(REPO / "templates", PLATFORMS)
    pay_rows, order_rows = payments.to_dict("records"), orders.to_dict("records")
    as_of = datetime.fromisoformat(meta["as_of"]).timestamp()
    started = time.perf_counter()
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
    wall = time.perf_counter() - started
    found.sort()
    return {
        "wall_s": wall,
        "divergences": len(found),
        "exact": found == meta["divergences"],
        "peak_rss_mib": _peak_mib(),
    }


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(variant: str, directory: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", variant, str(directory)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--worker", nargs=2, metavar=("VARIANT", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        variant, directory = args.worker
        result = (run_vectorised if variant == "vectorised" else run_baseline)(Path(directory))
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory(prefix="psp-bench-") as tmp:
        directory = Path(tmp)
        sizes = generate(directory, args.orders)
        print(
            f"data: {sizes['payments']:,} payments, {sizes['orders']:,} orders "
            f"(generated in {sizes['generate_s']:.1f} s)"
        )
        vec = _child("vectorised", directory)
        print(
            f"vectorised: {vec['wall_s']:.2f} s, peak RSS {vec['peak_rss_mib']:.0f} MiB, "
            f"{vec['divergences']} divergences, {vec['bad_rows']} bad rows, exact={vec['exact']}"
        )
        base = None if args.skip_baseline else _child("baseline", directory)
        if base:
            print(
                f"plain loop: {base['wall_s']:.2f} s, peak RSS {base['peak_rss_mib']:.0f} MiB, "
                f"{base['divergences']} divergences, exact={base['exact']}"
            )
        summary = {
            "payments": sizes["payments"],
            "orders": sizes["orders"],
            "vectorised_s": round(vec["wall_s"], 3),
            "vectorised_peak_rss_mib": round(vec["peak_rss_mib"]),
            "vectorised_exact": vec["exact"],
            "baseline_s": round(base["wall_s"], 3) if base else None,
            "baseline_peak_rss_mib": round(base["peak_rss_mib"]) if base else None,
            "baseline_exact": base["exact"] if base else None,
            "speedup": round(base["wall_s"] / vec["wall_s"], 1) if base else None,
            "target_met": vec["wall_s"] < 5 and vec["peak_rss_mib"] < 2048,
        }
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
