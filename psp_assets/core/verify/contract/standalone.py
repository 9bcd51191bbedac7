"""The contract tests as a standalone suite for a client's own CI: no Python, no platform code.

verify/contract/cases.py judges a harness document in Python. A client's repository gets the same cases as data:
`vectors.json` (exactly what the platform feeds the harness) and `expected.json` (every case the judge
runs, by the same name, as declarative assertions), plus the harness and a small judge in the plugin's
own language (php/contract_judge.php, js/contract_judge.mjs; built-in functions only). The assertions
are read off the judges verify/contract/cases.py really applies: `Equals` judges give their value, and the few
structured judges (constant-time comparison, transitions, webhook scenarios, the PSP client, health)
are translated here. A judge this module cannot translate is an error, never a silently skipped case,
and a test runs both judges over the same documents to show they agree case by case.

Assertions (`op`, `path` into the case's value, missing values are null):
equals (deep, {} and [] alike), matches (a string the regex finds), count (a list's length, null is 0),
empty / truthy, same (two paths equal), distinct (the values at `paths` all differ), any / all (nested
assertions on a list's items; `all` of nothing holds), prefixed (list items starting with `prefix`, the
prefix cut off, equal `value`), json (a string that decodes to `value`) and fields_of (an object whose
every field is in `value` with the same value, with at least the `required` ones).

Checks the platform records with `add()` rather than per harness case (the PSP API contract checks of
verify/contract/api.py, which need the OpenAPI document and a JSON Schema validator) run on the platform only.
The shipped vectors carry no path of the machine that built them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psp_assets.core.errors import PspError
from psp_assets.core.payments.statuses import CANONICAL_STATUSES, can_transition
from psp_assets.core.render.engine import render_string
from psp_assets.core.templates.spec import Template
from psp_assets.core.verify.contract import cases as contract
from psp_assets.core.verify.contract.api import Shapes
from psp_assets.core.verify.contract.bridge import contract_target
from psp_assets.core.verify.contract.cases import (
    API_BASE,
    API_KEY,
    NOT_STATUSES,
    UUID4,
    Equals,
    build_vectors,
    judge_contract,
)
from psp_assets.core.verify.contract.node import JS_CORE_EXPORTS, in_js_terms

FORMAT = 1
HARNESS_DIR = Path(__file__).with_name("harness")
PHP_FILES = {"contract_harness.php": HARNESS_DIR / "contract_harness.php"}
PHP_FILES["contract_judge.php"] = HARNESS_DIR / "contract_judge.php"
NODE_FILES = {"contract_harness.mjs": HARNESS_DIR / "contract_harness.mjs"}
NODE_FILES["contract_judge.mjs"] = HARNESS_DIR / "contract_judge.mjs"
PHP_LOAD_CHECK = "core loads under php -n"
NODE_LOAD_CHECK = "core module loads"  # the judge adds " under node X.Y.Z", as verify/contract/node.py does
UUID4_FULL = f"^(?:{UUID4.pattern})$"
NONEMPTY = r"[\s\S]"


class SuiteError(PspError):
    """The contract suite for a client's CI could not be built (a judge without a standalone form)."""


# --- assertions ---------------------------------------------------------------------------------


def _a(op: str, path: list[Any] | None = None, **fields: Any) -> dict[str, Any]:
    return {"op": op, "path": list(path or []), **fields}


def _constant_time(case: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        _a("equals", ["verdict"], value=case["expect"]),
        _a(
            "any",
            ["hash_equals_calls"],
            check=[_a("count", [], value=2), _a("equals", [0], value=case["mac"])],
            hint="the MAC was not compared with hash_equals (call it unqualified with the expected MAC first; "
            "never ==, === or strcmp)",
        ),
    ]


def _transitions(origin: str | None) -> list[dict[str, Any]]:
    targets = [*CANONICAL_STATUSES, *NOT_STATUSES]
    if origin in NOT_STATUSES:
        return [_a("equals", [to], value=False) for to in targets]
    return [_a("equals", [to], value=to in CANONICAL_STATUSES and can_transition(origin, to)) for to in targets]


