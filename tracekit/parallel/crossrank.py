"""The cross-rank collectives stage over rank-partitioned scratch files: the per-rank call tables that workers
wrote (`<folder>/rank=R/part-I.arrow`, one file per input: tracekit.parallel.scratch) become collectives.parquet
without holding every rank's calls in memory.

1. Group inference, parallel dimensions, HCCL group members and bandwidth (collectives.label_calls) run on a
   NARROW table of all ranks' calls: the matching, size and group columns only (no names, module paths or
   provenance texts). A group's member list is one shared object however many calls name it.
2. Each rank is then finished alone: its full partition read back, the labels of its rows put in, sorted by
   start, and appended to collectives.parquet (ranks gathered into row groups of about BATCH_BYTES), each
   distinct member list stored once in group_members.parquet (tracekit.group_members).

Rows, order and types are those of collectives.build_collectives over the same calls held in memory.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tracekit.group_members import (
    ID,
    MemberIds,
    checked_ids,
    members_path,
    read_member_lists,
    store_members,
    without_ids,
    write_members,
)
from tracekit.memory import every, release_freed_memory
from tracekit.parallel.collectives import (
    COLUMNS,
    build_collectives,
    label_calls,
    label_with_groups,
    ordered,
    ordered_columns,
)
from tracekit.parallel.scratch import (  # part_path, write_part: re-exported (the stage's partitions)
    Part,
    PartList,
    list_parts,
    part_path,  # noqa: F401
    write_part,  # noqa: F401
    write_table,
)
from tracekit.table import column_array

# Columns no cross-rank stage reads: left out of the narrow table, taken from each rank's partition at the end.
WIDE_ONLY = ("step", "name", "dtype", "bytes_from", "exposed_ns", "call_ns", "module_path", "module_from", "call_row",
             "hccl_wait_ns", "hccl_transit_bytes", "hccl_bandwidth_GBps")
BATCH_BYTES = 1 << 20  # ranks' finished rows are gathered up to this size, then written as one row group
# (the batch is held twice while written and once more while read back and cast: a bound on the stage's peak)


def _pandas(table: pa.Table, destruct: bool = False) -> pd.DataFrame:
    """The table as pandas, text columns (`string`) as objects with None. `destruct`: each column's arrow buffers
    are freed as it is converted (the table must not be used after; the caller holds no other reference)."""
    schema = table.schema
    frame = (table.to_pandas(split_blocks=True, self_destruct=True) if destruct else table.to_pandas())
    del table
    for field in schema:  # text written from object columns (`string`) back to objects with None
        if field.type == pa.string():
            col = frame[field.name]
            frame[field.name] = col.astype(object).where(col.notna(), None)
    return frame


def _read(file: Part, rank: int, columns: Sequence[str] | None = None) -> pd.DataFrame:
    frame = _pandas(file.read(columns))
    frame.insert(0, "rank", rank)
    return frame


def narrow_calls(parts: Sequence[tuple[int, int, Path]]) -> tuple[pd.DataFrame, PartList]:
    """The calls of every (non-empty) partition, in input order, without the WIDE_ONLY columns (gathered as
    arrow, made pandas once); and each used partition with the position of its first row in that table."""
    tables: list[pa.Table] = []  # the calls gathered so far, a few large tables
    pending: list[pa.Table] = []  # the last partitions read, merged into one table every GATHER of them
    used, offset = PartList(), 0
    for _index, rank, path in parts:
        file = Part(path)
        n = file.num_rows
        if not n:
            continue  # as build_collectives: empty tables add no columns
        names = used.add(rank, path, offset, file.schema.names)
        table = file.read([c for c in names if c not in WIDE_ONLY])
        pending.append(table.add_column(0, "rank", pa.array(np.full(n, rank, dtype=np.int64))))
        offset += n
        if len(pending) == GATHER:
            tables.append(_concat(pending))
            pending = []
            release_freed_memory()  # the partitions' small reads, freed (heap fragments otherwise stay resident)
    if pending:
        tables.append(_concat(pending))
        del pending
    if not tables:
        return pd.DataFrame(), used
    table = _concat(tables)
    tables.clear()  # the gathered tables, before the conversion: one copy of the calls in arrow at a time
    return _pandas(table, destruct=True), used


GATHER = 64  # partitions per merged table (each small arrow table held costs ~20 KB: 512 of them, +13 MB RSS)


def _concat(tables: list[pa.Table]) -> pa.Table:
    """The tables as one table of one chunk per column (columns unified as concat_tables does)."""
    return (pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]).combine_chunks()


def _finished_ranks(labelled: pd.DataFrame, used: PartList) -> Iterator[pd.DataFrame]:
    """Each rank's finished rows (rank order): its partitions read whole, with the labelled columns put in."""
    names = used.all_columns()  # every column any partition has (an HCCL column may be missing on some ranks)
    for rank, positions in used.by_rank():
        yield _finished_frame(labelled, rank, [(used.path(i), used.offset(i)) for i in positions], names)


