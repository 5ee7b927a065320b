"""Turn a command's inputs (raw traces, or one dataset) into the tables its stages need.

Each command calls one of these: given raw traces they read and process them as before; given a dataset they
read only the columns the command needs from its Parquet tables (after a staleness check)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracekit.dataset.manifest import is_dataset
from tracekit.errors import TraceError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from tracekit.dataset.read import Dataset

INFO_COLUMNS = ("source_index", "kind", "step", "name", "depth", "parent", "dur_ns", "ts_ns", "ph", "launch")
STEP_TIME_COLUMNS = ("source_index", "ph", "kind", "ts_ns", "dur_ns", "step")
SPLIT_COLUMNS = ("kind", "name", "ph", "ts_ns", "dur_ns", "parent")


def dataset_of(inputs: Sequence[str | Path]) -> Dataset | None:
    """The dataset when the inputs are one dataset folder; None for raw traces; an error for a mix."""
    found = [p for p in inputs if is_dataset(p)]
    if not found:
        return None
    if len(inputs) > 1:
        raise TraceError(found[0], "is a tracekit dataset: give it as the only input (it already holds all its "
                                   "ranks), not together with other traces or datasets")
    from tracekit.dataset.read import open_dataset

    return open_dataset(found[0])


def processed_of(inputs: Sequence[str | Path], columns: Sequence[str] | None = None, with_args: bool = False,
                 on_file: Callable[[str], None] | None = None):
    """tracekit.pipeline.Processed of raw traces (read + process) or of a dataset (only `columns`)."""
    ds = dataset_of(inputs)
    if ds is not None:
        if on_file:
            on_file(f"reading dataset {ds.root}")
        return ds.processed(columns, with_args)
    from tracekit.pipeline import process, read_inputs

    return process(read_inputs(inputs, on_file=on_file))


@dataclass
class ModuleInputs:
    """What `tracekit modules` shows: the module table (a pandas frame made from raw traces, or Arrow read from a
    dataset, None when the dataset says it has no rows), its number of rows, and per source the step time
    (tracekit.modules.view.step_figures) and the lowest ProfilerStep recorded."""

    table: pd.DataFrame | pa.Table | None
    count: int
    step_ns: dict[int, int]
    first_step: int | None
    from_dataset: bool = False
    row_list: list[dict[str, Any]] | None = None  # the rows as read from the dataset's module rows file

    def rows(self) -> list[dict[str, Any]]:
        """The module table as rows (tracekit.modules.view.module_rows): the same rows from either input."""
        from tracekit.modules.view import module_rows

        if self.row_list is not None:
            return self.row_list
        if self.table is None:
            return []
        if self.from_dataset:
            return module_rows(self.table)
        from tracekit.writers.parquet import frame_to_arrow  # as convert writes modules.parquet

        return module_rows(frame_to_arrow(self.table))

    def frame(self) -> pd.DataFrame:
        """The module table as pandas (what the HTML drawing and tree table read)."""
        if self.row_list is not None:
            raise ValueError("module rows read from the rows file: read the dataset with columns=None for a frame")
        if self.table is None:
            import pandas as pd

            return pd.DataFrame()
        return self.table.to_pandas() if self.from_dataset else self.table


def module_inputs(inputs: Sequence[str | Path], columns: Sequence[str] | None = None,
                  on_file: Callable[[str], None] | None = None) -> ModuleInputs:
    """The module table and step figures of raw traces (read + process + module_table) or of a dataset: only
    `columns` of modules.parquet, nothing read when its manifest counts 0 rows, the step figures without pandas.
    With `columns`, a dataset's module rows file (tracekit.dataset.module_rows) answers when it can: json only."""
    ds = dataset_of(inputs)
    if ds is None:
        from tracekit.modules.table import module_table
        from tracekit.modules.view import step_figures

        processed = processed_of(inputs, on_file=on_file)
        frame = module_table(processed.table, processed.modules)
        ev = processed.table.events
        figures = step_figures(ev["source_index"].to_numpy(), (ev["ph"] == "M").to_numpy(),
                               (ev["kind"] == "step").to_numpy(), ev["ts_ns"].to_numpy(), ev["dur_ns"].to_numpy(),
                               ev["step"].to_numpy() if "step" in ev else None)
        return ModuleInputs(frame, len(frame), *figures)
    if on_file:
        on_file(f"reading dataset {ds.root}")
    if ds.entry("modules").get("rows") == 0:
        return ModuleInputs(None, 0, {}, None)
    if columns is not None:
        from tracekit.dataset.module_rows import read_module_rows

        if (stored := read_module_rows(ds, columns)) is not None:
            return ModuleInputs(None, len(stored.rows), stored.step_ns, stored.first_step, True, stored.rows)
    table = _dataset_modules(ds, columns)
    try:
        figures = _dataset_step_figures(ds)
    except _Unreadable:
        from tracekit.modules.view import first_recorded_step, step_time_ns

        events = ds.processed(STEP_TIME_COLUMNS).table
        figures = step_time_ns(events), first_recorded_step(events)
    return ModuleInputs(table, table.num_rows, *figures, from_dataset=True)


