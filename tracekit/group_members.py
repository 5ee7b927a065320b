"""Process-group member lists stored once per distinct list, not on every call.

collectives.parquet names each call's member list by `group_members_id` (int32; null: no list), and
group_members.parquet beside it holds (`group_members_id`, `group_ranks`), one row per distinct list. Stored on
every call, a world group of N ranks making C calls a rank cost C x N x N integers on disk and in the writer (one
row group per ~32 calls at 4,096 ranks, each keeping ~30 KB of metadata until the file is closed); as ids it is
C x N small ints and N integers once. Every reader (`read_collectives`, `Dataset.read_arrow`, the SQL view) puts
`group_ranks` back in its place, so the table read is the table that was written. A file that still holds
`group_ranks` itself (a dataset of format 2) is read as it is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from tracekit.errors import TraceError

ID = "group_members_id"
LIST = "group_ranks"
ID_TYPE = pa.int32()
LIST_TYPE = pa.list_(pa.field("element", pa.int64()))  # as Parquet lists read back


def members_path(collectives: Path) -> Path:
    """The member lists' file of a collectives file (`collectives.parquet` -> `group_members.parquet`; another
    name gets `.group_members` before its suffix)."""
    if "collectives" in collectives.name:
        return collectives.with_name(collectives.name.replace("collectives", "group_members", 1))
    return collectives.with_name(f"{collectives.stem}.group_members{collectives.suffix}")


class MemberIds:
    """The distinct member lists seen so far, each with its id (its position): filled while a table is written."""

    def __init__(self) -> None:
        self._ids: dict[bytes, int] = {}
        self._lists: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._lists)

    def ids(self, column: pa.ChunkedArray | pa.Array) -> pa.Array:
        """Each row's list id (null where the row has no list), ids given to new lists in order of appearance."""
        array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        if isinstance(array, pa.ChunkedArray) or not (pa.types.is_list(array.type)
                                                        or pa.types.is_large_list(array.type)):
            return pa.nulls(len(array), ID_TYPE)  # no lists: an all-null column, or the empty table's `double`
        offsets = array.offsets.to_numpy()
        values = array.values.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        valid = array.is_valid().to_numpy(zero_copy_only=False)
        out = np.full(len(array), -1, dtype=np.int32)
        last_key, last_id = b"", -1
        for k in np.flatnonzero(valid).tolist():
            members = values[offsets[k]:offsets[k + 1]]
            key = members.tobytes()
            if key != last_key or last_id < 0:  # the calls of one group come in runs: one lookup a run
                last_id, last_key = self.id_of(members, key), key
            out[k] = last_id
        return pa.array(out, type=ID_TYPE, mask=~valid)

    def id_of(self, members: np.ndarray, key: bytes | None = None) -> int:
        """The id of one member list (int64 values; `key`: its bytes where already made), given one if new."""
        key = members.tobytes() if key is None else key
        got = self._ids.get(key, -1)
        if got < 0:
            got = self._ids[key] = len(self._lists)
            self._lists.append(members.copy())
        return got

    def ids_of_lists(self, values: np.ndarray, seen: dict[int, int]) -> pa.Array:
        """Each row's list id, from a column of list objects (None: no list); `seen` (id of a list object -> its
        id) spares a shared list's conversion: valid while those objects live."""
        out = np.full(len(values), -1, dtype=np.int32)
        for k, members in enumerate(values.tolist()):
            if members is not None:
                got = seen.get(id(members))
                if got is None:
                    got = seen[id(members)] = self.id_of(np.asarray(members, dtype=np.int64))
                out[k] = got
        return pa.array(out, type=ID_TYPE, mask=out < 0)

    def table(self) -> pa.Table:
        """group_members.parquet's rows: each id and its list."""
        lists = [m.tolist() for m in self._lists]
        return pa.table({ID: pa.array(np.arange(len(lists), dtype=np.int32)), LIST: pa.array(lists, LIST_TYPE)})


