"""Benchmark: the compatibility matrix on real PHP 7.4 ... 8.5 (WebAssembly), for the demo fleet and for 50
synthetic clients, with runtime boots counted, against baselines measured in the same run.

    .venv/bin/python bench/compat_matrix.py [--clients 50] [--baseline-sample 0]

- pooled:        what the nightly asset does: one runtime per PHP version for the whole matrix, booted once
                 (boot time included), versions side by side on the machine's cores.
- pooled, optimizing: the same with Node's `--no-liftoff` (PSP_WASM_NODE_FLAGS): slower boots, faster requests.
- per partition: baseline: a fresh runtime for every (plugin, PHP version) pair, the same work on it, then
                 stopped; same parallelism. Measured in full for the demo fleet; for the synthetic fleet on
                 every pair too, unless --baseline-sample N measures N pairs and scales (reported as such).
- per file:      baseline: a fresh runtime per PHP file linted (what a `php -l` per file costs here):
                 measured on one plugin on one PHP version, scaled to every file x version of the fleet.

Prints a table and, as the last line, one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from psp_assets.core import compat  # noqa: E402
from psp_assets.core.config.fleet import Fleet, load_fleet  # noqa: E402
from psp_assets.core.runtimes.php import BOOTS, PhpRuntimes, WasmPhp  # noqa: E402
from psp_assets.core.verify.checks import match_glob  # noqa: E402

TEMPLATES = REPO / "templates"
DEMO = REPO / "client_configs"


def synthetic_configs(count: int, out: Path) -> Path:
    """`count` valid client configs made by varying the demo ones (ids, names, slugs, target paths)."""
    demos = [yaml.safe_load(p.read_text()) for p in sorted(DEMO.glob("*.yaml"))]
    out.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        data = json.loads(json.dumps(demos[i % len(demos)]))
        base = data["id"]
        data["id"] = f"{base[:30]}-s{i:02d}"
        data["name"] = f"{data.get('name', base)} {i:02d}"
        for settings in (data.get("platforms") or {}).values():
            if not isinstance(settings, dict):
                continue
            if settings.get("slug"):
                settings["slug"] = f"{settings['slug'][:40]}-s{i:02d}"
            for target in settings.get("targets") or []:
                if "path" in target and target.get("transport") == "local":
                    target["path"] = f"s{i:02d}/{target['path']}"
        data.pop("github", None)  # publishing is not what this measures
        (out / f"{data['id']}.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return out


def pooled(fleet: Fleet, node_flags: list[str] | None = None) -> dict:
    before = Counter(BOOTS)
    with PhpRuntimes(lambda version: WasmPhp(version, node_flags=node_flags)) as pool:
        run = compat.run_matrix(fleet, TEMPLATES, pool)
    boots = BOOTS - before
    return {
        "seconds": round(run.seconds, 2),
        "boots": sum(boots.values()),
        "boots_per_version": dict(sorted(boots.items())),
        "plugins": len(run.plugins),
        "plugin_php_runs": run.plugin_runs,
        "cells": len(run.frame),
        "summary": compat.summary(run.frame),
    }


def pairs_of(plugins: list[compat.MatrixPlugin]) -> list[tuple[compat.MatrixPlugin, str]]:
    return [(p, v) for p in plugins for v in (p.template.spec.php.versions() if p.template.spec.php else [])]


def per_partition(fleet: Fleet, sample: int) -> dict:
    """A fresh runtime per (plugin, PHP version): boot, lint + contract + api checks, stop."""
    templates, _ = compat.php_templates(TEMPLATES)
    with tempfile.TemporaryDirectory(prefix="bench-compat-") as tmp:
        started = time.perf_counter()
        plugins = compat.render_plugins(fleet, templates, Path(tmp))
        render_seconds = time.perf_counter() - started
        pairs = pairs_of(plugins)
        chosen = pairs if not sample or sample >= len(pairs) else random.Random(7).sample(pairs, sample)
        before = Counter(BOOTS)

        def one(pair: tuple[compat.MatrixPlugin, str]) -> None:
            plugin, version = pair
            with WasmPhp(version) as php:
                compat.plugin_results(plugin, php)

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            list(pool.map(one, chosen))
        work_seconds = time.perf_counter() - started
    boots = sum((BOOTS - before).values())
    scale = len(pairs) / len(chosen)
    return {
        "seconds": round(render_seconds + work_seconds * scale, 2),
        "boots": round(boots * scale),
        "pairs": len(pairs),
        "measured_pairs": len(chosen),
        "scaled": scale != 1,
    }


def per_file(fleet: Fleet) -> dict:
    """A fresh runtime per linted file: measured on one plugin on one version, scaled to the fleet."""
    templates, _ = compat.php_templates(TEMPLATES)
    with tempfile.TemporaryDirectory(prefix="bench-compat-") as tmp:
        plugins = compat.render_plugins(fleet, templates, Path(tmp))
        pairs = pairs_of(plugins)

        def php_files(p: compat.MatrixPlugin) -> list[str]:
            return [f for f in p.files if any(match_glob(f, g) for g in p.template.spec.lint_globs)]

        total_file_lints = sum(len(php_files(p)) for p, _ in pairs)
        plugin, version = pairs[0]
        files = php_files(plugin)[:12]
        started = time.perf_counter()
        for rel in files:
            with WasmPhp(version) as php:
                php.lint(plugin.root, [rel])
        per_lint = (time.perf_counter() - started) / len(files)
    return {
        "seconds": round(per_lint * total_file_lints / (os.cpu_count() or 2), 2),
        "boots": total_file_lints,
        "seconds_per_file_boot": round(per_lint, 3),
        "measured_files": len(files),
        "scaled": True,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--baseline-sample", type=int, default=0, help="pairs measured for the synthetic baseline")
    args = parser.parse_args()
    # other work on the machine slows every figure alike; the load average says how busy it was
    results: dict = {
        "cpus": os.cpu_count(),
        "php_versions": list(compat.PHP_VERSIONS),
        "load_at_start": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory(prefix="bench-configs-") as tmp:
        fleets = {"demo": load_fleet(DEMO), "synthetic": load_fleet(synthetic_configs(args.clients, Path(tmp)))}
        for name, fleet in fleets.items():
            if fleet.problems:
                print(f"{name}: invalid configs: {fleet.problems}", file=sys.stderr)
                return 1
            row = {"clients": len(fleet.clients), "pooled": pooled(fleet, [])}
            row["pooled_optimizing"] = pooled(fleet, ["--no-liftoff"])
            sample = args.baseline_sample if name == "synthetic" else 0
            row["per_partition"] = per_partition(fleet, sample)
            row["per_file"] = per_file(fleet)
            row["speedup_vs_per_partition"] = round(row["per_partition"]["seconds"] / row["pooled"]["seconds"], 1)
            row["speedup_vs_per_file"] = round(row["per_file"]["seconds"] / row["pooled"]["seconds"], 1)
            results[name] = row
    print(
        f"{'fleet':10} {'clients':>7} {'runs':>5} {'pooled s':>9} {'opt. s':>7} {'boots':>5} "
        f"{'per-partition s':>16} {'boots':>6} {'per-file s (est.)':>18} {'boots':>6}"
    )
    for name in ("demo", "synthetic"):
        r = results[name]
        pp, pf = r["per_partition"], r["per_file"]
        print(
            f"{name:10} {r['clients']:>7} {r['pooled']['plugin_php_runs']:>5} {r['pooled']['seconds']:>9} "
            f"{r['pooled_optimizing']['seconds']:>7} "
            f"{r['pooled']['boots']:>5} {pp['seconds']:>15}{'*' if pp['scaled'] else ' '} {pp['boots']:>6} "
            f"{pf['seconds']:>18} {pf['boots']:>6}"
        )
    print("runs = (plugin, PHP version) pairs; * = measured on a sample and scaled; per-file is always scaled")
    results["load_at_end"] = os.getloadavg()[0]
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
