"""PSP plugin orchestration platform: a pure core (`psp_assets.core`) and a thin Dagster layer."""
