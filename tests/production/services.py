"""Real services for the production and end-to-end tests, started and stopped by fixtures.

- the machine's PostgreSQL (started with pg_ctlcluster when it is not running) with a fresh database
  per test session, dropped afterwards;
- a private PostgreSQL cluster (same server binaries, own data directory and port) for the test that
  restarts Postgres: restarting the machine's cluster would cut every other test's connections;
- `dagster code-server`, `dagster-daemon` and `dagster-webserver` as separate processes on loopback,
  exactly as the systemd units in deploy/systemd/ run them, each in its own process group so teardown
  ends it together with the code servers and run workers it started.

Every wait is bounded and says what it was waiting for when it gives up.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg2
import requests

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(os.environ.get("VIRTUAL_ENV") or REPO / ".venv") / "bin"
PROD_INSTANCE_YAML = REPO / "deploy" / "postgres" / "dagster.yaml"
PROD_WORKSPACE_YAML = REPO / "deploy" / "postgres" / "workspace.yaml"
PG_BIN = Path("/usr/lib/postgresql")
LOCATION = "psp_assets"
T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except Exception as exc:  # a probe may fail while a service is still coming up
            last_error = exc
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"gave up after {timeout:.0f} s waiting for {what}" + (f" ({last_error})" if last_error else "")
            )
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the `postgres` user when we are root."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _pg_bin(tool: str) -> str:
    versions = sorted(PG_BIN.glob("*/bin/" + tool))
    if not versions:
        raise RuntimeError(f"no PostgreSQL {tool} under {PG_BIN}: install Debian's postgresql (scripts/setup.sh)")
    return str(versions[-1])


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str = "postgres"
    password: str = ""

    def connect(self, dbname: str = "postgres") -> Any:
        conn = psycopg2.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname=dbname, connect_timeout=5
        )
        conn.autocommit = True
        return conn

    def is_up(self) -> bool:
        try:
            self.connect().close()
            return True
        except psycopg2.OperationalError:
            return False

    def env(self, dbname: str) -> dict[str, str]:
        """The variables deploy/postgres/dagster.yaml reads."""
        return {
            "PSP_PG_HOST": self.host,
            "PSP_PG_PORT": str(self.port),
            "PSP_PG_USER": self.user,
            "PSP_PG_PASSWORD": self.password,
            "PSP_PG_DB": dbname,
        }


def machine_postgres(timeout: float = 60) -> PgServer:
    """The machine's PostgreSQL at 127.0.0.1:5432, started with pg_ctlcluster when it is down."""
    server = PgServer("127.0.0.1", 5432)
    if server.is_up():
        return server
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir()) if Path("/etc/postgresql").is_dir() else []
    if not versions:
        raise RuntimeError("PostgreSQL is not installed (no /etc/postgresql): scripts/setup.sh installs it")
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
        check=True,
        capture_output=True,
        timeout=timeout,
    )
    wait_for("the machine's PostgreSQL on 127.0.0.1:5432", server.is_up, timeout)
    return server


@contextlib.contextmanager
def fresh_database(server: PgServer, prefix: str = "psp_test") -> Iterator[str]:
    """A new, empty database for one test session; dropped (connections and all) afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with contextlib.closing(server.connect()) as conn, conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with contextlib.closing(server.connect()) as conn, conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run(cmd: list[str], timeout: float) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}: {(proc.stderr or proc.stdout).strip()}")


class PrivateCluster:
    """A throwaway PostgreSQL cluster on a free loopback port, which a test may stop and start."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.server = PgServer("127.0.0.1", self.port)

    def _pg_ctl(self, *args: str, timeout: float = 60) -> None:
        _run(_as_postgres([_pg_bin("pg_ctl"), "-D", str(self.data), *args]), timeout)

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        _run(
            _as_postgres(
                [_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]
            ),
            120,
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} -c fsync=off"
        self._pg_ctl("-o", options, "-l", str(self.root / "postgres.log"), "-w", "-t", "60", "start", timeout=90)

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "-w", "-t", "60", "stop", timeout=90)

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


@contextlib.contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    """Under /tmp directly: the `postgres` user cannot enter pytest's per-user temporary folders."""
    cluster = PrivateCluster(Path(tempfile.mkdtemp(prefix="psp-test-pg-")))
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        if cluster.running():
            with contextlib.suppress(subprocess.SubprocessError):
                cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)


# ---- Dagster services ----------------------------------------------------------------------------------


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM to the whole process group (the service, its code servers, its run workers), then
        SIGKILL to whatever is still there after `timeout`."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)


