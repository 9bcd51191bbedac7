"""Benchmark: onboarding a client, rebuilding the fleet through Dagster, rendering against Copier.

    .venv/bin/python bench/fleet.py [--clients 20] [--seed 7] [--profile DIR] [--keep] [--onboarding-only]

A synthetic fleet of N clients (bench/synthetic.py: every platform, local targets, seeded locales,
currencies and methods) in a temporary workspace, with a real temporary SQLite DagsterInstance and
loopback stores whose HTTP health route answers with what the deployed plugin's code reports. Every
variant runs in a fresh process of its own (its peak memory is its own, PHP runtimes boot cold in each),
one after the other:

- setup:       the sensors record the five templates and the N client configs (not a figure).
- render_ours: rendering alone, N x 5 plugins to disk (render_plugin).
- render_copier: Copier 9 rendering the same templates for the same clients (a Copier template built from
               ours: `_templates_suffix: .j2`, our escaping filters through `_jinja_extensions`, per-locale
               files through Copier's `yield` tag, our context as data; .mo files compiled as ours are).
               Identity with our output is asserted on one client before timing and on all after.
- plain_fleet: render + test + build of N x 5 as a plain Python loop over the core functions
               (render_plugin/test_plugin/build_plugin, one PHP runtime pool): the practical floor.
- dagster_fleet: the same work through Dagster: one plugin_build_job run over the whole `client|platform`
               rectangle (range run tags, psp_assets.defs.ranges). On a tree without range runs, render/test/
               build one in-process run per partition, and the JSON says which mode was measured.
- onboard:     one new client file dropped into the config dir, then what the daemon does, evaluated
               in-process: client_configs_sensor tick (its partition request applied), client_config run,
               lineage_on_upstream_change_sensor tick, the run(s) it requests (render, test, build, deploy
               to the loopback stores through the HTTP health gate). Wall time from the file landing to the
               last store healthy; then every target's health route must report the built release.
               PHP runtimes boot in the variant's process, as in a run process without the runtime service.
- onboard_service: the same for the pending client's twin (same draw, another id), with the PHP runtime
               service (core/runtimes/php_service.py) started next to the bench as the daemon would have it and
               warmed on every PHP version; its CPU during the variant (its own and its runtimes') is
               added to the variant's. The fleet variants run with PSP_PHP_SERVICE=off.

`--onboarding-only` runs setup and the two onboarding variants. Check results are remembered by content
(core/runtimes/check_cache.py) in each variant's data dir as in production; the fleet variants start with empty
caches of their own. Targets: onboarding under 5 s, Dagster fleet rebuild within 1.5x of the plain loop,
rendering faster than Copier. Peak memory is resource.getrusage ru_maxrss of each variant's process (self)
and of its largest finished child process (PHP/Node runtimes, children). CPU time (process + finished
children) is printed beside wall time: other work on the machine changes it much less. `--profile DIR`
writes a cProfile file per variant. Prints figures (docs/benchmarks.md); the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from psp_assets.core import lineage
from psp_assets.core.lineage import build_plugin, render_plugin
from psp_assets.core.plan import plan_plugin
from psp_assets.core.workspace import catalog_for

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.synthetic import LoopbackStores, synthetic_client, write_fleet  # noqa: E402

TEMPLATES = REPO / "templates"  # copied into the workspace at the start: every variant sees the same templates
FLEET_ASSETS = ("rendered_source", "test_report", "built_artifact")
WORKERS = ("setup", "render_ours", "render_copier", "plain_fleet", "dagster_fleet", "onboard", "onboard_service")
ONBOARDING = ("setup", "onboard", "onboard_service")
# PHP runtimes per variant: in the variant's own process (as a run process without the runtime service),
# or the machine's runtime service, started and warmed before the variant as the daemon would have it
PHP_SERVICE = {name: "off" for name in WORKERS} | {"onboard_service": "connect"}
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


# --- the workspace ---------------------------------------------------------------------------------


def workspace_env(root: Path) -> dict[str, str]:
    return {
        "PSP_CLIENT_CONFIGS_DIR": str(root / "configs"),
        "PSP_TEMPLATES_DIR": str(root / "templates"),
        "PSP_DATA_DIR": str(root / "data"),
        "PSP_STORES_DIR": str(root / "stores"),
        "DAGSTER_HOME": str(root / "dagster"),
    }


def _paths(root: Path, data: str = "data") -> Any:
    from psp_assets.core.workspace import Paths

    return Paths(
        configs_dir=root / "configs", templates_dir=root / "templates", data_dir=root / data, stores_dir=root / "stores"
    )


def _keys(root: Path) -> list[tuple[str, str]]:
    fleet = _paths(root).fleet()
    return [(cid, p) for cid in sorted(fleet.clients) for p in fleet.clients[cid].config.enabled_platforms()]


class CpuClock:
    """CPU time since it was made: this process (Python, Dagster) and its finished children (PHP and
    Node runtimes count once stopped, so stop them before reading)."""

    def __init__(self) -> None:
        self.start = self._now()

    @staticmethod
    def _now() -> tuple[float, float]:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime

    def figures(self) -> dict[str, float]:
        own, children = self._now()
        own, children = own - self.start[0], children - self.start[1]
        return {"cpu_s": own + children, "cpu_python_s": own, "cpu_children_s": children}


# --- driving Dagster as its daemon would, in this process -----------------------------------------


def _defs() -> Any:
    import dagster as dg

    from psp_assets.definitions import defs

    fleet_job = dg.define_asset_job(
        "bench_fleet_rebuild", selection=dg.AssetSelection.assets(*FLEET_ASSETS), description="render, test, build"
    )
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[fleet_job]))


def fleet_job_and_tags(defs: Any) -> tuple[Any, Callable[[str, str], dict[str, str]]]:
    """The job production rebuilds a fleet with (plugin_build_job: render, test, build, each partition
    recorded on its own) and its range tags; before it existed, render/test/build of the lineage assets."""
    try:
        from psp_assets.defs.ranges import range_tags
    except ImportError:
        range_tags = None
    if range_tags is not None and "plugin_build_job" in {job.name for job in defs.jobs or []}:
        return defs.resolve_job_def("plugin_build_job"), range_tags
    return defs.resolve_job_def("bench_fleet_rebuild"), lambda start, end: {RANGE_START: start, RANGE_END: end}


def _tick(defs: Any, sensor: Any, instance: Any, cursor: str | None) -> Any:
    """One sensor evaluation with the code location's own resources, as the daemon's tick would run it."""
    import dagster as dg

    resources = {key: defs.resources[key] for key in sensor.required_resource_keys}
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        return sensor(context)


def _launch(defs: Any, instance: Any, sensor: Any, result: Any, client: str | None = None) -> list[dict[str, Any]]:
    """What the sensor daemon does with a tick's result: apply its partition requests, then run each
    requested run (here in-process, one after the other). With `client`, only that client's runs: the
    lineage sensor keeps no cursor and also asks for the bench's fleet, never built here (its rebuild is
    measured on its own, by the fleet variants)."""
    import dagster as dg

    from psp_assets.fleet import QUIET

    for request in result.dynamic_partitions_requests or []:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)
    runs = []
    for request in result.run_requests or []:
        if client is not None and request.tags.get("psp/client") != client:
            continue
        job = defs.resolve_job_def(request.job_name or sensor.job_name)
        started = time.perf_counter()
        run = job.execute_in_process(
            partition_key=request.partition_key,
            instance=instance,
            raise_on_error=False,
            tags={**request.tags, "dagster/sensor_name": sensor.name},
            run_config=QUIET,
        )
        seconds = time.perf_counter() - started
        steps = step_seconds(instance, run.run_id)
        partition = request.partition_key or f"{request.tags.get(RANGE_START)}..{request.tags.get(RANGE_END)}"
        runs.append({"partition": partition, "s": seconds, "ok": run.success, "run": run.run_id, "steps": steps})
    return runs


def step_seconds(instance: Any, run_id: str) -> dict[str, float]:
    """How long each step of a run took, from the run's own event log (STEP_SUCCESS / STEP_FAILURE)."""
    import dagster as dg

    out: dict[str, float] = {}
    for kind in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
        for record in instance.all_logs(run_id, of_type=kind):
            event = record.dagster_event
            duration = getattr(event.event_specific_data, "duration_ms", None)
            if event.step_key and duration is not None:
                out[event.step_key] = round(duration / 1000, 3)
    return out


