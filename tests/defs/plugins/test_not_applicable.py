"""A platform a client does not enable is not a missing plugin: recording the client's config records,
on every plugin asset's partition for that pair, an observation saying it is not applicable and why.
The enabled pairs get none."""

from __future__ import annotations

import dagster as dg

from psp_assets.core.config.fleet import load_fleet
from psp_assets.core.templates.spec import PLATFORMS
from psp_assets.definitions import defs
from psp_assets.defs.plugins.assets import NOT_APPLICABLE, PLUGIN_ASSETS


def test_recording_a_config_marks_exactly_the_platforms_it_does_not_enable_as_not_applicable(env, instance):
    enabled = load_fleet(env.configs_dir).clients["nordbank"].config.enabled_platforms()
    instance.add_dynamic_partitions("client", ["nordbank"])
    assert defs.resolve_job_def("client_config_job").execute_in_process(partition_key="nordbank", instance=instance)
    for asset in PLUGIN_ASSETS:
        records = instance.fetch_observations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset)), limit=50).records
        marked = {r.partition_key: r.asset_observation.metadata for r in records}
        assert sorted(marked) == sorted(f"nordbank|{p}" for p in PLATFORMS if p not in enabled), asset
        for key, metadata in marked.items():
            assert metadata["status"].value == NOT_APPLICABLE
            assert f"nordbank does not enable {key.split('|')[1]}" in metadata["reason"].value
