"""Parquet tables: events, kernels, ops, steps."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import pandas_compat

from tracekit.converters.args_bytes import drop_args_pages
from tracekit.narrow import ID_COLUMNS, ROW_COLUMNS, wide
from tracekit.steps import step_table
from tracekit.table import DEVICE_KINDS, EventTable, column, column_array, kind_in, strings
from tracekit.writers.memory import release_arrow_pool, releaser
from tracekit.writers.op_text import op_input_columns, op_input_text  # noqa: F401 (op_input_columns: re-exported)

# Columns that some tables hold as int32 (tracekit.narrow) and every table writes as int64.
WRITTEN_WIDE = frozenset(ID_COLUMNS + ROW_COLUMNS + ("launch_row", "launcher_row"))
EVENT_COLUMNS = (
    "source", "rank", "pid", "tid", "ts_ns", "dur_ns", "name", "cat", "kind", "ph", "parent", "depth",
    "lane", "launch", "launcher", "step", "correlation", "external_id", "sequence", "fwd_thread",
    "python_id", "python_parent", "flow_id", "input_index", "source_index", "module", "module_path",
    "module_type", "phase", "recompute", "module_from", "bp", "scope", "stream", "device",
)


def events_frame(table: EventTable, widen: bool = True) -> pa.Table:
    """The event table as arrow, with the original args as JSON text. Numeric columns are not copied, but for those
    held as int32 (tracekit.narrow), which are widened to int64 as written (left as held: `widen=False`)."""
    ev = table.events
    cols = [c for c in EVENT_COLUMNS if c in ev]
    replace = {name: wide(column_array(ev, name)) for name in cols if widen and _held_narrow(ev, name)}
    arrow = frame_to_arrow(ev, cols, replace=replace or None)  # no copy of the frame
    return arrow.append_column("args", args_text(table.args))


# The args' UTF-8 is checked this many bytes at a time, each part's pages dropped after (spilled args: the check
# reads every byte, and the whole column's pages, resident at once, were events.parquet's peak: owlv2 +25 MB).
CHECK_BYTES = 4 << 20


def args_text(args: pa.Array) -> pa.Array:
    """The args as text: what `args.cast(pa.large_string())` gives (the UTF-8 checked, the bytes not copied), checked
    part by part (about CHECK_BYTES each), so that only one part's pages of spilled args are resident at a time."""
    if not isinstance(args, pa.LargeBinaryArray) or args.nbytes <= CHECK_BYTES:
        text = args.cast(pa.large_string())
        drop_args_pages(args)
        return text
    offsets = np.frombuffer(args.buffers()[1], dtype=np.int64, count=len(args) + 1, offset=args.offset * 8)
    marks = np.arange(int(offsets[0]) + CHECK_BYTES, int(offsets[-1]), CHECK_BYTES)
    cuts = [0, *np.unique(np.searchsorted(offsets[1:], marks) + 1).tolist(), len(args)]
    for start, end in itertools.pairwise(cuts):
        if end > start:
            piece = args.slice(start, end - start)
            piece.cast(pa.large_string())  # raises as the whole column's cast would
            drop_args_pages(piece)
    return args.view(pa.large_string())


def _held_narrow(ev: pd.DataFrame, name: str) -> bool:
    """Whether column `name` is one written as int64 and held narrower (its array's dtype: no Series, ~20 us a
    column on every rank's events)."""
    if name not in WRITTEN_WIDE:
        return False
    dtype = column_array(ev, name).dtype
    return dtype.kind == "i" and dtype.itemsize < 8