# --- workers (each in a fresh process) --------------------------------------------------------------


def work_setup(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    import dagster as dg

    from psp_assets.defs.plugins.sensors import (
        client_configs_sensor,
        lineage_on_upstream_change_sensor,
        template_change_sensor,
    )

    defs, instance = _defs(), dg.DagsterInstance.get()
    started = time.perf_counter()
    templates = _launch(defs, instance, template_change_sensor, _tick(defs, template_change_sensor, instance, None))
    configs_tick = _tick(defs, client_configs_sensor, instance, None)
    configs = _launch(defs, instance, client_configs_sensor, configs_tick)
    # the existing fleet's lineage is the fleet rebuild, measured on its own: only the cursor moves on
    lineage_tick = _tick(defs, lineage_on_upstream_change_sensor, instance, None)
    failed = [r["partition"] for r in templates + configs if not r["ok"]]
    if failed:
        raise SystemExit(f"setup: runs failed for {failed}")
    state = {"configs_cursor": configs_tick.cursor, "lineage_cursor": lineage_tick.cursor}
    (root / "state.json").write_text(json.dumps(state))
    return {"s": time.perf_counter() - started, "template_runs": len(templates), "config_runs": len(configs)}


def work_render_ours(root: Path, args: argparse.Namespace) -> dict[str, Any]:

    paths = _paths(root, "data-render")
    fleet = paths.fleet()
    keys = _keys(root)
    started, cpu = time.perf_counter(), CpuClock()
    for cid, platform in keys:
        render_plugin(plan_plugin(paths, fleet.client(cid), platform), root / "render-ours" / cid / platform)
    return {"s": time.perf_counter() - started, **cpu.figures(), "plugins": len(keys)}


def copier_template(template: Any, out: Path) -> Path:
    """Our template as a Copier template: the same files (shared folders copied in), per-locale paths as
    a Copier `yield` over the client's locales, our filters and Jinja options in copier.yml."""
    import jinja2
    import jinja2.meta
    import yaml

    parse = jinja2.Environment().parse
    for rel, source in template.source_files():
        if "locale" in jinja2.meta.find_undeclared_variables(parse(rel)):
            parts = rel.split("/")
            first = next(i for i, p in enumerate(parts) if re.search(r"\{\{[^}]*\blocale\b", p))
            parts[first] = re.sub(
                r"\{\{[^}]*\blocale\b[^}]*\}\}",
                lambda m: "{% yield locale from client.locales %}" + m.group(0) + "{% endyield %}",
                parts[first],
                count=1,
            )
            rel = "/".join(parts)
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, out / rel)
    settings = {
        "_templates_suffix": ".j2",
        "_jinja_extensions": ["copier_escape.PspEscapeFilters"],
        "_envops": {"keep_trailing_newline": True, "trim_blocks": True, "lstrip_blocks": True, "autoescape": False},
    }
    (out / "copier.yml").write_text(yaml.safe_dump(settings, sort_keys=False))
    return out


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _differences(ours: dict[str, bytes], theirs: dict[str, bytes]) -> list[str]:
    return sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))


