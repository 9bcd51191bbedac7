"""Runs the shared contract tests (verify/contract/cases.py) for a template, with the values its template.yaml names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psp_assets.core.render.engine import render_string
from psp_assets.core.runtimes.php import PhpRuntime
from psp_assets.core.templates.spec import Template
from psp_assets.core.verify.checks import CheckResult
from psp_assets.core.verify.contract.cases import run_contract_tests
from psp_assets.core.verify.contract.node import run_node_contract_tests


@dataclass(frozen=True)
class ContractTarget:
    """Where a rendered plugin's PHP core is and what it must report, resolved for one client."""

    namespace: str
    bootstrap: list[str]
    define: dict[str, str]
    status_map: dict[str, str]
    version: str
    build: str


def contract_target(template: Template, context: dict[str, Any]) -> ContractTarget:
    spec = template.spec.contract
    return ContractTarget(
        namespace=render_string(spec.namespace, context),
        bootstrap=[render_string(b, context) for b in spec.bootstrap],
        define={k: render_string(v, context) for k, v in spec.define.items()},
        status_map=dict(template.spec.status_map),
        version=context["plugin"]["version"],
        build=context["plugin"]["build"],
    )


def contract_results(root: Path, template: Template, context: dict[str, Any], php: PhpRuntime) -> list[CheckResult]:
    """The contract tests on the runtime template.yaml names (`contract.runtime`: php, or node for JS cores)."""
    t = contract_target(template, context)
    if template.spec.contract.runtime == "node":
        module = render_string(template.spec.contract.module or "", context)
        return run_node_contract_tests(
            root, module, t.status_map, version=t.version, build=t.build, contract=template.api_contract
        )
    return run_contract_tests(
        root,
        t.namespace,
        t.bootstrap,
        t.define,
        t.status_map,
        php,
        version=t.version,
        build=t.build,
        contract=template.api_contract,
    )
