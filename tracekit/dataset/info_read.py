"""The events `tracekit info` needs, read from a dataset into a tracekit.columns.Columns: numpy arrays and
dictionary-coded strings straight from Arrow, without pandas (its import alone costs more than the facts).

The table is the one Dataset.events gives (the same rows and order, each rank's row references shifted by the rows
before it, source_index the rank's input position), in the form the raw-trace info path reads; tracekit.info's
facts from it are those of the pandas table (tests/test_info_dataset_lean.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tracekit.columns import Coded, Column, Columns, concat_columns
from tracekit.dataset.load import INFO_COLUMNS

if TYPE_CHECKING:
    import pyarrow as pa

    from tracekit.dataset.read import Dataset
    from tracekit.table import EventTable

ROW_COLUMNS = ("parent", "launch", "launcher")  # tracekit.table.ROW_COLUMNS (row references within a table)


def dataset_facts(ds: Dataset, top: int = 10) -> dict:
    """The facts `tracekit info` gives of the dataset (tracekit.info.table_info), from its stored columns."""
    from tracekit.info import table_info

    return table_info(info_events(ds, INFO_COLUMNS), dict(ds.summary.get("unlinked_device_events", {})), top)


def info_events(ds: Dataset, columns: tuple[str, ...]) -> EventTable:
    """The dataset's events (these columns, those it has) as a Columns table, with the dataset's sources."""
    from tracekit.table import EventTable

    wanted = [c for c in columns if c in set(ds.columns("events"))]
    parts, offset = [], 0
    for index, path in _event_files(ds):
        part = _columns_of(_read(path, [c for c in wanted if c != "source_index"]), offset)
        if "source_index" in wanted and ds.partitioned("events"):
            part["source_index"] = np.int32(index)
        elif "source_index" in wanted:
            part["source_index"] = _numbers(_read(path, ["source_index"]).column(0))
        parts.append(part)
        offset += len(part)
    events = concat_columns(parts) if parts else Columns({c: np.zeros(0, dtype=np.int64) for c in wanted}, 0)
    return EventTable(events, None, ds.sources)


def _event_files(ds: Dataset) -> Iterator[tuple[int, Path]]:
    """(input index, Parquet file) of the events table, in input order."""
    if not ds.partitioned("events"):
        yield 0, ds.path("events")
        return
    for _rank, index, path in ds.parts("events"):
        yield index, path


def _read(path: Path, columns: list[str]) -> pa.Table:
    import pyarrow.parquet as pq

    from tracekit.dataset.read import table_file
    from tracekit.dataset.table_check import checked

    with table_file(path):  # ParquetFile, not read_table: that loads pyarrow.dataset, and with it pandas
        return checked(pq.ParquetFile(path).read(columns=columns, use_threads=False), path)


def _columns_of(table: pa.Table, offset: int) -> Columns:
    """Arrow columns as numpy (numbers; row references shifted by `offset`) and Coded (strings)."""
    out: dict[str, Column] = {}
    for name in table.column_names:
        values = _coded(table.column(name)) if _is_text(table.column(name).type) else _numbers(table.column(name))
        if name in ROW_COLUMNS and offset and isinstance(values, np.ndarray):
            values = np.where(values >= 0, values + offset, values)
        out[name] = values
    return Columns(out, table.num_rows)


def _is_text(kind: pa.DataType) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _coded(column: pa.ChunkedArray) -> Coded:
    """A string column as codes into its distinct values (-1: null)."""
    import pyarrow as pa

    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if not pa.types.is_dictionary(array.type):
        array = array.dictionary_encode()
    indices = array.indices
    codes = _values(indices) if not indices.null_count else np.where(_valid(indices), _values(indices), -1)
    return Coded(codes.astype(np.int32), array.dictionary.to_pylist())


def _numbers(column: pa.ChunkedArray) -> np.ndarray:
    """Numbers as numpy; a column with nulls as float with NaN there (what pandas makes of it)."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if _dtype(array.type) is None:  # not a plain number: pyarrow's own conversion
        return array.to_numpy(zero_copy_only=False)
    if not array.null_count:
        return _values(array)
    return np.where(_valid(array), _values(array).astype(np.float64), np.nan)


# pyarrow's to_numpy loads pandas (a check whether it is there): the numbers are read from the buffers instead


def _dtype(kind: pa.DataType) -> np.dtype | None:
    import pyarrow as pa

    for test, prefix in ((pa.types.is_signed_integer, "int"), (pa.types.is_unsigned_integer, "uint"),
                         (pa.types.is_floating, "float")):
        if test(kind):
            return np.dtype(f"{prefix}{kind.bit_width}")
    return None


def _values(array: pa.Array) -> np.ndarray:
    """The value buffer of a fixed-width number array, as numpy (what null slots hold is undefined)."""
    data = array.buffers()[1]
    if data is None:  # no rows
        return np.zeros(0, dtype=_dtype(array.type))
    return np.frombuffer(data, dtype=_dtype(array.type))[array.offset:array.offset + len(array)]


def _valid(array: pa.Array) -> np.ndarray:
    bits = np.frombuffer(array.buffers()[0], dtype=np.uint8)
    return np.unpackbits(bits, bitorder="little")[array.offset:array.offset + len(array)].astype(bool)
