"""What a damaged file can slip past Parquet's own checks: dictionary codes outside their dictionary, row references
outside their table, and pandas metadata that is not JSON. Checked on every table a command reads from a dataset,
using the arrays' buffers (numpy only: no pandas or pyarrow.compute, which `info` does not load)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tracekit.errors import TraceError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

ROW_REFERENCES = ("parent", "launcher", "launch", "flow_peer")  # tracekit.table.ROW_COLUMNS (no numpy import here)


def checked(table: pa.Table, path: str | Path) -> pa.Table:
    """`table` (read from the dataset file `path`) as it is; a TraceError naming the file, column and row where a
    dictionary code is outside its dictionary or an events row reference (parent, launch, ...) outside the file, and
    the file where its pandas metadata is not JSON."""
    import pyarrow as pa

    try:  # the footer's pandas metadata is JSON that to_pandas parses later (stdlib json: a ValueError there)
        table.schema.pandas_metadata  # noqa: B018
    except ValueError as exc:
        raise TraceError(path, f"damaged dataset table: its pandas metadata is not valid JSON ({exc}); convert the "
                               "traces again") from None
    for name in table.column_names:
        column = table[name]
        if pa.types.is_dictionary(column.type):
            _check(column, path, name, lambda chunk: (0, len(chunk.dictionary)), "dictionary code",
                   lambda chunk: chunk.indices)
        elif name in ROW_REFERENCES and pa.types.is_integer(column.type) and _is_events(Path(path)):
            _check(column, path, name, lambda _chunk: (-1, table.num_rows), "row reference", lambda chunk: chunk)
    return table


def _is_events(path: Path) -> bool:
    """Is `path` a file of the events table (`events.parquet`, `events/rank=N/part-I.parquet`), whose row
    references point into itself? (Other tables' `launch`/`parent` name events rows.)"""
    in_partition = path.parent.name.startswith("rank=") and path.parent.parent.name == "events"
    return path.name == "events.parquet" or in_partition


def _check(column: pa.ChunkedArray, path: str | Path, name: str, bounds, what: str, values_of) -> None:
    import numpy as np

    start = 0
    for chunk in column.chunks:
        if len(chunk):
            low, high = bounds(chunk)
            values = _integers(values_of(chunk))
            bad = (values < low) | (values >= high)
            if chunk.null_count:
                bad &= _valid(chunk)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise TraceError(path, f"damaged dataset table: column {name!r}, row {start + row}: {what} "
                                       f"{int(values[row])} outside {low}..{high - 1}; convert the traces again")
        start += len(chunk)


def _integers(array: pa.Array) -> np.ndarray:
    import numpy as np
    import pyarrow as pa

    kind = "i" if pa.types.is_signed_integer(array.type) else "u"
    dtype = np.dtype(f"<{kind}{array.type.bit_width // 8}")
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=array.offset + len(array))[array.offset:]


def _valid(array: pa.Array) -> np.ndarray:
    import numpy as np

    bits = np.frombuffer(array.buffers()[0], dtype=np.uint8)
    return np.unpackbits(bits, bitorder="little")[array.offset:array.offset + len(array)].astype(bool)
