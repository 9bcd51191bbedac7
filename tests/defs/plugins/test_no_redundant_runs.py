"""What `make demo` does, on a fresh instance: `psp fleet`, then the daemon's first tick of every sensor
(no cursor). Nothing changed, so nothing may start. Then one template file change, and one config
change, each start exactly one run for exactly the partitions they touch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from psp_assets.core.templates.spec import PLATFORMS
from psp_assets.core.workspace import Paths
from psp_assets.definitions import defs
from psp_assets.defs.ranges import RANGE_END_TAG, RANGE_START_TAG
from psp_assets.fleet import run_fleet

pytestmark = [pytest.mark.slow]
REPO = Path(__file__).resolve().parents[3]
SENSORS_THAT_USED_TO_FIRE = ["client_configs_sensor", "lineage_on_upstream_change_sensor"]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A DAGSTER_HOME of its own (SQLite), so the `dagster` CLI sees the same instance as the test."""
    home = tmp_path / "dagster-home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        yaml.safe_dump({"storage": {"sqlite": {"base_dir": str(home / "storage")}}, "telemetry": {"enabled": False}})
    )
    return home


def first_ticks(instance: dg.DagsterInstance) -> dict[str, list[dg.RunRequest]]:
    """Every sensor of the code location evaluated as the daemon's first tick does: no cursor, the
    resources the Definitions bind (what `dagster sensor preview` runs)."""
    requests = {}
    for sensor in defs.sensors:
        with (
            dg.partition_loading_context(dynamic_partitions_store=instance),
            dg.build_sensor_context(instance=instance, definitions=defs, resources=dict(defs.resources)) as context,
        ):
            data = sensor.evaluate_tick(context)
        requests[sensor.name] = list(data.run_requests or [])
    return requests


def requested(ticks: dict[str, list[dg.RunRequest]]) -> dict[str, list[dg.RunRequest]]:
    return {name: runs for name, runs in ticks.items() if runs}


def run(instance: dg.DagsterInstance, request: dg.RunRequest, job: str) -> None:
    result = defs.resolve_job_def(request.job_name or job).execute_in_process(
        partition_key=request.partition_key, instance=instance, tags=request.tags
    )
    assert result.success


def test_after_psp_fleet_no_sensor_starts_a_run_and_each_change_starts_exactly_one(env: Paths, home: Path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = dg.DagsterInstance.get()
    assert run_fleet(env, instance=instance) == 0
    fleet = env.fleet()
    enabled = {c: fleet.clients[c].config.enabled_platforms() for c in fleet.clients}

    assert requested(first_ticks(instance)) == {}
    # the same through the CLI a person would use to check it
    for sensor in SENSORS_THAT_USED_TO_FIRE:
        preview = subprocess.run(
            [sys.executable, "-m", "dagster", "sensor", "preview", "-m", "psp_assets.definitions", sensor],
            cwd=REPO,
            env={**os.environ, "DAGSTER_HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert preview.returncode == 0, preview.stderr[-2000:]
        assert f"Sensor returned false for {sensor}, skipping" in preview.stdout, preview.stdout + preview.stderr

    # a template file edited: the template is re-recorded, then its platform's plugins rebuilt in one run
    readme = env.templates_dir / "woocommerce" / "readme.txt.j2"
    readme.write_text(readme.read_text() + "\n== Changelog ==\n* Clearer refund notes.\n")
    ticks = requested(first_ticks(instance))
    assert list(ticks) == ["template_change_sensor"]
    [template_run] = ticks["template_change_sensor"]
    assert template_run.partition_key == "woocommerce"
    run(instance, template_run, "plugin_template_job")
    ticks = requested(first_ticks(instance))
    assert list(ticks) == ["lineage_on_upstream_change_sensor"]
    [build] = ticks["lineage_on_upstream_change_sensor"]
    users = [c for c in instance.get_dynamic_partitions("client") if "woocommerce" in enabled[c]]
    assert build.job_name == "plugin_build_job"
    assert (build.tags[RANGE_START_TAG], build.tags[RANGE_END_TAG]) == (
        f"{users[0]}|woocommerce",
        f"{users[-1]}|woocommerce",
    )
    run(instance, build, "plugin_build_job")
    assert requested(first_ticks(instance)) == {}

    # a config value changed: the config is re-recorded, then that client's plugins rebuilt in one run
    path = env.configs_dir / "nordbank.yaml"
    config = yaml.safe_load(path.read_text())
    config["name"] = "Nord Bank Europe"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    ticks = requested(first_ticks(instance))
    assert list(ticks) == ["client_configs_sensor"]
    [config_run] = ticks["client_configs_sensor"]
    assert config_run.partition_key == "nordbank"
    run(instance, config_run, "client_config_job")
    ticks = requested(first_ticks(instance))
    assert list(ticks) == ["lineage_on_upstream_change_sensor"]
    [lineage] = ticks["lineage_on_upstream_change_sensor"]
    platforms = [p for p in PLATFORMS if p in enabled["nordbank"]]
    assert lineage.job_name == "plugin_lineage_job"
    assert (lineage.tags[RANGE_START_TAG], lineage.tags[RANGE_END_TAG]) == (
        f"nordbank|{platforms[0]}",
        f"nordbank|{platforms[-1]}",
    )