def write_events(table: EventTable, path: Path) -> int:
    """events.parquet: what write_table(events_frame(table), path) writes, byte for byte. Where the table holds
    narrowed columns, one row group at a time from the unwidened table, each group's narrowed columns widened as
    it is written: the whole widened columns would hold 8 B a row each through the write. Returns the row count."""
    ev = table.events
    narrowed = [name for name in EVENT_COLUMNS if name in ev and _held_narrow(ev, name)]
    held = events_frame(table, widen=False)
    group = row_group_rows(held)
    if not narrowed and held.num_rows <= group:
        write_table(held, path)
        drop_args_pages(table.args)
        return held.num_rows
    if narrowed:
        head = EventTable(ev.iloc[:1], table.args.slice(0, 1), table.sources)
        schema = events_frame(head).schema  # the types and pandas metadata of the widened table
    else:  # one row group at a time too: each group's args pages dropped once written (spilled args)
        schema = held.schema
    with pq.ParquetWriter(path, schema, compression="zstd",
                          use_dictionary=[name for name in schema.names if name not in PLAIN_COLUMNS]) as writer:
        for start in range(0, held.num_rows, group):
            piece = held.slice(start, group)
            for name in narrowed:
                at = schema.get_field_index(name)
                values = piece.column(at).to_numpy().astype(np.int64)
                piece = piece.set_column(at, schema.field(at), pa.array(values))
                del values
            writer.write_table(piece.replace_schema_metadata(schema.metadata), row_group_size=group)
            drop_args_pages(piece.column("args").chunk(0))
            del piece
            release_arrow_pool()
    return held.num_rows


def frame_to_arrow(frame: pd.DataFrame, columns: list[str] | None = None,
                   replace: dict[str, np.ndarray] | None = None) -> pa.Table:
    """What `pa.Table.from_pandas(frame, columns=columns, preserve_index=False)` gives (types, values, and the
    pandas schema metadata that restores the dtypes), built from the column arrays.

    from_pandas builds a Series per column and converts categoricals through pandas (up to ~80 us a column): most of
    the cost on the frames of a few thousand rows that each rank writes. Here numeric columns go to arrow
    without a copy and categoricals with text categories as their codes and categories; any other column
    goes the way from_pandas takes it, and the metadata is made by pyarrow's own function. `replace`: arrays
    that stand for some columns (what from_pandas of `frame.assign(**replace)` gives, without the copy)."""
    names = list(frame.columns) if columns is None else list(columns)
    if replace and frame.attrs:
        frame = frame.assign(**replace)
        replace = None
    try:
        values = [replace[name] if replace and name in replace else _column_for_arrow(frame, name) for name in names]
        arrays = [_to_arrow(v) for v in values]
        metadata = _pandas_metadata(values, frame, names, [a.type for a in arrays])
    except TypeError:  # a pyarrow whose metadata function takes other arguments
        return pa.Table.from_pandas(frame.assign(**replace) if replace else frame, columns=columns,
                                    preserve_index=False)
    return pa.Table.from_arrays(arrays, names=names, metadata=metadata)


_METADATA: dict[tuple, dict[bytes, bytes]] = {}  # per process: the ranks of a job write the same few schemas
_METADATA_KEPT = 64


def _pandas_metadata(values: list, frame: pd.DataFrame, names: list[str], types: list[pa.DataType]
                     ) -> dict[bytes, bytes]:
    """pyarrow's pandas metadata of the columns (`construct_metadata`), made once per distinct set of what it
    reads: each column's name, arrow type and pandas dtype facts (`get_extension_dtype_info`: the physical
    dtype, and a categorical's number of categories and order or a timezone), and the frame's attrs."""
    if frame.attrs:
        return pandas_compat.construct_metadata(values, frame, names, [], [], False, types, names)
    # the column index's dtype (object or str) goes into the metadata's column_indexes
    key = (tuple(names), tuple(types), tuple(_dtype_facts(v) for v in values), frame.columns.dtype)
    found = _METADATA.get(key)
    if found is None:
        found = pandas_compat.construct_metadata(values, frame, names, [], [], False, types, names)
        if len(_METADATA) >= _METADATA_KEPT:
            _METADATA.pop(next(iter(_METADATA)))
        _METADATA[key] = found
    return found


def _dtype_facts(values: np.ndarray | pd.api.extensions.ExtensionArray) -> object:
    """What `get_extension_dtype_info` reads of a column: its dtype, or for a categorical or a dtype with a time
    zone the facts it takes (number of categories, order, codes' dtype; time zone): a key for the cache."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype) or hasattr(dtype, "tz"):
        physical, meta = pandas_compat.get_extension_dtype_info(values)
        return physical, None if meta is None else tuple(sorted(meta.items()))
    return dtype


def _column_for_arrow(frame: pd.DataFrame, name: str) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """The column's array as the fast conversion takes it (numpy, a Categorical or another pandas extension array):
    what from_pandas takes out of the column's Series, without making the Series (~15-30 us a column)."""
    return column_array(frame, name)


