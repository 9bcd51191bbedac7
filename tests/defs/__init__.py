"""Fast tests of the Dagster layer, one folder per area, on real temporary instances."""
