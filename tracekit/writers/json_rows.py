"""Build one JSON object per event with arrow compute kernels (no Python object per event)."""

from __future__ import annotations

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

LS = pa.large_string()


def _lit(text: str) -> pa.Scalar:
    return pa.scalar(text, LS)


def exact_us(ns: np.ndarray) -> pa.Array:
    """Non-negative integer ns as exact decimal microseconds text ("1234.567")."""
    arr = pa.array(ns, pa.int64())
    whole = pc.divide(arr, 1000)
    frac = pc.subtract(arr, pc.multiply(whole, 1000))
    text = pc.binary_join_element_wise(pc.cast(whole, LS), pc.utf8_lpad(pc.cast(frac, LS), 3, "0"), _lit("."))
    return text


def json_strings(values: np.ndarray) -> pa.Array:
    """JSON-encoded strings of an object array with many repeats (encoded once per distinct value)."""
    encoded = pa.array(values, pa.large_string()).dictionary_encode()
    uniques = encoded.dictionary.to_pylist()
    table = pa.array([msgspec.json.encode(u).decode() for u in uniques], LS)
    return table.take(encoded.indices)


class JsonText:
    """A categorical text column as the JSON text of each of its rows, every distinct value encoded once
    (for the whole table: the chunks of rows written then only take from it)."""

    def __init__(self, column: pd.Series | pd.Categorical | np.ndarray, missing: str | None = None):
        if isinstance(column, pd.Categorical):
            values = column
        elif isinstance(column, pd.Series) and isinstance(column.dtype, pd.CategoricalDtype):
            values = column.array
        else:
            values = pd.Series(column).astype("category").array
        self.codes = values.codes
        texts = [msgspec.json.encode(c).decode() for c in values.categories]
        if missing is not None:
            texts.append(msgspec.json.encode(missing).decode())
        self.table = pa.array(texts, LS)
        self.missing = missing

    def at(self, rows: np.ndarray) -> pa.Array:
        """JSON text of `rows`: a missing value is null, or the text of `missing`."""
        codes = self.codes[rows]
        if self.missing is None:
            return self.table.take(pa.array(codes, mask=codes < 0))
        return self.table.take(pa.array(np.where(codes < 0, len(self.table) - 1, codes)))


class PhText:
    """The JSON text of a categorical `ph` column as event_rows makes it ("I" as "i"; missing: null), each
    distinct value encoded once."""

    def __init__(self, ph: pd.Categorical):
        self.codes = ph.codes
        self.table = pa.array([msgspec.json.encode("i" if c == "I" else c).decode() for c in ph.categories], LS)

    def at(self, rows: np.ndarray) -> pa.Array:
        codes = self.codes[rows]
        return self.table.take(pa.array(codes, mask=codes < 0))


def event_rows(ph: np.ndarray, pid: np.ndarray, tid: np.ndarray, name: pa.Array, cat: pa.Array,
               ts_rel_ns: np.ndarray, dur_ns: np.ndarray, scope: pa.Array, args: pa.Array,
               prefix: str = "", ph_text: pa.Array | None = None) -> pa.Array:
    """`{"ph":..,"pid":..,"tid":..,"name":..,"cat":..,"ts":..,"dur":..,"s":..,"args":..}` per event.

    `name`, `cat` and `scope` are JSON text (JsonText.at): a null `cat` is left out, as are `dur` of non-X
    events, `s` of non-instant ones and empty `args`. Every row starts with `prefix` (e.g. the separator,
    see write_rows). `ph_text`, where given, is the JSON text of each `ph` as written ("I" as "i": see
    PhText), else it is made here.
    """
    empty = _lit("")
    is_x = pa.array(ph == "X")
    is_instant = pa.array((ph == "i") | (ph == "I"))
    if ph_text is None:
        ph_text = json_strings(np.where(ph == "I", "i", ph).astype(object))
    cat_part = pc.if_else(cat.is_valid(), pc.binary_join_element_wise(_lit(',"cat":'), cat, empty), empty)
    dur_part = pc.if_else(is_x, pc.binary_join_element_wise(_lit(',"dur":'), exact_us(np.maximum(dur_ns, 0)),
                                                            empty), empty)
    s_part = pc.if_else(is_instant, pc.binary_join_element_wise(_lit(',"s":'), scope, empty), empty)
    args_text = pc.cast(args, LS)
    has_args = pc.greater(pc.binary_length(args), 0)
    args_part = pc.if_else(has_args, pc.binary_join_element_wise(_lit(',"args":'), args_text, empty), empty)
    return pc.binary_join_element_wise(
        _lit(prefix + '{"ph":'), ph_text,
        _lit(',"pid":'), pc.cast(pa.array(pid, pa.int64()), LS),
        _lit(',"tid":'), pc.cast(pa.array(tid, pa.int64()), LS),
        _lit(',"name":'), name,
        cat_part,
        _lit(',"ts":'), exact_us(ts_rel_ns),
        dur_part, s_part, args_part,
        _lit("}"),
        empty,
    )


def joined_bytes(rows: pa.Array, separator: bytes = b",") -> bytes:
    """The rows joined by `separator`, as one bytes object."""
    if len(rows) == 0:
        return b""
    with_sep = pc.binary_join_element_wise(rows, _lit(separator.decode()), _lit(""))
    combined = with_sep.combine_chunks() if isinstance(with_sep, pa.ChunkedArray) else with_sep
    offsets = np.frombuffer(combined.buffers()[1], dtype=np.int64, count=len(combined) + 1, offset=combined.offset * 8)
    data = combined.buffers()[2]
    return data.to_pybytes()[offsets[0] : offsets[-1] - len(separator)]


def write_rows(fh, rows: pa.Array, skip: int = 0) -> int:
    """Write the rows back to back (no copy: their data buffer is written as it is); returns bytes written.

    `skip` bytes are left out at the start (e.g. the first row's separator).
    """
    if len(rows) == 0:
        return 0
    combined = rows.combine_chunks() if isinstance(rows, pa.ChunkedArray) else rows
    offsets = np.frombuffer(combined.buffers()[1], dtype=np.int64, count=len(combined) + 1,
                            offset=combined.offset * 8)
    view = memoryview(combined.buffers()[2])[int(offsets[0]) + skip : int(offsets[-1])]
    fh.write(view)
    return len(view)
