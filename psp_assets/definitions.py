"""Assembles the code location `psp_assets`; no logic lives here. `dg.load_from_defs_folder` loads every
area of psp_assets/defs/ (pyproject.toml [tool.dg] names the folder): each area's `definitions.py` has
one `@dg.definitions` function (plugins, github, reconciliation, alerts, compat), and defs/location.py
adds what they share (workspace, PHP and IO manager resources, the executor)."""

from pathlib import Path

import dagster as dg

defs = dg.load_from_defs_folder(path_within_project=Path(__file__).resolve().parent)
