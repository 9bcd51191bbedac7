"""Canaries for the non-public Dagster parts the fleet's range runs still rely on. Every one of them is
used in psp_assets/defs/ranges.py and nowhere else; when an upgrade moves one, a test here names it
before a range run misrecords a partition (docs/operations.md, "What is still not public")."""

from __future__ import annotations

import inspect

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_TAG
from dagster._core.storage.tags import EXTERNALLY_MANAGED_ASSETS_TAG

from psp_assets.definitions import defs
from psp_assets.defs import ranges
from psp_assets.defs.plugins.assets import TESTS_PASS

RANGES_SOURCE = inspect.getsource(ranges)


def test_the_per_partition_tag_is_dagsters_externally_managed_assets_tag():
    # a run carrying it leaves the asset events to the asset code (made for Airlift, undocumented)
    assert ranges.PER_PARTITION_TAG == EXTERNALLY_MANAGED_ASSETS_TAG


def test_a_materialization_carries_its_data_version_in_dagsters_own_tag():
    assert ranges.DATA_VERSION_TAG == DATA_VERSION_TAG


def test_the_job_asset_layer_still_names_the_assets_a_step_feeds_in_its_run():
    layer = defs.resolve_job_def("plugin_build_job").asset_layer
    node = layer.get(dg.AssetKey("rendered_source"))
    assert dg.AssetKey("test_report") in node.child_keys & layer.executable_asset_keys
    assert "asset_layer" in RANGES_SOURCE


def test_a_check_of_a_multi_output_asset_still_has_an_output_name():
    test_report = defs.resolve_assets_def("test_report")
    name = test_report.get_output_name_for_asset_check_key(dg.AssetCheckKey(dg.AssetKey("test_report"), TESTS_PASS))
    assert isinstance(name, str) and name


def test_the_run_event_log_walk_still_filters_by_event_types():
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("plugin_template_job").execute_in_process(
            instance=instance, partition_key="woocommerce", raise_on_error=False
        )
        kinds = {dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_OBSERVATION}
        entries = instance.all_logs(result.run_id, of_type=kinds)
        assert entries and all(e.dagster_event.event_type in kinds for e in entries)


def test_a_pool_named_at_run_time_is_claimed_held_and_freed_through_the_concurrency_table(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        assert ranges.pools_supported(instance)
        assert ranges.pool_limit(instance, "psp_store/a|woocommerce") is None
        ranges.set_pool_limit(instance, "psp_store/a|woocommerce", 1)
        assert ranges.pool_limit(instance, "psp_store/a|woocommerce") == 1
        assert ranges.claim_pool_slot(instance, "psp_store/a|woocommerce", "run-1", "deployed_store[a|woocommerce]")
        assert not ranges.claim_pool_slot(instance, "psp_store/a|woocommerce", "run-2", "deployed_store[a|woocommerce]")
        assert ranges.pool_holders(instance, "psp_store/a|woocommerce") == [("run-1", "deployed_store[a|woocommerce]")]
        ranges.free_pool_slot(instance, "run-1", "deployed_store[a|woocommerce]")
        assert ranges.pool_holders(instance, "psp_store/a|woocommerce") == []
        assert ranges.claim_pool_slot(instance, "psp_store/a|woocommerce", "run-2", "deployed_store[a|woocommerce]")
        assert ranges.default_pool_limit(instance) is None


def test_a_pool_under_the_default_limit_has_no_slot_until_it_is_given_one(tmp_path):
    """The embedded instance sets pools.default_limit: a pool claimed by name must be given its slot first,
    or its claim waits for ever (the UI's lineage run once hung in its deploy on exactly that)."""
    overrides = {"concurrency": {"pools": {"default_limit": 1}}}
    with dg.instance_for_test(temp_dir=str(tmp_path), overrides=overrides) as instance:
        pool = "psp_store/a|woocommerce"
        assert ranges.pool_limit(instance, pool) == 1 and ranges.pool_slot_count(instance, pool) == 0
        assert not ranges.claim_pool_slot(instance, pool, "run-1", "deployed_store[a|woocommerce]")
        ranges.free_pool_slot(instance, "run-1", "deployed_store[a|woocommerce]")
        ranges.set_pool_limit(instance, pool, 1)
        assert ranges.pool_slot_count(instance, pool) == 1
        assert ranges.claim_pool_slot(instance, pool, "run-1", "deployed_store[a|woocommerce]")


def test_no_other_module_of_the_dagster_layer_uses_these_internals():
    from pathlib import Path

    root = Path(ranges.__file__).parent
    markers = (
        "defer_asset_events",
        "dagster/data_version",
        "asset_layer",
        "get_output_name_for_asset_check_key",
        "event_log_storage",
        "concurrency_slot",
        "get_concurrency_config",
    )
    offenders = [
        f"{path.relative_to(root)}: {marker}"
        for path in root.rglob("*.py")
        if path.name != "ranges.py"
        for marker in markers
        if marker in path.read_text()
    ]
    assert offenders == []
