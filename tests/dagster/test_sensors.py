"""The sensors start runs for exactly the partitions a change touched, and nothing on a quiet tick."""

from __future__ import annotations

import dagster as dg

from psp_assets.core.config import load_fleet
from psp_assets.definitions import defs
from psp_assets.defs.plugins.resources import TemplateRepository
from psp_assets.defs.plugins.sensors import lineage_on_upstream_change_sensor, template_change_sensor
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


def test_upstream_materializations_rebuild_exactly_the_touched_partitions(env, instance):
    fleet = load_fleet(env.configs_dir)
    instance.add_dynamic_partitions("client", sorted(fleet.clients))
    nordbank = fleet.clients["nordbank"].config.enabled_platforms()  # woocommerce, magento2, shopify
    for platform in nordbank:
        materialize(instance, "plugin_template_job", platform)
    before = tick(lineage_on_upstream_change_sensor, instance)
    assert not before.run_requests  # no client config recorded yet: nothing to build
    materialize(instance, "client_config_job", "nordbank")
    start = tick(lineage_on_upstream_change_sensor, instance, before.cursor)
    # one run for the client's whole lineage, deploys included: nordbank|woocommerce .. nordbank|shopify
    assert ranges_of(start) == [("plugin_lineage_job", f"nordbank|{nordbank[0]}", f"nordbank|{nordbank[-1]}")]
    assert len(start.run_requests) == 1
    quiet = tick(lineage_on_upstream_change_sensor, instance, start.cursor)
    assert not quiet.run_requests

    materialize(instance, "plugin_template_job", "magento2")
    template = tick(lineage_on_upstream_change_sensor, instance, quiet.cursor)
    # the only client whose config is recorded; a build run, which the fleet rollout deploys after
    assert ranges_of(template) == [("plugin_build_job", "nordbank|magento2", "nordbank|magento2")]
    assert template.run_requests[0].tags["psp/rollout"] == "magento2"
    assert not tick(lineage_on_upstream_change_sensor, instance, template.cursor).run_requests


def test_the_same_inputs_never_start_the_lineage_twice(env, instance):
    instance.add_dynamic_partitions("client", ["nordbank"])
    materialize(instance, "plugin_template_job", "woocommerce")
    materialize(instance, "client_config_job", "nordbank")
    first = tick(lineage_on_upstream_change_sensor, instance)
    assert sorted(ranges_of(first)) == [
        ("plugin_build_job", "nordbank|woocommerce", "nordbank|woocommerce"),
        ("plugin_lineage_job", "nordbank|woocommerce", "nordbank|woocommerce"),
    ]
    materialize(instance, "client_config_job", "nordbank")  # re-recorded, unchanged
    again = tick(lineage_on_upstream_change_sensor, instance, first.cursor)
    lineage = [r.run_key for r in first.run_requests if r.job_name == "plugin_lineage_job"]
    assert lineage and lineage == [r.run_key for r in again.run_requests]
