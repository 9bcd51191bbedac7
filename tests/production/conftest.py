"""The production instance under test: deploy/postgres/dagster.yaml, copied verbatim into a temporary
DAGSTER_HOME, on a fresh database of the machine's PostgreSQL, with the code server, the daemon and the
webserver running as separate processes (as under systemd)."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import yaml

from tests.production.services import (
    PROD_INSTANCE_YAML,
    PROD_WORKSPACE_YAML,
    Dagster,
    PgServer,
    base_env,
    dagster_services,
    fresh_database,
    machine_postgres,
    stop_automation,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]
# The lineage runs here test orchestration, not PHP: checks on the machine's PHP only (the version
# matrix has its own tests); in process, as every job's executor is.
LINEAGE_RUN_CONFIG = {
    "resources": {"php": {"config": {"matrix": False}}},
    "loggers": {"console": {"config": {"log_level": "WARNING"}}},
}

# A stand-in for the PHP binary, only in these tests: it runs the real PHP CLI, but a PHP process started
# inside the folder named in $PSP_GATE_DIR/hold (a store: a deploy's health check; a rendered tree: the
# test report) waits until the test creates $PSP_GATE_DIR/open. That is how a test holds a run at a known
# step while it looks at the queue, restarts Postgres or kills the run. Bounded: at most 5 minutes.
GATE_SCRIPT = """#!/bin/sh
hold="$PSP_GATE_DIR/hold"
if [ -f "$hold" ]; then
  prefix="$(cat "$hold")"
  case "$PWD/" in
    "$prefix"/*)
      echo "$$ $PPID" >> "$PSP_GATE_DIR/entered"
      n=0
      while [ ! -e "$PSP_GATE_DIR/open" ] && [ "$n" -lt 3000 ]; do sleep 0.1; n=$((n+1)); done;;
  esac
fi
exec "$PSP_GATE_PHP" "$@"
"""


@dataclass
class Gate:
    """Holds the health check of deploys into one store folder until released."""

    directory: Path

    def hold(self, folder: Path) -> None:
        """Hold every PHP process started in `folder` or below."""
        for name in ("open", "entered"):
            (self.directory / name).unlink(missing_ok=True)
        (self.directory / "hold").write_text(str(folder))

    def entered(self) -> list[int]:
        """Process ids of the deploy workers waiting at the gate (the PHP lint's parent processes)."""
        path = self.directory / "entered"
        if not path.exists():
            return []
        return sorted({int(line.split()[1]) for line in path.read_text().splitlines() if line.strip()})

    def wait_entered(self, timeout: float = 240) -> list[int]:
        return wait_for("a deploy to reach its health check", self.entered, timeout)

    def release(self) -> None:
        (self.directory / "open").touch()
        (self.directory / "hold").unlink(missing_ok=True)


@dataclass
class Workspace:
    """Configs and templates copied from the repo, data and stores empty, all under a temporary folder."""

    root: Path
    gate: Gate

    @property
    def configs(self) -> Path:
        return self.root / "client_configs"

    @property
    def stores(self) -> Path:
        return self.root / "stores"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def store(self, client_id: str) -> Path:
        """The one store of a client made by write_client."""
        return self.stores / f"{client_id}-shop"

    def env(self) -> dict[str, str]:
        return {
            "PSP_CLIENT_CONFIGS_DIR": str(self.configs),
            "PSP_TEMPLATES_DIR": str(self.root / "templates"),
            "PSP_DATA_DIR": str(self.root / "data"),
            "PSP_STORES_DIR": str(self.stores),
            "PSP_PHP_BINARY": str(self.root / "php-gate"),
            "PSP_GATE_PHP": shutil.which("php") or "/usr/bin/php",
            "PSP_GATE_DIR": str(self.gate.directory),
            # the gate holds the deploy's own lint of the store, which the lint cache would answer
            # without a PHP process (it has just linted the same bytes in test_report)
            "PSP_PHP_LINT_CACHE": "0",
        }


def make_workspace(root: Path) -> Workspace:
    root = root.resolve()
    shutil.copytree(REPO / "client_configs", root / "client_configs")
    shutil.copytree(REPO / "templates", root / "templates")
    for sub in ("data", "stores", "gate"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    script = root / "php-gate"
    script.write_text(GATE_SCRIPT)
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return Workspace(root, Gate(root / "gate"))


def make_home(root: Path) -> Path:
    """A DAGSTER_HOME holding the production instance config exactly as shipped."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROD_INSTANCE_YAML, root / "dagster.yaml")
    return root


@contextlib.contextmanager
def temporary_env(env: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def instance_at(home: Path, env: dict[str, str]) -> Iterator[dg.DagsterInstance]:
    """The instance the services use, opened in the test process (the yaml reads PSP_PG_* once, here)."""
    with temporary_env(env):
        instance = dg.DagsterInstance.from_config(str(home))
    with instance:
        yield instance


def _quiet_run(instance: dg.DagsterInstance, workspace: Workspace, job: str, key: str) -> None:
    from psp_assets.definitions import defs

    with temporary_env(workspace.env()):
        result = defs.resolve_job_def(job).execute_in_process(
            partition_key=key,
            instance=instance,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            raise_on_error=False,
        )
    assert result.success, f"{job}[{key}] failed"


def seed_templates(instance: dg.DagsterInstance, workspace: Workspace, platforms: list[str]) -> None:
    """plugin_template materialized on the instance (in this process: it is quick)."""
    for platform in platforms:
        _quiet_run(instance, workspace, "plugin_template_job", platform)


def write_client(workspace: Workspace, client_id: str) -> str:
    """A WooCommerce-only client of the tests' own with one local store `<client_id>-shop` (so each test
    deploys where nobody else does); returns its lineage partition key."""
    config = yaml.safe_load((REPO / "client_configs" / "baltic-credit.yaml").read_text())
    config.pop("github", None)
    config.update(id=client_id, name=f"Test bank {client_id}")
    slug = f"{client_id}-pay"
    target = {"name": "production", "transport": "local", "path": f"{client_id}-shop/wp-content/plugins/{slug}"}
    config["platforms"] = {"woocommerce": {"slug": slug, "targets": [target]}}
    (workspace.configs / f"{client_id}.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    return f"{client_id}|woocommerce"


def add_client(instance: dg.DagsterInstance, workspace: Workspace, client_id: str) -> str:
    """write_client, plus its partition and its client_config materialized on the instance."""
    write_client(workspace, client_id)
    instance.add_dynamic_partitions("client", [client_id])
    _quiet_run(instance, workspace, "client_config_job", client_id)
    return f"{client_id}|woocommerce"


@pytest.fixture(scope="package")
def pg_server() -> PgServer:
    return machine_postgres()


@pytest.fixture(scope="package")
def pg_database(pg_server: PgServer) -> Iterator[str]:
    with fresh_database(pg_server, prefix="psp_dagster_test") as name:
        yield name


@pytest.fixture(scope="package")
def prod_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return make_workspace(tmp_path_factory.mktemp("prod-workspace"))


@pytest.fixture(scope="package")
def prod_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_home(tmp_path_factory.mktemp("prod-dagster-home"))


@pytest.fixture(scope="package")
def prod_env(pg_server: PgServer, pg_database: str, prod_workspace: Workspace) -> dict[str, str]:
    return base_env(**pg_server.env(pg_database), **prod_workspace.env())


@pytest.fixture(scope="package")
def prod_instance(prod_home: Path, pg_server: PgServer, pg_database: str) -> Iterator[dg.DagsterInstance]:
    with instance_at(prod_home, pg_server.env(pg_database)) as instance:
        yield instance


@pytest.fixture(scope="package")
def prod_dagster(
    prod_instance: dg.DagsterInstance,
    prod_home: Path,
    prod_env: dict[str, str],
    prod_workspace: Workspace,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Dagster]:
    logs = tmp_path_factory.mktemp("prod-logs")
    started = time.monotonic()
    with dagster_services(
        home=prod_home, env=prod_env, workspace=PROD_WORKSPACE_YAML, logs=logs, before_daemon=stop_automation
    ) as dagster:
        up = time.monotonic()
        seed_templates(prod_instance, prod_workspace, ["woocommerce"])
        print(f"\nproduction services up in {up - started:.1f} s, seeded in {time.monotonic() - up:.1f} s")
        yield dagster


@pytest.fixture
def gate(prod_workspace: Workspace) -> Iterator[Gate]:
    yield prod_workspace.gate
    prod_workspace.gate.release()  # never leave a deploy waiting
