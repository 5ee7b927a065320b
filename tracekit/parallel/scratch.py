"""Scratch partitions of per-rank tables (a rank's collective calls, its step split): written by the worker that
converted the rank, read back by the parent's cross-rank stages, deleted with their folder.

They are Arrow IPC files (`<folder>/rank=R/part-I.arrow`): the table exactly as the worker made it (types and
pandas metadata kept), with no encoding or compression to undo. A rank's calls are written in ~0.5 ms against
~1.1 ms as Parquet, and the parent opens each partition two or three times (scan, narrow table, finishing):
~0.1 ms an open against ~0.4. Parquet partitions (`part-I.parquet`, as earlier versions wrote) are read too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SUFFIX = ".arrow"
_PART = re.compile(r"part-(\d+)\.(?:arrow|parquet)$")
_MAP_BYTES = 1 << 20  # larger files are memory-mapped (only the columns read are touched), smaller ones read whole


def part_path(folder: Path, rank: int, index: int, suffix: str = SUFFIX) -> Path:
    """`<folder>/rank=<rank>/part-<index>.arrow` (Hive layout, as the dataset's tables)."""
    return Path(folder) / f"rank={rank}" / f"part-{index:05d}{suffix}"


def write_part(frame: pd.DataFrame, folder: Path, rank: int, index: int) -> int:
    """Write one input's table (without the rank column: the folder holds it); returns the row count. The
    table is what from_pandas gives of the frame without its index (`frame_to_arrow`)."""
    from tracekit.writers.parquet import frame_to_arrow

    return write_table(frame_to_arrow(frame, [c for c in frame.columns if c != "rank"]),
                       part_path(folder, rank, index))


def write_table(table: pa.Table, path: Path) -> int:
    """An arrow table as an uncompressed Arrow IPC file; returns its rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return table.num_rows


def list_parts(folder: Path) -> list[tuple[int, int, Path]]:
    """(input index, rank, file) of every partition, in input order."""
    out = []
    for path in Path(folder).glob("rank=*/part-*"):
        m = _PART.search(path.name)
        if m is None:
            continue
        out.append((int(m.group(1)), int(path.parent.name.removeprefix("rank=")), path))
    return sorted(out)


class Part:
    """One scratch partition opened for reading: its schema, row count and columns."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._parquet: pq.ParquetFile | None = None
        self._table: pa.Table | None = None
        if self.path.suffix == ".parquet":
            self._parquet = pq.ParquetFile(self.path)
            self.schema: pa.Schema = self._parquet.schema_arrow
            self.num_rows: int = self._parquet.metadata.num_rows
            return
        source = (pa.memory_map(str(self.path)) if self.path.stat().st_size > _MAP_BYTES
                  else pa.py_buffer(self.path.read_bytes()))
        self._table = pa.ipc.open_file(source).read_all()  # zero-copy views of the file's buffers
        self.schema = self._table.schema
        self.num_rows = self._table.num_rows

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        """The partition's table, or these columns of it (in this order), each column one chunk."""
        if self._parquet is not None:
            return self._parquet.read(columns=columns, use_threads=False)  # small files: no thread pool
        assert self._table is not None
        table = self._table if columns is None else self._table.select(list(columns))
        return table if all(c.num_chunks == 1 for c in table.columns) else table.combine_chunks()
