"""The sensors start runs for exactly the partitions a change touched, and nothing on a quiet tick."""

from __future__ import annotations

import dagster as dg

from psp_assets.core.config.fleet import load_fleet
from psp_assets.definitions import defs
from psp_assets.defs.plugins.resources import TemplateRepository
from psp_assets.defs.plugins.sensors import (
    client_configs_sensor,
    lineage_on_upstream_change_sensor,
    template_change_sensor,
)
from psp_assets.defs.ranges import PER_PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG
from psp_assets.defs.resources import PspWorkspace


def materialize(instance, job: str, partition: str) -> None:
    assert defs.resolve_job_def(job).execute_in_process(partition_key=partition, instance=instance).success


def tick(sensor, instance, cursor=None) -> dg.SensorResult:
    resources = {"workspace": PspWorkspace(), "template_repo": TemplateRepository()}
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    return sensor(context)


def test_a_template_change_re_records_only_that_platform_and_a_quiet_tick_starts_nothing(env, instance):
    platforms = [p for p in ("woocommerce", "magento2") if (env.templates_dir / p).is_dir()]
    first = tick(template_change_sensor, instance)
    assert {r.partition_key for r in first.run_requests} >= set(platforms)  # nothing recorded yet
    for request in first.run_requests:
        materialize(instance, "plugin_template_job", request.partition_key)
    assert not tick(template_change_sensor, instance).run_requests

    readme = env.templates_dir / "woocommerce" / "readme.txt.j2"
    readme.write_text(readme.read_text() + "\n== Changelog ==\n* Clearer refund notes.\n")
    changed = tick(template_change_sensor, instance)
    assert [r.partition_key for r in changed.run_requests] == ["woocommerce"]
    assert tick(template_change_sensor, instance).run_requests[0].run_key == changed.run_requests[0].run_key
    materialize(instance, "plugin_template_job", "woocommerce")
    assert not tick(template_change_sensor, instance).run_requests


def ranges_of(result: dg.SensorResult) -> list[tuple[str, str, str]]:
    """(job, first partition, last partition) of each run a tick asks for: every one is a range run."""
    return [
        (r.job_name, r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG])
        for r in result.run_requests
        if r.partition_key is None and r.tags.get(PER_PARTITION_TAG) == "true"
    ]


def test_upstream_records_rebuild_exactly_the_stale_partitions_whoever_recorded_them(env, instance):
    fleet = load_fleet(env.configs_dir)
    instance.add_dynamic_partitions("client", sorted(fleet.clients))
    nordbank = fleet.clients["nordbank"].config.enabled_platforms()  # woocommerce, magento2, shopify
    for platform in nordbank:
        materialize(instance, "plugin_template_job", platform)
    assert not tick(lineage_on_upstream_change_sensor, instance).run_requests  # no client config recorded yet
    materialize(instance, "client_config_job", "nordbank")
    start = tick(lineage_on_upstream_change_sensor, instance)
    # one run for the client's whole lineage, deploys included: nordbank|woocommerce .. nordbank|shopify
    assert ranges_of(start) == [("plugin_lineage_job", f"nordbank|{nordbank[0]}", f"nordbank|{nordbank[-1]}")]
    assert len(start.run_requests) == 1
    # until the run has rendered them, they stay stale: the same run key, which Dagster starts once
    again = tick(lineage_on_upstream_change_sensor, instance)
    assert [r.run_key for r in again.run_requests] == [start.run_requests[0].run_key]
    request = start.run_requests[0]
    assert defs.resolve_job_def(request.job_name).execute_in_process(instance=instance, tags=request.tags).success
    assert not tick(lineage_on_upstream_change_sensor, instance).run_requests

    materialize(instance, "plugin_template_job", "magento2")  # re-recorded, unchanged: nothing is stale
    assert not tick(lineage_on_upstream_change_sensor, instance).run_requests
    template = env.templates_dir / "magento2" / "etc" / "module.xml.j2"
    if not template.is_file():
        template = next(p for p in (env.templates_dir / "magento2").rglob("*.j2"))
    template.write_text(template.read_text() + "\n")
    materialize(instance, "plugin_template_job", "magento2")
    changed = tick(lineage_on_upstream_change_sensor, instance)
    # the only client whose config is recorded; a build run, which the fleet rollout deploys after
    assert ranges_of(changed) == [("plugin_build_job", "nordbank|magento2", "nordbank|magento2")]
    assert changed.run_requests[0].tags["psp/rollout"] == "magento2"


def test_a_first_tick_without_cursor_starts_nothing_that_is_recorded(env, instance):
    instance.add_dynamic_partitions("client", ["nordbank"])
    materialize(instance, "client_config_job", "nordbank")
    result = tick(client_configs_sensor, instance)
    # the other demo clients are new (added and validated); nordbank is recorded as it is on disk
    assert sorted(r.partition_key for r in result.run_requests) == ["alpenkasse", "baltic-credit"]
    config = env.configs_dir / "nordbank.yaml"
    config.write_text(config.read_text().replace("name: Nord Bank", "name: Nord Bank Europe", 1))
    assert "nordbank" in [r.partition_key for r in tick(client_configs_sensor, instance).run_requests]
