"""Id and row-reference columns held as int32 in memory where every value fits; written as int64.

A large trace's table held thirteen int64 columns of link ids (correlation, External id, sequence number, forward
thread, python ids, stream, device), input positions and row references (parent, launch, launcher, module span):
104 B a row, ~0.4x the decompressed JSON. Their values nearly always fit in int32; where one does not, that column
stays int64. Only tables of at least NARROW_ROWS rows are narrowed: a rank of a many-rank job is small, and a column
set costs ~20 us a column there. Every stage reads these columns with either width (a dataset's columns are int64); the
writers widen them back (`wide`), so the outputs' schemas do not depend on the width held.
"""

from __future__ import annotations

import numpy as np

ID_COLUMNS = ("correlation", "external_id", "sequence", "fwd_thread", "python_id", "python_parent", "stream",
              "device", "input_index")
ROW_COLUMNS = ("parent", "launch", "launcher", "module")
NARROW_ROWS = 1 << 16
_INT32 = np.iinfo(np.int32)


def narrowed(values: np.ndarray) -> np.ndarray:
    """`values` (an int64 array) as int32 where every value fits, else as it is."""
    if values.dtype != np.int64 or not len(values):
        return values
    if int(values.min()) < _INT32.min or int(values.max()) > _INT32.max:
        return values
    return values.astype(np.int32)


def narrow_ids(frame) -> None:
    """Hold the link-id columns of `frame` (a large table's, read from one input) as int32 where they fit, one column
    at a time (the int64 column is let go as its int32 copy replaces it)."""
    if len(frame) < NARROW_ROWS:
        return
    for name in ID_COLUMNS:
        if name in frame:
            values = narrowed(frame[name].to_numpy())
            if values.dtype != np.int64:
                frame[name] = values
            del values


def narrow_rows(values: np.ndarray) -> np.ndarray:
    """A row-reference column (`process`'s parent, launch, launcher, module) as held: int32 on a large table."""
    return narrowed(values) if len(values) >= NARROW_ROWS else values


def wide(values):
    """An integer column as written: int64 (a narrowed column widened back); other columns as they are."""
    dtype = getattr(values, "dtype", None)
    if isinstance(dtype, np.dtype) and dtype.kind == "i" and dtype.itemsize < 8:
        return values.astype(np.int64)
    return values
