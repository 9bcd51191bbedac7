"""The Dagster layer: one folder per area; each file stays thin and calls psp_assets.core. Every area's
definitions.py has one `@dg.definitions` function; psp_assets/definitions.py loads them all."""

from psp_assets.defs.previews import silence_previews

silence_previews()
