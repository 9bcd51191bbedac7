"""The sensors start runs for exactly the partitions a change touched, and nothing on a quiet tick."""

from __future__ import annotations

import dagster as dg

from psp_assets.core.config import load_fleet
from psp_assets.definitions import defs
from psp_assets.defs.plugins.sensors import lineage_on_upstream_change_sensor, template_change_sensor
from psp_assets.defs.resources import PspWorkspace


def materialize(instance, job: str, partition: str) -> None:
    assert defs.resolve_job_def(job).execute_in_process(partition_key=partition, instance=instance).success


def tick(sensor, instance, cursor=None) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"workspace": PspWorkspace()})
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


def test_upstream_materializations_rebuild_exactly_the_touched_partitions(env, instance):
    fleet = load_fleet(env.configs_dir)
    instance.add_dynamic_partitions("client", sorted(fleet.clients))
    for platform in fleet.clients["nordbank"].config.enabled_platforms():
        materialize(instance, "plugin_template_job", platform)
    before = tick(lineage_on_upstream_change_sensor, instance)
    assert not before.run_requests  # no client config recorded yet: nothing to build
    materialize(instance, "client_config_job", "nordbank")
    start = tick(lineage_on_upstream_change_sensor, instance, before.cursor)
    assert {r.partition_key for r in start.run_requests} == {
        f"nordbank|{p}" for p in fleet.clients["nordbank"].config.enabled_platforms()
    }
    quiet = tick(lineage_on_upstream_change_sensor, instance, start.cursor)
    assert not quiet.run_requests

    materialize(instance, "plugin_template_job", "magento2")
    template = tick(lineage_on_upstream_change_sensor, instance, quiet.cursor)
    expected = {"nordbank|magento2"}  # the only client whose config is recorded
    assert {r.partition_key for r in template.run_requests} == expected
    assert all(r.partition_key.endswith("|magento2") for r in template.run_requests)
    assert not tick(lineage_on_upstream_change_sensor, instance, template.cursor).run_requests


def test_the_same_inputs_never_start_the_lineage_twice(env, instance):
    instance.add_dynamic_partitions("client", ["nordbank"])
    materialize(instance, "plugin_template_job", "woocommerce")
    materialize(instance, "client_config_job", "nordbank")
    first = tick(lineage_on_upstream_change_sensor, instance)
    materialize(instance, "client_config_job", "nordbank")  # re-recorded, unchanged
    again = tick(lineage_on_upstream_change_sensor, instance, first.cursor)
    woo = [r.run_key for r in first.run_requests if r.partition_key == "nordbank|woocommerce"]
    assert woo and woo == [r.run_key for r in again.run_requests if r.partition_key == "nordbank|woocommerce"]
