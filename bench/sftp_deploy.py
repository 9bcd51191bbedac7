"""Deploy one artifact to many loopback SFTP targets; print deploys per second and the time split.

    .venv/bin/python bench/sftp_deploy.py --targets 20 [--workers 8]

Starts its own sshd (as the tests do; needs root for the deploy account: the fault campaign's own
`pspfaults`, whose sessions no other suite's cleanup ends) and compares, in the same run, the full deploy
(lock, upload, remote sha256 verify, atomic switch, manifest health, history, garbage collection) against
a plain loop that only connects and uploads the same files file by file (the floor a bare `sftp put`
would reach), serially with a new connection per deploy; then the same deploys as one parallel wave to
as many fresh stores, `--workers` at a time, each on a connection of a shared pool handed to one thread
at a time. CPU time is given next to wall time (other work on the machine moves it less): this
process's (all its threads) and the sshd's (its sessions, the SFTP server and the remote commands), per
deploy. The last line is a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from psp_assets.core.config.model import load_client
from psp_assets.core.deploy.parallel import Job, side_by_side
from psp_assets.core.deploy.release import deploy, extract_release
from psp_assets.core.deploy.sftp import SftpFS, SftpPool, SshEndpoint
from psp_assets.core.deploy.stores import manifest_health
from psp_assets.core.package import package
from psp_assets.core.render.engine import render, render_context, render_string
from psp_assets.core.templates.spec import load_template
from psp_assets.core.workspace import catalog_for
from tests.integration.conftest import start_sshd
from tests.integration.faults import fault_user, stop_sshd

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


def sshd_cpu(pid: int) -> float:
    """CPU seconds of the sshd and of every session it has reaped (utime, stime, cutime, cstime), once no
    session of it is left running (sessions end when their connection closes)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _children(pid):
        time.sleep(0.02)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / TICK


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=20)
    parser.add_argument("--workers", type=int, default=8, help="deploys at once in the parallel wave")
    args = parser.parse_args()

    import subprocess

    # the campaign's own account, apart from the test suites' (their sshd cleanup used to end every
    # pspdeploy session on the machine, and cut this bench's connections mid-deploy)
    user = fault_user()
    sshd = start_sshd(user)
    work = Path(tempfile.mkdtemp(prefix="psp-bench-"))
    store = Path(tempfile.mkdtemp(prefix="psp-bench-store-"))
    store.chmod(0o755)
    subprocess.run(["chown", f"{user.pw_uid}:{user.pw_gid}", str(store)], check=True)
    try:
        template = load_template(ROOT / "templates", "woocommerce")
        config = load_client(ROOT / "client_configs" / "nordbank.yaml")
        tree = render(template, config)
        context = render_context(template, config, catalog_for(template, config))
        artifact = package(tree, render_string(template.spec.packaging.root, context), "p.zip", work)
        files = extract_release(artifact)
        endpoint = SshEndpoint("127.0.0.1", sshd.port, user.pw_name, sshd.known_host(), sshd.client_private, 10, 60)

        # baseline: connect and upload the same files, nothing else
        start = time.monotonic()
        for i in range(args.targets):
            with SftpFS(endpoint) as fs:
                base = f"{store}/baseline-{i}"
                fs.makedirs(base)
                for d in sorted({str(Path(r).parent) for r in files if "/" in r}):
                    fs.makedirs(f"{base}/{d}")
                for rel, data in files.items():
                    fs._sftp.putfo(io.BytesIO(data), f"{base}/{rel}")
        baseline = time.monotonic() - start

        split: dict[str, list[float]] = {k: [] for k in ("connect", "upload", "verify", "switch", "health", "total")}
        sshd0 = sshd_cpu(sshd.process.pid)
        cpu0 = time.process_time()
        start = time.monotonic()
        for i in range(args.targets):
            t0 = time.monotonic()
            with SftpFS(endpoint) as fs:
                split["connect"].append(fs.stats["connect"])
                live = f"{store}/shop-{i}/wp-content/plugins/nordbank-payments"
                result = deploy(artifact, fs, live, f"t{i}", manifest_health(fs))
                assert result.ok, result
                for step in result.steps:
                    if step.step in split:
                        split[step.step].append(step.seconds)
            split["total"].append(time.monotonic() - t0)
        full = time.monotonic() - start
        full_cpu = time.process_time() - cpu0
        full_sshd = sshd_cpu(sshd.process.pid) - sshd0

        # the parallel wave: fresh stores, deployed side by side, connections from one pool
        wave_split: dict[str, list[float]] = {k: [] for k in split}

        def one(i: int) -> float:
            t0 = time.monotonic()
            with pool.lease(endpoint) as fs:
                result = deploy(
                    artifact, fs, f"{store}/wave-{i}/wp-content/plugins/nordbank-payments", f"w{i}", manifest_health(fs)
                )
            assert result.ok, result
            for step in result.steps:
                if step.step in wave_split:
                    wave_split[step.step].append(step.seconds)
            wave_split["total"].append(time.monotonic() - t0)
            return time.monotonic() - t0

        sshd1 = sshd_cpu(sshd.process.pid)
        cpu1 = time.process_time()
        start = time.monotonic()
        # through the deploy step's own scheduler (core/deploy/parallel.py, one thread per store host): each
        # store is a host of its own, as in a fleet; on loopback one sshd stands in for all of them
        jobs = [Job(i, functools.partial(one, i), frozenset({f"store-{i}"})) for i in range(args.targets)]
        with SftpPool() as pool:
            wave_each = list(side_by_side(jobs, args.workers).values())
            wave_connects = pool.connects
            wave_connect = [fs.stats["connect"] for fs in pool.open_connections]
        wave = time.monotonic() - start
        wave_cpu = time.process_time() - cpu1
        wave_sshd = sshd_cpu(sshd.process.pid) - sshd1
    finally:
        stop_sshd(sshd)  # its own processes only
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(store, ignore_errors=True)
        shutil.rmtree(sshd.workdir, ignore_errors=True)

    ms = {k: round(statistics.mean(v) * 1000, 1) for k, v in split.items() if v}
    wave_ms = {k: round(statistics.mean(v) * 1000, 1) for k, v in wave_split.items() if v}
    wave_ms["connect"] = round(sum(wave_connect) / args.targets * 1000, 1)  # the pool's connects, spread
    n = args.targets
    figures = {
        "targets": args.targets,
        "files_per_release": len(files),
        "bytes_per_release": sum(len(d) for d in files.values()),
        "deploys_per_second": round(args.targets / full, 2),
        "mean_ms": ms,
        "baseline_upload_only_s": round(baseline, 2),
        "full_deploy_s": round(full, 2),
        "full_vs_upload_only": round(full / baseline, 2),
        "serial_cpu_s": round(full_cpu, 2),
        "serial_sshd_cpu_s": round(full_sshd, 2),
        "serial_cpu_ms_per_deploy": {
            "parent": round(full_cpu / n * 1000, 1),
            "sshd": round(full_sshd / n * 1000, 1),
            "total": round((full_cpu + full_sshd) / n * 1000, 1),
        },
        "wave": {
            "workers": args.workers,
            "deploys_per_second": round(args.targets / wave, 2),
            "seconds": round(wave, 2),
            "cpu_s": round(wave_cpu, 2),
            "sshd_cpu_s": round(wave_sshd, 2),
            "cpu_ms_per_deploy": {
                "parent": round(wave_cpu / n * 1000, 1),
                "sshd": round(wave_sshd / n * 1000, 1),
                "total": round((wave_cpu + wave_sshd) / n * 1000, 1),
            },
            "mean_ms": wave_ms,
            "mean_deploy_ms": round(statistics.mean(wave_each) * 1000, 1),
            "ssh_connects": wave_connects,
        },
        "load": [round(x, 2) for x in os.getloadavg()[:3]],
    }
    print(f"{args.targets} SFTP deploys of {len(files)} files: {figures['deploys_per_second']} deploys/s")
    print("mean per deploy (ms): " + ", ".join(f"{k} {v}" for k, v in ms.items()))
    print(f"upload-only loop: {baseline:.2f} s; full deploy: {full:.2f} s ({figures['full_vs_upload_only']}x)")
    w = figures["wave"]
    print(
        f"parallel wave ({args.workers} at a time, {w['ssh_connects']} connections): {w['deploys_per_second']} "
        f"deploys/s against {figures['deploys_per_second']} serial; CPU {w['cpu_s']} s against {full_cpu:.2f} s"
    )
    print("wave, mean per deploy (ms): " + ", ".join(f"{k} {v}" for k, v in wave_ms.items()))
    s, c = figures["serial_cpu_ms_per_deploy"], w["cpu_ms_per_deploy"]
    print(
        f"CPU per deploy (ms, this process + sshd): serial {s['parent']} + {s['sshd']} = {s['total']}; "
        f"wave {c['parent']} + {c['sshd']} = {c['total']}; load {' '.join(map(str, figures['load']))}"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
