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
from psp_assets.core.deploy.release import (
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
from psp_assets.core.deploy.sftp import SftpFS, SshEndpoint
from psp_assets.core.deploy.stores import combine, http_health, manifest_health
from psp_assets.core.package import Artifact, package
from psp_assets.core.render.engine import RenderedTree
from psp_assets.core.rollout.analysis import StoreVerdict
from psp_assets.core.rollout.gate import restore_previous_release
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
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                live = outer.live
                status, body, trickled = 200, b"<html>shop</html>", False
                try:
                    if outer.sick:
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


def make_release(out: Path, n: int, broken: bool = False, files: int = 24) -> Artifact:
    version = f"1.{n}.0"
    build = hashlib.sha256(f"release-{n}-{broken}".encode()).hexdigest()[:12]
    tree: dict[str, bytes] = {
        MAIN: f"<?php\n/* Plugin Name: Acme Pay {version} */\ndefined('ABSPATH') || exit;\n// {build}\n".encode()
        + b"// padding\n" * 200,
        "version.json": json.dumps({"version": version, "build": build}).encode(),
    }
    for i in range(files):
        tree[f"includes/part{i % 4}/file{i}.php"] = f"<?php // release {n} file {i}\n".encode() + os.urandom(2000)
    if broken:
        tree["BROKEN"] = b"this release makes the store fatal\n"
    rendered = RenderedTree("acme", "woocommerce", version, build, tree)
    return package(rendered, "acme-pay", "acme-pay.zip", out / rendered.release_id)


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


def _deployer(plan: Plan, endpoint: SshEndpoint, out: str) -> None:
    """Runs in a forked process: one deploy as the pipeline makes it, with the plan's fault hooks."""
    record: dict[str, Any] = {"violations": []}
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)  # the faults make it complain, on purpose
    try:
        if plan.start_delay:
            time.sleep(plan.start_delay)
        if plan.skew:
            real = time.time
            time.time = lambda: real() + plan.skew  # the whole process's wall clock is off
        requests = [0]
        original_request = paramiko.SFTPClient._async_request

        def counted(self: paramiko.SFTPClient, *args: Any, **kwargs: Any) -> Any:
            requests[0] += 1
            if plan.kill_at and requests[0] == plan.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            if plan.kill_sshd_at and requests[0] == plan.kill_sshd_at:
                kill_tree(plan.sshd_pid)
            return original_request(self, *args, **kwargs)

        paramiko.SFTPClient._async_request = counted
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
        ctx = multiprocessing.get_context("fork")
        outs, procs = [], []
        if proxy:
            self.proxy.arm(*proxy)
        for plan in plans:
            self.records += 1
            out = str(self.work / f"record-{self.records}.json")
            proc = ctx.Process(target=_deployer, args=(plan, self.endpoint(plan.port), out))
            proc.start()
            outs.append(out)
            procs.append(proc)
        records = []
        for proc, out in zip(procs, outs, strict=True):
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
            records = self.run([self.plan(live, art, holder, kill_at=rng.randint(1, 140))])
        elif cls == "kill_adoption":
            records = self.run([self.plan(live, art, holder, kill_at=rng.randint(1, 60))])
        elif cls == "sshd_killed":
            pid = self.sshd.process.pid
            records = self.run([self.plan(live, art, holder, kill_sshd_at=rng.randint(3, 120), sshd_pid=pid)])
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

    def abandon_lock(self, live: Path, holder: str) -> None:
        """A lock left by a deployer that died long ago: its lease last renewed an hour ago on the store's
        clock (its own clock claimed the future)."""
        lock = Path(releases_dir_for(str(live))) / ".lock"
        lock.mkdir()
        owner = {
            "token": os.urandom(12).hex(),
            "holder": holder,
            "what": "1.99.0-x",
            "lease_seconds": LEASE_SECONDS,
            "deployer_time": time.time() + 5000,
        }
        record = lock / f"owner-{owner['token']}.json"
        record.write_text(json.dumps(owner))
        (lock / "lease").write_text(owner["token"])
        old = time.time() - 3600
        for p in (record, lock / "lease", lock):
            os.utime(p, (old, old))
        chown_tree(lock, self.user)

    def close(self) -> None:
        self.reader.close()
        self.web.shutdown()
        self.proxy.close()
        stop_sshd(self.sshd)
        shutil.rmtree(self.sshd.workdir, ignore_errors=True)
        subprocess.run(["umount", "-l", str(self.mount)], check=False)


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


def schedule(seed: int, total: int, rollback: bool = False) -> list[str]:
    """The faults to inject: the full mix scaled to `total`, every class at least once, shuffled by seed."""
    classes, weights = (ROLLBACK_CLASSES, ROLLBACK_WEIGHTS) if rollback else (CLASSES, WEIGHTS)
    weight = sum(weights.values())
    counts = {c: max(1, round(weights[c] * total / weight)) for c in classes}
    faults = [c for c in classes for _ in range(counts[c])]
    random.Random(seed).shuffle(faults)
    return faults


def run_campaign(
    seed: int, total: int, workdir: Path, user: pwd.struct_passwd, log: Any = None, rollback: bool = False
) -> dict[str, Any]:
    """The deploy campaign, or with `rollback` the KPI-triggered rollback's (ROLLBACK_CLASSES)."""
    campaign = Campaign(seed, workdir, user, log, ROLLBACK_CLASSES if rollback else CLASSES)
    started = time.monotonic()
    try:
        for cls in schedule(seed, total, rollback):
            try:
                (campaign.rollback_fault if rollback else campaign.fault)(cls)
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
        "seconds": round(time.monotonic() - started, 1),
        "load": Path("/proc/loadavg").read_text().split()[:3],
    }