def die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the test process dies, even if it is killed and its
    fixtures never get to stop the services (Linux prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def start_process(name: str, cmd: list[str], env: dict[str, str], cwd: Path, logs: Path) -> Process:
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    handle = log.open("ab")
    popen = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    handle.close()
    return Process(name, popen, log)


class GraphQLError(RuntimeError):
    pass


@dataclass
class Dagster:
    """A running webserver (+ daemon, + code server) and a GraphQL client for it."""

    url: str
    env: dict[str, str]
    home: Path
    processes: list[Process] = field(default_factory=list)
    location: str = LOCATION
    automation_at_start: dict[str, dict[str, str]] = field(default_factory=dict)

    def graphql(self, query: str, variables: dict | None = None, attempts: int = 4) -> dict:
        """POST a GraphQL document. The webserver keeps one pooled connection per storage; after a
        Postgres restart the first request on each fails once (500) and the next one reconnects."""
        for attempt in range(attempts):
            response = requests.post(
                f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60
            )
            if response.status_code < 500 or attempt == attempts - 1:
                break
            time.sleep(1)
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise GraphQLError(json.dumps(body["errors"])[:2000])
        return body["data"]

    def logs(self) -> str:
        return "\n\n".join(f"--- {p.name} ({p.log}) ---\n{p.tail()}" for p in self.processes)

    def check_alive(self) -> None:
        for p in self.processes:
            if p.popen.poll() is not None:
                raise RuntimeError(f"{p.name} exited with {p.popen.returncode}:\n{p.tail()}")

    def stop(self) -> None:
        for p in reversed(self.processes):
            p.stop()

    # -- what the UI does -------------------------------------------------------------------------------

    def launch(
        self,
        job: str,
        partition: str | None = None,
        run_config: dict | None = None,
        tags: dict[str, str] | None = None,
        assets: list[str] | None = None,
    ) -> str:
        """Launch a run the way the UI's launchpad and asset graph do (launchPipelineExecution)."""
        all_tags = {**(tags or {}), **({"dagster/partition": partition} if partition else {})}
        selector: dict[str, Any] = {
            "repositoryLocationName": self.location,
            "repositoryName": "__repository__",
            "pipelineName": job,
        }
        if assets:
            selector["assetSelection"] = [{"path": [a]} for a in assets]
        params = {
            "selector": selector,
            "runConfigData": json.dumps(run_config or {}),
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in all_tags.items()]},
        }
        data = self.graphql(LAUNCH_RUN, {"params": params})["launchPipelineExecution"]
        if data["__typename"] != "LaunchRunSuccess":
            raise GraphQLError(f"launching {job}[{partition}] failed: {json.dumps(data)[:2000]}")
        return data["run"]["runId"]

    def run_status(self, run_id: str) -> str:
        return self.graphql(RUN_STATUS, {"runId": run_id})["runOrError"]["status"]

    def wait_run(
        self, run_id: str, timeout: float, statuses: tuple[str, ...] = ("SUCCESS", "FAILURE", "CANCELED")
    ) -> str:
        def finished() -> str | None:
            self.check_alive()
            status = self.run_status(run_id)
            return status if status in statuses else None

        try:
            return wait_for(f"run {run_id} to reach {'/'.join(statuses)}", finished, timeout, interval=1)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.logs()}") from None


LAUNCH_RUN = """
mutation Launch($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message stack }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
    ... on PipelineNotFoundError { message }
    ... on UnauthorizedError { message }
  }
}"""

RUN_STATUS = """
query Status($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status } } }"""