def work_render_copier(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).parent))  # copier_escape, as Copier imports extensions by name
    try:
        import copier
    except ImportError:
        raise SystemExit("Copier is not installed: .venv/bin/pip install -e '.[dev]'") from None
    from psp_assets.core.i18n import compile_mo, parse_po
    from psp_assets.core.render.engine import render, render_context
    from psp_assets.core.templates.spec import load_template

    paths = _paths(root, "data-render")
    fleet = paths.fleet()
    keys = _keys(root)
    templates = {p: load_template(paths.templates_dir, p) for p in {p for _, p in keys}}
    sources = {p: copier_template(t, root / "copier-templates" / p) for p, t in templates.items()}
    # Copier gets our context as its data, computed before the clock starts (so its figure is a floor)
    data = {
        (cid, p): render_context(templates[p], fleet.client(cid), catalog_for(templates[p], fleet.client(cid)))
        for cid, p in keys
    }

    def copy(cid: str, platform: str, dst: Path) -> None:
        copier.run_copy(
            str(sources[platform]),
            str(dst),
            data=data[(cid, platform)],
            defaults=True,
            overwrite=True,
            quiet=True,
            unsafe=True,  # _jinja_extensions is one of Copier's "unsafe" features
        )
        if templates[platform].spec.compile_mo:  # what our render does after the templates
            for po in dst.rglob("*.po"):
                po.with_suffix(".mo").write_bytes(compile_mo(parse_po(po.read_text(encoding="utf-8"))))

    first = keys[0][0]
    for cid, platform in [k for k in keys if k[0] == first]:
        scratch = root / "copier-check" / platform
        copy(cid, platform, scratch)
        diff = _differences(dict(render(templates[platform], fleet.client(cid)).files), _tree(scratch))
        if diff:
            raise SystemExit(f"Copier output differs from ours for {cid}|{platform}: {diff[:5]}")
    started, cpu = time.perf_counter(), CpuClock()
    for cid, platform in keys:
        copy(cid, platform, root / "render-copier" / cid / platform)
    seconds, cpu_figures = time.perf_counter() - started, cpu.figures()
    identical = 0
    for cid, platform in keys:
        diff = _differences(
            _tree(root / "render-ours" / cid / platform), _tree(root / "render-copier" / cid / platform)
        )
        if diff:
            raise SystemExit(f"Copier output differs from ours for {cid}|{platform}: {diff[:5]}")
        identical += 1
    return {"s": seconds, **cpu_figures, "plugins": len(keys), "identical": identical, "copier": copier.__version__}


