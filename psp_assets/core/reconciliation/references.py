"""Order references as both sides of a reconciliation see them: one normalization (trimmed, blank as null)
and one matching key (case-folded), shared by the reconciliation and the store order sources."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT or value is pd.NA


def text_values(series: pd.Series) -> pa.Array:
    """The column as trimmed text, blanks as nulls (pyarrow; whatever the column's dtype)."""
    try:
        arr = pa.array(series, from_pandas=True)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        arr = pa.array(series.map(lambda v: None if is_missing(v) else str(v)), type=pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.large_string())
    arr = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, arr.type), arr)


def normalize_refs(values: pd.Series | pa.Array) -> pa.Array:
    """Order references as both sides are compared and shown: surrounding blanks trimmed, blank as null.
    Matching also ignores case (`reference_keys`); these two are the only places a reference is changed."""
    return text_values(values if isinstance(values, pd.Series) else pd.Series(values.to_pandas(), dtype=object))


def reference_keys(values: pd.Series | pa.Array) -> pa.Array:
    """What references are matched by: normalized, then case-folded (stores and exports change case)."""
    return pc.utf8_lower(normalize_refs(values))