# Wide-column types whose pandas round trip (`_pandas`, then from_pandas) gives them back as read: such columns go
# from the partition into the finished table as they are.
_AS_READ = (pa.int64(), pa.int32(), pa.float64(), pa.string(), pa.large_string(), pa.null(), pa.bool_())


def _finished_tables(labelled: pd.DataFrame, used: PartList, registry: MemberIds | None = None
                     ) -> Iterator[pa.Table]:
    """Each rank's finished rows (rank order) as the arrow table `collectives_arrow` makes of `_finished_ranks`'
    frame, built without a pandas frame per rank (~2.5 ms a rank less): the labelled columns' arrays sliced and
    converted as from_pandas converts them, the wide columns as read from the partition. The first rank, a rank
    with several partitions and a partition with a wide column of another type go the pandas way (the first
    one's pandas metadata is the table's). With `registry`, the member lists go in as their ids
    (tracekit.group_members.store_members), never made arrow lists."""
    from tracekit.writers.collectives import collectives_arrow
    from tracekit.writers.parquet import _to_arrow

    names = used.all_columns()
    label_names = [col for col in labelled.columns if col not in WIDE_ONLY]
    arrays = {col: column_array(labelled, col) for col in label_names}
    chunks = _LabelChunks(arrays, len(labelled))
    members: dict[int, list[int]] = {}  # a member list shared by many calls: converted once
    member_ids: dict[int, int] = {}  # the same, to its id (the lists live in `arrays` throughout)
    first = True
    for rank, positions in used.by_rank():
        parts = [(used.path(i), used.offset(i)) for i in positions]
        wide = None
        if not first and len(parts) == 1:
            file = Part(parts[0][0])
            wide = file.read([c for c in file.schema.names if c in WIDE_ONLY])
            if not _read_as_is(wide, file.schema.pandas_metadata):
                wide = None
        if wide is None:
            yield collectives_arrow(_finished_frame(labelled, rank, parts, names))
            first = False
            continue
        offset, n = parts[0][1], wide.num_rows
        columns: dict[str, Any] = chunks.rows(offset, n)
        for col in label_names:
            if col in columns:
                continue
            values = arrays[col][offset:offset + n]
            if col == "group_ranks" and registry is not None:
                columns[col] = registry.ids_of_lists(values, member_ids)
                continue
            if col == "group_ranks":
                values = _member_lists(values, members)
            columns[col] = _to_arrow(values)
        for col in wide.column_names:
            columns[col] = wide.column(col).combine_chunks()
        for col in names:
            if col not in columns:
                columns[col] = pa.nulls(n)
        order = ordered_columns(columns)
        stored = [ID if c == "group_ranks" and registry is not None else c for c in order]
        table = pa.Table.from_arrays([columns[c] for c in order], names=stored)
        yield _table_by_start(table, arrays["start_ns"][offset:offset + n])


