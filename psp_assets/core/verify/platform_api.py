"""Platform-API checks: where a platform version changes an API the plugin uses (e.g. OpenCart 4.0.2 moved
the payment model from getMethod to getMethods), template.yaml `api_checks` says which platform versions
need what, as a convention rule on the rendered tree or a PHP contract run against it.

The test report runs every check for every version it names; the compatibility matrix can run them per
platform version (`versions=[...]`) and per PHP runtime. See docs/templates.md, "Platform-API checks".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from psp_assets.core.render.engine import render_string
from psp_assets.core.runtimes.php import PhpRuntime
from psp_assets.core.templates.spec import SHARED_DIR, ApiCheck, Template
from psp_assets.core.verify.checks import CheckResult, check_rule

CHECK = "api"


def _php_contract(template: Template, check: ApiCheck, root: Path, version: str, php: PhpRuntime) -> tuple[bool, str]:
    script = template.templates_dir / SHARED_DIR / str(check.php)
    try:
        run = php.run(script, [str(root), version], cwd=root, timeout=120)
    except Exception as exc:  # a timeout or a missing binary fails the check, it does not crash the report
        return False, f"{check.php}: could not run: {exc}"
    try:
        verdict = json.loads(run.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        output = (run.stderr or run.stdout).strip()[:800]
        return False, f"{check.php}: no JSON verdict (exit {run.returncode}): {output}"
    ok = run.returncode == 0 and isinstance(verdict, dict) and verdict.get("ok") is True and not run.stderr.strip()
    detail = "" if ok else str(verdict.get("detail") if isinstance(verdict, dict) else verdict) + run.stderr[:400]
    return ok, detail.strip()


def run_api_checks(
    template: Template,
    root: Path,
    files: Mapping[str, bytes],
    context: dict[str, Any],
    php: PhpRuntime | None,
    versions: Iterable[str] | None = None,
) -> list[CheckResult]:
    """One result per (api check, platform version it names), limited to `versions` when given."""
    wanted = None if versions is None else set(versions)
    results: list[CheckResult] = []
    for check in template.spec.api_checks:
        for version in check.versions:
            if wanted is not None and version not in wanted:
                continue
            name = f"{template.platform} {version}: {check.name}"
            if check.rule is not None:
                verdict = check_rule(check.rule, files, lambda text: render_string(text, context))
                detail = verdict.detail if verdict.passed else f"{check.message} ({verdict.detail})"
                results.append(CheckResult(CHECK, name, verdict.passed, detail if not verdict.passed else ""))
                continue
            if php is None:
                results.append(CheckResult(CHECK, name, False, "needs a PHP runtime"))
                continue
            ok, detail = _php_contract(template, check, root, version, php)
            results.append(CheckResult(CHECK, name, ok, "" if ok else f"{check.message} ({detail})", php.version))
    return results
