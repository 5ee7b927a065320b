"""A small table's columns (numpy arrays and lists, as a stage makes them) to Arrow without a pandas frame: the same
table, schema and pandas metadata that `frame_to_arrow(pd.DataFrame(columns))` gives, checked once per process for
each shape of columns.

A DataFrame of a rank's module table (a few dozen rows) costs ~0.7 ms, most of it pandas inferring and wrapping its
text columns, and its conversion to Arrow ~0.3 ms more; the direct arrays cost ~0.1 ms. Each column is classified
(numeric numpy array, text with missing values, Python ints, all missing, a Series on the
default index, a pandas extension array other than a Categorical); any other column, or a table of no rows,
goes the pandas way. The first table of each shape (column names and classes) in a process is made both ways and
compared (values, types and metadata); the direct way is used for that shape only if they are equal, and its pandas
metadata is the one the frame gave."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa

from tracekit.writers.parquet import _to_arrow, frame_to_arrow

# per process: shape -> the pandas metadata of that shape's tables (None: the direct way differed, pandas is used)
_CHECKED: dict[tuple, dict[bytes, bytes] | None] = {}
_CHECKED_KEPT = 64


def _column(values: object) -> tuple[pa.Array, str] | None:
    """(Arrow array, class) of one column as from_pandas would convert the frame's column, or None where the class
    is not one handled here."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iufb":
        return _to_arrow(values), values.dtype.str
    if isinstance(values, pd.Series):  # the frame takes it as it is where its index is the frame's (0..n-1)
        index = values.index
        if not (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1):
            return None
        return _to_arrow(values.array), f"series {values.dtype}"
    if isinstance(values, pd.api.extensions.ExtensionArray) and not isinstance(values, pd.Categorical):
        return _to_arrow(values), f"array {values.dtype}"  # (a nullable Int64, ...: the frame keeps it as it is)
    if not isinstance(values, np.ndarray | list):
        return None
    if isinstance(values, np.ndarray) and values.dtype != object:
        return None
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if inferred == "string":  # pandas: a str column (missing: None or NaN -> null), large_string in Arrow
        return pa.array(values, type=pa.large_string(), from_pandas=True), "string"
    if inferred == "empty" and len(values):  # every value missing: an object column, null in Arrow
        if any(v is not None for v in values):
            return None
        return pa.nulls(len(values)), "empty"
    if inferred == "integer" and isinstance(values, list):
        ints = np.array(values)
        if ints.dtype != np.int64:
            return None
        return _to_arrow(ints), "int64"
    return None


def columns_to_arrow(columns: dict[str, object], frame_of: Callable[[], pd.DataFrame]) -> pa.Table:
    """`frame_to_arrow(frame_of())`, where `frame_of()` is `pd.DataFrame(columns)` (or what a stage makes of it), made
    straight from the columns where this process has checked that both ways agree for tables of this shape."""
    names = list(columns)
    made = [_column(values) for values in columns.values()]
    if not names or any(m is None for m in made) or not len(made[0][0]):
        return frame_to_arrow(frame_of())
    arrays = [m[0] for m in made]
    key = (tuple(names), tuple(m[1] for m in made))
    if key in _CHECKED:
        metadata = _CHECKED[key]
        if metadata is None:
            return frame_to_arrow(frame_of())
        return pa.Table.from_arrays(arrays, names=names, metadata=metadata)
    want = frame_to_arrow(frame_of())
    metadata = want.schema.metadata
    try:
        got = pa.Table.from_arrays(arrays, names=names, metadata=metadata)
        same = got.schema.equals(want.schema, check_metadata=True) and got.equals(want)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        same = False
    if len(_CHECKED) >= _CHECKED_KEPT:
        _CHECKED.pop(next(iter(_CHECKED)))
    _CHECKED[key] = metadata if same else None
    return want
