"""The Dagster layer: one folder per area; each file stays thin and calls psp_assets.core."""
