"""A 1,000-plugin fleet (200 clients x 5 platforms) run through Dagster on the PostgreSQL instance, in
chunks, on 1, 2 and 4 concurrent run workers; against the same work as a plain loop.

The asset work is trivial on purpose (two assets per partition, each writing a small JSON handle), so
the figures are orchestration: run start and end, event writes, per-partition materializations, the
handle IO manager. The fleet is cut into chunk runs exactly as the platform cuts it
(`defs/ranges.py`: a range per platform over its clients, at most PSP_FLEET_CHUNK partitions per run,
each recorded partition by partition). A run worker is a process that takes the next chunk and runs
it in process on the shared instance, which is what each of `max_concurrent_runs` run slots (or a K8s
run pod) does; the daemon's dequeue interval and a run pod's start are not in these figures (see
`--spawn` for the cost of starting a run process, and docs/operations.md for the projection).

Usage: .venv/bin/python bench/fleet_workers.py [--clients 200] [--chunk 100] [--workers 1 2 4]
Prints one line per configuration and, last, one JSON object with every figure.
"""

import argparse
import json
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dagster as dg  # noqa: E402

from psp_assets.core.templates.spec import PLATFORMS  # noqa: E402
from psp_assets.defs import ranges  # noqa: E402
from psp_assets.defs.resources import JsonHandleIOManager  # noqa: E402

clients_def = dg.DynamicPartitionsDefinition(name="bench_client")
fleet_def = dg.MultiPartitionsDefinition(
    {"client": clients_def, "platform": dg.StaticPartitionsDefinition(list(PLATFORMS))}
)


def _handle(key: str, step: str) -> dict[str, Any]:
    return {"partition": key, "step": step, "config_hash": f"{hash((key, step)) & 0xFFFFFFFF:08x}"}


@dg.asset(partitions_def=fleet_def, output_required=False, backfill_policy=ranges.FLEET_BACKFILL)
def bench_source(context: dg.AssetExecutionContext):
    outcomes = {
        key: ranges.Produced(_handle(key, "source"), metadata={"n": 1}, data_version=key)
        for key in context.partition_keys
    }
    yield from ranges.record(context, outcomes)


@dg.asset(partitions_def=fleet_def, output_required=False, backfill_policy=ranges.FLEET_BACKFILL)
def bench_build(context: dg.AssetExecutionContext, bench_source: Any):
    sources = ranges.upstream(context, "bench_source", bench_source)
    outcomes = {
        key: ranges.Produced(_handle(key, "build"), metadata={"n": 2}) if key in sources else ranges.Skipped("none")
        for key in context.partition_keys
    }
    yield from ranges.record(context, outcomes)


bench_job = dg.define_asset_job(
    "bench_fleet_job", selection=[bench_source, bench_build], executor_def=dg.in_process_executor
)
defs = dg.Definitions(
    assets=[bench_source, bench_build], jobs=[bench_job], resources={"io_manager": JsonHandleIOManager()}
)


def get_job() -> dg.JobDefinition:
    return defs.resolve_job_def("bench_fleet_job")


def chunk_ranges(clients: list[str], chunk: int) -> list[tuple[str, str, int]]:
    """(first, last, partitions) of every chunk run: per platform, the clients in order, `chunk` at a time."""
    return [
        (f"{part[0]}|{platform}", f"{part[-1]}|{platform}", len(part))
        for platform in PLATFORMS
        for part in ranges.chunks(clients, chunk)
    ]


QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def worker(home: str, todo: Any, done: Any) -> None:
    """A run worker: takes chunks until there are none, each one run on the shared instance."""
    os.environ["DAGSTER_HOME"] = home
    instance = dg.DagsterInstance.get()
    job = dg.reconstructable(get_job)
    while True:
        item = todo.get()
        if item is None:
            break
        first, last, count = item
        started = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process of the machine
        with dg.execute_job(job, instance, run_config=QUIET, tags=ranges.range_tags(first, last)) as result:
            ok = result.success
        done.put({"partitions": count, "start": started, "end": time.monotonic(), "success": ok})