WORKSPACE = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } } } }"""

DAEMON_HEALTH = """
{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }"""


AUTOMATION = """
query Automation($repo: RepositorySelector!) {
  sensorsOrError(repositorySelector: $repo) {
    __typename ... on Sensors { results { id name sensorState { status } } } }
  schedulesOrError(repositorySelector: $repo) {
    __typename ... on Schedules { results { id name cronSchedule scheduleState { status } } } }
}"""

STOP_SENSOR = """
mutation Stop($id: String) { stopSensor(id: $id) {
  __typename ... on StopSensorMutationResult { instigationState { status } } ... on PythonError { message } } }"""

STOP_SCHEDULE = """
mutation Stop($id: String) { stopRunningSchedule(id: $id) {
  __typename ... on ScheduleStateResult { scheduleState { status } } ... on PythonError { message } } }"""


def automation(dagster: Dagster) -> dict[str, dict[str, str]]:
    """Every sensor and schedule of the code location: name -> {"kind", "status", "id", "cron"}."""
    repo = {"repositoryLocationName": dagster.location, "repositoryName": "__repository__"}
    data = dagster.graphql(AUTOMATION, {"repo": repo})
    found: dict[str, dict[str, str]] = {}
    for item in data["sensorsOrError"]["results"]:
        found[item["name"]] = {"kind": "sensor", "status": item["sensorState"]["status"], "id": item["id"]}
    for item in data["schedulesOrError"]["results"]:
        found[item["name"]] = {
            "kind": "schedule",
            "status": item["scheduleState"]["status"],
            "id": item["id"],
            "cron": item["cronSchedule"],
        }
    return found


def stop_automation(dagster: Dagster) -> dict[str, dict[str, str]]:
    """Stop every sensor and schedule (so a test decides which runs exist); keeps their states before."""
    before = automation(dagster)
    dagster.automation_at_start = before
    for item in before.values():
        if item["status"] == "RUNNING":
            mutation = STOP_SENSOR if item["kind"] == "sensor" else STOP_SCHEDULE
            result = next(iter(dagster.graphql(mutation, {"id": item["id"]}).values()))
            if result["__typename"] == "PythonError":
                raise GraphQLError(f"stopping {item}: {result['message']}")
    still = [name for name, item in automation(dagster).items() if item["status"] == "RUNNING"]
    if still:
        raise GraphQLError(f"still running after stop: {still}")
    return before


def _location_loaded(dagster: Dagster) -> bool:
    dagster.check_alive()
    entries = dagster.graphql(WORKSPACE)["workspaceOrError"]["locationEntries"]
    for entry in entries:
        loaded = entry["locationOrLoadError"] or {}
        if loaded.get("__typename") == "PythonError":
            raise RuntimeError(f"code location {entry['name']} failed to load: {loaded['message']}")
    return bool(entries) and all(e["loadStatus"] == "LOADED" and e["locationOrLoadError"] for e in entries)


def daemons_healthy(dagster: Dagster) -> list[str]:
    """The daemon types that report healthy (empty until the daemon has written its heartbeats)."""
    statuses = dagster.graphql(DAEMON_HEALTH)["instance"]["daemonHealth"]["allDaemonStatuses"]
    required = [s for s in statuses if s["required"]]
    return [s["daemonType"] for s in required] if required and all(s["healthy"] for s in required) else []


@contextlib.contextmanager
def dagster_services(
    *,
    home: Path,
    env: dict[str, str],
    workspace: Path,
    logs: Path,
    cwd: Path = REPO,
    code_server: bool = True,
    before_daemon: Callable[[Dagster], None] | None = None,
    location: str = LOCATION,
    startup_timeout: float = 240,
) -> Iterator[Dagster]:
    """Code server (when the workspace points at one), webserver and daemon on free loopback ports.

    `env` is the complete environment of the services (PSP_*, PATH, ...); run workers inherit it from
    the code server, as under systemd. `before_daemon` runs once the webserver serves the code location
    and before the daemon starts (e.g. to stop sensors, which are on by default). Fails with the
    services' log tails when one does not come up.
    """
    env = {**env, "DAGSTER_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    processes: list[Process] = []
    web_port = free_port()
    dagster = Dagster(url=f"http://127.0.0.1:{web_port}", env=env, home=home, processes=processes, location=location)
    webserver = [str(VENV_BIN / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1", "-p", str(web_port)]
    try:
        try:
            if code_server:
                _start_code_server(env, cwd, logs, processes, startup_timeout)
            processes.append(start_process("webserver", webserver, env, cwd, logs))
            wait_for("the webserver to answer", lambda: dagster.check_alive() or _get_ok(dagster.url), startup_timeout)
            wait_for("the code location to load", lambda: _location_loaded(dagster), startup_timeout, interval=1)
            if before_daemon:
                before_daemon(dagster)
            daemon = [str(VENV_BIN / "dagster-daemon"), "run", "-w", str(workspace)]
            processes.append(start_process("daemon", daemon, env, cwd, logs))
            wait_for("the daemon's heartbeats", lambda: daemons_healthy(dagster), startup_timeout, interval=1)
        except (TimeoutError, RuntimeError) as exc:
            raise RuntimeError(f"{exc}\n{dagster.logs()}") from None
        yield dagster
    finally:
        dagster.stop()


def _start_code_server(env: dict[str, str], cwd: Path, logs: Path, processes: list[Process], timeout: float) -> None:
    port = free_port()
    env.update({"PSP_CODE_SERVER_HOST": "127.0.0.1", "PSP_CODE_SERVER_PORT": str(port)})
    server = start_process(
        "code-server",
        [
            str(VENV_BIN / "dagster"),
            "code-server",
            "start",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-m",
            "psp_assets.definitions",
            "--location-name",
            LOCATION,
        ],
        env,
        cwd,
        logs,
    )
    processes.append(server)
    health = [str(VENV_BIN / "dagster"), "api", "grpc-health-check", "-h", "127.0.0.1", "-p", str(port)]

    def serving() -> bool:
        if server.popen.poll() is not None:
            raise RuntimeError(f"the code server exited with {server.popen.returncode}")
        return subprocess.run(health, env=env, capture_output=True, timeout=30).returncode == 0

    wait_for("the code server to serve", serving, timeout, interval=1)


def _get_ok(url: str) -> bool:
    return requests.get(f"{url}/server_info", timeout=5).status_code == 200


def run_timeline(instance: Any, run_id: str, limit: int = 80) -> str:
    """A run's events as `seconds since the first event, step, event type, message` (for failure messages)."""
    lines, first = [], None
    for entry in instance.all_logs(run_id)[-limit:]:
        first = first if first is not None else entry.timestamp
        kind = entry.dagster_event_type.value if entry.dagster_event_type else "LOG"
        lines.append(f"{entry.timestamp - first:7.1f} {entry.step_key or '':16} {kind} {entry.user_message[:160]!r}")
    return f"run {run_id}:\n" + "\n".join(lines)


def base_env(**extra: str | os.PathLike) -> dict[str, str]:
    """The test process's environment minus anything that points at another Dagster instance."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "PSP_"))}
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    env.update({k: str(v) for k, v in extra.items()})
    return env
