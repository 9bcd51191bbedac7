"""The plugin lineage as plain functions: render -> test -> build, for one partition (the deploy is
deploy/stores.py). Each stage takes the plugin's plan (plan.py: template, catalog, identity, render
context, build id, made once by `plan_plugin`) rather than loading the template again.

The Dagster assets and the `psp` CLI both call these, so `psp render` writes exactly what
`rendered_source` does. Outputs are content-addressed by build id under PSP_DATA_DIR, so a run never
overwrites another run's inputs and lineage stays readable after the fact.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from psp_assets.core.errors import PspError, RenderError
from psp_assets.core.handles import RenderedHandle
from psp_assets.core.package import Artifact, DeployFacts, package
from psp_assets.core.plan import PluginPlan
from psp_assets.core.render.engine import RenderedTree, read_tree, render, render_string, write_tree
from psp_assets.core.runtimes import check_cache
from psp_assets.core.runtimes.php import CachedPhp, PhpRuntime, cached_runtimes
from psp_assets.core.templates.spec import Template
from psp_assets.core.verify import checks
from psp_assets.core.verify.contract.bridge import contract_results
from psp_assets.core.verify.platform_api import run_api_checks
from psp_assets.core.workspace import REPO_ROOT, secret_values


@dataclass(frozen=True)
class RenderedSource:
    tree: RenderedTree
    path: Path
    template_hash: str
    config_hash: str


def render_plugin(plan: PluginPlan, out_dir: Path | None = None) -> RenderedSource:
    """Render the planned plugin and write it (atomically) to `out_dir` (default: under PSP_DATA_DIR by build)."""
    tree = render(plan.template, plan.config, plan.catalog, plan.context)
    target = out_dir or plan.paths.rendered_dir(plan.client_id, plan.platform, tree.build)
    write_tree(tree, target)
    return RenderedSource(tree, target, plan.template_hash, plan.config_hash)


def load_rendered(handle: RenderedHandle) -> RenderedTree:
    """The rendered tree a handle names, refused when its files are gone or changed since."""
    root = Path(handle.tree.path)
    if not root.is_dir():
        raise RenderError(f"{root}: rendered source is gone; re-materialize rendered_source")
    lineage = handle.lineage
    tree = read_tree(root, handle.client, handle.platform, str(lineage.plugin_version), str(lineage.build))
    if tree.digest() != handle.tree.tree_sha256:
        raise RenderError(f"{root}: rendered files changed since they were rendered; re-materialize rendered_source")
    return tree


def test_plugin(
    plan: PluginPlan,
    tree: RenderedTree,
    root: Path,
    php: PhpRuntime,
    runtimes: Callable[[str], PhpRuntime] | None = None,
) -> checks.TestReport:
    """Run every check on the planned plugin's rendered tree (written at `root`) and write the report
    next to the others.

    With `runtimes` (PHP version -> booted runtime, e.g. a `PhpRuntimes` pool), lint and the contract
    tests run on every PHP version the template declares, each result carrying its `php_version`;
    without it they run on `php` alone."""
    paths, config, template, catalog = plan.paths, plan.config, plan.template, plan.catalog
    context = dict(plan.context)
    report = checks.TestReport(tree.client_id, tree.platform, tree.plugin_version, tree.build)
    # results remembered by content (check_cache): same bytes, same PHP, same harness and contract
    cache = check_cache.at(paths.data_dir)
    salt = f"{template.content_hash} {check_cache.file_digest(paths.contract_file)}"
    php = CachedPhp.wrap(php, cache, salt)
    runtimes = cached_runtimes(runtimes, cache, salt) if runtimes is not None else None
    lint, contract = _on_every_php(
        php_versions(template, runtimes),
        php,
        runtimes,
        lambda runtime: checks.check_lint(root, tree.files, template, runtime),
        lambda runtime: contract_results(root, template, context, runtime),
    )
    report.results += lint
    report.results += checks.check_js_syntax(root, tree.files, template)
    report.results += contract
    report.results += checks.check_packaging(template, tree.files, lambda text: render_string(text, context))
    report.results += run_api_checks(template, root, tree.files, context, php)
    report.results += checks.check_translations(
        tree.files,
        catalog,
        config.locales,
        template.spec.translations,
        _locale_renderer(context),
        context["locale_codes"],
    )
    forbidden = [str(REPO_ROOT), str(paths.data_dir), str(root), str(Path.home())]
    report.results += checks.check_secrets(tree.files, secret_values(), forbidden)
    out = paths.report_path(tree.client_id, tree.platform, tree.build)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(report.to_json())
    os.replace(tmp, out)
    return report


def php_versions(template: Template, runtimes: Callable[[str], PhpRuntime] | None) -> list[str] | None:
    """The PHP versions a template's PHP checks run on when `runtimes` is given (the template's whole `php`
    range); None: just the one `php` runtime (no pool, or a template without PHP)."""
    if runtimes is None or template.spec.php is None:
        return None
    return template.spec.php.versions()


def _on_every_php(
    versions: list[str] | None,
    php: PhpRuntime,
    runtimes: Callable[[str], PhpRuntime] | None,
    first: Callable[[PhpRuntime], list[checks.CheckResult]],
    then: Callable[[PhpRuntime], list[checks.CheckResult]],
) -> tuple[list[checks.CheckResult], list[checks.CheckResult]]:
    """`first` and `then` on every PHP version, the versions side by side (each runtime is a process of
    its own, booted on first use; one thread per CPU): results in version order, whatever finished first.
    The version the machine's PHP (`php`) has runs on it rather than on a runtime of the pool: no boot,
    and its lint results are the ones the deploy's health check (`local_health`) finds again by content."""
    if versions is None or runtimes is None:
        return first(php), then(php)
    pool_runtimes = runtimes

    def one(version: str) -> tuple[list[checks.CheckResult], list[checks.CheckResult]]:
        runtime = php if php.version == version else pool_runtimes(version)
        return first(runtime), then(runtime)

    workers = max(1, min(len(versions), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = list(pool.map(one, versions))
    return [r for a, _ in done for r in a], [r for _, b in done for r in b]


def _locale_renderer(context: dict[str, Any]) -> Callable[[str, str], str]:
    """Renders a template.yaml per-locale path (translations.files) for one client locale."""
    return lambda text, locale: render_string(text, {**context, "locale": locale})


def build_plugin(plan: PluginPlan, tree: RenderedTree, report: checks.TestReport) -> Artifact:
    """Package the planned plugin's tested tree, its manifest carrying the plan's deploy facts. Refuses a
    tree whose report failed, whatever asked for it."""
    if not report.passed or report.build != tree.build:
        failed = ", ".join(f"{r.check}:{r.name}" for r in report.failures()[:5]) or "report is for another build"
        raise PspError(f"{tree.client_id}|{tree.platform}: test report failed ({failed}); no artifact is built")
    packaging = plan.template.spec.packaging
    root = plan.render_value(packaging.root)
    name = plan.render_value(packaging.artifact)
    out_dir = plan.paths.artifact_dir(tree.client_id, tree.platform, tree.release_id)
    return package(tree, root, name, out_dir, plan.deploy_facts())


def deploy_facts_of(artifact: Artifact, plan: Callable[[], PluginPlan]) -> tuple[Artifact, str | None]:
    """`artifact` with its deploy facts. An artifact built before the manifest carried them gets them from
    its plugin's plan (`plan`, called only then), and the second value says so, for the deploy's log."""
    if artifact.deploy is not None:
        return artifact, None
    facts: DeployFacts = plan().deploy_facts()
    note = (
        f"{artifact.manifest_path}: the manifest predates deploy facts (health route, lint globs, install path); "
        "they are taken from the template the lineage recorded. Rebuild built_artifact to carry them."
    )
    return replace(artifact, deploy=facts), note


def report_from_path(path: Path) -> checks.TestReport:
    return checks.TestReport.from_json(path.read_text())