class _LabelChunks:
    """The labelled table's columns whose arrow type follows from their dtype alone (numbers, nullable numbers,
    booleans, `str`: all but object columns, whose type from_pandas infers from the values), converted to arrow
    CHUNK_ROWS rows at a time and sliced per rank: the same arrays as converting each rank's slice, without a
    pandas slice and a conversion per column and rank (~0.3 ms a rank). Object columns are left to the caller."""

    CHUNK_ROWS = 8_192  # bounded: a chunk of every call at once was a second copy of the labels (~0.1 KB a call)

    def __init__(self, arrays: dict[str, Any], total: int):
        self.arrays = {col: a for col, a in arrays.items() if not (isinstance(a, np.ndarray) and a.dtype == object)}
        self.total = total
        self.lo = self.hi = 0
        self.chunk: dict[str, pa.Array | pa.ChunkedArray] = {}

    def rows(self, offset: int, n: int) -> dict[str, Any]:
        """The columns' arrow arrays for rows [offset, offset + n)."""
        from tracekit.writers.parquet import _to_arrow

        if not (self.lo <= offset and offset + n <= self.hi):
            self.lo, self.hi = offset, min(self.total, offset + max(n, self.CHUNK_ROWS))
            self.chunk = {col: _to_arrow(a[self.lo:self.hi]) for col, a in self.arrays.items()}
        return {col: a.slice(offset - self.lo, n) for col, a in self.chunk.items()}


def _read_as_is(wide: pa.Table, pandas_meta: dict[str, Any] | None) -> bool:
    """Whether every column comes back from the pandas round trip as read: one of the `_AS_READ` types, and an
    integer column with nulls only where pandas made it a nullable integer (elsewhere it comes back as float)."""
    dtypes = {c.get("name"): c.get("numpy_type") for c in (pandas_meta or {}).get("columns", [])}
    for field, col in zip(wide.schema, wide.columns):
        if field.type not in _AS_READ:
            return False
        if pa.types.is_integer(field.type) and col.null_count and dtypes.get(field.name) not in ("Int64", "Int32"):
            return False
    return True


def _member_lists(values: np.ndarray, done: dict[int, list[int]]) -> np.ndarray:
    """The member lists as collectives_arrow converts them (ints; None kept), each distinct list object once."""
    out = np.empty(len(values), dtype=object)
    for i, r in enumerate(values):
        if r is not None:
            if id(r) not in done:
                done[id(r)] = list(map(int, r))
            out[i] = done[id(r)]
    return out


def _table_by_start(table: pa.Table, start: Any) -> pa.Table:
    """The rows sorted by start (stable), as `_by_start` sorts the frame; as they are when already in order."""
    if isinstance(start, np.ndarray) and start.dtype.kind in "iu":
        if len(start) < 2 or bool((start[1:] >= start[:-1]).all()):
            return table
        return table.take(np.argsort(start, kind="stable"))
    series = pd.Series(start)
    if series.is_monotonic_increasing:
        return table
    return table.take(np.asarray(series.sort_values(kind="stable").index))


def _finished_frame(labelled: pd.DataFrame, rank: int, parts: list[tuple[Path, int]], names: dict[str, None]
                    ) -> pd.DataFrame:
    """One rank's finished rows as a frame (`_finished_ranks`)."""
    wide, labels = [], []
    for path, offset in parts:  # only the WIDE_ONLY columns: the others are the labelled table's
        file = Part(path)
        wide.append(_pandas(file.read([c for c in file.schema.names if c in WIDE_ONLY])))
        labels.append(labelled.iloc[offset:offset + file.num_rows])
    part = pd.concat(wide, ignore_index=True) if len(wide) > 1 else wide[0]
    label = pd.concat(labels) if len(labels) > 1 else labels[0]
    columns = {col: column_array(label, col) for col in label.columns if col not in WIDE_ONLY}
    columns.update((col, column_array(part, col)) for col in part.columns)
    for col in names:
        if col not in columns:
            columns[col] = np.full(len(label), None, dtype=object)
    return _by_start(_frame_of(columns, ordered_columns(columns)))