def _to_arrow(values: np.ndarray | pd.Categorical | pd.Series) -> pa.Array:
    """One column as from_pandas converts it (`pa.array(..., from_pandas=True)`: NaN is null)."""
    if isinstance(values, pd.Categorical) and values.categories.dtype == object:
        cats = pa.array(values.categories.to_numpy(), from_pandas=True)  # the type from_pandas infers
        if pa.types.is_string(cats.type):
            codes = values.codes
            return pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), cats, ordered=values.ordered)
    return pa.array(values, from_pandas=True)


def kernel_rows(table: EventTable) -> np.ndarray:
    """The rows of the kernels table: every device event (kernel, memcpy, memset), in table order."""
    return np.flatnonzero(kind_in(table.events, DEVICE_KINDS))


def kernels_frame(table: EventTable, rows: np.ndarray | None = None) -> pa.Table:
    """One row per device event (kernel, memcpy, memset) with its launch and launching op; of `rows` (a slice of
    kernel_rows) only, when given."""
    ev = table.events
    rows = kernel_rows(table) if rows is None else rows
    launch = column(ev, "launch")[rows]
    launcher = column(ev, "launcher")[rows]
    names = column(ev, "name")
    ops = np.unique(launcher[launcher >= 0])
    dims, types = op_input_text(table.args, ev, ops)
    at = pa.array(np.searchsorted(ops, launcher), mask=launcher < 0) if len(ops) else None
    return _arrow_table({
        "row": rows,
        "source": _text_of(column(ev, "source"), rows),
        "rank": column(ev, "rank")[rows],
        "device": column(ev, "pid")[rows],
        "stream": column(ev, "tid")[rows],
        "kind": _text_of(column(ev, "kind"), rows),
        "name": _text_of(names, rows),
        "ts_ns": column(ev, "ts_ns")[rows],
        "dur_ns": column(ev, "dur_ns")[rows],
        "step": column(ev, "step")[rows],
        "correlation": column(ev, "correlation")[rows],
        "launch_row": launch,
        "launch_name": _text_of(names, launch),
        "launcher_row": launcher,
        "op_name": _text_of(names, launcher),
        "op_input_dims": _text_at(dims, at, len(rows)),
        "op_input_types": _text_at(types, at, len(rows)),
        **_module_columns(ev, rows),
    })


def _text_of(values: pd.Categorical | np.ndarray, rows: np.ndarray) -> pa.Array | np.ndarray:
    """The text of `rows` of a string column as large_string (missing, or a row below 0: null): of a categorical
    column, its categories taken at the codes (what arrow makes of `strings(values, rows)`, without a str object
    per row)."""
    if not isinstance(values, pd.Categorical) or values.categories.dtype != object:
        out = strings(values, np.maximum(rows, 0))
        out[rows < 0] = None
        return out
    cats = pa.array(values.categories.to_numpy(), pa.large_string())
    codes = values.codes[np.maximum(rows, 0)]
    return cats.take(pa.array(codes, mask=(codes < 0) | (rows < 0)))


def _text_at(values: pa.Array, at: pa.Array | None, n: int) -> pa.Array:
    """values[at] (None where `at` is null), or all None."""
    if at is None:
        return pa.nulls(n, pa.large_string()) if n else pa.array([], pa.null())
    return values.take(at)


def op_rows(table: EventTable) -> np.ndarray:
    """The rows of the ops table: every cpu op and collective, in table order."""
    return np.flatnonzero(kind_in(table.events, ("cpu_op", "collective")))


def launched_rows(table: EventTable) -> np.ndarray:
    """The launching op row of every launched device event, sorted: what ops_frame counts kernels from."""
    launcher = column(table.events, "launcher")
    return np.sort(launcher[launcher >= 0])


