"""Scratch partitions of per-rank tables (a rank's collective calls, its step split): written by the worker that
converted the rank, read back by the parent's cross-rank stages, deleted with their folder.

They are Arrow IPC files (`<folder>/rank=R/part-I.arrow`): the table exactly as the worker made it (types and
pandas metadata kept), with no encoding or compression to undo. A rank's calls are written in ~0.5 ms against
~1.1 ms as Parquet, and the parent opens each partition two or three times (scan, narrow table, finishing):
~0.1 ms an open against ~0.4. Parquet partitions (`part-I.parquet`, as earlier versions wrote) are read too.
"""

from __future__ import annotations

import itertools
import re
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
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


class PartList:
    """Partitions (in input order) with each one's rank, the position of its first row in a table gathered from
    them, and its columns: ~0.1 KB a partition (rank, offset and schema in arrays, the file's name as text, one
    list of names per distinct schema), where a tuple holding a Path per partition kept ~0.6 KB (the Path's
    cached parts) through a whole cross-rank stage: memory that grows with ranks. Iterating gives
    (rank, path, offset, columns) as the earlier list of tuples held them."""

    def __init__(self) -> None:
        self.folder: Path | None = None  # the partitions' folder (`<folder>/rank=R/<name>`)
        self._rank = array("q")
        self._offset = array("q")
        self._schema = array("i")
        self._names: list[str] = []  # the file's name, or its whole path where it is not `<folder>/rank=R/...`
        self.schemas: list[list[str]] = []  # distinct column lists, in order of first appearance
        self._schema_ids: dict[tuple[str, ...], int] = {}

    def add(self, rank: int, path: Path, offset: int, columns: Sequence[str]) -> list[str]:
        """Append a partition; returns its columns as the shared list of names of its schema."""
        path = Path(path)
        if self.folder is None:
            self.folder = path.parent.parent
        inside = path.parent.parent == self.folder and path.parent.name == f"rank={rank}"
        key = tuple(columns)
        if key not in self._schema_ids:
            self._schema_ids[key] = len(self.schemas)
            self.schemas.append(list(columns))
        self._rank.append(rank)
        self._offset.append(offset)
        self._schema.append(self._schema_ids[key])
        self._names.append(path.name if inside else str(path))
        return self.schemas[self._schema_ids[key]]

    def __len__(self) -> int:
        return len(self._rank)

    def path(self, i: int) -> Path:
        """The file of partition i."""
        assert self.folder is not None
        return self.folder / f"rank={self._rank[i]}" / self._names[i]  # a whole path replaces the folder

    def offset(self, i: int) -> int:
        return self._offset[i]

    def columns(self, i: int) -> list[str]:
        return self.schemas[self._schema[i]]

    def __iter__(self) -> Iterator[tuple[int, Path, int, list[str]]]:
        for i in range(len(self)):
            yield self._rank[i], self.path(i), self._offset[i], self.columns(i)

    def by_rank(self) -> Iterator[tuple[int, list[int]]]:
        """Each rank (ascending) with the positions of its partitions (input order)."""
        ranks = np.frombuffer(self._rank, dtype=np.int64) if len(self) else np.zeros(0, dtype=np.int64)
        order = np.argsort(ranks, kind="stable")
        bounds = [0, *(np.flatnonzero(np.diff(ranks[order])) + 1).tolist(), len(order)] if len(order) else [0]
        for lo, hi in itertools.pairwise(bounds):  # one rank's slice at a time (np.split makes them all at once)
            yield int(ranks[order[lo]]), order[lo:hi].tolist()

    def all_columns(self) -> dict[str, None]:
        """Every column any partition has, in order of first appearance."""
        names: dict[str, None] = {}
        for columns in self.schemas:
            names.update(dict.fromkeys(columns))
        return names