def _webhook(scenario: contract.Scenario, status_map: dict[str, str]) -> list[dict[str, Any]]:
    steps = scenario.steps
    out = [_a("count", [], value=len(steps), hint="deliveries recorded")]
    for i, step in enumerate(steps):
        if step.exception:
            pattern = r"(?:^|\\)" + step.exception + "$"
            out.append(_a("matches", [i, "exception"], pattern=pattern, hint=f"{step.exception} must propagate"))
        else:
            out.append(_a("empty", [i, "exception"]))
            out.append(_a("equals", [i, "result"], value=step.expected()))
        out.append(_a("count", [i, "psp_calls"], value=step.fetches, hint="PSP re-fetches"))
        out.append(_a("prefixed", [i, "locks"], prefix="acquire ", value=list(step.locks), hint="locks acquired"))
        out.append(_a("empty", [i, "held_after"], hint="locks still held afterwards"))
    applied = [[ref, s, status_map.get(s, f"<{s} unmapped>"), event] for ref, s, event in scenario.applied]
    out.append(_a("equals", [len(steps) - 1, "applied"], value=applied, hint="orders updated"))
    held = [list(h) for h in scenario.held]
    out.append(_a("equals", [len(steps) - 1, "held"], value=held, hint="orders put on hold"))
    return out


def _release_parts(vectors: dict[str, Any]) -> list[str]:
    parts = [v for v in (vectors.get("expect_version"), vectors.get("expect_build")) if v]
    if not parts:
        raise SuiteError("a client's contract suite is built for one plugin version and build; none were given")
    return [rf"(?<![\w.]){re.escape(p)}(?![\w.])" for p in parts]


def _get_payment(vectors: dict[str, Any], shapes: Shapes) -> list[dict[str, Any]]:
    client = vectors["client"]
    url = API_BASE + "/payments/pay_%C3%A4%2F1%3Fx"
    out = [_a("count", ["requests"], value=2)]
    for n in (0, 1):
        request = ["requests", n]
        out += [
            _a("equals", [*request, "method"], value="GET"),
            _a("equals", [*request, "url"], value=url),
            _a("equals", [*request, "headers", "Authorization"], value=f"Bearer {API_KEY}"),
            _a("matches", [*request, "headers", "X-Correlation-ID"], pattern=UUID4_FULL, hint="a lowercase UUIDv4"),
        ]
        out += [
            _a("matches", [*request, "headers", "User-Agent"], pattern=p, hint="names the plugin version and build")
            for p in _release_parts(vectors)
        ]
    ids = [["requests", n, "headers", "X-Correlation-ID"] for n in (0, 1)]
    out.append(_a("distinct", paths=ids, hint="X-Correlation-ID repeated across calls"))
    payment = contract._payment(client["payment_id"], "1001", "paid", shapes)
    out.append(_a("all", ["returned"], check=[_a("fields_of", [], value=payment, required=["id", "status"])]))
    return out


def _create_payment(vectors: dict[str, Any], shapes: Shapes) -> list[dict[str, Any]]:
    client = vectors["client"]
    request = ["requests", 0]
    return [
        _a("count", ["requests"], value=1),
        _a("equals", [*request, "method"], value="POST"),
        _a("equals", [*request, "url"], value=API_BASE + "/payments"),
        _a("json", [*request, "body"], value=client["create_payload"]),
        _a("equals", [*request, "headers", "Content-Type"], value="application/json"),
        _a("equals", [*request, "headers", "Idempotency-Key"], value=client["idempotency_key"]),
        _a("equals", [*request, "headers", "Authorization"], value=f"Bearer {API_KEY}"),
        _a("matches", [*request, "headers", "X-Correlation-ID"], pattern=UUID4_FULL, hint="a UUIDv4"),
        _a(
            "fields_of",
            ["returned"],
            value=shapes.created,
            required=["id", "status", "checkout_url"],
            hint="fields of the PSP's answer, unchanged",
        ),
    ]


def _carried_correlation() -> list[dict[str, Any]]:
    return [
        _a("truthy", ["is_psp_exception"], hint="must throw PspException"),
        _a("truthy", ["correlation_id"], hint="the exception carries the correlation id"),
        _a("same", ["correlation_id"], other=["sent_correlation_id"], hint="the id the request sent"),
    ]


def _health(vectors: dict[str, Any], runtime_key: str) -> list[dict[str, Any]]:
    out = [_a("matches", [key], pattern=NONEMPTY, hint="missing") for key in ("plugin", "version", "build")]
    out.append(_a("matches", [runtime_key], pattern=r"^\d+\.\d+$", hint="major.minor only, never the patch level"))
    out.append(_a("equals", ["version"], value=vectors["expect_version"]))
    out.append(_a("equals", ["build"], value=vectors["expect_build"]))
    return out


