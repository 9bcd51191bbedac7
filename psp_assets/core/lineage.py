"""The plugin lineage as plain functions: render -> test -> build, for one partition (the deploy is
deploy/stores.py).

The Dagster assets and the `psp` CLI both call these, so `psp render` writes exactly what
`rendered_source` does. Outputs are content-addressed by build id under PSP_DATA_DIR, so a run never
overwrites another run's inputs and lineage stays readable after the fact.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psp_assets.core.config.model import ClientConfig
from psp_assets.core.errors import PspError, RenderError
from psp_assets.core.package import Artifact, load_artifact, package
from psp_assets.core.render.engine import RenderedTree, read_tree, render, render_context, render_string, write_tree
from psp_assets.core.runtimes import check_cache
from psp_assets.core.runtimes.php import CachedPhp, PhpRuntime, cached_runtimes
from psp_assets.core.templates.cache import TemplateCache
from psp_assets.core.templates.spec import Template
from psp_assets.core.verify import checks
from psp_assets.core.verify.contract.bridge import contract_results
from psp_assets.core.verify.platform_api import run_api_checks
from psp_assets.core.workspace import REPO_ROOT, Paths, catalog_for, secret_values, template_for


@dataclass(frozen=True)
class RenderedSource:
    tree: RenderedTree
    path: Path
    template_hash: str
    config_hash: str

    def handle(self) -> dict[str, Any]:
        return {
            "client": self.tree.client_id,
            "platform": self.tree.platform,
            "path": str(self.path),
            "plugin_version": self.tree.plugin_version,
            "build": self.tree.build,
            "release_id": self.tree.release_id,
            "template_hash": self.template_hash,
            "config_hash": self.config_hash,
            "tree_sha256": self.tree.digest(),
            "file_count": len(self.tree.files),
        }


def render_plugin(
    paths: Paths, config: ClientConfig, platform: str, out_dir: Path | None = None, cache: TemplateCache | None = None
) -> RenderedSource:
    """Render one client's plugin for one platform and write it (atomically) to `out_dir`."""
    template = template_for(paths, platform, cache)
    tree = render(template, config, catalog_for(template, config, cache))
    target = out_dir or paths.rendered_dir(config.id, platform, tree.build)
    write_tree(tree, target)
    return RenderedSource(tree, target, template.content_hash, config.config_hash())


def load_rendered(handle: dict[str, Any]) -> RenderedTree:
    root = Path(handle["path"])
    if not root.is_dir():
        raise RenderError(f"{root}: rendered source is gone; re-materialize rendered_source")
    tree = read_tree(root, handle["client"], handle["platform"], handle["plugin_version"], handle["build"])
    if tree.digest() != handle["tree_sha256"]:
        raise RenderError(f"{root}: rendered files changed since they were rendered; re-materialize rendered_source")
    return tree


def test_plugin(
    paths: Paths,
    config: ClientConfig,
    tree: RenderedTree,
    root: Path,
    php: PhpRuntime,
    runtimes: Callable[[str], PhpRuntime] | None = None,
    cache: TemplateCache | None = None,
) -> checks.TestReport:
    """Run every check on a rendered tree and write the report next to the others.

    With `runtimes` (PHP version -> booted runtime, e.g. a `PhpRuntimes` pool), lint and the contract
    tests run on every PHP version the template declares, each result carrying its `php_version`;
    without it they run on `php` alone."""
    template = template_for(paths, tree.platform, cache)
    catalog = catalog_for(template, config, cache)
    context = render_context(template, config, catalog)
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


def build_plugin(
    paths: Paths,
    config: ClientConfig,
    tree: RenderedTree,
    report: checks.TestReport,
    cache: TemplateCache | None = None,
) -> Artifact:
    """Package a tested tree. Refuses a tree whose report failed, whatever asked for it."""
    if not report.passed or report.build != tree.build:
        failed = ", ".join(f"{r.check}:{r.name}" for r in report.failures()[:5]) or "report is for another build"
        raise PspError(f"{tree.client_id}|{tree.platform}: test report failed ({failed}); no artifact is built")
    template = template_for(paths, tree.platform, cache)
    context = render_context(template, config, catalog_for(template, config, cache))
    root = render_string(template.spec.packaging.root, context)
    name = render_string(template.spec.packaging.artifact, context)
    return package(tree, root, name, paths.artifact_dir(tree.client_id, tree.platform, tree.release_id))


def artifact_from_handle(handle: dict[str, Any]) -> Artifact:
    return load_artifact(Path(handle["artifact_path"]))


def report_from_path(path: Path) -> checks.TestReport:
    return checks.TestReport.from_json(path.read_text())
