"""The plugin lineage as plain functions: render -> test -> build -> deploy, for one partition.

The Dagster assets and the `psp` CLI both call these, so `psp render` writes exactly what
`rendered_source` does. Outputs are content-addressed by build id under PSP_DATA_DIR, so a run never
overwrites another run's inputs and lineage stays readable after the fact.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko

from . import check_cache, checks
from .api_checks import run_api_checks
from .config import ClientConfig, Fleet, HealthGate, LocalTarget, SftpTarget, load_fleet
from .contract_bridge import contract_results
from .deploy import (
    LEASE_SECONDS,
    Deployment,
    HealthCheck,
    HealthResult,
    LocalFS,
    StoreFS,
    clear_bad,
    deploy,
    verify_tree,
)
from .errors import PspError, RenderError
from .health import GateSettings, http_gate
from .i18n import Catalog, load_catalog
from .openapi import contract_file
from .package import Artifact, load_artifact, package
from .php import CachedPhp, PhpRuntime, cached_runtimes
from .render import RenderedTree, read_tree, render, render_context, render_string, write_tree
from .sftp import SftpFS, SftpPool, SshEndpoint
from .template_cache import TemplateCache
from .templates import SHARED_DIR, Template, load_template

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Paths:
    """Where configs, templates and outputs live (the environment contract in DESIGN.md)."""

    configs_dir: Path
    templates_dir: Path
    data_dir: Path
    stores_dir: Path
    ssh_keys_dir: Path = Path("/nonexistent")
    # The PSP API contract every plugin is checked against (docs/contract.md); part of each template hash.
    contract_file: Path = field(default_factory=contract_file)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Paths:
        env = os.environ if environ is None else environ
        data = Path(env.get("PSP_DATA_DIR") or REPO_ROOT / "var" / "data")
        return cls(
            configs_dir=Path(env.get("PSP_CLIENT_CONFIGS_DIR") or REPO_ROOT / "client_configs").resolve(),
            templates_dir=Path(env.get("PSP_TEMPLATES_DIR") or REPO_ROOT / "templates").resolve(),
            data_dir=data.resolve(),
            stores_dir=Path(env.get("PSP_STORES_DIR") or data / "stores").resolve(),
            ssh_keys_dir=Path(env.get("PSP_SSH_KEYS_DIR") or data / "ssh").resolve(),
            contract_file=contract_file(env),
        )

    def rendered_dir(self, client: str, platform: str, build: str) -> Path:
        return self.data_dir / "rendered" / client / platform / build

    def report_path(self, client: str, platform: str, build: str) -> Path:
        return self.data_dir / "reports" / client / platform / f"{build}.json"

    def artifact_dir(self, client: str, platform: str, release_id: str) -> Path:
        return self.data_dir / "artifacts" / client / platform / release_id

    def fleet(self) -> Fleet:
        return load_fleet(self.configs_dir)


def catalog_for(template: Template, config: ClientConfig, cache: TemplateCache | None = None) -> Catalog:
    if cache is not None:
        return cache.catalog(template, config.locales)
    return load_catalog(template.templates_dir / SHARED_DIR / "i18n", list(config.locales))


def template_for(paths: Paths, platform: str, cache: TemplateCache | None = None) -> Template:
    """The platform's template; with `cache` (one per run) loaded once however many plugins use it."""
    if cache is not None:
        return cache.template(paths.templates_dir, platform, paths.contract_file)
    return load_template(paths.templates_dir, platform, paths.contract_file)


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


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values the tree must never contain: secrets of the platform itself (env names with these
    suffixes). They are compared, never logged."""
    env = os.environ if environ is None else environ
    return [v for k, v in env.items() if k.endswith(("_TOKEN", "_SECRET", "_PASSWORD", "_PRIVATE_KEY", "_API_KEY"))]


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


def local_health(fs: LocalFS, php: PhpRuntime, lint_globs: list[str]) -> HealthCheck:
    """On a local store, the live PHP files lint with the platform's PHP."""

    def check(live: str, release: str, manifest: dict[str, str] | None) -> HealthResult:
        if manifest is None:
            return HealthResult(True, f"{release}: no manifest (hand-installed); lint skipped")
        php_files = [p for p in manifest if any(checks.match_glob(p, g) for g in lint_globs)]
        failed = [r for r in php.lint(fs.root / live, php_files) if not r.ok]
        if failed:
            return HealthResult(
                False, "PHP lint failed on the store: " + "; ".join(f"{r.path}: {r.message}" for r in failed[:3])
            )
        return HealthResult(True, f"{len(php_files)} PHP files lint on {php.version}")

    return check


