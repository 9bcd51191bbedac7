"""The compatibility matrix: one row per platform x platform version x PHP version.

Built from what each template declares (`platform_versions`, the `php` range) and from real runs: every
generated plugin of the fleet is rendered, linted and contract-tested on each declared PHP version (PHP
compiled to WebAssembly, one booted runtime per version for the whole matrix), and the template's
platform-API checks (`api_checks`) run for the platform versions they name. A cell passes when every
plugin passes there. PHP versions outside a template's range are rows too, marked `not declared` and
not run, so the picture shows the whole 7.4 ... 8.5 span.

Comparing two matrices names every cell that went from pass to fail (`regressions`).
"""

from __future__ import annotations

import base64
import io
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from psp_assets.core.config.fleet import Fleet
from psp_assets.core.config.model import ClientConfig, parse_client
from psp_assets.core.errors import CompatError, PspError
from psp_assets.core.lineage import render_plugin
from psp_assets.core.plan import plan_for
from psp_assets.core.runtimes.php import PhpRuntime
from psp_assets.core.templates.spec import PHP_VERSIONS, Template, available_platforms, load_template
from psp_assets.core.verify.checks import CheckResult, check_lint
from psp_assets.core.verify.contract.bridge import contract_results
from psp_assets.core.verify.platform_api import run_api_checks
from psp_assets.core.workspace import Paths

PASS, FAIL, NOT_DECLARED, NO_PLUGIN = "pass", "fail", "not declared", "no plugin"
COLUMNS = [
    "platform",
    "platform_version",
    "php_version",
    "declared",
    "status",
    "plugins",
    "checks",
    "render_failed",
    "lint_failed",
    "contract_failed",
    "api_failed",
    "failures",
    "template_version",
]
MAX_FAILURES_PER_CELL = 5


@dataclass(frozen=True)
class MatrixPlugin:
    """One generated plugin the matrix runs: rendered for a client, on disk under `root`."""

    client_id: str
    platform: str
    template: Template
    context: dict[str, Any]
    root: Path
    files: dict[str, bytes]
    reference: bool = False  # rendered for a client that does not enable the platform (template coverage)
    error: str = ""  # why it could not be rendered (its cells fail with this)


@dataclass
class MatrixRun:
    """A built matrix and what it took: seconds, and the (plugin, PHP version) runs made."""

    frame: pd.DataFrame
    seconds: float
    plugin_runs: int
    plugins: list[str] = field(default_factory=list)
    skipped_platforms: dict[str, str] = field(default_factory=dict)


def cell_name(platform: str, platform_version: str, php_version: str) -> str:
    return f"{platform} {platform_version} x PHP {php_version}"


def php_templates(templates_dir: Path) -> tuple[list[Template], dict[str, str]]:
    """Templates with a PHP range (the matrix's subject), and the others with why they are left out."""
    chosen, skipped = [], {}
    for platform in available_platforms(templates_dir):
        try:
            template = load_template(templates_dir, platform)
        except PspError as exc:
            skipped[platform] = f"template cannot be loaded: {exc}"
            continue
        if template.spec.php is None:
            skipped[platform] = "declares no PHP range (its code is checked by test_report on Node)"
        else:
            chosen.append(template)
    return chosen, skipped


def render_plugins(fleet: Fleet, templates: Iterable[Template], work_dir: Path) -> list[MatrixPlugin]:
    """Render every client's plugin for every template it enables into `work_dir`. A template no client
    enables is rendered for the first client, so its cells are still real runs (marked `reference`)."""
    clients = [fleet.clients[cid].config for cid in sorted(fleet.clients)]
    if not clients:
        raise CompatError("the compatibility matrix needs at least one valid client config to render plugins for")
    plugins: list[MatrixPlugin] = []
    for template in templates:
        users: list[tuple[ClientConfig, bool]] = [
            (c, False) for c in clients if template.platform in c.enabled_platforms()
        ] or [(reference_config(clients[0], template.platform), True)]
        paths = Paths(work_dir, template.templates_dir, work_dir, work_dir, contract_file=template.contract_file)
        for config, reference in users:
            root = work_dir / config.id / template.platform
            try:
                plan = plan_for(paths, config, template)
                tree = render_plugin(plan, root).tree
            except PspError as exc:
                plugins.append(MatrixPlugin(config.id, template.platform, template, {}, root, {}, reference, str(exc)))
                continue
            files = dict(tree.files)
            context = dict(plan.context)
            plugins.append(MatrixPlugin(config.id, template.platform, template, context, root, files, reference))
    return plugins


