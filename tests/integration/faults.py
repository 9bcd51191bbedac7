"""A seeded fault campaign against real SFTP deploys: every fault is injected into a real deploy (a
forked deployer process talking to a real sshd, through a TCP proxy that can cut or black-hole the
connection, onto a store on a small tmpfs that can really fill up, gated by a real HTTP store whose
answers come from the files the live path serves), then every invariant of docs/deploys.md is checked,
then the run's retry is made and checked too.

Used by bench/deploy_faults.py (the full campaign) and tests/integration/test_deploy_faults.py (a slice).
With `rollback=True` (bench/deploy_faults.py --rollback, tests/integration/test_rollback_faults.py) the
faults go into the payment gate's rollback (rollout_gate.restore_previous_release) instead of deploys.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import json
import logging
import multiprocessing
import os
import posixpath
import pwd
import random
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
import traceback
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import paramiko

from psp_assets.core.deploy import release as deploy_module
from psp_assets.core.deploy.health import GateSettings
from psp_assets.core.deploy.parallel import Job, side_by_side, store_hosts
from psp_assets.core.deploy.release import (
    HISTORY_NAME,
    LEASE_SECONDS,
    HealthResult,
    LocalFS,
    bad_mark,
    deploy,
    manifest_path,
    read_history,
    release_of,
    releases_dir_for,
)
from psp_assets.core.deploy.sftp import SftpFS, SftpPool, SshEndpoint
from psp_assets.core.deploy.stores import combine, deploy_plugin, http_health, manifest_health
from psp_assets.core.package import Artifact, DeployFacts, load_artifact, package
from psp_assets.core.render.engine import RenderedTree
from psp_assets.core.rollout.analysis import StoreVerdict
from psp_assets.core.rollout.gate import restore_previous_release
from psp_assets.core.workspace import Paths
from tests.integration.conftest import Sshd, chown_tree, machine_account, start_sshd, wait_for_port

MAIN = "acme-pay.php"
KEEP = 3
CLASSES = (
    "kill_sftp",
    "sshd_killed",
    "conn_cut",
    "conn_blackhole",
    "disk_full",
    "clock_ahead",
    "clock_behind",
    "break_race",
    "hot_patch",
    "kill_adoption",
    "trickle_health",
    "release_5xx",
    "store_sick",
)
# the full campaign's mix (sums to 160); a slice takes every class in turn
WEIGHTS = {
    "kill_sftp": 30,
    "sshd_killed": 10,
    "conn_cut": 16,
    "conn_blackhole": 8,
    "disk_full": 16,
    "clock_ahead": 8,
    "clock_behind": 8,
    "break_race": 12,
    "hot_patch": 10,
    "kill_adoption": 14,
    "trickle_health": 6,
    "release_5xx": 6,
    "store_sick": 6,
}


# the KPI-triggered rollback's slice (restore_previous_release over SFTP): a store on its second release
# (the bad one), rolled back to the first under each fault
ROLLBACK_CLASSES = ("kill_sftp", "conn_cut", "conn_blackhole", "disk_full", "sshd_killed", "lock_held")
ROLLBACK_WEIGHTS = {
    "kill_sftp": 30,
    "conn_cut": 14,
    "conn_blackhole": 8,
    "disk_full": 14,
    "sshd_killed": 10,
    "lock_held": 10,
}
EVIDENCE = StoreVerdict(
    "acme", "woocommerce", "faults", "fail", "worse after the switch: authorization_rate", True, 4800, 200, 9000, 3,
    None,
)  # fmt: skip


# --- the store's pieces -----------------------------------------------------------------------------


FAULT_USER = "pspfaults"


def fault_user() -> pwd.struct_passwd:
    """The campaign's own deploy account: a name no other suite's sshd shares, so a campaign's sessions are
    its own (an sshd's stop ends the sessions below it only)."""
    return machine_account(FAULT_USER)


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything under it (found through /proc; never by name)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
    order, todo = [], [pid]
    while todo:
        p = todo.pop()
        order.append(p)
        todo.extend(children.get(p, []))
    for p in order:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


def stop_sshd(sshd: Sshd) -> None:
    if sshd.process is not None:
        kill_tree(sshd.process.pid)
        sshd.process.wait(timeout=10)


class Proxy:
    """A TCP proxy in front of sshd. `arm(mode, after)` applies to the next connection only: after
    `after` bytes from the client it is cut (both sides closed) or black-holed (kept open, nothing more
    forwarded either way)."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed: tuple[str, int] | None = None
        self.lock = threading.Lock()
        self.stopped = False
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, mode: str, after: int) -> None:
        with self.lock:
            self.armed = (mode, after)

    def disarm(self) -> None:
        with self.lock:
            self.armed = None
            held, self.held = self.held, []
        for s in held:
            with contextlib.suppress(OSError):
                s.close()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                plan, self.armed = self.armed, None
            threading.Thread(target=self._pipe, args=(client, plan), daemon=True).start()

    def _pipe(self, client: socket.socket, plan: tuple[str, int] | None) -> None:
        try:
            server = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
        except OSError:
            client.close()
            return
        sent = 0
        holed = False
        socks = [client, server]
        try:
            while True:
                readable, _, _ = select.select(socks, [], [], 0.5)
                if self.stopped:
                    return
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    if holed:
                        continue
                    if s is client:
                        sent += len(data)
                        if plan and sent >= plan[1]:
                            if plan[0] == "cut":
                                return
                            holed = True
                            with self.lock:
                                self.held += [client, server]
                            continue
                        server.sendall(data)
                    else:
                        client.sendall(data)
        except OSError:
            return
        finally:
            if not holed:
                for s in socks:
                    with contextlib.suppress(OSError):
                        s.close()

    def close(self) -> None:
        self.stopped = True
        self.listener.close()
        self.disarm()


class HealthStore(http.server.ThreadingHTTPServer):
    """The store's web side. It answers from the files the live path serves, as a PHP store would: the
    health route reports the live release's version.json; a release holding BROKEN makes every page a 500
    with PHP's fatal error. `sick` makes the store answer 503 whatever is deployed; `trickle` sends the
    health body of that release one byte at a time."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.live: Path | None = None
        self.sick = False
        self.trickle: str | None = None
        self.slow: float = 0.0
        # side by side, each store answers under /s/<store>/ from its own live path; `sick_stores` are 503
        self.lives: dict[str, Path] = {}
        self.sick_stores: set[str] = set()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                live, sick = outer.live, outer.sick
                if self.path.startswith("/s/"):
                    store = self.path.split("/")[2]
                    live, sick = outer.lives.get(store), store in outer.sick_stores
                status, body, trickled = 200, b"<html>shop</html>", False
                try:
                    if sick:
                        status, body = 503, b"Service Unavailable"
                    elif live is None or (live / "BROKEN").exists():
                        status, body = 500, b"<b>Fatal error</b>: Uncaught Error: boom"
                    elif "health" in self.path:
                        body = (live / "version.json").read_bytes()
                        report = json.loads(body)
                        trickled = outer.trickle == f"{report['version']}-{report['build']}"
                        time.sleep(outer.slow)
                except (OSError, ValueError):
                    status, body = 404, b"no plugin"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    if trickled:
                        for i in range(len(body)):
                            self.wfile.write(body[i : i + 1])
                            self.wfile.flush()
                            time.sleep(0.25)
                    else:
                        self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class Reader:
    """Reads the plugin's main file through every watched live path, in a loop, for the whole campaign:
    a miss or a content that no release ever had is a reader seeing a missing or torn plugin."""

    def __init__(self) -> None:
        self.paths: list[Path] = []
        self.valid: set[bytes] = set()
        self.reads = 0
        self.misses: list[str] = []
        self.label = ""
        self.torn: list[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()  # a path is unwatched (and its shop deleted) between two reads only
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            for live in list(self.paths):
                with self.lock:
                    if live not in self.paths:
                        continue
                    try:
                        data = (live / MAIN).read_bytes()
                    except OSError as exc:
                        self.misses.append(f"{self.label}: {live}: {exc}")
                        continue
                self.reads += 1
                if data not in self.valid:
                    self.torn.append(f"{self.label}: {live}: {len(data)} bytes")
            time.sleep(0.0005)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


# --- releases ---------------------------------------------------------------------------------------


def make_release(out: Path, n: int, broken: bool = False, files: int = 24, platform: str = "") -> Artifact:
    """Release `n` of the plugin; with `platform`, of that platform's plugin (its own release ids and
    bytes, and the deploy facts deploy_plugin needs)."""
    version = f"1.{n}.0"
    build = hashlib.sha256(f"release-{n}-{broken}{platform and '-' + platform}".encode()).hexdigest()[:12]
    tree: dict[str, bytes] = {
        MAIN: f"<?php\n/* Plugin Name: Acme Pay {platform} {version} */\n".encode()
        + f"defined('ABSPATH') || exit;\n// {build}\n".encode()
        + b"// padding\n" * 200,
        "version.json": json.dumps({"version": version, "build": build}).encode(),
    }
    for i in range(files):
        tree[f"includes/part{i % 4}/file{i}.php"] = f"<?php // release {n} file {i}\n".encode() + os.urandom(2000)
    if broken:
        tree["BROKEN"] = b"this release makes the store fatal\n"
    rendered = RenderedTree("acme", platform or "woocommerce", version, build, tree)
    facts = DeployFacts(health_route="health") if platform else None
    return package(rendered, "acme-pay", "acme-pay.zip", out / (platform or "") / rendered.release_id, deploy=facts)


# --- one deployer, in a process of its own ----------------------------------------------------------


@dataclass
class Plan:
    """What one deployer process does and which fault it carries."""

    live: str
    artifact: str
    holder: str
    port: int
    gate: dict[str, Any]
    kill_at: int = 0  # SIGKILL itself at this SFTP request (1-based)
    kill_sshd_at: int = 0  # kill the sshd (listener and sessions) at this SFTP request
    sshd_pid: int = 0
    skew: float = 0.0  # this process's clock runs this many seconds off
    break_delay: float = 0.0  # pause between judging a lock stale and breaking it (widens the race)
    start_delay: float = 0.0
    bad_release: str = ""  # set: a KPI-triggered rollback of this release instead of a deploy


def _install_hooks(plan: Any, record: dict[str, Any]) -> tuple[list[int], list[str]]:
    """The fault hooks of a deployer process (`plan`: a Plan or a FleetPlan): its clock skew, SIGKILL or an
    sshd killed at the Nth SFTP request (counted over all its threads), a widened break race; and the
    watches that record a history entry or a switch made without holding the lock. Returns the request
    counter and the tokens of the leases taken."""
    if plan.skew:
        real = time.time
        time.time = lambda: real() + plan.skew  # the whole process's wall clock is off
    requests = [0]
    counting = threading.Lock()  # deploys side by side count on one counter
    original_request = paramiko.SFTPClient._async_request

    def tick(streams: bool = False) -> None:
        with counting:
            requests[0] += 1
            now = requests[0]
        if plan.kill_at and now == plan.kill_at:
            if streams:  # a remote command fed a tar stream: the kill lands mid-stream or mid-unpack
                delay = random.Random(now).uniform(0, 0.03)
                threading.Timer(delay, os.kill, (os.getpid(), signal.SIGKILL)).start()
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        if plan.kill_sshd_at and now == plan.kill_sshd_at:
            kill_tree(plan.sshd_pid)

    def counted(self: paramiko.SFTPClient, *args: Any, **kwargs: Any) -> Any:
        tick()
        return original_request(self, *args, **kwargs)

    paramiko.SFTPClient._async_request = counted
    original_exec = SftpFS._exec

    def counted_exec(self: SftpFS, command: str, allow_fail: bool = False, stdin: bytes | None = None) -> Any:
        tick(streams=stdin is not None)  # a remote command (the upload, a sha256 check) counts as a request
        return original_exec(self, command, allow_fail, stdin)

    SftpFS._exec = counted_exec
    tokens: list[str] = []
    original_acquire = deploy_module.acquire_lease

    def acquire(*args: Any, **kwargs: Any) -> deploy_module.Lease:
        lease = original_acquire(*args, **kwargs)
        tokens.append(lease.token)
        record["acquired"] = time.monotonic()
        return lease

    deploy_module.acquire_lease = acquire
    original_release = deploy_module.Lease.release

    def release(self: deploy_module.Lease) -> None:
        record.setdefault("released", time.monotonic())
        record.setdefault("released_at", {})[self.releases] = time.monotonic()  # per store, for side by side
        original_release(self)

    deploy_module.Lease.release = release
    original_append = deploy_module._append_history

    def append(fs: Any, releases: str, token: str, *args: Any, **entry: Any) -> Any:
        done = original_append(fs, releases, token, *args, **entry)
        with contextlib.suppress(ConnectionError, EOFError):
            if not fs.exists(posixpath.join(releases, ".lock", f"owner-{token}.json")):
                record["violations"].append("wrote the history without holding the lock")
        return done

    deploy_module._append_history = append
    original_switch = deploy_module._switch

    def switch(fs: Any, live: str, folder: str, token: str) -> None:
        original_switch(fs, live, folder, token)
        lock = posixpath.join(releases_dir_for(live), ".lock", f"owner-{token}.json")
        with contextlib.suppress(ConnectionError, EOFError):
            if not fs.exists(lock):
                record["violations"].append(f"switched {live} to {folder} without holding the lock")

    deploy_module._switch = switch
    if plan.break_delay:
        original_why = deploy_module._why_breakable

        def why(*args: Any, **kwargs: Any) -> str:
            verdict = original_why(*args, **kwargs)
            time.sleep(plan.break_delay)
            return verdict

        deploy_module._why_breakable = why
    return requests, tokens


def _deployer(plan: Plan, endpoint: SshEndpoint, out: str) -> None:
    """Runs in a forked process: one deploy as the pipeline makes it, with the plan's fault hooks."""
    record: dict[str, Any] = {"violations": []}
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)  # the faults make it complain, on purpose
    try:
        if plan.start_delay:
            time.sleep(plan.start_delay)
        requests, tokens = _install_hooks(plan, record)
        http = http_health(GateSettings(**plan.gate))

        from psp_assets.core.package import load_artifact

        artifact = load_artifact(Path(plan.artifact))
        spares: list[SftpFS] = []

        def reconnect() -> SftpFS:
            spares.append(SftpFS(endpoint, target="faults"))
            return spares[-1]

        with SftpFS(endpoint, target="faults") as fs:
            check = combine(manifest_health(lambda: spares[-1] if spares else fs), http)
            try:
                if plan.bad_release:
                    result = restore_previous_release(
                        fs, plan.live, "faults", plan.bad_release, EVIDENCE, check, plan.holder
                    )
                else:
                    result = deploy(
                        artifact, fs, plan.live, "faults", check, keep=KEEP, holder=plan.holder, reconnect=reconnect
                    )
                record["result"] = result.as_dict()
            except deploy_module.DeployError as exc:
                record["raised"] = str(exc)
        record["token"] = tokens[-1] if tokens else ""
        record["requests"] = requests[0]
    except Exception as exc:  # a fault before or around the deploy: recorded, judged by the parent
        record["raised"] = f"{type(exc).__name__}: {exc}"
        record["trace"] = traceback.format_exc()[-1500:]
    Path(out).write_text(json.dumps(record))
    os._exit(0)


# --- the campaign -----------------------------------------------------------------------------------


@dataclass
class Tally:
    injected: int = 0
    held: int = 0
    retry_ok: int = 0
    interrupted: int = 0  # rollback campaign: the attempt carrying the fault did not finish clean
    unfinished: int = 0  # rollback campaign: the fault left the store on the previous release, unmarked
    broken: list[str] = field(default_factory=list)


class Campaign:
    def __init__(
        self, seed: int, workdir: Path, user: pwd.struct_passwd, log: Any = None, classes: tuple[str, ...] = CLASSES
    ) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.work = workdir
        self.user = user
        self.log = log or (lambda _m: None)
        self.mount = workdir / "stores"
        self.mount.mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0755", "tmpfs", str(self.mount)], check=True)
        os.chown(self.mount, user.pw_uid, user.pw_gid)
        self.sshd = start_sshd(user)
        self.proxy = Proxy(self.sshd.port)
        self.web = HealthStore(self.mount)
        self.reader = Reader()
        self.releases = [make_release(workdir / "artifacts", n) for n in range(8)]
        self.broken = [make_release(workdir / "artifacts", 100 + n, broken=True) for n in range(3)]
        for art in self.releases + self.broken:
            with zipfile.ZipFile(art.path) as zf:
                self.reader.valid.add(zf.read(f"acme-pay/{MAIN}"))
        self.hand = {
            MAIN: b"<?php\n/* Plugin Name: Acme Pay (installed by hand) */\n",
            "version.json": b'{"version": "0.9.0", "build": "by-hand"}',
        }
        self.reader.valid.add(self.hand[MAIN])
        self.tallies: dict[str, Tally] = {c: Tally() for c in classes}
        self.shops = 0
        self.fault_no = 0
        self.findings: list[str] = []
        self.unknown_results = 0
        self.gate = {
            "store_url": self.web.url,
            "health_url": self.web.url + "health",
            "count": 2,
            "interval_seconds": 0.05,
            "timeout_seconds": 1.0,
            "deadline_seconds": 3.0,
        }
        self.next_release = 0
        self.records = 0

    # --- plumbing

    def endpoint(self, port: int) -> SshEndpoint:
        # short timeouts make a black hole cost seconds, not minutes; 5 s still rides out a loaded machine
        return SshEndpoint("127.0.0.1", port, self.user.pw_name, self.sshd.known_host(), self.sshd.client_private, 5, 5)

    def new_shop(self) -> Path:
        self.shops += 1
        live = self.mount / f"shop{self.shops}" / "plugins" / "acme-pay"
        live.parent.mkdir(parents=True)
        chown_tree(self.mount / f"shop{self.shops}", self.user)
        return live

    def pick(self, exclude: str | None) -> Artifact:
        for _ in range(len(self.releases)):
            self.next_release = (self.next_release + 1) % len(self.releases)
            art = self.releases[self.next_release]
            if art.release_id != exclude:
                return art
        return self.releases[0]

    def run(self, plans: list[Plan], proxy: tuple[str, int] | None = None, timeout: float = 60) -> list[dict]:
        return self.spawn([(_deployer, (plan, self.endpoint(plan.port))) for plan in plans], proxy, timeout)

    def spawn(self, jobs: list[tuple[Any, tuple]], proxy: tuple[str, int] | None, timeout: float) -> list[dict]:
        """Each job `(target, args)` in a forked deployer process that writes its record to the file named
        by its last argument; all run at once. A process still alive after `timeout` is killed, and a
        process that left no record counts as killed. `proxy` arms the proxy for the next connection."""
        ctx = multiprocessing.get_context("fork")
        if proxy:
            self.proxy.arm(*proxy)
        started = []
        for target, args in jobs:
            self.records += 1
            out = str(self.work / f"record-{self.records}.json")
            proc = ctx.Process(target=target, args=(*args, out))
            proc.start()
            started.append((proc, out))
        records = []
        for proc, out in started:
            proc.join(timeout)
            if proc.is_alive():
                proc.kill()
                proc.join()
            try:
                records.append(json.loads(Path(out).read_text()))
            except (OSError, ValueError):
                records.append({"killed": True})
        self.proxy.disarm()
        return records

    def plan(self, live: Path, art: Artifact, holder: str, **kw: Any) -> Plan:
        port = kw.pop("port", self.sshd.port)
        return Plan(str(live), str(art.path), holder, port, self.gate, **kw)

    def ensure_sshd(self) -> None:
        if self.sshd.process is None or self.sshd.process.poll() is not None:
            with contextlib.suppress(Exception):
                stop_sshd(self.sshd)
            self.sshd.start()
            wait_for_port(self.sshd.port)
            self.proxy.upstream = self.sshd.port

    # --- the store as it is

    def served(self, live: Path) -> str | None:
        if live.is_symlink():
            return release_of(os.path.basename(os.readlink(live)))
        return "hand-installed" if live.is_dir() else None

    def folders(self, live: Path) -> dict[str, dict[str, str]]:
        releases = Path(releases_dir_for(str(live)))
        found = {}
        if releases.is_dir():
            for entry in releases.iterdir():
                if entry.is_dir() and not entry.name.startswith("."):
                    found[entry.name] = {
                        str(f.relative_to(entry)): hashlib.sha256(f.read_bytes()).hexdigest()
                        for f in sorted(entry.rglob("*"))
                        if f.is_file()
                    }
        return found

    def incomplete(self, live: Path) -> list[str]:
        """What keeps the release the live link points at from being complete and equal to its manifest."""
        folder = Path(releases_dir_for(str(live))) / os.path.basename(os.readlink(live))
        mpath = Path(manifest_path(releases_dir_for(str(live)), folder.name))
        if not folder.is_dir() or not mpath.is_file():
            return [f"live points at {folder.name}, which is not a complete release"]
        manifest = json.loads(mpath.read_text())
        bad = [
            r
            for r, d in manifest.items()
            if not (folder / r).is_file() or hashlib.sha256((folder / r).read_bytes()).hexdigest() != d
        ]
        return [f"live release {folder.name} differs from its manifest: {bad[:3]}"] if bad else []

    def check(self, cls: str, live: Path, before: dict[str, Any], records: list[dict], gate_failed: bool) -> list[str]:
        """Every invariant right after a fault. Returns what broke."""
        broken: list[str] = []
        served = self.served(live)
        if live.is_symlink():
            broken += self.incomplete(live)
        elif live.is_dir():
            if before.get("served") != "hand-installed":
                broken.append("the live path is a plain folder")
        elif before.get("served") is not None:
            broken.append("the live path is missing")
        # with deployers side by side, only the last one to finish can still see what the store serves
        last = max((r for r in records if r.get("result")), key=lambda r: r.get("released", 0), default=None)
        for rec in records:
            broken += rec.get("violations", [])
            result = rec.get("result")
            if result is not None and rec is last:
                recorded = result["deployed_version"]
                unknown = recorded is None and any(s["step"] == "read back" for s in result["steps"])
                if unknown:
                    self.unknown_results += 1
                elif recorded != (served if served != "hand-installed" else result["previous_version"]):
                    broken.append(f"recorded {recorded}, the store serves {served}")
                if result["rolled_back"] and not same(served, before["served"]):
                    broken.append(f"a failed gate ended on {served}, not on {before['served']} (live before)")
        if gate_failed and not same(served, before["served"]):
            broken.append(f"the gate failed but the store serves {served}, not {before['served']}")
        after = self.folders(live)
        for name, files in before["folders"].items():
            if name in after and after[name] != files:
                broken.append(f"release folder {name} was modified")
        if before.get("folder") and before["folder"] not in after and live.is_symlink():
            broken.append(f"the folder live before ({before['folder']}) was deleted")
        history = read_history(_Local(live), str(live)) if live.parent.exists() else []
        for e in history:
            if e.event == "marked bad" and e.release not in {b.release_id for b in self.broken}:
                broken.append(f"{e.release} was marked bad without being broken ({e.reason[:80]})")
        return broken

    def leftovers(self, live: Path) -> list[str]:
        releases = Path(releases_dir_for(str(live)))
        names = os.listdir(releases)
        junk = [n for n in names if n.startswith(".")]
        folders = [n for n in names if (releases / n).is_dir() and not n.startswith(".")]
        if len(folders) > KEEP:
            junk.append(f"{len(folders)} release folders, keep is {KEEP}")
        junk += [n for n in names if n.endswith(".manifest.json") and n[: -len(".manifest.json")] not in folders]
        junk += [n for n in os.listdir(live.parent) if n.startswith(".") and n != ".psp-releases"]
        return junk

    def snapshot(self, live: Path) -> dict[str, Any]:
        folder = os.path.basename(os.readlink(live)) if live.is_symlink() else None
        return {"served": self.served(live), "folder": folder, "folders": self.folders(live)}

    def deploy_ok(self, live: Path, art: Artifact, holder: str) -> dict:
        [rec] = self.run([self.plan(live, art, holder)])
        return rec

    def ready_shop(self, releases: int = 1) -> tuple[Path, Artifact]:
        live = self.new_shop()
        self.web.live = live
        art = self.releases[0]
        for _ in range(releases):
            art = self.pick(None)
            rec = self.deploy_ok(live, art, f"setup-{self.shops}")
            if rec.get("result", {}).get("deployed_version") != art.release_id:  # no fault here: once more
                rec = self.deploy_ok(live, art, f"setup-{self.shops}")
            if rec.get("result", {}).get("deployed_version") != art.release_id:
                raise RuntimeError(f"setting up {live} failed: {rec}")
        self.web.live = live
        self.reader.paths.append(live)
        return live, art

    # --- the faults

    def fault(self, cls: str) -> None:
        self.fault_no += 1
        holder = f"run-{self.seed}-{self.fault_no}"
        tally = self.tallies[cls]
        tally.injected += 1
        self.reader.label = f"fault {self.fault_no} {cls}"
        gate_failed = False
        retry_art: Artifact | None = None
        live, current = (None, None)
        if cls == "kill_adoption":
            live = self.new_shop()
            live.mkdir()
            for rel, data in self.hand.items():
                (live / rel).write_bytes(data)
            chown_tree(live, self.user)
            self.reader.paths.append(live)
            self.web.live = live
        else:
            live, current = self.ready_shop(self.rng.randint(1, 2))
        before = self.snapshot(live)
        art = self.pick(current.release_id if current else None)
        rng = self.rng
        records: list[dict] = []
        if cls == "kill_sftp":
            records = self.run(
                [self.plan(live, art, holder, kill_at=rng.randint(1, 72))]
            )  # a deploy: about 70 requests
        elif cls == "kill_adoption":
            records = self.run([self.plan(live, art, holder, kill_at=rng.randint(1, 60))])
        elif cls == "sshd_killed":
            pid = self.sshd.process.pid
            records = self.run([self.plan(live, art, holder, kill_sshd_at=rng.randint(3, 70), sshd_pid=pid)])
            self.ensure_sshd()
        elif cls in ("conn_cut", "conn_blackhole"):
            mode = "cut" if cls == "conn_cut" else "blackhole"
            records = self.run(
                [self.plan(live, art, holder, port=self.proxy.port)], proxy=(mode, rng.randint(3000, 90000))
            )
        elif cls == "disk_full":
            stat = os.statvfs(self.mount)
            free = stat.f_bavail * stat.f_frsize
            filler = self.mount / "filler"
            left = rng.randint(0, 120_000)
            with open(filler, "wb") as fh, contextlib.suppress(OSError):
                fh.write(b"\0" * max(0, free - left))
            try:
                records = self.run([self.plan(live, art, holder)])
            finally:
                filler.unlink()
        elif cls == "clock_ahead":
            # a deploy holds the lock (its health route answers slowly); one whose clock runs 1000 s ahead
            # must not see that fresh lock as stale
            self.web.slow = 1.0
            second = self.pick(art.release_id)
            try:
                records = self.run(
                    [
                        self.plan(live, art, f"{holder}-holder"),
                        self.plan(live, second, holder, skew=1000.0, start_delay=0.6),
                    ]
                )
            finally:
                self.web.slow = 0.0
            if "another deploy holds" not in records[1].get("raised", ""):
                self.findings.append(
                    f"fault {self.fault_no}: a deployer 1000 s ahead did not respect a fresh lock: {records[1]}"
                )
            before = self.snapshot(live) | {"served": self.served(live)}
            retry_art = second
        elif cls == "clock_behind":
            self.abandon_lock(live, "run-long-gone")
            records = self.run([self.plan(live, art, holder, skew=-1000.0)])
        elif cls == "break_race":
            self.abandon_lock(live, "run-long-gone")
            others = [self.pick(art.release_id) for _ in range(2)]
            records = self.run(
                [
                    self.plan(live, a, f"{holder}-{i}", break_delay=rng.uniform(0, 0.3))
                    for i, a in enumerate([art, *others])
                ]
            )
        elif cls == "hot_patch":
            folder = Path(releases_dir_for(str(live))) / before["folder"]
            patched = folder / "includes/part0/file0.php"
            patched.write_bytes(patched.read_bytes() + b"\n// merchant hot fix\n")
            before = self.snapshot(live)
            art = current  # the same release again: its live folder fails the manifest check
            records = self.run([self.plan(live, art, holder)])
        elif cls == "trickle_health":
            self.web.trickle = art.release_id
            try:
                records = self.run([self.plan(live, art, holder)])
            finally:
                self.web.trickle = None
            gate_failed = True
        elif cls == "release_5xx":
            bad = rng.choice(self.broken)
            records = self.run([self.plan(live, bad, holder)])
            gate_failed = True
            retry_art = art
            steps = [(st["step"], st["ok"]) for st in records[0].get("result", {}).get("steps", [])]
            marked = bad_mark(read_history(_Local(live), str(live)), bad.release_id) is not None
            if ("re-verify", True) in steps and not marked:
                self.findings.append(
                    f"fault {self.fault_no}: {bad.release_id} 500 then healthy after rollback, yet not marked"
                )
            if marked:
                [again] = self.run([self.plan(live, bad, holder + "-again")])
                if "marked bad" not in again.get("raised", ""):
                    self.findings.append(f"fault {self.fault_no}: a release marked bad was deployed again: {again}")
        elif cls == "store_sick":
            self.web.sick = True
            try:
                records = self.run([self.plan(live, art, holder)])
            finally:
                self.web.sick = False
            gate_failed = True
        self.ensure_sshd()
        broken = self.check(cls, live, before, records, gate_failed)
        # the run's retry, at once, the fault gone
        retry_art = retry_art or art
        retry = self.run([self.plan(live, retry_art, holder)])[0]
        result = retry.get("result")
        if (
            result
            and result["deployed_version"] == retry_art.release_id
            and not result["error"]
            and not result["rolled_back"]
        ):
            tally.retry_ok += 1
            junk = self.leftovers(live)
            if junk:
                broken.append(f"leftovers after the next successful deploy: {junk[:5]}")
        else:
            broken.append(f"the retry did not succeed: {retry.get('raised') or (result or {}).get('error') or retry}")
        broken += self.check(cls, live, self.snapshot(live) | {"served": retry_art.release_id}, [retry], False)
        if broken:
            tally.broken.append(f"fault {self.fault_no}: " + "; ".join(broken))
            self.log(f"fault {self.fault_no} {cls}: BROKEN {broken}")
        else:
            tally.held += 1
        with self.reader.lock:
            self.reader.paths.remove(live)
        shutil.rmtree(live.parent.parent, ignore_errors=True)  # the tmpfs is small on purpose

    # --- the KPI-triggered rollback (restore_previous_release), under the same faults

    def rollback_fault(self, cls: str) -> None:
        """A store on its second release (the one the payment analysis failed) is rolled back to the first
        by a forked process carrying the fault; then the invariants, the run's retry, the next deploy."""
        self.fault_no += 1
        holder = f"gate-{self.seed}-{self.fault_no}"
        tally = self.tallies[cls]
        tally.injected += 1
        self.reader.label = f"rollback fault {self.fault_no} {cls}"
        live = self.new_shop()
        self.web.live = live
        prev = self.pick(None)
        bad = self.pick(prev.release_id)
        for art in (prev, bad):  # set up in this process (the faults are the rollback's, not these deploys')
            done = deploy(art, LocalFS(Path("/")), str(live), "faults", lambda *_a: HealthResult(True, "setup"))
            if done.deployed_version != art.release_id or done.error:
                raise RuntimeError(f"setting up {live} failed: {done}")
        chown_tree(live.parent.parent, self.user)
        self.reader.paths.append(live)
        before = self.snapshot(live)
        rng = self.rng
        back = self.rollback_plan(live, bad, holder)
        if cls == "kill_sftp":  # a whole rollback makes about 78 SFTP requests
            records = self.run([replace(back, kill_at=rng.randint(1, 80))])
        elif cls == "sshd_killed":
            records = self.run([replace(back, kill_sshd_at=rng.randint(1, 78), sshd_pid=self.sshd.process.pid)])
        elif cls in ("conn_cut", "conn_blackhole"):
            mode = "cut" if cls == "conn_cut" else "blackhole"
            records = self.run([replace(back, port=self.proxy.port)], proxy=(mode, rng.randint(2000, 14000)))
        elif cls == "disk_full":
            stat = os.statvfs(self.mount)
            filler = self.mount / "filler"
            with open(filler, "wb") as fh, contextlib.suppress(OSError):
                fh.write(b"\0" * max(0, stat.f_bavail * stat.f_frsize - rng.randint(0, 12_000)))
            try:
                records = self.run([back])
            finally:
                filler.unlink()
        else:  # lock_held: another run deploys to the store (its health route answers slowly) as the gate acts
            self.web.slow = 0.5  # under the gate's 1 s timeout: the deploy holds the lock for seconds, then passes
            try:
                records = self.run([self.plan(live, bad, f"{holder}-deploy"), replace(back, start_delay=0.6)])
            finally:
                self.web.slow = 0.0
            if "another deploy holds" not in str(records[1].get("result", {}).get("error")):
                self.findings.append(f"fault {self.fault_no}: the rollback did not respect a held lock: {records[1]}")
            records = records[1:]
        self.ensure_sshd()
        first = records[0].get("result") or {}
        if not first or first.get("error") or not first.get("marked_bad"):
            tally.interrupted += 1
        history = read_history(_Local(live), str(live))
        if self.served(live) == prev.release_id and bad_mark(history, bad.release_id) is None:
            tally.unfinished += 1  # the retry must finish this rollback, not leave it alone
        broken = self.check_rollback(live, before, prev.release_id, bad.release_id, records)
        # the run's retry, at once, the fault gone: same holder, so it takes over the lock a killed attempt left
        [retry] = self.run([back])
        result = retry.get("result") or {}
        history = read_history(_Local(live), str(live))
        if (
            result
            and not result["error"]
            and result["deployed_version"] == prev.release_id
            and self.served(live) == prev.release_id
            and bad_mark(history, bad.release_id) is not None
        ):
            tally.retry_ok += 1
        else:
            broken.append(f"the retry did not end on {prev.release_id}, marked: {retry.get('raised') or result}")
        broken += self.check_rollback(live, self.snapshot(live), prev.release_id, bad.release_id, [retry])
        # the next successful deploy leaves nothing behind
        after = self.pick(bad.release_id)
        if after.release_id == prev.release_id:
            after = self.pick(bad.release_id)
        deployed = self.deploy_ok(live, after, f"next-{self.fault_no}").get("result") or {}
        if deployed.get("deployed_version") != after.release_id or deployed.get("error"):
            broken.append(f"the next deploy failed: {deployed}")
        else:
            junk = self.leftovers(live)
            if junk:
                broken.append(f"leftovers after the next successful deploy: {junk[:5]}")
        if broken:
            tally.broken.append(f"fault {self.fault_no}: " + "; ".join(broken))
            self.log(f"fault {self.fault_no} {cls}: BROKEN {broken}")
        else:
            tally.held += 1
        with self.reader.lock:
            self.reader.paths.remove(live)
        shutil.rmtree(live.parent.parent, ignore_errors=True)

    def rollback_plan(self, live: Path, bad: Artifact, holder: str) -> Plan:
        return replace(self.plan(live, bad, holder), bad_release=bad.release_id)

    def check_rollback(self, live: Path, before: dict[str, Any], prev: str, bad: str, records: list[dict]) -> list[str]:
        """After a rollback (or its fault): the store serves one complete release, the bad one or the one
        before it; the result equals what it serves; the bad mark only with the store back on `prev`."""
        broken: list[str] = []
        served = self.served(live)
        if not live.is_symlink():
            return ["the live path is not a link to a release"]
        broken += self.incomplete(live)
        if served not in (prev, bad):
            broken.append(f"the store serves {served}, neither {bad} (bad) nor {prev} (before it)")
        for rec in records:
            broken += rec.get("violations", [])
            result = rec.get("result")
            if result is None:
                continue
            recorded = result["deployed_version"]
            if recorded is None and any(s["step"] == "read back" for s in result["steps"]):
                self.unknown_results += 1
            elif recorded != served:
                broken.append(f"recorded {recorded}, the store serves {served}")
            if result.get("marked_bad") and (result.get("health") != "healthy" or served != prev):
                broken.append(f"marked {bad} bad with health {result.get('health')}, serving {served}")
        history = read_history(_Local(live), str(live))
        if bad_mark(history, bad) is not None and served != prev:
            broken.append(f"{bad} is marked bad but the store serves {served}")
        if bad_mark(history, prev) is not None:
            broken.append(f"{prev} (the release rolled back to) was marked bad")
        after = self.folders(live)
        for name, files in before["folders"].items():
            if name not in after:
                broken.append(f"release folder {name} was deleted by the rollback")
            elif after[name] != files:
                broken.append(f"release folder {name} was modified")
        return broken

    def hold_lock(self, live: Path, holder: str, age: float, **owner: Any) -> Path:
        """A lock on the store held by another run, its lease renewed `age` seconds ago (store clock);
        `owner` adds fields to its owner record."""
        lock = Path(releases_dir_for(str(live))) / ".lock"
        lock.mkdir()
        token = os.urandom(12).hex()
        record = {"token": token, "holder": holder, "what": "1.99.0-x", "lease_seconds": LEASE_SECONDS, **owner}
        (lock / f"owner-{token}.json").write_text(json.dumps(record))
        (lock / "lease").write_text(token)
        if age:
            old = time.time() - age
            for p in (lock / f"owner-{token}.json", lock / "lease", lock):
                os.utime(p, (old, old))
        chown_tree(lock, self.user)
        return lock

    def abandon_lock(self, live: Path, holder: str) -> None:
        """A lock left by a deployer that died long ago: its lease last renewed an hour ago on the store's
        clock (its own clock claimed the future)."""
        self.hold_lock(live, holder, 3600, deployer_time=time.time() + 5000)

    def close(self) -> None:
        self.reader.close()
        self.web.shutdown()
        self.proxy.close()
        stop_sshd(self.sshd)
        shutil.rmtree(self.sshd.workdir, ignore_errors=True)
        subprocess.run(["umount", "-l", str(self.mount)], check=False)


# --- deploys side by side ----------------------------------------------------------------------------

# the parallel campaign's fleet: three plugins of one client, each with a staging and a production store,
# on two store hosts (each an sshd of its own behind a proxy of its own, its stores on a tmpfs of its own).
# Host A holds two plugins' stores (two plugins to one host, one plugin's two stores on one host), host B
# the third plugin's; magento2 crosses from A to B. core/deploy/parallel.py runs woocommerce and
# prestashop side by side, then magento2 (it needs both hosts): what deployed_store does with such a client.
FLEET = {"woocommerce": ("A", "A"), "magento2": ("A", "B"), "prestashop": ("B", "B")}
FLEET_TARGETS = ("staging", "production")
PARALLEL_CLASSES = (
    "kill_sftp",
    "sshd_killed",
    "conn_cut",
    "conn_blackhole",
    "disk_full",
    "clock_ahead",
    "clock_behind",
    "break_race",
    "kill_adoption",
    "trickle_health",
    "release_5xx",
    "store_sick",
)
PARALLEL_WEIGHTS = {
    "kill_sftp": 12,
    "sshd_killed": 5,
    "conn_cut": 6,
    "conn_blackhole": 3,
    "disk_full": 5,
    "clock_ahead": 3,
    "clock_behind": 3,
    "break_race": 4,
    "kill_adoption": 5,
    "trickle_health": 2,
    "release_5xx": 4,
    "store_sick": 4,
}
INVARIANTS = (
    "live path complete",
    "recorded = served",
    "failed gate ends on before",
    "folders untouched",
    "marked bad only if broken",
    "lock held by one",
    "production after healthy staging",
    "other plugins' stores untouched",
    "unfaulted plugins deployed",
    "retry deploys every store",
    "no leftovers",
    "history consistent",
)


@dataclass
class FleetPlan:
    """One deployer process deploying the fleet's plugins side by side (core/deploy/parallel.py, real
    deploy_plugin over a real SftpPool), with the process-wide fault it carries."""

    config: Any  # ClientConfig
    artifacts: dict[str, str]  # platform -> artifact path
    holder: str
    keys: dict[str, str]  # env var -> private key
    workers: int = 4
    # the scheduler's host of each plugin is the plugin itself: two plugins deploy to host A (and to B)
    # at the same time, each on a pooled connection of its own (the pool's side-by-side path)
    per_plugin: bool = False
    kill_at: int = 0
    kill_sshd_at: int = 0
    sshd_pid: int = 0
    skew: float = 0.0
    break_delay: float = 0.0
    start_delay: float = 0.0


def _fleet_deployer(plan: FleetPlan, out: str) -> None:
    """Runs in a forked process: the client's plugins deployed side by side, as deployed_store does."""
    record: dict[str, Any] = {"violations": []}
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    try:
        if plan.start_delay:
            time.sleep(plan.start_delay)
        requests, _tokens = _install_hooks(plan, record)
        scratch = Path(out).parent
        paths = Paths(scratch, scratch, scratch, scratch)
        with SftpPool() as pool:
            jobs = [
                Job(
                    platform,
                    functools.partial(
                        deploy_plugin,
                        paths,
                        plan.config,
                        platform,
                        load_artifact(Path(path)),
                        None,  # PHP: the gate lints on local stores only
                        plan.keys.get,
                        connections=pool,
                        holder=plan.holder,
                    ),
                    frozenset({platform}) if plan.per_plugin else store_hosts(plan.config, platform),
                )
                for platform, path in plan.artifacts.items()
            ]
            done = side_by_side(jobs, plan.workers)
            record["connects"] = pool.connects
        record["results"] = {p: [d.as_dict() for d in deployments] for p, deployments in done.items()}
        record["requests"] = requests[0]
    except Exception as exc:
        record["raised"] = f"{type(exc).__name__}: {exc}"
        record["trace"] = traceback.format_exc()[-1500:]
    Path(out).write_text(json.dumps(record))
    os._exit(0)


def _invariant_of(problem: str) -> str:
    """Which invariant a problem found by Campaign.check breaks."""
    for words, name in (
        (("without holding the lock",), "lock held by one"),
        (("recorded",), "recorded = served"),
        (("gate failed", "failed gate"), "failed gate ends on before"),
        (("was modified", "was deleted"), "folders untouched"),
        (("marked bad",), "marked bad only if broken"),
    ):
        if any(w in problem for w in words):
            return name
    return "live path complete"


class FleetCampaign(Campaign):
    """The deploy campaign's faults injected while a client's plugins deploy side by side (FLEET: three
    plugins, six stores, two store hosts); every invariant checked on every store after every fault and
    after the run's retry, and two more: one plugin's fault never changes another plugin's store, and a
    plugin's production store is never touched unless its staging store passed the gate."""

    def __init__(self, seed: int, workdir: Path, user: pwd.struct_passwd, log: Any = None) -> None:
        super().__init__(seed, workdir, user, log, PARALLEL_CLASSES)
        self.mount_b = workdir / "stores-b"
        self.mount_b.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0755", "tmpfs", str(self.mount_b)], check=True)
        os.chown(self.mount_b, user.pw_uid, user.pw_gid)
        self.sshd_b = start_sshd(user)
        self.proxy_b = Proxy(self.sshd_b.port)
        out = workdir / "fleet"
        self.own = {p: [make_release(out, n, platform=p) for n in range(4)] for p in FLEET}
        self.own_broken = {p: [make_release(out, 100 + n, broken=True, platform=p) for n in range(2)] for p in FLEET}
        self.broken = self.broken + [a for p in FLEET for a in self.own_broken[p]]  # what may be marked bad
        for art in [a for p in FLEET for a in self.own[p] + self.own_broken[p]]:
            with zipfile.ZipFile(art.path) as zf:
                self.reader.valid.add(zf.read(f"acme-pay/{MAIN}"))
        self.invariants = {name: {"checked": 0, "broken": 0} for name in INVARIANTS}
        self.same_host_at_once = 0  # faults whose plugins deployed to one host at the same time

    # --- plumbing

    def host(self, name: str) -> tuple[Sshd, Proxy, Path]:
        return (self.sshd, self.proxy, self.mount) if name == "A" else (self.sshd_b, self.proxy_b, self.mount_b)

    def ensure_sshd(self) -> None:
        for sshd, proxy in ((self.sshd, self.proxy), (self.sshd_b, self.proxy_b)):
            if sshd.process is None or sshd.process.poll() is not None:
                with contextlib.suppress(Exception):
                    stop_sshd(sshd)
                sshd.start()
                wait_for_port(sshd.port)
                proxy.upstream = sshd.port

    def new_fleet(self) -> dict[tuple[str, str], Path]:
        stores = {}
        for platform, hosts in FLEET.items():
            for target, host in zip(FLEET_TARGETS, hosts, strict=True):
                key = f"f{self.fault_no}-{platform}-{target}"
                live = self.host(host)[2] / key / "plugins" / "acme-pay"
                live.parent.mkdir(parents=True)
                stores[(platform, target)] = live
                self.web.lives[key] = live
        return stores

    def fleet_config(self, stores: dict[tuple[str, str], Path]) -> Any:
        from psp_assets.core.config.model import parse_client
        from tests.conftest import client_dict

        platforms = {}
        for platform, hosts in FLEET.items():
            targets = []
            for target, host in zip(FLEET_TARGETS, hosts, strict=True):
                sshd, proxy, _ = self.host(host)
                key = stores[(platform, target)].parent.parent.name
                targets.append(
                    {
                        "name": target,
                        "transport": "sftp",
                        "host": "127.0.0.1",
                        "port": proxy.port,
                        "user": self.user.pw_name,
                        "private_key_env": f"PSP_FAULTS_KEY_{host}",
                        "known_host": sshd.known_host(),
                        "path": str(stores[(platform, target)]),
                        "keep_releases": KEEP,
                        "connect_timeout_seconds": 5,
                        "command_timeout_seconds": 5,
                        "health": {
                            "store_url": f"{self.web.url}s/{key}/",
                            "health_url": f"{self.web.url}s/{key}/health",
                            "count": 2,
                            "interval_seconds": 0.05,
                            "timeout_seconds": 1.0,
                            "deadline_seconds": 3.0,
                        },
                    }
                )
            platforms[platform] = {"slug": "acme-pay", "targets": targets}
        data = client_dict()
        data["platforms"] = platforms
        return parse_client(data, "acme.yaml")

    def fleet_plan(self, config: Any, arts: dict[str, Artifact], holder: str, **kw: Any) -> FleetPlan:
        keys = {"PSP_FAULTS_KEY_A": self.sshd.client_private, "PSP_FAULTS_KEY_B": self.sshd_b.client_private}
        return FleetPlan(config, {p: str(a.path) for p, a in arts.items()}, holder, keys, **kw)

    def run_fleet(self, plans: list[FleetPlan], proxy: tuple[str, int] | None = None) -> list[dict]:
        """Fleet deployers side by side; `proxy` arms host A's next connection."""
        return self.spawn([(_fleet_deployer, (plan,)) for plan in plans], proxy, 120)

    def touch_print(self, live: Path) -> dict[str, Any]:
        """Everything of a store a deploy could change: what it serves, its release folders and their files,
        the names in its releases folder, its history."""
        releases = Path(releases_dir_for(str(live)))
        history = releases / HISTORY_NAME
        return self.snapshot(live) | {
            "names": sorted(os.listdir(releases)) if releases.is_dir() else [],
            "history": history.read_bytes() if history.exists() else b"",
        }

    def tally_invariant(self, name: str, problems: list[str]) -> list[str]:
        self.invariants[name]["checked"] += 1
        self.invariants[name]["broken"] += bool(problems)
        return [f"[{name}] {p}" for p in problems]

    def close(self) -> None:
        super().close()
        self.proxy_b.close()
        stop_sshd(self.sshd_b)
        shutil.rmtree(self.sshd_b.workdir, ignore_errors=True)
        subprocess.run(["umount", "-l", str(self.mount_b)], check=False)

    # --- one fault

    def parallel_fault(self, cls: str) -> None:
        self.fault_no += 1
        holder = f"fleet-{self.seed}-{self.fault_no}"
        tally = self.tallies[cls]
        tally.injected += 1
        self.reader.label = f"parallel fault {self.fault_no} {cls}"
        rng = self.rng
        stores = self.new_fleet()
        keys = list(stores)
        hand = rng.choice(keys) if cls == "kill_adoption" else None
        current: dict[str, Artifact] = {}
        for platform in FLEET:  # set up in this process: the faults are the side-by-side deploys'
            current[platform] = rng.choice(self.own[platform])
            for target in FLEET_TARGETS:
                live = stores[(platform, target)]
                if (platform, target) == hand:
                    live.mkdir()
                    for rel, data in self.hand.items():
                        (live / rel).write_bytes(data)
                else:
                    earlier = [a for a in self.own[platform] if a is not current[platform]]
                    for art in [*rng.sample(earlier, rng.randint(0, 1)), current[platform]]:
                        done = deploy(art, LocalFS(Path("/")), str(live), "setup", lambda *_a: HealthResult(True, "ok"))
                        if done.deployed_version != art.release_id or done.error:
                            raise RuntimeError(f"setting up {live} failed: {done}")
                chown_tree(live.parent.parent, self.user)
        self.reader.paths.extend(stores.values())
        arts = {p: rng.choice([a for a in self.own[p] if a.release_id != current[p].release_id]) for p in FLEET}
        config = self.fleet_config(stores)
        before = {k: self.touch_print(live) for k, live in stores.items()}
        plan = self.fleet_plan(config, arts, holder, per_plugin=rng.random() < 0.5)
        self.same_host_at_once += plan.per_plugin
        required = set(FLEET)  # plugins the fault does not reach: they must deploy in full
        gate_failed: set[tuple[str, str]] = set()
        retry_arts = dict(arts)
        held_lock: Path | None = None
        on_a = {p for p, hosts in FLEET.items() if "A" in hosts}
        if cls in ("kill_sftp", "kill_adoption"):
            records = self.run_fleet([replace(plan, kill_at=rng.randint(1, 420))])  # six deploys: about 420
            required = set()
        elif cls == "sshd_killed":
            pid = self.sshd.process.pid
            records = self.run_fleet([replace(plan, kill_sshd_at=rng.randint(3, 400), sshd_pid=pid)])
            required -= on_a
        elif cls in ("conn_cut", "conn_blackhole"):
            mode = "cut" if cls == "conn_cut" else "blackhole"
            records = self.run_fleet([plan], proxy=(mode, rng.randint(3000, 250_000)))
            required -= on_a
        elif cls == "disk_full":
            stat = os.statvfs(self.mount)
            filler = self.mount / "filler"
            with open(filler, "wb") as fh, contextlib.suppress(OSError):
                fh.write(b"\0" * max(0, stat.f_bavail * stat.f_frsize - rng.randint(0, 120_000)))
            try:
                records = self.run_fleet([plan])
            finally:
                filler.unlink()
            required -= on_a
        elif cls in ("clock_ahead", "clock_behind"):
            platform, target = rng.choice(keys)
            age = 0.0 if cls == "clock_ahead" else 3600.0  # ahead: a fresh lock; behind: an abandoned one
            held_lock = self.hold_lock(stores[(platform, target)], "another-run", age)
            before = {k: self.touch_print(live) for k, live in stores.items()}
            records = self.run_fleet([replace(plan, skew=1000.0 if cls == "clock_ahead" else -1000.0)])
            if cls == "clock_ahead":
                required.discard(platform)
                result = self.result_of(records[0], platform, target) or {}
                if "another deploy holds" not in str(result.get("error")) or not held_lock.is_dir():
                    self.findings.append(
                        f"parallel fault {self.fault_no}: a deployer 1000 s ahead did not respect the fresh lock "
                        f"on {platform} {target}: {result or records[0]}"
                    )
                shutil.rmtree(held_lock)  # the other run ends
        elif cls == "break_race":
            for k in rng.sample(keys, rng.randint(1, 3)):
                self.hold_lock(stores[k], "run-long-gone", 3600.0)
            before = {k: self.touch_print(live) for k, live in stores.items()}
            records = self.run_fleet(
                [replace(plan, holder=f"{holder}-{i}", break_delay=rng.uniform(0, 0.3)) for i in range(2)]
            )
            holder = f"{holder}-0"
            required = set()  # the racer that lost a store stops that plugin there
        elif cls == "trickle_health":
            platform = rng.choice(list(FLEET))
            self.web.trickle = arts[platform].release_id
            try:
                records = self.run_fleet([plan])
            finally:
                self.web.trickle = None
            required.discard(platform)
            gate_failed.add((platform, "staging"))
        elif cls == "release_5xx":
            platform = rng.choice(list(FLEET))
            bad = rng.choice(self.own_broken[platform])
            records = self.run_fleet([replace(plan, artifacts=plan.artifacts | {platform: str(bad.path)})])
            required.discard(platform)
            gate_failed.add((platform, "staging"))
            staging = self.result_of(records[0], platform, "staging") or {}
            steps = [(st["step"], st["ok"]) for st in staging.get("steps", [])]
            marked = bad_mark(
                read_history(_Local(stores[(platform, "staging")]), str(stores[(platform, "staging")])), bad.release_id
            )
            if ("re-verify", True) in steps and marked is None:
                self.findings.append(
                    f"parallel fault {self.fault_no}: {bad.release_id} 500 then healthy, yet not marked"
                )
        else:  # store_sick
            platform, target = rng.choice(keys)
            self.web.sick_stores.add(stores[(platform, target)].parent.parent.name)
            try:
                records = self.run_fleet([plan])
            finally:
                self.web.sick_stores.clear()
            required.discard(platform)
            gate_failed.add((platform, target))
        self.ensure_sshd()
        broken = self.check_fleet(cls, stores, before, records, gate_failed, required, arts)
        # the run's retry, at once, the fault gone: every store of every plugin gets its release
        after = {k: self.touch_print(live) for k, live in stores.items()}
        [retry] = self.run_fleet([replace(self.fleet_plan(config, retry_arts, holder))])
        retry_ok = True
        for (platform, target), live in stores.items():
            result = self.result_of(retry, platform, target) or {}
            problems = []
            if result.get("deployed_version") != retry_arts[platform].release_id or result.get("error"):
                problems.append(
                    f"{platform} {target}: the retry did not deploy: "
                    f"{result.get('error') or retry.get('raised') or result or retry}"
                )
            retry_ok = retry_ok and not problems
            broken += self.tally_invariant("retry deploys every store", problems)
            broken += self.tally_invariant(
                "no leftovers", [f"{platform} {target}: {j}" for j in self.leftovers(live)[:5]] if not problems else []
            )
            broken += self.tally_invariant("history consistent", self.history_problems(live, platform, target))
        broken += self.check_fleet(cls, stores, after, [retry], set(), set(FLEET) if retry_ok else set(), retry_arts)
        if retry_ok:
            tally.retry_ok += 1
        if broken:
            tally.broken.append(f"parallel fault {self.fault_no} {cls}: " + "; ".join(broken))
            self.log(f"parallel fault {self.fault_no} {cls}: BROKEN {broken}")
        else:
            tally.held += 1
        with self.reader.lock:
            for live in stores.values():
                self.reader.paths.remove(live)
        for live in stores.values():
            self.web.lives.pop(live.parent.parent.name, None)
            shutil.rmtree(live.parent.parent, ignore_errors=True)

    @staticmethod
    def result_of(record: dict, platform: str, target: str) -> dict | None:
        return next((d for d in record.get("results", {}).get(platform, []) if d["target"] == target), None)

    def history_problems(self, live: Path, platform: str, target: str) -> list[str]:
        """After a successful deploy: the history numbers its entries 1..n, its last live entry names the
        folder the store serves, and that folder's last verdict is healthy."""
        history = read_history(_Local(live), str(live))
        where = f"{platform} {target}"
        problems = []
        if [e.seq for e in history] != list(range(1, len(history) + 1)):
            problems.append(f"{where}: history entries numbered {[e.seq for e in history]}")
        lives = [e for e in history if e.event in ("switch", "adopt", "rollback", "observed")]
        folder = os.path.basename(os.readlink(live)) if live.is_symlink() else None
        if not lives or lives[-1].folder != folder:
            problems.append(f"{where}: the history's last live entry is not {folder}")
        verdicts = [e.verdict for e in history if e.folder == folder and e.verdict]
        if not verdicts or verdicts[-1] != "healthy":
            problems.append(f"{where}: {folder} has no healthy verdict in the history")
        return problems

    def check_fleet(
        self,
        cls: str,
        stores: dict[tuple[str, str], Path],
        before: dict[tuple[str, str], dict[str, Any]],
        records: list[dict],
        gate_failed: set[tuple[str, str]],
        required: set[str],
        arts: dict[str, Artifact],
    ) -> list[str]:
        """Every invariant on every store of the fleet after one side-by-side run (and its fault)."""
        broken: list[str] = []
        for rec in records:
            broken += self.tally_invariant("lock held by one", rec.get("violations", []))
        for (platform, target), live in stores.items():
            where = f"{platform} {target}"
            releases = releases_dir_for(str(live))
            recs = []
            for rec in records:
                result = self.result_of(rec, platform, target)
                if result is not None:
                    recs.append({"result": result, "released": rec.get("released_at", {}).get(releases, 0)})
            found: dict[str, list[str]] = {}
            for problem in self.check(cls, live, before[(platform, target)], recs, (platform, target) in gate_failed):
                found.setdefault(_invariant_of(problem), []).append(f"{where}: {problem}")
            for name in ("live path complete", "recorded = served", "failed gate ends on before", "folders untouched"):
                broken += self.tally_invariant(name, found.pop(name, []))
            broken += self.tally_invariant("marked bad only if broken", found.pop("marked bad only if broken", []))
            broken += [p for ps in found.values() for p in ps]
            # one plugin's deploy (or fault) never reaches another plugin's store
            own = {a.release_id for a in self.own[platform] + self.own_broken[platform]}
            strangers = [
                name for name in self.folders(live) if release_of(name) not in own and not name.startswith("legacy-")
            ]
            served = self.served(live)
            if served not in own and served not in ("hand-installed", None) and not str(served).startswith("legacy-"):
                strangers.append(f"serves {served}")
            broken += self.tally_invariant(
                "other plugins' stores untouched",
                [f"{where}: holds another plugin's release: {strangers}"] if strangers else [],
            )
        for platform in FLEET:
            staging, production = stores[(platform, "staging")], stores[(platform, "production")]
            problems = []
            for rec in records:
                results = rec.get("results", {}).get(platform, [])
                if results and not (results[0]["error"] == "" and not results[0]["rolled_back"]) and len(results) > 1:
                    problems.append(f"{platform}: production was tried after staging failed: {results}")
            if self.touch_print(production) != before[(platform, "production")]:
                history = read_history(_Local(staging), str(staging))
                if arts[platform].release_id not in {e.release for e in history if e.verdict == "healthy"}:
                    problems.append(
                        f"{platform}: its production store changed, but its staging store never passed the gate "
                        f"with {arts[platform].release_id}"
                    )
            broken += self.tally_invariant("production after healthy staging", problems)
        for platform in FLEET:
            problems = []
            if platform in required:
                for rec in records:
                    for target in FLEET_TARGETS:
                        result = self.result_of(rec, platform, target) or {}
                        if result.get("deployed_version") != arts[platform].release_id or result.get("error"):
                            problems.append(
                                f"{platform} {target}, which the fault did not reach, was not deployed: "
                                f"{result.get('error') or rec.get('raised') or result or rec}"
                            )
            broken += self.tally_invariant("unfaulted plugins deployed", problems)
        return broken


def same(served: str | None, before: str | None) -> bool:
    """The store serves what it served before (an adopted hand install counts as the hand install)."""
    if before == "hand-installed" and served is not None and served.startswith("legacy-"):
        return True
    return served == before


class _Local:
    """Read-only access to a store path from this process, for reading the history in checks."""

    def __init__(self, live: Path) -> None:
        self.live = live

    def read_bytes(self, path: str) -> bytes:
        return Path(path).read_bytes()

    def exists(self, path: str) -> bool:
        return os.path.lexists(path)


def schedule(seed: int, total: int, rollback: bool = False, parallel: bool = False) -> list[str]:
    """The faults to inject: the full mix scaled to `total`, every class at least once, shuffled by seed.
    Side by side (`parallel`), a `total` below the number of classes takes that many classes, by seed."""
    classes, weights = (ROLLBACK_CLASSES, ROLLBACK_WEIGHTS) if rollback else (CLASSES, WEIGHTS)
    if parallel:
        classes, weights = PARALLEL_CLASSES, PARALLEL_WEIGHTS
        if total < len(classes):
            return random.Random(seed).sample(classes, total)
    weight = sum(weights.values())
    counts = {c: max(1, round(weights[c] * total / weight)) for c in classes}
    faults = [c for c in classes for _ in range(counts[c])]
    random.Random(seed).shuffle(faults)
    return faults


def run_campaign(
    seed: int,
    total: int,
    workdir: Path,
    user: pwd.struct_passwd,
    log: Any = None,
    rollback: bool = False,
    parallel: bool = False,
) -> dict[str, Any]:
    """The deploy campaign; with `rollback` the KPI-triggered rollback's (ROLLBACK_CLASSES); with `parallel`
    the faults land while a client's plugins deploy side by side (FleetCampaign, PARALLEL_CLASSES)."""
    if parallel:
        campaign: Campaign = FleetCampaign(seed, workdir, user, log)
        inject = campaign.parallel_fault
    else:
        campaign = Campaign(seed, workdir, user, log, ROLLBACK_CLASSES if rollback else CLASSES)
        inject = campaign.rollback_fault if rollback else campaign.fault
    started = time.monotonic()
    try:
        for cls in schedule(seed, total, rollback, parallel):
            try:
                inject(cls)
            except Exception as exc:  # a deploy that failed with no fault injected is a finding too
                campaign.findings.append(f"fault {campaign.fault_no} {cls}: {type(exc).__name__}: {str(exc)[:300]}")
                campaign.ensure_sshd()
    finally:
        campaign.close()
    table = {
        c: {"injected": t.injected, "held": t.held, "retry_succeeded": t.retry_ok}
        | ({"interrupted": t.interrupted, "switched_unmarked": t.unfinished} if rollback else {})
        for c, t in campaign.tallies.items()
    }
    return {
        "seed": seed,
        "faults": sum(t.injected for t in campaign.tallies.values()),
        "held": sum(t.held for t in campaign.tallies.values()),
        "retry_succeeded": sum(t.retry_ok for t in campaign.tallies.values()),
        "classes": table,
        "broken": [b for t in campaign.tallies.values() for b in t.broken] + campaign.findings,
        "reader": {
            "reads": campaign.reader.reads,
            "missing": len(campaign.reader.misses),
            "torn": len(campaign.reader.torn),
            "examples": (campaign.reader.misses + campaign.reader.torn)[:5],
        },
        "results_reported_unknown": campaign.unknown_results,
        "invariants": getattr(campaign, "invariants", {}),
        "same_host_at_once": getattr(campaign, "same_host_at_once", 0),
        "mode": "parallel" if parallel else "rollback" if rollback else "serial",
        "seconds": round(time.monotonic() - started, 1),
        "load": Path("/proc/loadavg").read_text().split()[:3],
    }