def js_health(fs: LocalFS, js_globs: list[str]) -> HealthCheck:
    """On a local store, the live JavaScript files pass `node --check` (Node app templates)."""

    def check(live: str, release: str, manifest: dict[str, str] | None) -> HealthResult:
        if manifest is None:
            return HealthResult(True, f"{release}: no manifest (hand-installed); syntax check skipped")
        from .node import NodeUnavailable, default_node

        js_files = [p for p in manifest if any(checks.match_glob(p, g) for g in js_globs)]
        try:
            failed = [r for r in default_node().check_syntax(fs.root / live, js_files) if not r.ok]
        except NodeUnavailable as exc:
            return HealthResult(False, str(exc))
        if failed:
            return HealthResult(
                False, "node --check failed on the store: " + "; ".join(f"{r.path}: {r.message}" for r in failed[:3])
            )
        return HealthResult(True, f"{len(js_files)} JavaScript files pass node --check")

    return check


def manifest_health(fs: StoreFS | Callable[[], StoreFS]) -> HealthCheck:
    """The live files on the store are exactly the release's manifest. `fs` may be a function returning
    the connection to use now (a deploy that reconnected re-verifies over the new connection)."""

    def check(live: str, release: str, manifest: dict[str, str] | None) -> HealthResult:
        if manifest is None:
            return HealthResult(True, f"{release}: no manifest (hand-installed); files not compared")
        problems = verify_tree(fs() if callable(fs) else fs, live, manifest)
        if problems:
            detail = "live files differ from the manifest: " + "; ".join(problems[:5])
            return HealthResult(False, detail, blame="environment")
        return HealthResult(True, f"{len(manifest)} files match the manifest")

    return check


def http_health(gate: GateSettings) -> HealthCheck:
    """The storefront answers and the health route reports the release (its version and build)."""

    def check(live: str, release: str, manifest: dict[str, str] | None) -> HealthResult:
        version, _, build = release.rpartition("-")
        managed = manifest is not None and re.fullmatch(r"[0-9a-f]{12}", build) is not None
        return http_gate(gate, version if managed else None, build if managed else None)

    return check


def combine(*checks_: HealthCheck) -> HealthCheck:
    """All checks in order; the first failure decides."""

    def check(live: str, release: str, manifest: dict[str, str] | None) -> HealthResult:
        details = []
        for one in checks_:
            result = one(live, release, manifest)
            if not result.ok:
                return result
            details.append(result.detail)
        return HealthResult(True, "; ".join(details))

    return check


def gate_settings(gate: HealthGate, health_route: str | None, where: str) -> GateSettings:
    health_url = str(gate.health_url) if gate.health_url else None
    if health_url is None:
        if not health_route:
            raise PspError(f"{where}: health.health_url is not set and the template declares no deploy.health_route")
        health_url = str(gate.store_url).rstrip("/") + "/" + health_route.lstrip("/")
    return GateSettings(
        store_url=str(gate.store_url),
        health_url=health_url,
        count=gate.count,
        interval_seconds=gate.interval_seconds,
        failure_limit=gate.failure_limit,
        timeout_seconds=gate.timeout_seconds,
        inconclusive_limit=gate.failure_limit if gate.inconclusive_limit is None else gate.inconclusive_limit,
        deadline_seconds=gate.deadline_seconds,
    )


def lease_seconds_for(target: LocalTarget | SftpTarget) -> float:
    """The deploy lock's lease: longer than the longest stretch without a renewal (the health gate's
    deadline, plus a remote command's timeout on each side of it)."""
    gate = target.health.deadline_seconds if target.health is not None else 0.0
    command = target.command_timeout_seconds if isinstance(target, SftpTarget) else 0.0
    return max(LEASE_SECONDS, gate + 2 * command + 10)


SecretLookup = Callable[[str], "str | None"]


def ssh_endpoint(paths: Paths, target: SftpTarget, secret: SecretLookup, where: str) -> SshEndpoint:
    if target.private_key_env:
        key = secret(target.private_key_env)
        if not key:
            raise PspError(f"{where}: private_key_env {target.private_key_env} is not set in the environment")
    else:
        key_path = paths.ssh_keys_dir / str(target.private_key_file)
        try:
            key = key_path.read_text()
        except OSError as exc:
            raise PspError(f"{where}: private_key_file {key_path}: {exc.strerror}") from None
    return SshEndpoint(
        host=target.host,
        port=target.port,
        user=target.user,
        known_host=target.known_host,
        private_key=key,
        connect_timeout=target.connect_timeout_seconds,
        command_timeout=target.command_timeout_seconds,
    )


@contextlib.contextmanager
def open_store(
    paths: Paths,
    target: LocalTarget | SftpTarget,
    secret: SecretLookup,
    where: str,
    connections: SftpPool | None = None,
) -> Iterator[StoreFS]:
    """The store behind a target, connected. Without `connections` the SSH connection is closed on exit;
    with them it stays open for the next deploy to the same endpoint, unless it died during this one."""
    if isinstance(target, LocalTarget):
        yield LocalFS(paths.stores_dir)
        return
    endpoint = ssh_endpoint(paths, target, secret, where)
    if connections is None:
        with SftpFS(endpoint, target=where) as fs:
            yield fs
        return
    with connections.lease(endpoint, target=where) as fs:  # this thread's alone until the deploy ends
        yield fs


