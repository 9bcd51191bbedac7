"""The plugin lineage as plain functions: render -> test -> build -> deploy, for one partition.

The Dagster assets and the `psp` CLI both call these, so `psp render` writes exactly what
`rendered_source` does. Outputs are content-addressed by build id under PSP_DATA_DIR, so a run never
overwrites another run's inputs and lineage stays readable after the fact.
"""

from __future__ import annotations

import json
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import checks
from .config import ClientConfig, Fleet, LocalTarget, load_fleet
from .contract_bridge import contract_results
from .deploy import Deployment, HealthResult, LocalFS, deploy, verify_tree
from .errors import PspError, RenderError
from .i18n import Catalog, load_catalog
from .package import Artifact, load_artifact, package
from .php import PhpRuntime
from .render import RenderedTree, read_tree, render, render_context, render_string, write_tree
from .templates import SHARED_DIR, Template, load_template

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Paths:
    """Where configs, templates and outputs live (the environment contract in DESIGN.md)."""

    configs_dir: Path
    templates_dir: Path
    data_dir: Path
    stores_dir: Path

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Paths:
        env = os.environ if environ is None else environ
        data = Path(env.get("PSP_DATA_DIR") or REPO_ROOT / "var" / "data")
        return cls(
            configs_dir=Path(env.get("PSP_CLIENT_CONFIGS_DIR") or REPO_ROOT / "client_configs").resolve(),
            templates_dir=Path(env.get("PSP_TEMPLATES_DIR") or REPO_ROOT / "templates").resolve(),
            data_dir=data.resolve(),
            stores_dir=Path(env.get("PSP_STORES_DIR") or data / "stores").resolve(),
        )

    def rendered_dir(self, client: str, platform: str, build: str) -> Path:
        return self.data_dir / "rendered" / client / platform / build

    def report_path(self, client: str, platform: str, build: str) -> Path:
        return self.data_dir / "reports" / client / platform / f"{build}.json"

    def artifact_dir(self, client: str, platform: str, release_id: str) -> Path:
        return self.data_dir / "artifacts" / client / platform / release_id

    def fleet(self) -> Fleet:
        return load_fleet(self.configs_dir)


def catalog_for(template: Template, config: ClientConfig) -> Catalog:
    return load_catalog(template.templates_dir / SHARED_DIR / "i18n", list(config.locales))


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


def render_plugin(paths: Paths, config: ClientConfig, platform: str, out_dir: Path | None = None) -> RenderedSource:
    """Render one client's plugin for one platform and write it (atomically) to `out_dir`."""
    template = load_template(paths.templates_dir, platform)
    tree = render(template, config, catalog_for(template, config))
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


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values the tree must never contain: secrets of the platform itself (env names with these
    suffixes). They are compared, never logged."""
    env = os.environ if environ is None else environ
    return [v for k, v in env.items() if k.endswith(("_TOKEN", "_SECRET", "_PASSWORD", "_PRIVATE_KEY", "_API_KEY"))]


def test_plugin(
    paths: Paths, config: ClientConfig, tree: RenderedTree, root: Path, php: PhpRuntime
) -> checks.TestReport:
    """Run every check on a rendered tree and write the report next to the others."""
    template = load_template(paths.templates_dir, tree.platform)
    catalog = catalog_for(template, config)
    context = render_context(template, config, catalog)
    report = checks.TestReport(tree.client_id, tree.platform, tree.plugin_version, tree.build)
    report.results += checks.check_lint(root, tree.files, template, php)
    report.results += contract_results(root, template, context, php)
    report.results += checks.check_packaging(template, tree.files, lambda text: render_string(text, context))
    report.results += checks.check_translations(tree.files, catalog, config.locales)
    forbidden = [str(REPO_ROOT), str(paths.data_dir), str(root), str(Path.home())]
    report.results += checks.check_secrets(tree.files, secret_values(), forbidden)
    out = paths.report_path(tree.client_id, tree.platform, tree.build)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(report.to_json())
    os.replace(tmp, out)
    return report


def build_plugin(paths: Paths, config: ClientConfig, tree: RenderedTree, report: checks.TestReport) -> Artifact:
    """Package a tested tree. Refuses a tree whose report failed, whatever asked for it."""
    if not report.passed or report.build != tree.build:
        failed = ", ".join(f"{r.check}:{r.name}" for r in report.failures()[:5]) or "report is for another build"
        raise PspError(f"{tree.client_id}|{tree.platform}: test report failed ({failed}); no artifact is built")
    template = load_template(paths.templates_dir, tree.platform)
    context = render_context(template, config, catalog_for(template, config))
    root = render_string(template.spec.packaging.root, context)
    name = render_string(template.spec.packaging.artifact, context)
    return package(tree, root, name, paths.artifact_dir(tree.client_id, tree.platform, tree.release_id))


def local_health(fs: LocalFS, manifest: dict[str, str], php: PhpRuntime, lint_globs: list[str]):
    """Health of a local store after a switch: the live files are exactly the manifest, and PHP lints."""

    def check(live: str) -> HealthResult:
        problems = verify_tree(fs, live, manifest)
        if problems:
            return HealthResult(False, "live files differ from the manifest: " + "; ".join(problems[:5]))
        php_files = [p for p in manifest if any(checks.match_glob(p, g) for g in lint_globs)]
        failed = [r for r in php.lint(fs.root / live, php_files) if not r.ok]
        if failed:
            return HealthResult(
                False, "PHP lint failed on the store: " + "; ".join(f"{r.path}: {r.message}" for r in failed[:3])
            )
        return HealthResult(True, f"{len(manifest)} files match; {len(php_files)} PHP files lint on {php.version}")

    return check


def deploy_plugin(
    paths: Paths, config: ClientConfig, platform: str, artifact: Artifact, php: PhpRuntime
) -> list[Deployment]:
    """Deploy to each target in order; stop before the next target when one fails."""
    settings = config.platform(platform)
    template = load_template(paths.templates_dir, platform)
    results: list[Deployment] = []
    for target in settings.targets if settings else []:
        if not isinstance(target, LocalTarget):  # pragma: no cover - only local exists in this version
            raise PspError(f"{config.id}|{platform}: target {target.name}: unsupported transport")
        fs = LocalFS(paths.stores_dir)
        fs.makedirs(posixpath.dirname(target.path))
        health = local_health(fs, artifact.manifest, php, template.spec.lint_globs)
        try:
            result = deploy(artifact, fs, target.path, target.name, health, keep=target.keep_releases)
        except PspError as exc:
            result = Deployment(target=target.name, release_id=artifact.release_id, error=str(exc))
        results.append(result)
        if not result.ok:
            break
    return results


def artifact_from_handle(handle: dict[str, Any]) -> Artifact:
    return load_artifact(Path(handle["artifact_path"]))


def report_from_path(path: Path) -> checks.TestReport:
    return checks.TestReport.from_json(path.read_text())


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)
