"""From a client's store targets to a health-gated deploy: opening the store (local directory or SFTP with
verified host keys), the health checks the gate runs (lint, manifest, HTTP), and the deploy of one built
plugin to each of its targets, staging before production. The lineage's last step (lineage.py is the rest).

What the deploy needs to know about the plugin (health route, lint globs, install path) travels in the
artifact's manifest (package.DeployFacts): no template is loaded and no render context is made here.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
from collections.abc import Callable, Iterator

import paramiko

from psp_assets.core.config.model import ClientConfig, HealthGate, LocalTarget, SftpTarget
from psp_assets.core.deploy.health import GateSettings, http_gate
from psp_assets.core.deploy.release import (
    LEASE_SECONDS,
    Deployment,
    HealthCheck,
    HealthResult,
    LocalFS,
    Step,
    StoreFS,
    clear_bad,
    deploy,
    live_folder,
    release_of,
    verify_tree,
)
from psp_assets.core.deploy.sftp import SftpFS, SftpPool, SshEndpoint
from psp_assets.core.errors import DeployError, PspError
from psp_assets.core.package import Artifact, DeployFacts
from psp_assets.core.runtimes.node import NodeUnavailable, default_node
from psp_assets.core.runtimes.php import PhpRuntime
from psp_assets.core.verify import checks
from psp_assets.core.workspace import Paths


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


def store_health(
    fs: StoreFS,
    manifest_fs: StoreFS | Callable[[], StoreFS],
    facts: DeployFacts,
    target: LocalTarget | SftpTarget,
    php: PhpRuntime,
    where: str,
) -> HealthCheck:
    """The health gate of a switch on one store target, for deploys and rollbacks alike: the live files
    match the manifest (read over `manifest_fs`); on local stores PHP lints them (`facts.lint_globs`) and
    Node checks the JS (`facts.js_check_globs`); when the target configures `health`, the storefront and
    the plugin's health route (`facts.health_route`) answer over HTTP."""
    checks = [manifest_health(manifest_fs)]
    if isinstance(fs, LocalFS) and facts.lint_globs:
        checks.append(local_health(fs, php, list(facts.lint_globs)))
    if isinstance(fs, LocalFS) and facts.js_check_globs:
        checks.append(js_health(fs, list(facts.js_check_globs)))
    if target.health is not None:
        checks.append(http_health(gate_settings(target.health, facts.health_route, where)))
    return combine(*checks)


def install_path_problem(
    target: LocalTarget | SftpTarget, index: int, install_path: str | None, platform: str, config_file: str
) -> str | None:
    """Why `target.path` is not where the platform loads the plugin from, or None. The platform finds a
    plugin only at its install path (template.yaml deploy.install_path, rendered for the client: WordPress's
    plugin folder, Magento's app/code/<Vendor>/<Module>, PrestaShop's modules/<module>, ...): the target's
    path must be that path below the store root."""
    if not install_path:
        return None
    wanted = install_path.strip("/")
    path = target.path.rstrip("/")
    if path == wanted or path.endswith("/" + wanted):
        return None
    # the store root: what precedes the install path's first folder when the path has it, else the parent
    segments, first = path.split("/"), wanted.split("/")[0]
    root = "/".join(segments[: segments.index(first)]) if first in segments[1:] else posixpath.dirname(path)
    right = f"{root}/{wanted}" if root else wanted
    return (
        f"{config_file}: platforms.{platform}.targets[{index}] ({target.name}).path: {target.path!r} is not where "
        f"{platform} loads this plugin from: it must end with {wanted!r} (template.yaml deploy.install_path), "
        f"e.g. {right!r}"
    )


def deploy_plugin(
    paths: Paths,
    config: ClientConfig,
    platform: str,
    artifact: Artifact,
    php: PhpRuntime,
    secret: SecretLookup = os.environ.get,
    connections: SftpPool | None = None,
    holder: str | None = None,
    config_file: str | None = None,
) -> list[Deployment]:
    """Deploy to each target in order; stop before the next target when one fails.

    What the deploy knows of the plugin comes from the artifact's manifest (`artifact.deploy`; an
    artifact without it is refused: lineage.deploy_facts_of supplies it for older builds). A target whose
    path is not the platform's install path is refused before its store is touched. Health after each
    switch: the live files match the manifest; on local stores PHP lints them; when the target
    configures `health`, the storefront and the plugin's health route are checked over HTTP and must
    report exactly this release. `holder` names the run (the same for its retries, so a retry takes over
    the store lock its killed attempt left behind). `config_file` names the client file in errors.
    """
    if artifact.deploy is None:
        raise DeployError(
            f"{artifact.manifest_path}: the manifest carries no deploy facts (health route, lint globs, install "
            f"path): it was built before they travelled with the artifact; rebuild built_artifact[{config.id}|"
            f"{platform}] (or take them from its plan with lineage.deploy_facts_of)"
        )
    facts = artifact.deploy
    settings = config.platform(platform)
    results: list[Deployment] = []
    for index, target in enumerate(settings.targets if settings else []):
        misplaced = install_path_problem(
            target, index, facts.install_path, platform, config_file or f"client {config.id}"
        )
        if misplaced is not None:
            results.append(Deployment(target=target.name, release_id=artifact.release_id, error=misplaced))
            break
        result = _deploy_target(paths, config, platform, facts, target, artifact, php, secret, connections, holder)
        results.append(result)
        if not result.ok:
            break
    return results


def _deploy_target(
    paths: Paths,
    config: ClientConfig,
    platform: str,
    facts: DeployFacts,
    target: LocalTarget | SftpTarget,
    artifact: Artifact,
    php: PhpRuntime,
    secret: SecretLookup,
    connections: SftpPool | None,
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
            try:
                return deploy(
                    artifact,
                    fs,
                    live,
                    target.name,
                    store_health(fs, lambda: spares[-1] if spares else fs, facts, target, php, where),
                    keep=target.keep_releases,
                    lease_seconds=lease_seconds_for(target),
                    holder=f"{holder}|{target.name}" if holder else None,
                    reconnect=reconnect if isinstance(target, SftpTarget) else None,
                )
            except PspError as exc:  # refused before the store changed (its lock is held, the release bad)
                refused = Deployment(target=target.name, release_id=artifact.release_id, error=str(exc))
                return read_back(refused, fs, live)
    except PspError as exc:
        return unreached(Deployment(target=target.name, release_id=artifact.release_id, error=str(exc)))
    except (OSError, EOFError, paramiko.SSHException) as exc:
        return unreached(
            Deployment(
                target=target.name,
                release_id=artifact.release_id,
                error=f"{where}: connection lost before the deploy changed the store ({type(exc).__name__}: "
                f"{exc}); retry when the store is reachable",
            )
        )
    finally:
        for spare in spares:
            spare.close()


def read_back(result: Deployment, fs: StoreFS, live: str) -> Deployment:
    """A deploy refused before it changed the store (its lock held, the release marked bad) still reports
    what the store serves, read back: a refused deploy is not a store serving nothing."""
    try:
        folder = live_folder(fs, live)
    except Exception as exc:
        return unreached(result, f"cannot read what the store serves: {exc}")
    result.live_folder = folder
    result.deployed_version = result.previous_version = release_of(folder) if folder else None
    result.steps.append(Step("read back", True, f"{live} -> {folder}" if folder else f"{live}: no managed release"))
    return result


def unreached(result: Deployment, why: str = "the store was not reached") -> Deployment:
    """A deploy that could not read its store: what it serves is unknown (deployed_version empty), and the
    result says so."""
    result.steps.append(Step("read back", False, why))
    return result


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
