"""collectives.parquet: one row per collective call per rank (member lists in group_members.parquet)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def collectives_arrow(frame: pd.DataFrame) -> pa.Table:
    """The collectives table as arrow: group_ranks as list<int64>, nullable ints, floats and bools."""
    from tracekit.table import column_array
    from tracekit.writers.parquet import frame_to_arrow

    done: dict[int, list[int]] = {}  # a group's member list is one object shared by its calls: converted once
    members = np.empty(len(frame), dtype=object)
    for i, r in enumerate(column_array(frame, "group_ranks")):
        if r is not None:
            if id(r) not in done:
                done[id(r)] = list(map(int, r))
            members[i] = done[id(r)]
    if not len(frame):  # pandas makes an empty list a float64 column: a `double` group_ranks, as always written
        return frame_to_arrow(frame.assign(group_ranks=[]))
    # what from_pandas of frame.assign(group_ranks=members) gives (preserve_index=False)
    return frame_to_arrow(frame, replace={"group_ranks": members})


def write_collectives(frame: pd.DataFrame, path: Path) -> int:
    """Write the table (zstd), its member lists once each in group_members.parquet beside it
    (tracekit.group_members); returns its row count."""
    from tracekit.group_members import LIST, MemberIds, members_path, store_members, write_members

    registry = MemberIds()
    table = collectives_arrow(frame)
    if LIST in table.column_names and pa.types.is_list(table.schema.field(LIST).type):
        table = store_members(table, registry)  # a column with no lists (null, or `double` when empty) as it is
    pq.write_table(table, path, compression="zstd")
    write_members(registry, members_path(path))
    return table.num_rows