def _frame_of(columns: dict[str, Any], names: list[str]) -> pd.DataFrame:
    """A frame of the arrays (numpy or pandas extension arrays), each column keeping its array's dtype (an object
    array of text stays object). `pd.DataFrame(dict of Series)` aligns every column's index and
    `pd.DataFrame(dict of arrays)` infers `str` for object text; pandas' own `_from_arrays` does neither
    (~0.1 ms for a rank's ~30 columns, against ~0.9 ms)."""
    arrays = [columns[name] for name in names]
    n = len(arrays[0]) if arrays else 0
    make = getattr(pd.DataFrame, "_from_arrays", None)
    if make is None:  # a pandas without it: Series that keep their dtypes
        return pd.DataFrame({name: pd.Series(a, dtype=a.dtype, copy=False) for name, a in zip(names, arrays)})
    return make(arrays, columns=pd.Index(names), index=pd.RangeIndex(n), verify_integrity=False)


def _by_start(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows sorted by start (stable); as they are when already in order (most ranks: no copy)."""
    if frame["start_ns"].is_monotonic_increasing:
        return frame
    return frame.sort_values("start_ns", kind="stable", ignore_index=True)


def scan_parts(parts: Sequence[tuple[int, int, Path]]) -> tuple[PartList, list[tuple[Any, Any, Any]], bool]:
    """One pass over the partitions reading only the group columns: each non-empty partition (as narrow_calls
    lists them, with offset 0), the distinct (group, group_desc, group_ranks) that calls state in their args
    (in call order, each once; member lists shared), and whether EVERY call states its group in its args (then
    no call needs the cross-rank inference, and no HCCL group needs matching: each rank is labelled alone). The
    scan stops at the first call that does not (the partitions listed so far then; the stated groups unused)."""
    used = PartList()
    seen: dict[tuple[Any, Any, int], tuple[Any, Any, Any]] = {}
    cache: dict[bytes, list[int]] = {}
    all_stated = True
    for _index, rank, path in parts:
        file = Part(path)
        if not file.num_rows:
            continue
        names = used.add(rank, path, 0, file.schema.names)
        if not {"group", "group_desc", "group_ranks", "group_from"} <= set(names):
            all_stated = False
            break
        table = file.read(["group", "group_desc", "group_ranks", "group_from"])
        froms = table["group_from"].to_pylist()
        if any(f != "event args" for f in froms):
            all_stated = False
            break
        ranks_col = table["group_ranks"]
        members = (shared_lists(ranks_col, cache) if pa.types.is_list(ranks_col.type)
                   else [None] * table.num_rows)
        for name, desc, ranks in zip(table["group"].to_pylist(), table["group_desc"].to_pylist(), members):
            seen.setdefault((name, desc, id(ranks)), (name, desc, ranks))
    return used, list(seen.values()), all_stated


def _ranks_alone(used: PartList, groups: dict) -> Iterator[pd.DataFrame]:
    """Each rank's finished rows (rank order) where every call states its group: its partitions read whole and
    labelled alone (collectives.label_with_groups), nothing held across ranks but the groups."""
    names = used.all_columns()  # every column any partition has (an HCCL column may be missing on some ranks)
    for rank, positions in used.by_rank():
        wide = [_read(Part(used.path(i)), rank) for i in positions]
        frame = label_with_groups(pd.concat(wide, ignore_index=True) if len(wide) > 1 else wide[0], groups)
        for col in names:
            if col not in frame:
                frame[col] = None
        yield ordered(frame).sort_values("start_ns", kind="stable", ignore_index=True)


def finished_ranks(folder: Path, distributed: list[dict[str, Any]]) -> Iterator[pd.DataFrame] | None:
    """Each rank's finished collectives rows, in rank order (None when there are no calls). Where every call
    states its group, ranks are labelled one at a time (memory: the groups and one rank); otherwise group
    inference and HCCL group matching need all ranks' calls at once: a narrow table of them is labelled first."""
    labelled = _labelled_parts(folder, distributed)
    if labelled is None:
        return None
    frame, used, groups = labelled
    return _ranks_alone(used, groups) if frame is None else _finished_ranks(frame, used)


def finished_tables(folder: Path, distributed: list[dict[str, Any]], registry: MemberIds | None = None
                    ) -> Iterator[pa.Table] | None:
    """`finished_ranks` as the arrow tables collectives.parquet is written from (`collectives_arrow` of each
    frame; where groups were inferred, built without the frames: `_finished_tables`)."""
    from tracekit.writers.collectives import collectives_arrow

    labelled = _labelled_parts(folder, distributed)
    if labelled is None:
        return None
    frame, used, groups = labelled
    if frame is None:
        return (collectives_arrow(rank) for rank in _ranks_alone(used, groups))
    return _finished_tables(frame, used, registry)


def _labelled_parts(folder: Path, distributed: list[dict[str, Any]]
                    ) -> tuple[pd.DataFrame | None, PartList, dict] | None:
    """The call partitions made ready to finish: (None, partitions, stated groups) where every call states its
    group, else (the labelled narrow table of all calls, partitions with their offsets, {}); None without calls."""
    from tracekit.parallel.groups import groups_from_stated

    parts = list_parts(folder)
    used, stated, all_stated = scan_parts(parts)
    if not used:
        return None
    if all_stated:
        return None, used, groups_from_stated(distributed, stated)
    del stated
    narrow, used = narrow_calls(parts)
    del parts  # a Path per partition: the compact list `used` names them from here on
    release_freed_memory()  # what reading the partitions freed, before the inference allocates
    labelled = label_calls(narrow, distributed)
    del narrow
    release_freed_memory()
    return labelled, used, {}


def write_collectives_from_parts(folder: Path, distributed: list[dict[str, Any]], out: Path) -> int:
    """collectives.parquet from the per-rank call partitions under `folder`; returns its row count."""
    from tracekit.writers.collectives import write_collectives

    registry = MemberIds()
    ranks = finished_tables(folder, distributed, registry)
    if ranks is None:
        return write_collectives(build_collectives([], distributed), out)
    scratch = Path(tempfile.mkdtemp(prefix=".collectives-", dir=out.parent))
    try:  # batches of ranks to scratch files first: the table's types are known only when every rank is seen
        batches, schemas = spill_batches(ranks, scratch, registry)
        del ranks
        release_freed_memory()  # the labelled table and the finished ranks' buffers, before the writer allocates
        rows = write_batches(batches, schemas, out, no_lists=not len(registry))
        write_members(registry, members_path(out))
        return rows
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def spill_batches(ranks: Iterator[pa.Table], scratch: Path, registry: MemberIds
                  ) -> tuple[list[Path], list[pa.Schema]]:
    """The finished ranks, their member lists replaced by ids (`registry` collects the lists), gathered into batches
    of about BATCH_BYTES, each written to `scratch` as uncompressed Arrow IPC (read back once); the batch files, and
    the batches' distinct schemas in order of first appearance."""
    batches: list[Path] = []
    schemas: list[pa.Schema] = []
    pending: list[pa.Table] = []

    def flush() -> None:
        table = pa.concat_tables(pending, promote_options="permissive") if len(pending) > 1 else pending[0]
        batches.append(scratch / f"{len(batches):06d}.arrow")
        write_table(table, batches[-1])
        if not any(table.schema.equals(known, check_metadata=True) for known in schemas):
            schemas.append(table.schema)  # each distinct schema once (its pandas metadata is ~KBs)
        pending.clear()

    size = 0
    for count, table in enumerate(ranks, 1):
        every(count)
        pending.append(store_members(table, registry))
        size += pending[-1].nbytes
        if len(pending) == GATHER:  # many small ranks (a few rows each, now that lists are ids): one table
            pending[:] = [_concat(pending)]  # each small table held costs ~20 KB of arrow overhead
        if size >= BATCH_BYTES:
            flush()
            size = 0
    if pending:
        flush()
    return batches, schemas


def write_batches(batches: Sequence[Path], schemas: Sequence[pa.Schema], out: Path, no_lists: bool = False) -> int:
    """collectives.parquet from the spilled batches, one row group per batch, every batch cast to the schema
    that unifies them all (`schemas`: the batches' distinct schemas, the first batch's first); `no_lists`: no call
    had a member list, so the all-null ids go back to the all-null `group_ranks` column. Returns the row count."""
    schema = pa.unify_schemas(list(schemas), promote_options="permissive").with_metadata(schemas[0].metadata)
    if no_lists:
        schema = without_ids(schema.empty_table()).schema
    rows = 0
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        for count, batch in enumerate(batches, 1):  # one row group per batch
            table = Part(batch).read()
            table = (without_ids(table) if no_lists else table).cast(schema)
            writer.write_table(table, row_group_size=max(1, table.num_rows))
            rows += table.num_rows
            del table
            every(count, 1)
    return rows


def shared_lists(column: pa.ChunkedArray | pa.Array,
                 cache: dict[bytes, list[int]] | None = None) -> list[list[int] | None]:
    """A list<int> column as Python lists, rows with equal lists sharing ONE list object: a group's member list
    (group_ranks) is stored on every call of the group, so memory would otherwise grow as calls x group size.
    `cache` (member bytes -> list) shares the lists across several calls (the row groups of one file)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if isinstance(array, pa.ChunkedArray):  # no chunks
        return []
    offsets = array.offsets.to_numpy()
    values = array.values.to_numpy(zero_copy_only=False)
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    cache = {} if cache is None else cache
    out: list[list[int] | None] = []
    for k in range(len(array)):
        if not valid[k]:
            out.append(None)
            continue
        members = values[offsets[k]:offsets[k + 1]]
        key = members.tobytes()
        if key not in cache:
            cache[key] = members.tolist()
        out.append(cache[key])
    return out


def collectives_frame(table: pa.Table) -> pd.DataFrame:
    """The collectives table as pandas, with group_ranks as shared lists (see shared_lists)."""
    name = "group_ranks"
    if name not in table.column_names or not pa.types.is_list(table.schema.field(name).type):
        return table.to_pandas()
    position = table.column_names.index(name)
    frame = table.drop_columns([name]).to_pandas()
    frame.insert(position, name, pd.Series(shared_lists(table[name]), index=frame.index, dtype=object))
    return frame


def read_collectives(path: Path) -> pd.DataFrame:
    """collectives.parquet as collectives_frame gives it, `group_ranks` as shared lists: where the file names
    each call's list by id (tracekit.group_members), the lists of group_members.parquet put in by id; where it
    stores the lists on every call (format 2), the other columns at once and the member lists row group by row
    group, so that the whole column (calls x group size integers) is never held."""
    name = "group_ranks"
    file = pq.ParquetFile(path)
    names = file.schema_arrow.names
    if ID in names:
        frame = file.read(columns=[c for c in names if c != ID], use_threads=False).to_pandas()
        lists = read_member_lists(members_path(path))
        ids = checked_ids(file.read(columns=[ID], use_threads=False)[ID], len(lists), path)
        frame.insert(names.index(ID), name, pd.Series([lists[i] if i >= 0 else None for i in ids.tolist()],
                                                      index=frame.index, dtype=object))
        return frame
    if name not in names or not pa.types.is_list(file.schema_arrow.field(name).type):
        return collectives_frame(file.read(use_threads=False))
    frame = file.read(columns=[c for c in names if c != name], use_threads=False).to_pandas()
    cache: dict[bytes, list[int]] = {}
    members: list[list[int] | None] = []
    for group in range(file.metadata.num_row_groups):
        members += shared_lists(file.read_row_group(group, columns=[name], use_threads=False)[name], cache)
    frame.insert(names.index(name), name, pd.Series(members, index=frame.index, dtype=object))
    return frame


def ranks_text(column: pd.Series) -> list[str]:
    """`0,1,2,3` for each row's member list (`?` where none), each distinct list joined once."""
    done: dict[int, str] = {}
    out = []
    for members in column.tolist():
        if members is None or (not hasattr(members, "__len__") and pd.isna(members)):
            out.append("?")
            continue
        key = id(members)
        if key not in done:
            done[key] = ",".join(map(str, members))
        out.append(done[key])
    return out


def empty_calls() -> pd.DataFrame:
    """A call table with no rows (the columns collective_calls gives)."""
    return pd.DataFrame(columns=list(COLUMNS))
