"""Assembles the code location; no logic lives here."""

import dagster as dg

from psp_assets.defs import plugins
from psp_assets.defs.resources import JsonHandleIOManager, PhpResource, PspWorkspace

defs = dg.Definitions(
    assets=plugins.assets,
    jobs=plugins.jobs,
    sensors=plugins.sensors,
    resources={
        "workspace": PspWorkspace(),
        "php": PhpResource(),
        "io_manager": JsonHandleIOManager(),
    },
)