def health_route(template: Template, config: ClientConfig, cache: TemplateCache | None = None) -> str | None:
    """The plugin's health route for this client (template.yaml deploy.health_route, rendered), or None."""
    if not template.spec.deploy.health_route:
        return None
    context = render_context(template, config, catalog_for(template, config, cache))
    return render_string(template.spec.deploy.health_route, context)


def store_health(
    fs: StoreFS,
    manifest_fs: StoreFS | Callable[[], StoreFS],
    template: Template,
    target: LocalTarget | SftpTarget,
    php: PhpRuntime,
    route: str | None,
    where: str,
) -> HealthCheck:
    """The health gate of a switch on one store target, for deploys and rollbacks alike: the live files
    match the manifest (read over `manifest_fs`); on local stores PHP lints them and Node checks the JS;
    when the target configures `health`, the storefront and the plugin's health route answer over HTTP."""
    checks = [manifest_health(manifest_fs)]
    if isinstance(fs, LocalFS) and template.spec.lint_globs:
        checks.append(local_health(fs, php, template.spec.lint_globs))
    if isinstance(fs, LocalFS) and template.spec.js_check_globs:
        checks.append(js_health(fs, template.spec.js_check_globs))
    if target.health is not None:
        checks.append(http_health(gate_settings(target.health, route, where)))
    return combine(*checks)


def deploy_plugin(
    paths: Paths,
    config: ClientConfig,
    platform: str,
    artifact: Artifact,
    php: PhpRuntime,
    secret: SecretLookup = os.environ.get,
    cache: TemplateCache | None = None,
    connections: SftpPool | None = None,
    holder: str | None = None,
) -> list[Deployment]:
    """Deploy to each target in order; stop before the next target when one fails.

    Health after each switch: the live files match the manifest; on local stores PHP lints them; when
    the target configures `health`, the storefront and the plugin's health route are checked over HTTP
    and must report exactly this release. `holder` names the run (the same for its retries, so a retry
    takes over the store lock its killed attempt left behind).
    """
    settings = config.platform(platform)
    template = template_for(paths, platform, cache)
    route = health_route(template, config, cache)
    results: list[Deployment] = []
    for target in settings.targets if settings else []:
        result = _deploy_target(
            paths, config, platform, template, target, artifact, php, secret, connections, route, holder
        )
        results.append(result)
        if not result.ok:
            break
    return results


def _deploy_target(
    paths: Paths,
    config: ClientConfig,
    platform: str,
    template: Template,
    target: LocalTarget | SftpTarget,
    artifact: Artifact,
    php: PhpRuntime,
    secret: SecretLookup,
    connections: SftpPool | None,
    route: str | None,
    holder: str | None,
) -> Deployment:
    where = f"{config.id}|{platform} target {target.name}"
    spares: list[SftpFS] = []  # connections opened when the first one died mid-deploy

    def reconnect() -> StoreFS:
        spares.append(SftpFS(ssh_endpoint(paths, target, secret, where), target=where))  # type: ignore[arg-type]
        return spares[-1]

    try:
        with open_store(paths, target, secret, where, connections) as fs:
            live = target.path
            fs.makedirs(posixpath.dirname(live))
            return deploy(
                artifact,
                fs,
                live,
                target.name,
                store_health(fs, lambda: spares[-1] if spares else fs, template, target, php, route, where),
                keep=target.keep_releases,
                lease_seconds=lease_seconds_for(target),
                holder=f"{holder}|{target.name}" if holder else None,
                reconnect=reconnect if isinstance(target, SftpTarget) else None,
            )
    except PspError as exc:
        return Deployment(target=target.name, release_id=artifact.release_id, error=str(exc))
    except (OSError, EOFError, paramiko.SSHException) as exc:
        return Deployment(
            target=target.name,
            release_id=artifact.release_id,
            error=f"{where}: connection lost before the deploy changed the store ({type(exc).__name__}: "
            f"{exc}); retry when the store is reachable",
        )
    finally:
        for spare in spares:
            spare.close()


def clear_bad_mark(
    paths: Paths,
    config: ClientConfig,
    platform: str,
    target_name: str,
    release: str,
    reason: str,
    secret: SecretLookup = os.environ.get,
) -> str:
    """Take back the bad mark of `release` on one store target (recorded in its history with `reason`)."""
    settings = config.platform(platform)
    targets = {t.name: t for t in (settings.targets if settings else [])}
    if target_name not in targets:
        known = ", ".join(sorted(targets)) or "none"
        raise PspError(f"{config.id}|{platform}: no target named {target_name!r} (targets: {known})")
    target = targets[target_name]
    where = f"{config.id}|{platform} target {target_name}"
    with open_store(paths, target, secret, where) as fs:
        return f"{where}: " + clear_bad(fs, target.path, release, reason, holder=f"psp release clear-bad ({where})")


def artifact_from_handle(handle: dict[str, Any]) -> Artifact:
    return load_artifact(Path(handle["artifact_path"]))


def report_from_path(path: Path) -> checks.TestReport:
    return checks.TestReport.from_json(path.read_text())


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)