def run_dagster(home: Path, clients: list[str], chunk: int, workers: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    todo, done = ctx.Queue(), ctx.Queue()
    chunks = chunk_ranges(clients, chunk)
    for item in chunks:
        todo.put(item)
    for _ in range(workers):
        todo.put(None)
    cpu0 = _children_cpu()
    started = time.monotonic()
    procs = [ctx.Process(target=worker, args=(str(home), todo, done)) for _ in range(workers)]
    for p in procs:
        p.start()
    results = [done.get(timeout=3600) for _ in chunks]
    for p in procs:
        p.join()
    # from the first chunk's start to the last one's end: worker processes already up, as run slots are
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    seconds = [r["end"] - r["start"] for r in results]
    partitions = sum(r["partitions"] for r in results)
    return {
        "workers": workers,
        "runs": len(results),
        "failed_runs": sum(not r["success"] for r in results),
        "partitions": partitions,
        "wall_s": round(wall, 2),
        "cpu_s": round(_children_cpu() - cpu0, 2),
        "with_worker_start_s": round(time.monotonic() - started, 2),
        "run_s_mean": round(sum(seconds) / len(results), 2),
        "ms_per_partition_wall": round(1000 * wall / partitions, 2),
        "ms_per_partition_run": round(1000 * sum(seconds) / partitions, 2),
    }


def run_plain(root: Path, clients: list[str]) -> dict[str, Any]:
    """The same work without Dagster: two handles per partition written the way the IO manager does."""
    started = time.process_time(), time.monotonic()
    for step in ("source", "build"):
        out = root / step
        out.mkdir(parents=True, exist_ok=True)
        for platform in PLATFORMS:
            for client in clients:
                key = f"{client}|{platform}"
                path = out / (key.replace("|", "__") + ".json")
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(_handle(key, step), indent=2, sort_keys=True))
                tmp.replace(path)
    return {"wall_s": round(time.monotonic() - started[1], 3), "cpu_s": round(time.process_time() - started[0], 3)}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def spawn_cost() -> float:
    """Seconds to start a run process that loads the platform's code location (what a run worker or a
    K8s run pod pays once per run before its first step)."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "import psp_assets.definitions"], cwd=REPO, check=True)
    return round(time.monotonic() - started, 2)


def postgres_home(root: Path, host: str, port: int, user: str) -> tuple[Path, str]:
    import psycopg2

    name = f"psp_bench_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(host=host, port=port, user=user, dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    home = root / "dagster-home"
    home.mkdir()
    storage = {
        "postgres": {
            "postgres_db": {
                "hostname": host,
                "port": port,
                "username": user,
                "password": "",
                "db_name": name,
                "scheme": "postgresql+psycopg2",
            }
        }
    }
    (home / "dagster.yaml").write_text(json.dumps({"storage": storage, "telemetry": {"enabled": False}}))
    return home, name


def drop_database(host: str, port: int, user: str, name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(host=host, port=port, user=user, dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--chunk", type=int, default=100, help="partitions per run (PSP_FLEET_CHUNK)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--pg-host", default=os.environ.get("PSP_PG_HOST", "127.0.0.1"))
    parser.add_argument("--pg-port", type=int, default=int(os.environ.get("PSP_PG_PORT", "5432")))
    parser.add_argument("--pg-user", default=os.environ.get("PSP_PG_USER", "postgres"))
    args = parser.parse_args()
    clients = [f"bench-{i:04d}" for i in range(args.clients)]
    figures: dict[str, Any] = {
        "clients": args.clients,
        "platforms": len(PLATFORMS),
        "partitions": args.clients * len(PLATFORMS),
        "chunk": args.chunk,
        "load_before": Path("/proc/loadavg").read_text().split()[:3],
    }
    with tempfile.TemporaryDirectory(prefix="psp-bench-workers-") as tmp:
        root = Path(tmp)
        figures["plain_loop"] = run_plain(root / "plain", clients)
        print(f"plain loop: {figures['plain_loop']}", flush=True)
        figures["run_process_start_s"] = spawn_cost()
        figures["dagster"] = []
        for workers in args.workers:
            # a fresh instance and handle store per configuration: every run records the whole fleet anew
            sub = root / f"workers-{workers}"
            sub.mkdir()
            home, name = postgres_home(sub, args.pg_host, args.pg_port, args.pg_user)
            os.environ["DAGSTER_HOME"] = str(home)
            os.environ["PSP_DATA_DIR"] = str(sub / "data")
            try:
                with dg.DagsterInstance.get() as instance:
                    instance.add_dynamic_partitions(clients_def.name, clients)
                row = run_dagster(home, clients, args.chunk, workers)
            finally:
                drop_database(args.pg_host, args.pg_port, args.pg_user, name)
            row["vs_plain_loop_wall"] = round(row["wall_s"] / max(figures["plain_loop"]["wall_s"], 1e-3), 1)
            figures["dagster"].append(row)
            print(f"dagster, {workers} worker(s): {row}", flush=True)
    figures["load_after"] = Path("/proc/loadavg").read_text().split()[:3]
    print(json.dumps(figures))
    return 0 if all(not r["failed_runs"] for r in figures["dagster"]) else 1


if __name__ == "__main__":
    sys.exit(main())