def store_members(table: pa.Table, registry: MemberIds) -> pa.Table:
    """The table as stored: its `group_ranks` lists replaced, in place, by `group_members_id` (schema metadata,
    pandas' included, kept: it describes the table as read back). A column with no lists (all null, or the empty
    table's `double`) gets ids too, all null: see `without_ids` for a file where no batch had a list."""
    if LIST not in table.column_names:
        return table
    position = table.column_names.index(LIST)
    return table.set_column(position, pa.field(ID, ID_TYPE), registry.ids(table[LIST]))


def without_ids(table: pa.Table) -> pa.Table:
    """A stored table of a file that holds no member list at all: `group_ranks` back as the all-null column it was
    (arrow type null), so that such a file reads back as written, with no ids to resolve."""
    if ID not in table.column_names:
        return table
    position = table.column_names.index(ID)
    return table.set_column(position, pa.field(LIST, pa.null()), pa.nulls(table.num_rows))


def write_members(registry: MemberIds, path: Path) -> None:
    """Write the member lists (zstd)."""
    import pyarrow.parquet as pq

    pq.write_table(registry.table(), path, compression="zstd")


def read_member_lists(path: Path) -> list[list[int]]:
    """The member lists of group_members.parquet as Python lists, by id (see member_lists)."""
    return member_lists(path).to_pylist()


def member_lists(path: Path) -> pa.Array:
    """The member lists of group_members.parquet, by id (list<int64>); a TraceError naming the file when it is
    missing or damaged (ids not 0, 1, 2, ... in order)."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, use_threads=False)
    except FileNotFoundError:
        raise TraceError(path, "dataset table missing (collectives.parquet names its member lists by id); convert "
                               "the traces again") from None
    except (ValueError, OSError) as exc:
        raise TraceError(path, f"damaged dataset table: {exc}") from None
    if (ID not in table.column_names or LIST not in table.column_names
            or not pa.types.is_list(table.schema.field(LIST).type)):
        raise TraceError(path, f"damaged dataset table: needs columns {ID} and {LIST} (a list of ranks)")
    ids = table[ID].to_numpy(zero_copy_only=False)
    if table[ID].null_count or not np.array_equal(ids, np.arange(len(ids))):
        raise TraceError(path, f"damaged dataset table: {ID} is not 0, 1, 2, ... in order")
    try:
        return table[LIST].combine_chunks().cast(LIST_TYPE)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:  # members that are not integers
        raise TraceError(path, f"damaged dataset table: {LIST} is not lists of ranks ({exc})") from None


def checked_ids(ids: pa.ChunkedArray | pa.Array, count: int, path: Path) -> np.ndarray:
    """The ids as int64 positions (-1: no list); a TraceError naming `path` where one names no stored list."""
    array = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    out = np.asarray(array.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64) if len(array) else (
        np.zeros(0, dtype=np.int64))
    if len(out) and (out.max() >= count or out.min() < -1):
        bad = int(np.flatnonzero((out >= count) | (out < -1))[0])
        raise TraceError(path, f"damaged dataset table: row {bad}: {ID} {int(out[bad])} names no member list "
                               f"(group_members.parquet has {count})")
    return out


def stored_columns(path: Path, columns: list[str] | None) -> list[str] | None:
    """The columns to read from the file `path` for `columns` as read back: `group_members_id` for `group_ranks`
    where the file stores ids."""
    if columns is None or LIST not in columns:
        return columns
    import pyarrow.parquet as pq

    if ID not in pq.read_schema(path).names:
        return columns
    return [ID if c == LIST else c for c in columns]


def expand_members(table: pa.Table, path: Path) -> pa.Table:
    """`table` (read from the collectives file `path`) with `group_members_id` replaced by `group_ranks`, the lists
    read from the members file beside it; as it is when it has no such column."""
    if ID not in table.column_names:
        return table
    stored = member_lists(members_path(path))
    positions = checked_ids(table[ID], len(stored), path)
    expanded = stored.take(pa.array(positions, mask=positions < 0)) if len(positions) else pa.array([], LIST_TYPE)
    return table.set_column(table.column_names.index(ID), pa.field(LIST, LIST_TYPE), expanded)


def collectives_table(path: Path) -> pa.Table:
    """A collectives file read whole as arrow, `group_ranks` in its place (what it held when written)."""
    import pyarrow.parquet as pq

    path = Path(path)
    return expand_members(pq.read_table(path), path)