def runtime_boots(pool: Any) -> dict[str, Any]:
    """Boots per PHP version of a runtime pool and the seconds they took, then the pool stopped."""
    seconds = sum(getattr(pool.get(version), "boot_seconds", 0.0) for version in pool.versions)
    pool.close()
    return {"boots": dict(pool.boots()), "boot_s": round(seconds, 2)}


def _close_runtimes() -> dict[str, Any]:
    from psp_assets.core.runtimes.php_service import shared_runtimes

    return runtime_boots(shared_runtimes())


def work_plain_fleet(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    from psp_assets.core.runtimes.php import NativePhp, PhpRuntimes

    paths = _paths(root, "data-plain")
    fleet = paths.fleet()
    keys = _keys(root)
    started, cpu = time.perf_counter(), CpuClock()
    php, failed = NativePhp(), []
    with PhpRuntimes() as runtimes:
        for cid, platform in keys:
            config = fleet.client(cid)
            source = render_plugin(plan_plugin(paths, config, platform))
            report = lineage.test_plugin(
                plan_plugin(paths, config, source.tree.platform), source.tree, source.path, php, runtimes
            )
            if not report.passed:
                failed.append(f"{cid}|{platform}")
                continue
            build_plugin(plan_plugin(paths, config, source.tree.platform), source.tree, report)
        seconds = time.perf_counter() - started
        boots = runtime_boots(runtimes)
    if failed:
        raise SystemExit(f"plain loop: test reports failed for {failed[:5]}")
    return {"s": seconds, **cpu.figures(), "partitions": len(keys), **boots}


def work_dagster_fleet(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    import dagster as dg

    from psp_assets.defs.partitions import plugin_partitions
    from psp_assets.fleet import QUIET

    defs, instance = _defs(), dg.DagsterInstance.get()
    job, range_tags = fleet_job_and_tags(defs)
    keys = [f"{c}|{p}" for c, p in _keys(root)]
    rectangle = plugin_partitions.get_partition_keys(dynamic_partitions_store=instance)
    if sorted(rectangle) != sorted(keys):
        raise SystemExit(f"the instance's partitions are not the fleet's: {len(rectangle)} vs {len(keys)}")
    started, cpu = time.perf_counter(), CpuClock()
    run = job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        tags={**range_tags(rectangle[0], rectangle[-1]), "psp/trigger": "bench fleet rebuild"},
        run_config=QUIET,
    )
    range_seconds = time.perf_counter() - started
    result: dict[str, Any] = {
        "job": job.name,
        "partitions": len(keys),
        "range_run_ok": run.success,
        "range_run_s": range_seconds,
        "steps": step_seconds(instance, run.run_id),
    }
    failure = "" if run.success else next((e.message for e in run.all_events if e.is_failure), "")
    if run.success:
        result |= {"mode": "range run", "s": range_seconds, "runs": 1}
    elif _built(instance, keys):
        raise SystemExit(f"dagster fleet: the range run {run.run_id} built some partitions and failed: {failure}")
    else:
        result["range_run_error"] = failure[:300]
        # assets that cannot take a range: what a backfill does then, one run per partition (in-process here)
        started, cpu = time.perf_counter(), CpuClock()
        failed = []
        for key in keys:
            one = job.execute_in_process(partition_key=key, instance=instance, raise_on_error=False, run_config=QUIET)
            if not one.success:
                failed.append(key)
        result |= {"mode": "one run per partition", "s": time.perf_counter() - started, "runs": len(keys)}
        if failed:
            raise SystemExit(f"dagster fleet: runs failed for {failed[:5]}")
    built = _built(instance, keys)
    if built != len(keys):
        raise SystemExit(f"dagster fleet: {built} of {len(keys)} partitions have a built_artifact")
    boots = _close_runtimes()
    return result | {"built": built, **boots, **cpu.figures()}


def _built(instance: Any, keys: list[str]) -> int:
    """How many of these partitions have a built_artifact materialization."""
    import dagster as dg

    artifact = dg.AssetKey("built_artifact")
    return sum(
        1
        for key in keys
        if instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=artifact, asset_partitions=[key]), limit=1
        ).records
    )


