"""Checks on the compatibility matrix: nothing that passed last night fails tonight."""

from pathlib import Path

import dagster as dg
import pandas as pd

from psp_assets.core import compat
from psp_assets.core.errors import CompatError
from psp_assets.defs.compat.assets import compatibility_matrix


def _previous_matrix(instance: dg.DagsterInstance) -> tuple[pd.DataFrame | None, str]:
    """The matrix of the materialization before the latest one, and where it came from."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=compatibility_matrix.key), limit=2, ascending=False
    ).records
    if len(records) < 2 or records[1].asset_materialization is None:
        return None, "no earlier matrix"
    entry = records[1].asset_materialization.metadata.get("path")
    path = Path(str(entry.value)) if entry is not None else None
    if path is None or not path.is_file():
        return None, f"the earlier matrix (run {records[1].run_id}) is no longer on disk"
    try:
        return compat.load_matrix(path), f"run {records[1].run_id} ({path})"
    except CompatError as exc:
        return None, str(exc)


@dg.asset_check(
    asset=compatibility_matrix,
    description="No cell went from pass to fail since the previous matrix; a failure names every such cell.",
)
def no_cell_regressed(
    context: dg.AssetCheckExecutionContext, compatibility_matrix: pd.DataFrame
) -> dg.AssetCheckResult:
    previous, source = _previous_matrix(context.instance)
    regressed = compat.regressions(previous, compatibility_matrix)
    return dg.AssetCheckResult(
        passed=not regressed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{len(regressed)} cell(s) went from pass to fail" if regressed else None,
        metadata={
            "compared_with": source,
            "regressed": len(regressed),
            "regressed_cells": dg.MetadataValue.md("\n".join(f"- {c}" for c in regressed) or "none"),
        },
    )


@dg.asset_check(
    asset=compatibility_matrix,
    description="Every declared platform version x PHP version cell passes (a warning: support lists the red ones).",
)
def declared_cells_pass(compatibility_matrix: pd.DataFrame) -> dg.AssetCheckResult:
    failing = compat.failing_cells(compatibility_matrix)
    return dg.AssetCheckResult(
        passed=not failing,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "failing": len(failing),
            "failing_cells": dg.MetadataValue.md("\n".join(f"- {c}" for c in failing) or "none"),
        },
    )
