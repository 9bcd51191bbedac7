"""Benchmark: what checking the plugins against the PSP API contract adds to one contract run.

    .venv/bin/python bench/contract_api.py [--repeat 5]

For each platform (a demo client's plugin), the contract harness runs once per repeat with every
vector ("full") and with the contract's own vectors left out ("without api": no client:operations, no
example-event deliveries, no PaymentRequest calls), on the machine's PHP and on PHP 7.4 as WebAssembly
(Node for Shopify); the judging in Python (jsonschema validation of every request) is timed separately.
Also timed: loading and validating the contract document (once per process, then cached). Prints a
table and, as the last line, one JSON object with every figure (medians, milliseconds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from psp_assets.core.lineage import render_plugin
from psp_assets.core.plan import plan_plugin
from psp_assets.core.workspace import Paths, catalog_for

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from psp_assets.core.config.model import load_client  # noqa: E402
from psp_assets.core.payments import openapi  # noqa: E402
from psp_assets.core.render.engine import render_context  # noqa: E402
from psp_assets.core.runtimes.node import default_node  # noqa: E402
from psp_assets.core.runtimes.php import NativePhp, PhpRuntimes  # noqa: E402
from psp_assets.core.templates.spec import load_template  # noqa: E402
from psp_assets.core.verify.contract import cases as contract  # noqa: E402
from psp_assets.core.verify.contract import node as contract_node  # noqa: E402
from psp_assets.core.verify.contract.api import EXAMPLE_SCENARIO, WITHOUT  # noqa: E402
from psp_assets.core.verify.contract.bridge import contract_target  # noqa: E402

DEMO = {"woocommerce": "nordbank", "magento2": "nordbank", "shopify": "nordbank", "prestashop": "alpenkasse",
        "opencart": "baltic-credit"}  # fmt: skip


def ms(seconds: list[float]) -> float:
    return round(statistics.median(seconds) * 1000, 1)


def without_api(vectors: dict) -> dict:
    out = dict(vectors)
    out.pop("api", None)
    out.pop("payment_request", None)
    out["webhooks"] = [w for w in vectors["webhooks"] if not w["name"].startswith((EXAMPLE_SCENARIO, WITHOUT))]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    t0 = time.perf_counter()
    doc = openapi._load.__wrapped__(str(openapi.DEFAULT_CONTRACT_FILE), 0, 0)
    problems = doc.problems
    load_ms = round((time.perf_counter() - t0) * 1000, 1)
    assert problems == [], problems

    tmp = Path(tempfile.mkdtemp(prefix="bench-contract-"))
    paths = Paths(REPO / "client_configs", REPO / "templates", tmp / "data", tmp / "stores")
    native, pool, node = NativePhp(), PhpRuntimes(), default_node()
    figures: dict[str, dict[str, float]] = {"contract_load_and_validate_ms": {"first": load_ms}}
    print(f"contract document loaded and validated (OAS 3.1 schema, examples): {load_ms} ms, then cached")
    print(f"{'platform':<12} {'runtime':<10} {'full ms':>8} {'w/o api':>8} {'judge ms':>9} {'results':>8}")
    try:
        for platform, client in DEMO.items():
            config = load_client(REPO / "client_configs" / f"{client}.yaml")
            source = render_plugin(plan_plugin(paths, config, platform))
            template = load_template(paths.templates_dir, platform)
            target = contract_target(template, render_context(template, config, catalog_for(template, config)))
            runtimes = [("node", node)] if template.spec.contract.runtime == "node" else [
                ("native", native), ("wasm 7.4", pool(template.spec.php.versions()[0]))]  # fmt: skip
            for label, runtime in runtimes:
                if label == "node":
                    vectors = contract.build_vectors("", [template.spec.contract.module or ""], {})
                    vectors["expect_classes"] = list(contract_node.JS_CORE_EXPORTS)

                    def execute(v, runtime=runtime, root=source.path):
                        return contract_node._execute(root, v, runtime)[0]
                else:
                    vectors = contract.build_vectors(target.namespace, target.bootstrap, target.define)

                    def execute(v, runtime=runtime, root=source.path):
                        return contract._execute(root, v, runtime)[0]

                vectors["expect_version"], vectors["expect_build"] = target.version, target.build
                full, bare, judged = [], [], []
                results = 0
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    document = execute(vectors)
                    full.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    execute(without_api(vectors))
                    bare.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    results = len(contract.judge_contract(document, vectors, target.status_map, runtime))
                    judged.append(time.perf_counter() - t)
                key = f"{platform} {label}"
                figures[key] = {"full_ms": ms(full), "without_api_ms": ms(bare), "judge_ms": ms(judged)}
                print(f"{platform:<12} {label:<10} {ms(full):>8} {ms(bare):>8} {ms(judged):>9} {results:>8}")
    finally:
        pool.close()
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
