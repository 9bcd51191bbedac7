"""The compat area: the nightly compatibility matrix, its checks and its schedule."""

import dagster as dg

from psp_assets.defs.compat.assets import compatibility_matrix
from psp_assets.defs.compat.checks import declared_cells_pass, no_cell_regressed
from psp_assets.defs.compat.resources import MatrixFrameIOManager
from psp_assets.defs.compat.schedules import compatibility_matrix_job, nightly_compatibility_matrix


@dg.definitions
def compat() -> dg.Definitions:
    return dg.Definitions(
        assets=[compatibility_matrix],
        asset_checks=[no_cell_regressed, declared_cells_pass],
        jobs=[compatibility_matrix_job],
        schedules=[nightly_compatibility_matrix],
        resources={"compat_io_manager": MatrixFrameIOManager()},
    )