def _dataset_modules(ds: Dataset, columns: Sequence[str] | None) -> pa.Table:
    """modules.parquet (only `columns`, and not `rank`); a rank-partitioned table with each row's source_index
    set to its partition's input position (as Dataset.read does)."""
    import pyarrow as pa

    if not ds.partitioned("modules"):
        return _read(ds.path("modules"), ds._project("modules", columns))
    wanted = [c for c in ds._project("modules", columns) or ds.columns("modules") if c != "rank"]
    pieces = []
    for _rank, index, path in ds.parts("modules"):
        piece = _read(path, wanted)
        if "source_index" in piece.column_names:
            at = piece.column_names.index("source_index")
            piece = piece.set_column(at, "source_index", _int32s(index, piece.num_rows))
        pieces.append(piece)
    return pa.concat_tables(pieces, promote_options="permissive")


def _dataset_step_figures(ds: Dataset) -> tuple[dict[int, int], int | None]:
    """tracekit.modules.view.step_figures of the dataset's events, read with pyarrow (six columns, one rank's
    partition at a time)."""
    import numpy as np

    from tracekit.modules.view import step_figures

    wanted = [c for c in ("source_index", "ph", "kind", "ts_ns", "dur_ns", "step") if c in ds.columns("events")]
    if ds.partitioned("events"):
        parts = [(index, _read(path, [c for c in wanted if c != "source_index"]))
                 for _rank, index, path in ds.parts("events")]
    else:
        parts = [(None, _read(ds.path("events"), wanted))]
    step_ns: dict[int, int] = {}
    firsts = []
    for index, table in parts:
        source = (np.full(table.num_rows, index, dtype=np.int64) if index is not None
                  else _numpy(table.column("source_index")))
        figures, first = step_figures(source, _equals(table.column("ph"), "M"), _equals(table.column("kind"), "step"),
                                      _numpy(table.column("ts_ns")), _numpy(table.column("dur_ns")),
                                      _numpy(table.column("step")) if "step" in wanted else None)
        step_ns.update(figures)
        firsts += [first] if first is not None else []
    return step_ns, min(firsts) if firsts else None


def _read(path: Path, columns: Sequence[str] | None) -> pa.Table:
    """One Parquet file (only `columns`), through ParquetFile: pq.read_table goes through pyarrow.dataset, which
    imports pandas and pyarrow.compute (~0.3 s)."""
    import pyarrow.parquet as pq

    from tracekit.dataset.read import table_file
    from tracekit.dataset.table_check import checked

    with table_file(path):
        return checked(pq.ParquetFile(path).read(columns=columns), path)


def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    """A numeric column as numpy, from its buffers (pyarrow's to_numpy imports pandas: ~0.3 s)."""
    import numpy as np
    import pyarrow as pa

    chunks = []
    for chunk in column.chunks:
        if not len(chunk):
            continue
        if chunk.null_count or not (pa.types.is_integer(chunk.type) or pa.types.is_floating(chunk.type)):
            raise _Unreadable(column.type)
        kind = "f" if pa.types.is_floating(chunk.type) else "i" if pa.types.is_signed_integer(chunk.type) else "u"
        dtype = np.dtype(f"<{kind}{chunk.type.bit_width // 8}")
        chunks.append(np.frombuffer(chunk.buffers()[1], dtype=dtype, count=chunk.offset + len(chunk))[chunk.offset:])
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks) if chunks else np.array([], dtype=np.int64)


class _Unreadable(ValueError):
    """An event column with nulls or of another type than convert writes: the step figures go the pandas way."""


def _int32s(value: int, n: int) -> pa.Array:
    """n copies of value as an Arrow int32 array (pa.array imports pandas)."""
    import numpy as np
    import pyarrow as pa

    return pa.Array.from_buffers(pa.int32(), n, [None, pa.py_buffer(np.full(n, value, dtype=np.int32))])


def _equals(column: pa.ChunkedArray, value: str) -> np.ndarray:
    """column == value as a numpy bool array, without pyarrow.compute (a slow import); a dictionary column with
    nulls is _Unreadable (convert writes none)."""
    import numpy as np
    import pyarrow as pa

    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pa.types.is_dictionary(array.type):
        hits = np.array([v == value for v in array.dictionary.to_pylist()] + [False], dtype=bool)
        codes = _numpy(pa.chunked_array([array.indices])) if not array.null_count else None
        if codes is None:
            raise _Unreadable(array.type)
        return hits[codes]
    return np.array([v == value for v in array.to_pylist()], dtype=bool)


