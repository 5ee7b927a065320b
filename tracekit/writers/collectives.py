"""collectives.parquet: one row per collective call per rank."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def collectives_arrow(frame: pd.DataFrame) -> pa.Table:
    """The collectives table as arrow: group_ranks as list<int64>, nullable ints, floats and bools."""
    from tracekit.writers.parquet import frame_to_arrow

    done: dict[int, list[int]] = {}  # a group's member list is one object shared by its calls: converted once
    members = []
    for r in frame["group_ranks"].tolist():
        if r is None:
            members.append(None)
            continue
        if id(r) not in done:
            done[id(r)] = list(map(int, r))
        members.append(done[id(r)])
    return frame_to_arrow(frame.assign(group_ranks=members))  # what from_pandas gives (preserve_index=False)


def write_collectives(frame: pd.DataFrame, path: Path) -> int:
    """Write the table (zstd); returns its row count."""
    table = collectives_arrow(frame)
    pq.write_table(table, path, compression="zstd")
    return table.num_rows