def _translate(
    case_id: str,
    judge: Callable[[Any], str],
    vectors: dict[str, Any],
    status_map: dict[str, str],
    runtime_key: str,
    shapes: Shapes,
) -> list[dict[str, Any]]:
    if isinstance(judge, Equals):
        return [_a("equals", [], value=judge.expected)]
    kind, _, rest = case_id.partition(":")
    if kind == "constant_time":
        return _constant_time(next(c for c in vectors["constant_time"] if c["name"] == rest))
    if kind == "transitions":
        return _transitions(None if rest == "null" else rest)
    if kind == "webhook":
        scenarios = contract._webhook_scenarios(shapes)
        return _webhook(next(s for s in scenarios if s.name == rest), status_map)
    if case_id == "client:get_payment":
        return _get_payment(vectors, shapes)
    if case_id == "client:create_payment":
        return _create_payment(vectors, shapes)
    if case_id in ("client:http_error", "client:transport_failure"):
        return _carried_correlation()
    if case_id == "health":
        return _health(vectors, runtime_key)
    raise SuiteError(
        f"contract case {case_id!r} is judged by {getattr(judge, '__qualname__', judge)!r}, which has no standalone "
        "form: judge it with contract.Equals, or translate it in psp_assets/core/verify/contract/standalone.py"
    )


class _Label:
    version = None


def expectations(vectors: dict[str, Any], status_map: dict[str, str], runtime: str) -> dict[str, Any]:
    """expected.json: every case verify/contract/cases.py's judge runs on `vectors`, with its assertions."""
    runtime_key = "php" if runtime == "php" else "node"
    judged: list[tuple[str, str, Callable[[Any], str]]] = []
    complete = {"bootstrap": {"value": {"files": [], "missing": []}}, "cases": {}, "complete": True}
    judge_contract(
        complete,
        vectors,
        status_map,
        _Label(),
        version=vectors.get("expect_version"),
        build=vectors.get("expect_build"),
        runtime_key=runtime_key,
        judged=judged,
    )
    shapes = Shapes.of(contract._contract_of(vectors))  # the PSP API contract the vectors were built from
    cases = []
    for name, case_id, judge in judged:
        checks = _translate(case_id, judge, vectors, status_map, runtime_key, shapes)
        if runtime == "node":
            name = in_js_terms(name)
            for check in checks:
                if "hint" in check:
                    check["hint"] = in_js_terms(check["hint"])
        cases.append({"name": name, "case": case_id, "assert": checks})
    return {
        "format": FORMAT,
        "runtime": runtime,
        "bootstrap_name": PHP_LOAD_CHECK if runtime == "php" else NODE_LOAD_CHECK,
        "cases": cases,
    }


# --- the suite ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContractSuite:
    """The files of a client's standalone contract suite, and how to run it from the repository root."""

    runtime: str  # php | node
    vectors: dict[str, Any]
    expected: dict[str, Any]

    def files(self) -> dict[str, bytes]:
        sources = PHP_FILES if self.runtime == "php" else NODE_FILES
        out = {name: path.read_bytes() for name, path in sources.items()}
        out["vectors.json"] = (json.dumps(self.vectors, indent=1, ensure_ascii=False) + "\n").encode()
        out["expected.json"] = (json.dumps(self.expected, indent=1, ensure_ascii=False) + "\n").encode()
        return out

    @property
    def case_count(self) -> int:
        return len(self.expected["cases"])

    def commands(self, suite_dir: str, plugin_dir: str, result: str) -> list[list[str]]:
        """The harness, writing its document to `result`, then the judge reading it (argv lists)."""
        if self.runtime == "php":
            php = ["php", "-n", "-d", "error_reporting=-1", "-d", "display_errors=stderr"]
            return [
                [*php, f"{suite_dir}/contract_harness.php", f"{suite_dir}/vectors.json", plugin_dir],
                [*php, f"{suite_dir}/contract_judge.php", f"{suite_dir}/expected.json", result],
            ]
        return [
            ["node", f"{suite_dir}/contract_harness.mjs", f"{suite_dir}/vectors.json", plugin_dir],
            ["node", f"{suite_dir}/contract_judge.mjs", f"{suite_dir}/expected.json", result],
        ]


def contract_suite(template: Template, context: dict[str, Any]) -> ContractSuite:
    """The suite for one rendered plugin (`context` is its render context): the vectors the platform's
    own contract run uses (the template's PSP API contract shapes them), with the plugin's version and
    build, and the expectations of its judge."""
    spec = template.spec.contract
    target = contract_target(template, context)
    if spec.runtime == "node":
        vectors = build_vectors("", [render_string(spec.module or "", context)], {}, template.api_contract)
        vectors["expect_classes"] = list(JS_CORE_EXPORTS)
        vectors.pop("secret_box", None)
    else:
        vectors = build_vectors(target.namespace, target.bootstrap, target.define, template.api_contract)
    vectors["expect_version"], vectors["expect_build"] = target.version, target.build
    return ContractSuite(spec.runtime, vectors, expectations(vectors, target.status_map, spec.runtime))
