"""Storage of the compatibility matrix: one parquet file per materialization under PSP_DATA_DIR."""

from pathlib import Path

import dagster as dg
import pandas as pd

from psp_assets.core.compat import load_matrix, save_matrix
from psp_assets.core.workspace import Paths

KEEP = 60  # nights of history kept on disk; the asset check compares with the previous one


class MatrixFrameIOManager(dg.ConfigurableIOManager):
    """Stores each materialization's DataFrame as `<base>/<asset>/<run id>.parquet` and `latest.parquet`,
    and records the file in the materialization's metadata (`path`), so any night's matrix can be read
    back by a person or by the regression check. Base: `base_dir`, else PSP_DATA_DIR/compat."""

    base_dir: str = ""

    def _dir(self, context: dg.OutputContext | dg.InputContext) -> Path:
        base = Path(self.base_dir) if self.base_dir else Paths.from_env().data_dir / "compat"
        return base.joinpath(*context.asset_key.path)

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        directory = self._dir(context)
        path = save_matrix(obj, directory / f"{context.run_id}.parquet")
        save_matrix(obj, directory / "latest.parquet")
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})
        history = sorted((p for p in directory.glob("*.parquet") if p.name != "latest.parquet"), key=_mtime)
        for old in history[:-KEEP]:
            old.unlink(missing_ok=True)

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        path = self._dir(context) / "latest.parquet"
        if not path.is_file():
            raise dg.Failure(f"{'/'.join(context.asset_key.path)} has not been materialized yet ({path})")
        return load_matrix(path)


def _mtime(path: Path) -> float:
    return path.stat().st_mtime
