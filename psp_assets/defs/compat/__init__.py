"""Compatibility: the nightly platform x platform version x PHP version matrix, its checks and schedule."""

from psp_assets.defs.compat.schedules import compatibility_matrix_job, nightly_compatibility_matrix

__all__ = ["compatibility_matrix_job", "nightly_compatibility_matrix"]