def reference_config(config: ClientConfig, platform: str) -> ClientConfig:
    """`config` with `platform` enabled and no deploy targets: renders the template for a client that
    does not use it, so a template no client enables yet still gets real cells."""
    data = config.model_dump(mode="json")
    data["platforms"][platform] = {"enabled": True}
    return parse_client(data, f"{config.id} (reference for {platform})")


def plugin_results(plugin: MatrixPlugin, php: PhpRuntime) -> tuple[list[CheckResult], dict[str, list[CheckResult]]]:
    """One plugin on one PHP runtime: lint and contract results, and the api checks per platform version.
    A runtime or render failure is a failed check, never an exception."""
    if plugin.error:
        return [CheckResult("render", "(render)", False, plugin.error)], {}
    try:
        php_results = check_lint(plugin.root, plugin.files, plugin.template, php) + contract_results(
            plugin.root, plugin.template, plugin.context, php
        )
        api = {
            pv: run_api_checks(plugin.template, plugin.root, plugin.files, plugin.context, php, versions=[pv])
            for pv in plugin.template.spec.platform_versions
        }
    except PspError as exc:
        return [CheckResult("lint", "(runtime)", False, str(exc), php.version)], {}
    return php_results, api


def _summary(plugin: MatrixPlugin, result: CheckResult) -> str:
    return f"{plugin.client_id}: {result.check} {result.name}: {result.detail.splitlines()[0] if result.detail else ''}"


def build_matrix(
    plugins: list[MatrixPlugin],
    templates: Iterable[Template],
    runtimes: Callable[[str], PhpRuntime],
    php_versions: Iterable[str] = PHP_VERSIONS,
    workers: int | None = None,
) -> tuple[pd.DataFrame, int]:
    """Run every plugin on every PHP version its template declares and assemble the matrix.

    Work is grouped by PHP version: each version's runtime (booted once by `runtimes`) takes all the
    plugins in turn, and versions run side by side (`workers` threads; each runtime is its own process).
    Returns the matrix and the number of (plugin, PHP version) runs.
    """
    templates = list(templates)
    versions = [v for v in PHP_VERSIONS if v in set(php_versions)]
    by_platform: dict[str, list[MatrixPlugin]] = {}
    for plugin in plugins:
        by_platform.setdefault(plugin.platform, []).append(plugin)
    work: dict[str, list[MatrixPlugin]] = {v: [] for v in versions}
    for template in templates:
        assert template.spec.php is not None
        for version in template.spec.php.versions():
            if version in work:
                work[version] += by_platform.get(template.platform, [])

    def run_version(version: str) -> dict[tuple[str, str], tuple[list[CheckResult], dict[str, list[CheckResult]]]]:
        out = {}
        if not work[version]:
            return out
        php = runtimes(version)
        for plugin in work[version]:
            out[(plugin.client_id, plugin.platform)] = plugin_results(plugin, php)
        return out

    results: dict[tuple[str, str, str], tuple[list[CheckResult], dict[str, list[CheckResult]]]] = {}
    with ThreadPoolExecutor(max_workers=workers or max(1, min(len(versions), os.cpu_count() or 2))) as pool:
        for version, done in zip(versions, pool.map(run_version, versions), strict=True):
            for (client_id, platform), value in done.items():
                results[(client_id, platform, version)] = value

    rows = []
    for template in templates:
        spec = template.spec
        assert spec.php is not None
        declared = set(spec.php.versions())
        platform_plugins = by_platform.get(template.platform, [])
        for platform_version in spec.platform_versions:
            for version in versions:
                row: dict[str, Any] = {
                    "platform": template.platform,
                    "platform_version": platform_version,
                    "php_version": version,
                    "declared": version in declared,
                    "plugins": 0,
                    "checks": 0,
                    "render_failed": 0,
                    "lint_failed": 0,
                    "contract_failed": 0,
                    "api_failed": 0,
                    "failures": "",
                    "template_version": spec.version,
                }
                if version not in declared:
                    rows.append({**row, "status": NOT_DECLARED})
                    continue
                failures: list[str] = []
                for plugin in platform_plugins:
                    php_results, api = results[(plugin.client_id, plugin.platform, version)]
                    cell_results = php_results + api.get(platform_version, [])
                    row["plugins"] += 1
                    row["checks"] += len(cell_results)
                    for r in cell_results:
                        if not r.passed:
                            key = f"{r.check}_failed" if r.check in ("render", "lint", "contract") else "api_failed"
                            row[key] += 1
                            failures.append(_summary(plugin, r))
                status = NO_PLUGIN if not row["plugins"] else (FAIL if failures else PASS)
                more = len(failures) - MAX_FAILURES_PER_CELL
                text = "\n".join(failures[:MAX_FAILURES_PER_CELL]) + (f"\n... and {more} more" if more > 0 else "")
                rows.append({**row, "status": status, "failures": text})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame, sum(1 for _ in results)


