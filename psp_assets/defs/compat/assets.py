"""The nightly compatibility matrix: platform x platform version x PHP version, from real runs."""

from collections import Counter
from typing import Any

import dagster as dg
import pandas as pd

from psp_assets.core import compat
from psp_assets.core.runtimes.php import BOOTS
from psp_assets.defs.resources import PhpResource, PspWorkspace

GROUP = "compat"
TABLE_COLUMNS = {
    "platform": "string",
    "platform_version": "string",
    "php_version": "string",
    "status": "string",
    "plugins": "int",
    "lint_failed": "int",
    "contract_failed": "int",
    "api_failed": "int",
    "render_failed": "int",
    "first_failure": "string",
}


def cells_table(frame: pd.DataFrame) -> dg.TableMetadataValue:
    records = []
    for row in frame.to_dict("records"):
        first = (row["failures"] or "").splitlines()[0] if row["failures"] else ""
        records.append(dg.TableRecord({k: (first[:300] if k == "first_failure" else row[k]) for k in TABLE_COLUMNS}))
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in TABLE_COLUMNS.items()])
    return dg.MetadataValue.table(records, schema=schema)


@dg.asset(
    group_name=GROUP,
    kinds={"php", "pandas"},
    io_manager_key="compat_io_manager",
    deps=[dg.AssetKey("plugin_template"), dg.AssetKey("client_config")],
)
def compatibility_matrix(
    context: dg.AssetExecutionContext, workspace: PspWorkspace, php: PhpResource
) -> dg.Output[pd.DataFrame]:
    """Which platform releases and PHP versions our generated plugins really work on: one cell per
    platform x platform version x PHP version 7.4 ... 8.5. Every client's plugin is rendered, linted
    and contract-tested on each PHP version its template declares (real PHP, compiled to WebAssembly),
    and the platform-API checks run for the platform versions that changed an API. Green cells are
    what support can promise merchants; a cell that turns red overnight fails the regression check."""
    paths = workspace.paths
    booted_before = Counter(BOOTS)
    run = compat.run_matrix(paths.fleet(), paths.templates_dir, php.runtimes)
    boots = BOOTS - booted_before
    frame = run.frame
    png = compat.heatmap_png(frame, f"Compatibility matrix ({len(run.plugins)} plugins)")
    picture = paths.data_dir / "compat" / "heatmaps" / f"{context.run.run_id}.png"
    picture.parent.mkdir(parents=True, exist_ok=True)
    picture.write_bytes(png)
    failing = compat.failing_cells(frame)
    for cell in failing:
        context.log.warning(f"failing cell: {cell}")
    metadata: dict[str, Any] = {
        "cells": cells_table(frame),
        "heatmap": dg.MetadataValue.md(f"![compatibility matrix]({compat.png_data_uri(png)})"),
        "heatmap_path": dg.MetadataValue.path(str(picture)),
        "summary": dg.MetadataValue.json(compat.summary(frame)),
        "failing_cells": dg.MetadataValue.md("\n".join(f"- {c}" for c in failing) or "none"),
        "plugins": dg.MetadataValue.json(run.plugins),
        "skipped_platforms": dg.MetadataValue.json(run.skipped_platforms),
        "php_runtime_boots": dg.MetadataValue.json(dict(sorted(boots.items()))),
        "plugin_php_runs": run.plugin_runs,
        "seconds": round(run.seconds, 2),
        "dagster/row_count": len(frame),
    }
    return dg.Output(frame, metadata=metadata)
