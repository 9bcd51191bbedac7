"""Contract tests for JavaScript cores: the same vectors and the same judge as the PHP core's.

verify/contract/cases.py builds the vectors and judges the harness document; this module only runs them through
`js/contract_harness.mjs` in one Node process. A template opts in with `contract.runtime: node` and
`contract.module` (the core's ES module, relative to the plugin root).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from psp_assets.core.payments.openapi import Contract
from psp_assets.core.runtimes.node import NodeRuntime, NodeUnavailable, default_node
from psp_assets.core.verify.checks import CheckResult
from psp_assets.core.verify.contract.cases import CHECK, build_vectors, judge_contract

HARNESS = Path(__file__).with_name("harness") / "contract_harness.mjs"

# What a JavaScript core exports (the PHP core's interfaces are duck types in JS: the harness's fakes
# implement them, so there is nothing to export for them).
JS_CORE_EXPORTS = (
    "ClientInfo",
    "PspException",
    "Signature",
    "StatusMap",
    "PspClient",
    "HttpsTransport",
    "WebhookProcessor",
    "Health",
    "BankAccount",
    "PaymentRequest",
)
PHP_LOAD_CHECK = "core loads under php -n"


class _Label:
    """Results carry no PHP version: the Node version is in the load check's name."""

    version = None


def _execute(root: Path, vectors: dict[str, Any], node: NodeRuntime) -> tuple[dict[str, Any] | None, str]:
    with tempfile.TemporaryDirectory(prefix="psp-contract-js-") as tmp:
        path = Path(tmp) / "vectors.json"
        path.write_text(json.dumps(vectors), encoding="utf-8")
        try:
            run = node.run(HARNESS, [str(path), str(root)], cwd=root, timeout=120)
        except Exception as exc:  # a timeout is a failed contract, not a crash
            return None, f"the Node harness could not run: {exc}"
    try:
        document = json.loads(run.stdout)  # one document; not split into lines (U+2028 is one in Python)
    except json.JSONDecodeError:
        detail = (run.stderr or run.stdout).strip()[:1500]
        return None, f"the Node harness printed no JSON (exit {run.returncode}): {detail}"
    if not isinstance(document, dict):
        return None, "the Node harness printed something other than a JSON object"
    return document, ""


def _runtime(node: NodeRuntime | None) -> tuple[NodeRuntime | None, list[CheckResult]]:
    try:
        return node or default_node(), []
    except NodeUnavailable as exc:
        return None, [CheckResult(CHECK, "Node harness ran", False, str(exc))]


def in_js_terms(text: str) -> str:
    text = text.replace(
        "call it unqualified with the expected MAC first; never ==, === or strcmp",
        "call crypto.timingSafeEqual on node:crypto's default export, expected MAC first; never ===",
    )
    return text.replace("hash_equals", "crypto.timingSafeEqual").replace("PaymentRequest::", "PaymentRequest.")


def rename_load_check(results: list[CheckResult], node: NodeRuntime) -> list[CheckResult]:
    """The judge speaks PHP; say the same in JavaScript terms."""
    loads = f"core module loads under {node.version}"
    out = []
    for r in results:
        name = loads if r.name == PHP_LOAD_CHECK else in_js_terms(r.name)
        out.append(CheckResult(r.check, name, r.passed, in_js_terms(r.detail)))
    return out


def run_node_contract_tests(
    root: Path,
    module: str,
    status_map: dict[str, str],
    node: NodeRuntime | None = None,
    *,
    version: str | None = None,
    build: str | None = None,
    contract: Contract | None = None,
) -> list[CheckResult]:
    """Execute the JS core module `module` under `root` against the shared contract vectors (and the PSP
    API `contract`, default: the one in force)."""
    runtime, problems = _runtime(node)
    if runtime is None:
        return problems
    vectors = build_vectors("", [module], {}, contract)
    vectors.pop("secret_box", None)  # the PHP cores' SecretBox; the app keeps its secrets with its own (store.mjs)
    vectors["expect_classes"] = list(JS_CORE_EXPORTS)
    vectors["expect_version"], vectors["expect_build"] = version, build
    document, failure = _execute(root, vectors, runtime)
    if document is None:
        return [CheckResult(CHECK, "Node harness ran", False, failure)]
    results = judge_contract(document, vectors, status_map, _Label(), version=version, build=build, runtime_key="node")
    return rename_load_check(results, runtime)


def run_node_value_roundtrip(
    root: Path, module: str, expected: dict[str, Any], node: NodeRuntime | None = None
) -> list[CheckResult]:
    """Load the JS core and compare `ClientInfo.values()` with `expected`, key by key, exactly."""
    runtime, problems = _runtime(node)
    if runtime is None:
        return problems
    vectors = {"mode": "values", "namespace": "", "bootstrap": [module], "define": {}, "expect_classes": ["ClientInfo"]}
    document, failure = _execute(root, vectors, runtime)
    if document is None:
        return [CheckResult(CHECK, "Node harness ran", False, failure)]
    record = (document.get("cases") or {}).get("values") or {}
    loaded = document.get("bootstrap") or {}
    load_problem = loaded.get("exception") or ", ".join((loaded.get("value") or {}).get("missing") or [])
    results = [CheckResult(CHECK, f"core module loads under {runtime.version}", not load_problem, load_problem or "")]
    actual = record.get("value") if isinstance(record.get("value"), dict) else {}
    thrown = record.get("exception") or ""
    for key, value in expected.items():
        got = actual.get(key, "<missing>")
        ok = got == value and not thrown
        detail = "" if ok else f"expected {value!r}, got {got!r} {thrown}".strip()
        results.append(CheckResult(CHECK, f"ClientInfo.values()[{key!r}] comes back literally", ok, detail))
    return results