def ops_frame(table: EventTable, rows: np.ndarray | None = None, launched: np.ndarray | None = None) -> pa.Table:
    """One row per cpu op (collective ops included) with input dims and types as JSON text; of `rows` (a slice of
    op_rows) only, when given (`launched`: launched_rows of the table, made once for all slices)."""
    ev = table.events
    rows = op_rows(table) if rows is None else rows
    dims, types = op_input_text(table.args, ev, rows)
    launched = launched_rows(table) if launched is None else launched
    kernel_count = np.searchsorted(launched, rows, "right") - np.searchsorted(launched, rows, "left")
    return _arrow_table({
        "row": rows,
        "source": _text_of(column(ev, "source"), rows),
        "rank": column(ev, "rank")[rows],
        "pid": column(ev, "pid")[rows],
        "tid": column(ev, "tid")[rows],
        "name": _text_of(column(ev, "name"), rows),
        "kind": _text_of(column(ev, "kind"), rows),
        "ts_ns": column(ev, "ts_ns")[rows],
        "dur_ns": column(ev, "dur_ns")[rows],
        "parent": column(ev, "parent")[rows],
        "depth": column(ev, "depth")[rows],
        "step": column(ev, "step")[rows],
        "sequence": column(ev, "sequence")[rows],
        "external_id": column(ev, "external_id")[rows],
        "input_dims": dims,
        "input_types": types,
        "kernel_count": kernel_count,
        **_module_columns(ev, rows),
    })


def _arrow_table(columns: dict[str, object]) -> pa.Table:
    """An arrow table of numpy/arrow columns and text (object arrays or lists) as large_string."""
    arrays = {}
    for name, values in columns.items():
        if isinstance(values, pa.Array | pa.ChunkedArray):
            arrays[name] = values
        elif isinstance(values, np.ndarray) and values.dtype != object:
            arrays[name] = pa.array(wide(values) if name in WRITTEN_WIDE else values)
        else:  # text (object array or list), typed even when empty
            arrays[name] = pa.array(values, pa.large_string())
    return pa.table(arrays)


# Module paths and types repeat one string over many rows and can be long: stored as dictionary codes
# (as in events.parquet), never one copy per row (a 1 MB module name over 300 ops took 1 GB).
_DICTIONARY_COLUMNS = ("module_path", "module_type")


def _dictionary_at(values: pd.Categorical, rows: np.ndarray) -> pa.DictionaryArray:
    codes = values.codes[rows]
    cats = pa.array(values.categories.to_numpy(dtype=object), pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32), mask=codes < 0), cats)


def _module_columns(ev: pd.DataFrame, rows: np.ndarray) -> dict[str, np.ndarray]:
    """module_path, module_type, phase, recompute and module_from of `rows`, where attributed."""
    out: dict[str, np.ndarray | pa.Array] = {}
    for col in ("module_path", "module_type", "phase", "module_from"):
        if col not in ev:
            continue
        values = column(ev, col)
        if col in _DICTIONARY_COLUMNS and isinstance(values, pd.Categorical):
            out[col] = _dictionary_at(values, rows)
        else:
            out[col] = _text_of(values, rows)
    if "recompute" in ev:
        out["recompute"] = column(ev, "recompute")[rows]
    return out


# Rows per Parquet row group: the writer holds a whole row group's encoded pages (and its encoders' buffers)
# until the group is flushed, so one group of the whole events table stacked ~0.3x the table's arrow size on
# the peak (owlv2: +43 MB; in groups of 32k rows +28 MB, same CPU). Tables below this size are written as before.
# A dictionary column (a categorical) is written with its whole dictionary in every row group: a group holds at
# least as many rows as the largest dictionary has values, so that this stays linear in the rows (flow ids of
# the 510 MB synthetic trace: 80 groups of 32k rows took 7.6 s for that one column).
ROW_GROUP_ROWS = 32_768


def row_group_rows(arrow: pa.Table) -> int:
    """Rows per row group of `arrow`: ROW_GROUP_ROWS, or the size of its largest dictionary if that is larger."""
    largest = max((len(chunk.dictionary) for col in arrow.columns if pa.types.is_dictionary(col.type)
                   for chunk in col.chunks), default=0)
    return max(ROW_GROUP_ROWS, largest)