def work_onboard_service(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The onboarding of the pending client's twin (same draw, another id), with the PHP runtime service
    the bench started and warmed: the run's process boots no runtime."""
    return work_onboard(root, args, "pending-service")


def work_onboard(root: Path, args: argparse.Namespace, pending: str = "pending") -> dict[str, Any]:
    import dagster as dg

    from psp_assets.core.deploy.health import fetch
    from psp_assets.core.runtimes import check_cache
    from psp_assets.defs.plugins.sensors import client_configs_sensor, lineage_on_upstream_change_sensor
    from psp_assets.fleet import latest_metadata

    defs, instance = _defs(), dg.DagsterInstance.get()
    state = json.loads((root / "state.json").read_text())
    new = next((root / pending).glob("*.yaml"))
    client_id = new.stem

    started, cpu = time.perf_counter(), CpuClock()
    shutil.copyfile(new, root / "configs" / new.name)  # the file lands; from here on the platform reacts
    tick1 = _tick(defs, client_configs_sensor, instance, state["configs_cursor"])
    config_runs = _launch(defs, instance, client_configs_sensor, tick1)
    t_config = time.perf_counter()
    tick2 = _tick(defs, lineage_on_upstream_change_sensor, instance, state["lineage_cursor"])
    lineage_runs = _launch(defs, instance, lineage_on_upstream_change_sensor, tick2, client=client_id)
    seconds = time.perf_counter() - started
    served = _service_use()
    boots = _close_runtimes()
    cpu_figures = cpu.figures()
    cache = check_cache.at(Path(os.environ["PSP_DATA_DIR"]))
    state |= {"configs_cursor": tick1.cursor, "lineage_cursor": tick2.cursor}  # the next onboarding's ticks
    (root / "state.json").write_text(json.dumps(state))

    problems = [f"run {r['partition']} failed ({r['run']})" for r in config_runs + lineage_runs if not r["ok"]]
    from psp_assets.core.config.model import load_client

    config = load_client(root / "configs" / new.name)
    targets = 0
    for platform in config.enabled_platforms():
        key = f"{client_id}|{platform}"
        artifact = latest_metadata(instance, "built_artifact", key)
        deployed = latest_metadata(instance, "deployed_store", key)
        for target, row in zip(config.platform(platform).targets, deployed.get("targets") or [], strict=False):
            targets += 1
            if row["health"] != "healthy" or row["deployed_version"] != artifact.get("release_id"):
                problems.append(f"{key} {target.name}: {row['health']} {row['deployed_version']}")
            # ask the store itself, after the fact: it must report this release
            status, body = fetch(_health_url(config, platform, target), 10)
            version, _, build = str(artifact.get("release_id")).rpartition("-")
            if status != 200 or json.loads(body).get("build") != build or json.loads(body).get("version") != version:
                problems.append(f"{key} {target.name}: store answers {status} {body[:120]}")
        if not deployed:
            problems.append(f"{key}: not deployed")
    if problems or not lineage_runs:
        raise SystemExit("onboarding did not end healthy: " + "; ".join(problems or ["no lineage runs requested"]))
    return {
        "s": seconds,
        "client": client_id,
        "platforms": len(config.enabled_platforms()),
        "targets": targets,
        "config_tick_and_run_s": t_config - started,
        "lineage_runs": [
            {"partition": r["partition"], "s": round(r["s"], 2), "steps": r["steps"]} for r in lineage_runs
        ],
        **boots,
        **cpu_figures,
        **served,
        "cache_hits": cache.hits,
        "cache_misses": cache.misses,
    }


def _service_use() -> dict[str, Any]:
    """Requests the runtime service answered for this process, and the ones that fell back."""
    from psp_assets.core.runtimes.php_service import shared_runtimes

    pool = shared_runtimes()
    runtimes = [pool.get(v) for v in pool.versions]
    return {
        "service_requests": sum(getattr(rt, "served", 0) for rt in runtimes),
        "service_fallbacks": sum(getattr(rt, "fallbacks", 0) for rt in runtimes),
    }


def _health_url(config: Any, platform: str, target: Any) -> str:
    from psp_assets.core.deploy.stores import gate_settings
    from psp_assets.core.render.engine import render_context, render_string
    from psp_assets.core.templates.spec import load_template
    from psp_assets.core.workspace import catalog_for

    template = load_template(Path(os.environ["PSP_TEMPLATES_DIR"]), platform)
    route = render_string(
        str(template.spec.deploy.health_route), render_context(template, config, catalog_for(template, config))
    )
    return gate_settings(target.health, route, target.name).health_url


def run_worker(name: str, root: Path, args: argparse.Namespace) -> None:
    work: Callable[[Path, argparse.Namespace], dict[str, Any]] = globals()[f"work_{name}"]
    load = os.getloadavg()[0]
    if args.profile:
        import cProfile

        profile = cProfile.Profile()
        result = profile.runcall(work, root, args)
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        profile.dump_stats(str(Path(args.profile) / f"{name}.prof"))
    else:
        result = work(root, args)
    result |= {
        "load_at_start": load,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "children_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }
    print(json.dumps(result, default=str))


def _child(name: str, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", name, "--root", str(root), "--clients", str(args.clients)]
    if args.profile:
        command += ["--profile", args.profile]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSP_")} | workspace_env(root)
    env["PSP_PHP_SERVICE"] = PHP_SERVICE[name]
    log = root / f"{name}.log"
    with log.open("w") as stderr:
        out = subprocess.run(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, check=False)
    if out.returncode != 0:
        tail = (out.stdout + log.read_text())[-3000:]
        raise SystemExit(f"{name} failed (exit {out.returncode}):\n{tail}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def twin_client(source: Path, out_dir: Path, index: int) -> Path:
    """The same client drawn again under another id (synthetic index `index`): same platforms, targets,
    locales and texts, so the two onboarding variants do the same work."""
    from bench.synthetic import letters, studly

    old = source.stem
    new = f"{old.rsplit('-', 1)[0]}-{letters(index)}"
    text = source.read_text()
    # every spelling of the id the synthetic draw uses: kebab, Studly, snake, and run together (PrestaShop's
    # module folder, which must match the module name the template derives from the new id)
    spellings = [(old, new), (studly(old), studly(new))]
    spellings += [(old.replace("-", sep), new.replace("-", sep)) for sep in ("_", "")]
    for before, after in spellings:
        text = text.replace(before, after)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{new}.yaml"
    path.write_text(text)
    return path


class RuntimeService:
    """The PHP runtime service for the workspace, started as the daemon would (it stops with this
    process), warmed on every PHP version (what earlier runs would have done), stopped after the
    variant. Its CPU (its own and its runtimes') during the variant is added to the variant's."""

    def __init__(self, root: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PSP_")} | workspace_env(root)

    def _cli(self, *args: str) -> dict[str, Any]:
        command = [sys.executable, "-m", "psp_assets.core.runtimes.php_service", *args]
        out = subprocess.run(command, capture_output=True, text=True, env=self.env, cwd=REPO, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    def _request(self, op: str, **fields: Any) -> dict[str, Any]:
        code = (
            "import json, sys; from psp_assets.core.runtimes import php_service as s; "
            "print(json.dumps(s.ServiceClient(s.socket_path()).request(sys.argv[1], 600, **json.loads(sys.argv[2]))))"
        )
        command = [sys.executable, "-c", code, op, json.dumps(fields)]
        out = subprocess.run(command, capture_output=True, text=True, env=self.env, cwd=REPO, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    def __enter__(self) -> RuntimeService:
        started = time.perf_counter()
        self.pid = self._cli("start", "--idle", "600", "--watch-pid", str(os.getpid()))["pid"]
        versions = ["7.4", "8.0", "8.1", "8.2", "8.3", "8.4", "8.5"]
        self.warm = self._request("warm", versions=versions)["versions"]
        self.warm_s = time.perf_counter() - started
        self.cpu_before = self._request("cpu")["cpu_s"]
        return self

    def figures(self) -> dict[str, Any]:
        return {
            "service_cpu_s": round(self.cpu_after - self.cpu_before, 3),
            "service_warm_s": round(self.warm_s, 2),
            "service_versions": self.warm,
        }

    def __exit__(self, *exc: object) -> None:
        self.cpu_after = self._request("cpu")["cpu_s"]
        self._cli("stop")


# --- the run ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20, help="synthetic clients in the fleet (x 5 platforms)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", default="", help="write a cProfile file per variant into this folder")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspace (logs, outputs)")
    parser.add_argument("--onboarding-only", action="store_true", help="only the two onboarding variants")
    parser.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args.worker, Path(args.root), args)
        return 0

    load_start = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="psp-bench-fleet-"))
    try:
        (root / "stores").mkdir()
        (root / "dagster").mkdir()
        (root / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        shutil.copytree(TEMPLATES, root / "templates", ignore=shutil.ignore_patterns("__pycache__"))
        with LoopbackStores(root / "stores", root / "templates") as stores:
            write_fleet(args.clients, root / "configs", seed=args.seed, store_url=stores.url)
            (pending,) = write_fleet(1, root / "pending", seed=args.seed, store_url=stores.url, start=args.clients)
            twin_client(pending, root / "pending-service", args.clients + 1)
            figures = {}
            for name in ONBOARDING if args.onboarding_only else WORKERS:
                if name == "onboard_service":
                    with RuntimeService(root) as service:
                        figures[name] = _child(name, root, args)
                    figures[name] |= service.figures()
                else:
                    figures[name] = _child(name, root, args)
                print(f"{name}: {json.dumps(figures[name], default=str)}", file=sys.stderr)
            store_requests = stores.requests
    finally:
        if args.keep:
            print(f"workspace kept: {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    report(args, figures, load_start, store_requests)
    return 0


ONBOARDING_TARGET_S = 5.0


def _onboarding_steps(onboard: dict[str, Any]) -> dict[str, float]:
    steps_total: dict[str, float] = {"config tick + run": onboard["config_tick_and_run_s"]}
    for run in onboard["lineage_runs"]:
        for step, seconds in run["steps"].items():
            steps_total[step] = steps_total.get(step, 0) + seconds
        steps_total["lineage runs outside steps"] = steps_total.get("lineage runs outside steps", 0) + (
            run["s"] - sum(run["steps"].values())
        )
    return steps_total


def _print_onboarding(label: str, onboard: dict[str, Any]) -> None:
    cpu = onboard["cpu_s"] + onboard.get("service_cpu_s", 0.0)
    service = (
        f", of which the runtime service {onboard['service_cpu_s']:.1f} s "
        f"({onboard['service_requests']} requests, {onboard['service_fallbacks']} fell back)"
        if "service_cpu_s" in onboard
        else ""
    )
    met = "met" if onboard["s"] < ONBOARDING_TARGET_S else "MISSED"
    print(
        f"onboarding {onboard['client']} {label} ({onboard['platforms']} platforms, {onboard['targets']} store "
        f"targets, sensors -> client_config -> lineage, health-gated): {onboard['s']:.1f} s, CPU {cpu:.1f} s "
        f"(PHP/Node/processes {onboard['cpu_children_s']:.1f} s{service})  "
        f"[target < {ONBOARDING_TARGET_S:.0f} s: {met}]"
    )
    print(
        f"  load average {onboard['load_at_start']:.2f} at the variant's start; config tick + client_config run "
        f"{onboard['config_tick_and_run_s']:.2f} s; PHP runtime boots in the run's process "
        f"{sum(onboard['boots'].values())} ({onboard['boot_s']:.1f} s summed, side by side); check cache "
        f"{onboard['cache_hits']} hits, {onboard['cache_misses']} misses; lineage runs (steps from the event log):"
    )
    for run in onboard["lineage_runs"]:
        steps = ", ".join(f"{k} {v:.2f}" for k, v in run["steps"].items())
        overhead = run["s"] - sum(run["steps"].values())
        print(f"    {run['partition']:28} {run['s']:5.1f} s = {steps}; outside steps {overhead:.2f}")
    print("  summed: " + ", ".join(f"{k} {v:.1f} s" for k, v in _onboarding_steps(onboard).items()))


def _onboarding_summary(prefix: str, onboard: dict[str, Any]) -> dict[str, Any]:
    cpu = onboard["cpu_s"] + onboard.get("service_cpu_s", 0.0)
    return {
        f"{prefix}_s": round(onboard["s"], 2),
        f"{prefix}_cpu_s": round(cpu, 2),
        f"{prefix}_cpu_children_s": round(onboard["cpu_children_s"], 2),
        f"{prefix}_cpu_service_s": round(onboard.get("service_cpu_s", 0.0), 2),
        f"{prefix}_load_avg": round(onboard["load_at_start"], 2),
        f"{prefix}_steps_s": {k: round(v, 2) for k, v in _onboarding_steps(onboard).items()},
        f"{prefix}_targets": onboard["targets"],
        f"{prefix}_php_boots": sum(onboard["boots"].values()),
        f"{prefix}_cache_hits": onboard["cache_hits"],
        f"{prefix}_cache_misses": onboard["cache_misses"],
        f"{prefix}_target_met": onboard["s"] < ONBOARDING_TARGET_S,
    }


def report(args: argparse.Namespace, f: dict[str, dict[str, Any]], load_start: tuple, store_requests: int) -> None:
    load_end = os.getloadavg()
    new_client = synthetic_client(args.clients, args.seed)["id"]
    print(
        f"fleet: {args.clients} synthetic clients x 5 platforms (seed {args.seed}); new client {new_client} and its "
        f"twin; {os.cpu_count()} CPUs; load average {load_start[0]:.2f} at start, {load_end[0]:.2f} at end"
    )
    _print_onboarding("without the runtime service (runtimes boot in the run's process)", f["onboard"])
    service = f["onboard_service"]
    print(
        "  (runtime service started and warmed before it, as the daemon would have it: "
        f"{service['service_warm_s']:.1f} s, PHP {', '.join(service['service_versions'])})"
    )
    _print_onboarding("with the runtime service", service)
    summary: dict[str, Any] = {
        "clients": args.clients,
        "seed": args.seed,
        "cpus": os.cpu_count(),
        "load_avg_start": round(load_start[0], 2),
        "load_avg_end": round(load_end[0], 2),
        "load_avg_workers": round(statistics.mean(v["load_at_start"] for v in f.values()), 2),
        **_onboarding_summary("onboarding", f["onboard"]),
        **_onboarding_summary("onboarding_service", service),
        "onboarding_target_s": ONBOARDING_TARGET_S,
        "store_http_requests": store_requests,
    }
    if "plain_fleet" in f:
        summary |= _fleet_report(f)
    print("peak memory, ru_maxrss MiB (process / largest child process):")
    for name in f:
        print(f"  {name:15} {f[name]['peak_rss_mib']:7.0f} / {f[name]['children_peak_rss_mib']:.0f}")
    summary |= {
        "peak_rss_mib": {n: f[n]["peak_rss_mib"] for n in f},
        "children_peak_rss_mib": {n: f[n]["children_peak_rss_mib"] for n in f},
        "memory_measure": "ru_maxrss (RUSAGE_SELF, RUSAGE_CHILDREN) per variant process",
    }
    print(json.dumps(summary, sort_keys=True))


def _fleet_report(f: dict[str, dict[str, Any]]) -> dict[str, Any]:
    plain, dagster = f["plain_fleet"], f["dagster_fleet"]
    ours, theirs = f["render_ours"], f["render_copier"]
    partitions = plain["partitions"]
    fleet_ratio = dagster["s"] / plain["s"]
    render_speedup = theirs["s"] / ours["s"]
    print(f"fleet rebuild, render + test + build of {partitions} partitions (runtimes in the process, cold cache):")
    print(
        f"  plain Python loop (core functions):   {plain['s']:7.1f} s, CPU {plain['cpu_s']:6.1f} s  "
        f"({sum(plain['boots'].values())} PHP boots, {plain['boot_s']:.1f} s; load {plain['load_at_start']:.2f})"
    )
    print(
        f"  Dagster, {dagster['mode']:27} {dagster['s']:7.1f} s, CPU {dagster['cpu_s']:6.1f} s  "
        f"({dagster['runs']} run(s) of {dagster['job']}, {sum(dagster['boots'].values())} PHP boots, "
        f"{dagster['boot_s']:.1f} s; load {dagster['load_at_start']:.2f})  ratio {fleet_ratio:.2f}, "
        f"CPU ratio {dagster['cpu_s'] / plain['cpu_s']:.2f}  "
        f"[target <= 1.5: {'met' if fleet_ratio <= 1.5 else 'MISSED'}]"
    )
    if dagster["range_run_ok"]:
        print("    steps: " + ", ".join(f"{k} {v:.1f} s" for k, v in dagster["steps"].items()))
    else:
        print(f"  (the range run failed after {dagster['range_run_s']:.1f} s: {dagster['range_run_error'][:160]})")
    print(
        f"rendering {partitions} plugins to disk: ours {ours['s']:.1f} s (CPU {ours['cpu_s']:.1f} s), "
        f"Copier {theirs['copier']} {theirs['s']:.1f} s (CPU {theirs['cpu_s']:.1f} s) "
        f"(byte-identical {theirs['identical']}/{partitions}); ours {render_speedup:.1f}x faster "
        f"[target > 1: {'met' if render_speedup > 1 else 'MISSED'}]"
    )
    return {
        "partitions": partitions,
        "plain_fleet_s": round(plain["s"], 2),
        "plain_fleet_cpu_s": round(plain["cpu_s"], 2),
        "plain_fleet_cpu_children_s": round(plain["cpu_children_s"], 2),
        "dagster_fleet_s": round(dagster["s"], 2),
        "dagster_fleet_cpu_s": round(dagster["cpu_s"], 2),
        "dagster_fleet_cpu_children_s": round(dagster["cpu_children_s"], 2),
        "dagster_fleet_mode": dagster["mode"],
        "dagster_fleet_job": dagster["job"],
        "dagster_fleet_runs": dagster["runs"],
        "dagster_range_run_ok": dagster["range_run_ok"],
        "fleet_ratio": round(fleet_ratio, 2),
        "fleet_cpu_ratio": round(dagster["cpu_s"] / plain["cpu_s"], 2),
        "fleet_target_met": fleet_ratio <= 1.5,
        "render_ours_s": round(ours["s"], 2),
        "render_copier_s": round(theirs["s"], 2),
        "render_ours_cpu_s": round(ours["cpu_s"], 2),
        "render_copier_cpu_s": round(theirs["cpu_s"], 2),
        "render_copier_identical": theirs["identical"],
        "render_speedup_vs_copier": round(render_speedup, 2),
        "render_target_met": render_speedup > 1,
        "php_boots": {n: sum(f[n]["boots"].values()) for n in ("plain_fleet", "dagster_fleet", "onboard")},
        "php_boot_s": {n: f[n]["boot_s"] for n in ("plain_fleet", "dagster_fleet", "onboard")},
    }


if __name__ == "__main__":
    raise SystemExit(main())
