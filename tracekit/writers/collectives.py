"""collectives.parquet: one row per collective call per rank."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def collectives_arrow(frame: pd.DataFrame) -> pa.Table:
    """The collectives table as arrow: group_ranks as list<int64>, nullable ints, floats and bools."""
    frame = frame.assign(group_ranks=[list(map(int, r)) if r is not None else None for r in frame["group_ranks"]])
    return pa.Table.from_pandas(frame, preserve_index=False)


def write_collectives(frame: pd.DataFrame, path: Path) -> int:
    """Write the table (zstd); returns its row count."""
    table = collectives_arrow(frame)
    pq.write_table(table, path, compression="zstd")
    return table.num_rows
