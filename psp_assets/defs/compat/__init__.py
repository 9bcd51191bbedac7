"""Compatibility: the nightly platform x platform version x PHP version matrix, its checks and schedule."""

from psp_assets.defs.compat.assets import compatibility_matrix
from psp_assets.defs.compat.checks import declared_cells_pass, no_cell_regressed
from psp_assets.defs.compat.resources import MatrixFrameIOManager
from psp_assets.defs.compat.schedules import compatibility_matrix_job, nightly_compatibility_matrix

assets = [compatibility_matrix]
asset_checks = [no_cell_regressed, declared_cells_pass]
jobs = [compatibility_matrix_job]
schedules = [nightly_compatibility_matrix]
sensors = []
resources = {"compat_io_manager": MatrixFrameIOManager()}