def parallel_of(ds: Dataset) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """Collectives, per-rank step splits and process groups of a dataset (as tracekit.ranks.analyse_ranks gives
    for raw traces): the collectives table as stored, the step split rank by rank from a few event columns, so
    memory holds one rank's events at a time, and each rank's compute spans only for a pipeline-parallel run
    (tracekit.parallel.splits)."""
    from tracekit.dataset.read import table_file
    from tracekit.memory import release_freed_memory
    from tracekit.parallel.crossrank import read_collectives
    from tracekit.parallel.splits import dataset_splits, pipeline_possible
    from tracekit.ranks import group_table

    with table_file(ds.path("collectives")):
        coll = read_collectives(ds.path("collectives"))
    release_freed_memory()
    table = group_table([s.distributed for s in ds.sources], coll)
    return coll, dataset_splits(ds, coll, SPLIT_COLUMNS, pipeline_possible(coll, table)), table


def side_tables(path: str | Path):
    """(processed, module table or None, note or None) of one compare side: a raw trace read and processed, or a
    dataset read whole (compare aligns ops by their args) with its stored module table. An input of several ranks
    (a folder of rank files, a multi-rank dataset) gives its first input, and a note saying so: compare aligns
    one rank's modules and ops with another's."""
    ds = dataset_of([path])
    if ds is None:
        from tracekit.inputs import expand_inputs
        from tracekit.modules.table import COMPARE_COLUMNS, module_table
        from tracekit.pipeline import process, read_inputs

        paths = expand_inputs([path])
        processed = process(read_inputs(paths[:1]))
        modules = (module_table(processed.table, processed.modules, COMPARE_COLUMNS) if processed.modules is not None
                   else None)
        return processed, modules, _first_rank_note(len(paths), paths[0], processed.table.sources[0].rank)
    if len(ds.sources) > 1:
        processed, modules = first_input_of(ds, with_args=True)
        return processed, modules, _first_rank_note(len(ds.sources), first_input_path(ds), ds.sources[0].rank)
    modules = ds.read("modules")
    return ds.processed(with_args=True), modules.drop(columns=["rank"]) if ds.partitioned("modules") else modules, None


def _first_rank_note(count: int, first: str | Path, rank: int) -> str | None:
    """What compare says when a side holds several ranks (None for one)."""
    if count < 2:
        return None
    which = f"rank {rank}" if rank >= 0 else "its first input"
    return f"{count} ranks given: compared {which} ({first}) only; give one rank's trace to compare another"


def first_input_of(ds: Dataset, with_args: bool = False):
    """(Processed, module table) of the dataset's first input, as `tracekit report` builds them from the first of
    its raw inputs: every stored event column (args only with `with_args`), the launch links' unlinked counts
    counted on the stored columns (tracekit.link.unlinked_counts; the summary's are summed over all inputs), and that
    input's rows of modules.parquet. `overlapped` is the summary's count for a one-input dataset, 0 for a
    rank-partitioned one (convert keeps no per-rank count; the report does not show it)."""
    import numpy as np

    from tracekit.dataset.read import events_frame
    from tracekit.link import unlinked_counts
    from tracekit.pipeline import Processed
    from tracekit.table import EventTable, column

    if not ds.partitioned("events"):
        processed = ds.processed(None, with_args)
        table, overlapped = processed.table, processed.overlapped
        modules = ds.read("modules")
    else:
        rank, index, path = ds.parts("events")[0]
        stored = [c for c in ds.columns("events") if c != "args"]
        events = events_frame(ds._read_part(path, rank, [*stored, "rank"] if "rank" in stored else stored))
        table, overlapped = EventTable(events, _part_args(path, len(events), with_args), [ds.sources[index]]), 0
        module_parts = [(r, p) for r, i, p in ds.parts("modules") if i == index]
        modules = (ds._read_part(module_parts[0][1], module_parts[0][0], None).to_pandas() if module_parts
                   else ds.read("modules", ranks=[]))
        if "source_index" in modules:
            modules["source_index"] = np.int32(0)  # as the partition's events: one input per partition
    ev = table.events
    unlinked = unlinked_counts(ev, column(ev, "correlation"), column(ev, "launch"), column(ev, "launcher"))
    return Processed(table, unlinked, overlapped, None), modules


def first_input_path(ds: Dataset) -> str:
    """The dataset's first input as given to convert (its source's path), or, where that source is a file read
    inside the input (an Ascend folder's trace_view.json), the input as the manifest lists it."""
    source = ds.sources[0].path
    listed = (ds.manifest.get("inputs") or [{}])[0].get("path")
    if not listed or Path(source).resolve() == Path(listed).resolve():
        return source
    return listed


def _part_args(path: Path, n: int, with_args: bool) -> pa.Array:
    """The args column of one events partition as Dataset.event_table gives it (large_binary, no nulls), or n
    empty args."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tracekit.dataset.read import _no_args, table_file

    if not with_args:
        return _no_args(n)
    with table_file(path):
        text = pq.read_table(path, columns=["args"])["args"]
    return text.combine_chunks().cast(pa.large_binary()).fill_null(b"") if len(text) else _no_args(n)