# Columns of (nearly) one value per row: times, row numbers and ids. Parquet's dictionary encoder hashes every
# value of a column until its dictionary page is full, then falls back to plain pages; on these columns that is
# all cost and no gain (v100_large events.parquet: write 0.19 -> 0.15 s CPU, 4.6 -> 3.2 MB). Every other column
# (repeated text, small ints, the categoricals) keeps its dictionary; the arrow types read back are the same.
PLAIN_COLUMNS = frozenset({
    "ts_ns", "dur_ns", "parent", "launch", "launcher", "correlation", "external_id", "sequence", "python_id",
    "python_parent", "input_index", "module", "args", "row", "launch_row", "launcher_row",
})


def write_table(arrow: pa.Table, path: Path) -> None:
    """One Parquet table as every table of convert is written (zstd, row groups of row_group_rows, no dictionary
    for the PLAIN_COLUMNS)."""
    pq.write_table(arrow, path, compression="zstd", row_group_size=row_group_rows(arrow),
                   use_dictionary=[name for name in arrow.column_names if name not in PLAIN_COLUMNS])


def write_parquet_tables(table: EventTable, outdir: Path) -> dict[str, int]:
    """Write events/kernels/ops/steps .parquet into outdir; returns row counts.

    One table at a time: each is dropped once written, so their memory does not add up. The kernels and ops
    tables are made and written one row group at a time (write_sliced): whole, with the op input text of every
    row, they were the writer's peak (510 MB trace: +265 and +166 MB). The events table comes last: where its
    columns are held narrow, each row group widens them as it is written (write_events), and by then convert's
    chrome writer, running beside this, is past its peak (510 MB trace: the writing stage's peak 936 -> 918 MB).
    """
    counts = {}
    release = releaser(len(table.events))
    release()
    counts["kernels"] = write_sliced(lambda rows: kernels_frame(table, rows), kernel_rows(table),
                                     outdir / "kernels.parquet")
    release()
    counts["ops"] = write_sliced(partial(ops_frame, table, launched=launched_rows(table)), op_rows(table),
                                 outdir / "ops.parquet")
    release()
    arrow = frame_to_arrow(step_table(table.events))
    write_table(arrow, outdir / "steps.parquet")
    counts["steps"] = arrow.num_rows
    del arrow
    release()
    counts["events"] = write_events(table, outdir / "events.parquet")
    release()
    return {name: counts[name] for name in ("events", "kernels", "ops", "steps")}


def write_sliced(make: Callable[[np.ndarray], pa.Table], rows: np.ndarray, path: Path) -> int:
    """Write the table of `rows` that `make(rows)` builds, one row group at a time (`make` of each row group's
    slice of `rows`): the same file as write_table(make(rows), path), without the whole table in memory. Returns
    the row count."""
    first = make(rows[:ROW_GROUP_ROWS])
    group = row_group_rows(first)  # a dictionary larger than ROW_GROUP_ROWS sets the group (as in write_table)
    if group > ROW_GROUP_ROWS and len(rows) > ROW_GROUP_ROWS:
        first = make(rows[:group])
    if len(rows) <= group:
        write_table(first, path)
        return first.num_rows
    schema = first.schema
    with pq.ParquetWriter(path, schema, compression="zstd",
                          use_dictionary=[name for name in schema.names if name not in PLAIN_COLUMNS]) as writer:
        writer.write_table(first, row_group_size=group)
        del first
        for start in range(group, len(rows), group):
            piece = make(rows[start : start + group])
            writer.write_table(piece if piece.schema == schema else piece.cast(schema), row_group_size=group)
            del piece
            release_arrow_pool()
    return len(rows)


def write_module_table(processed, outdir: Path) -> int:
    """modules.parquet: one row per module instance (empty, with its columns, when the trace has none)."""
    from tracekit.modules.table import module_table

    frame = module_table(processed.table, processed.modules)
    write_table(frame_to_arrow(frame), outdir / "modules.parquet")
    return len(frame)
