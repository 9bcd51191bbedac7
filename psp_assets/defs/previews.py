"""The one place that silences Dagster's beta and preview warnings: the APIs of 1.13 this code location
relies on while they are still marked so. Each filter matches one API, so a warning about anything else
still shows. `psp_assets.defs` applies them on import, before any area decorates an asset; the test
suite applies them once more at start (tests/conftest.py), because pytest restores the warning filters
after collecting. The tests pin each API's behaviour."""

import warnings

import dagster as dg

# (category, message regex, why we rely on it)
FILTERS: list[tuple[type[Warning], str, str]] = [
    (
        dg.BetaWarning,
        ".*MultiToSingleDimensionPartitionMapping.*",
        "fans a per-platform and a per-client asset into client|platform partitions",
    ),
    (dg.BetaWarning, ".*data_version.*", "content hashes as data versions (Output.data_version)"),
    (dg.BetaWarning, ".*backfill_policy.*", "fleet-wide ranges cut into runs of PSP_FLEET_CHUNK partitions"),
    (
        dg.PreviewWarning,
        ".*partitions_def on an AssetCheckSpec.*",
        "plugin_checks_pass has one result per client|platform partition",
    ),
]


def silence_previews() -> None:
    """Ignore exactly the beta and preview warnings of FILTERS."""
    for category, message, _why in FILTERS:
        warnings.filterwarnings("ignore", message=message, category=category)
