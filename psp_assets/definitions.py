"""Assembles the code location; no logic lives here. Each area in psp_assets/defs/ exposes the lists
`assets`, `asset_checks`, `jobs`, `schedules`, `sensors` and a dict `resources` (any may be absent)."""

import dagster as dg

from psp_assets.defs import alerts, compat, github, plugins, reconciliation
from psp_assets.defs.resources import JsonHandleIOManager, PhpResource, PspWorkspace

AREAS = [plugins, github, reconciliation, alerts, compat]


def _collect(name: str) -> list:
    return [item for area in AREAS for item in getattr(area, name, [])]


defs = dg.Definitions(
    assets=_collect("assets"),
    asset_checks=_collect("asset_checks"),
    jobs=_collect("jobs"),
    schedules=_collect("schedules"),
    sensors=_collect("sensors"),
    # the default of every job without its own, the UI's ad-hoc asset materializations among them
    executor=dg.in_process_executor,
    resources={
        "workspace": PspWorkspace(),
        "php": PhpResource(),
        "io_manager": JsonHandleIOManager(),
        **{key: res for area in AREAS for key, res in getattr(area, "resources", {}).items()},
    },
)
