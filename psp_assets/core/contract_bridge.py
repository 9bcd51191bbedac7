"""Runs the shared contract tests for a template (see contract.py) with values from template.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .checks import CheckResult
from .php import PhpRuntime
from .render import render_string
from .templates import Template


def contract_results(root: Path, template: Template, context: dict[str, Any], php: PhpRuntime) -> list[CheckResult]:
    from .contract import run_contract_tests

    spec = template.spec.contract
    return run_contract_tests(
        root=root,
        namespace=render_string(spec.namespace, context),
        bootstrap=[render_string(b, context) for b in spec.bootstrap],
        define={k: render_string(v, context) for k, v in spec.define.items()},
        status_map=dict(template.spec.status_map),
        php=php,
        version=context["plugin"]["version"],
        build=context["plugin"]["build"],
    )
