"""The config sensor and the client_config asset read client files with the same bounded loader as `psp
validate`: a hostile file is reported, never followed, never a hang or a crash, and the other clients go on."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg

from psp_assets.core.config.fleet import load_fleet
from psp_assets.definitions import defs
from psp_assets.defs.plugins.sensors import client_configs_sensor
from psp_assets.defs.resources import PspWorkspace

BOMB = (
    "[&l0 ["
    + ", ".join(["lol"] * 9)
    + "], "
    + ", ".join(f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9))
    + "]"
)


def tick(instance, cursor=None) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"workspace": PspWorkspace()})
    return client_configs_sensor(context)


def test_hostile_files_are_reported_and_the_broken_client_keeps_its_partitions(env, instance, tmp_path):
    first = tick(instance)
    instance.add_dynamic_partitions("client", ["alpenkasse", "baltic-credit", "nordbank"])
    configs = env.configs_dir
    nordbank = configs / "nordbank.yaml"
    nordbank.write_text(nordbank.read_text().replace("locales: [nl_NL, en_US]", f"locales: {BOMB}"))
    (tmp_path / "outside.yaml").write_text((configs / "alpenkasse.yaml").read_text().replace("alpenkasse", "stolen"))
    os.symlink(tmp_path / "outside.yaml", configs / "stolen.yaml")
    os.symlink("missing.yaml", configs / "dangling.yaml")
    os.symlink("loop.yaml", configs / "loop.yaml")
    os.mkfifo(configs / "pipe.yaml")
    (configs / "deep.yaml").write_text("id: deep\nx: " + "[" * 10000 + "]" * 10000 + "\n")
    (configs / "keys.yaml").write_text("id: keys\n? [a, b]\n: 1\n")

    result = tick(instance, first.cursor)
    # staleness comes from what the instance recorded (nothing, here): the valid clients are requested as
    # before, the bombed client (an edit in progress) and the file behind the link are not
    assert {r.partition_key for r in result.run_requests} == {"alpenkasse", "baltic-credit"}
    assert not result.dynamic_partitions_requests  # nordbank is not removed, "stolen" is not added
    assert len(load_fleet(configs).problems) == 7  # what the sensor logs as "not applied", file by file


def test_client_config_of_a_bombed_file_fails_with_the_files_problem(env, instance):
    nordbank = env.configs_dir / "nordbank.yaml"
    nordbank.write_text(nordbank.read_text().replace("locales: [nl_NL, en_US]", f"locales: {BOMB}"))
    instance.add_dynamic_partitions("client", ["nordbank"])
    job = defs.resolve_job_def("client_config_job")
    result = job.execute_in_process(partition_key="nordbank", instance=instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "client_configs/nordbank.yaml: locales: expands to more than 50000 values" in str(
        failure.event_specific_data.error
    )


def test_a_config_psp_validate_refuses_for_its_catalog_is_refused_by_client_config_in_the_same_words(env, instance):
    """The model accepts alpenkasse; only the templates show its German catalog lacks a message. `psp
    validate`, the config sensor and `client_config` refuse it alike (core.config.fleet.validate_fleet)."""
    catalog = env.templates_dir / "_shared" / "i18n" / "de_DE.yaml"
    catalog.write_text("".join(line for line in catalog.read_text().splitlines(True) if not line.startswith('"Title"')))
    cli = subprocess.run(
        [sys.executable, "-m", "psp_assets.cli", "validate"],
        capture_output=True,
        text=True,
        env={**os.environ, "PSP_CLIENT_CONFIGS_DIR": str(env.configs_dir), "PSP_TEMPLATES_DIR": str(env.templates_dir)},
    )
    expected = "client_configs/alpenkasse.yaml: locales: de_DE.yaml: message 'Title' is not translated for de_DE"
    assert cli.returncode == 1
    assert cli.stderr.splitlines() == [expected]

    instance.add_dynamic_partitions("client", ["alpenkasse"])
    result = defs.resolve_job_def("client_config_job").execute_in_process(
        partition_key="alpenkasse", instance=instance, raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert expected in str(failure.event_specific_data.error)

    requested = {r.partition_key for r in tick(instance).run_requests}
    assert requested == {"baltic-credit", "nordbank"}  # the sensor does not start a run bound to fail