def run_matrix(
    fleet: Fleet,
    templates_dir: Path,
    runtimes: Callable[[str], PhpRuntime],
    work_dir: Path | None = None,
    php_versions: Iterable[str] = PHP_VERSIONS,
) -> MatrixRun:
    """Render the fleet's plugins and build the matrix (rendered trees live in a temporary folder)."""
    started = time.perf_counter()
    templates, skipped = php_templates(templates_dir)
    with tempfile.TemporaryDirectory(prefix="psp-compat-", dir=work_dir) as tmp:
        plugins = render_plugins(fleet, templates, Path(tmp))
        frame, runs = build_matrix(plugins, templates, runtimes, php_versions)
    names = [f"{p.client_id}|{p.platform}{' (reference)' if p.reference else ''}" for p in plugins]
    return MatrixRun(frame, time.perf_counter() - started, runs, names, skipped)


# --- comparing and showing ----------------------------------------------------------------------------


def regressions(previous: pd.DataFrame | None, current: pd.DataFrame) -> list[str]:
    """Every cell that passed in `previous` and fails in `current`, named `platform version x PHP v`."""
    if previous is None or previous.empty:
        return []
    key = ["platform", "platform_version", "php_version"]
    merged = previous[[*key, "status"]].merge(current[[*key, "status", "failures"]], on=key, suffixes=("_was", ""))
    went_red = merged[(merged["status_was"] == PASS) & (merged["status"] == FAIL)]
    return [
        f"{cell_name(r.platform, r.platform_version, r.php_version)}: "
        f"{(r.failures or '').splitlines()[0] if r.failures else 'failed'}"
        for r in went_red.itertuples()
    ]


def failing_cells(frame: pd.DataFrame) -> list[str]:
    bad = frame[frame["status"] == FAIL]
    return [cell_name(r.platform, r.platform_version, r.php_version) for r in bad.itertuples()]


def summary(frame: pd.DataFrame) -> dict[str, int]:
    return {status: int((frame["status"] == status).sum()) for status in (PASS, FAIL, NOT_DECLARED, NO_PLUGIN)}


def save_matrix(frame: pd.DataFrame, path: Path) -> Path:
    """Write the matrix as parquet, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path


def load_matrix(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise CompatError(f"{path}: cannot read the stored compatibility matrix ({exc})") from None


_COLORS = {PASS: "#2e9e44", FAIL: "#d7301f", NOT_DECLARED: "#e6e6e6", NO_PLUGIN: "#b0b0b0"}
_MARKS = {PASS: "pass", FAIL: "FAIL", NOT_DECLARED: "", NO_PLUGIN: "n/a"}


def heatmap_png(frame: pd.DataFrame, title: str = "Compatibility matrix") -> bytes:
    """The matrix as a picture: a row per platform version, a column per PHP version, green pass, red
    fail, light grey not declared."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    order = [PASS, FAIL, NOT_DECLARED, NO_PLUGIN]
    rows = list(dict.fromkeys(zip(frame["platform"], frame["platform_version"], strict=True)))
    versions = [v for v in PHP_VERSIONS if v in set(frame["php_version"])]
    grid = [[order.index(NOT_DECLARED)] * len(versions) for _ in rows]
    labels = [[""] * len(versions) for _ in rows]
    for r in frame.itertuples():
        i, j = rows.index((r.platform, r.platform_version)), versions.index(r.php_version)
        grid[i][j] = order.index(r.status)
        labels[i][j] = _MARKS[r.status]
    fig, ax = plt.subplots(figsize=(1.1 * len(versions) + 3, 0.42 * max(len(rows), 1) + 1.6), dpi=90)
    ax.imshow(grid, cmap=ListedColormap([_COLORS[s] for s in order]), vmin=0, vmax=len(order) - 1, aspect="auto")
    ax.set_xticks(range(len(versions)), [f"PHP {v}" for v in versions])
    ax.set_yticks(range(len(rows)), [f"{p} {v}" for p, v in rows])
    ax.tick_params(top=True, labeltop=True, bottom=False, labelbottom=False)
    for i, line in enumerate(labels):
        for j, text in enumerate(line):
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if text else "black")
    ax.set_xticks([x - 0.5 for x in range(1, len(versions))], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, len(rows))], minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    ax.legend(
        handles=[Patch(color=_COLORS[s], label=s) for s in order],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.02),
        ncol=4,
        frameon=False,
        fontsize=8,
    )
    ax.set_title(title, fontsize=10, pad=24)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    plt.close(fig)
    return out.getvalue()


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()
