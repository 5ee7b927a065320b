"""Build one JSON object per event with arrow compute kernels (no Python object per event)."""

from __future__ import annotations

import functools

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


@functools.lru_cache(maxsize=65_536, typed=True)  # (typed: 1, 1.0 and True are three texts)
def json_text(value: object) -> str:
    """The JSON text of one value, kept per process: the ranks of a job a worker converts name the same ops, cats
    and modules, and each name is encoded once."""
    return msgspec.json.encode(value).decode()


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
        texts = list(map(json_text, values.categories))
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
               prefix: str = "", ph_text: pa.Array | None = None, args_extra: pa.Array | None = None) -> pa.Array:
    """`{"ph":..,"pid":..,"tid":..,"name":..,"cat":..,"ts":..,"dur":..,"s":..,"args":..}` per event.

    `name`, `cat` and `scope` are JSON text (JsonText.at): a null `cat` is left out, as are `dur` of non-X
    events, `s` of non-instant ones and empty `args`. Every row starts with `prefix` (e.g. the separator,
    see write_rows). `ph_text`, where given, is the JSON text of each `ph` as written ("I" as "i": see
    PhText), else it is made here. `args_extra` (text, null where none) holds object members ('"k":v,...')
    appended to a row's args object (see append_members).

    The optional members are null where they are left out and the row is joined in one kernel that
    reads a null member as "" (a dozen arrow kernels a chunk; `plain_event_rows` is the same text made
    member by member). A null name, ph or args (the whole row null) or a negative ts goes the plain way.
    """
    if ph_text is None:
        ph_text = json_strings(np.where(ph == "I", "i", ph).astype(object))
    if name.null_count or ph_text.null_count or args.null_count or (len(ts_rel_ns) and ts_rel_ns.min() < 0):
        return plain_event_rows(ph, pid, tid, name, cat, ts_rel_ns, dur_ns, scope, append_members(args, args_extra),
                                prefix, ph_text)
    is_x = ph == "X"
    is_instant = (ph == "i") | (ph == "I")
    members = [_lit(prefix + '{"ph":'), ph_text,
               _lit(',"pid":'), _int_text(pid),
               _lit(',"tid":'), _int_text(tid),
               _lit(',"name":'), name]
    if cat.null_count < len(cat):  # null where missing: left out
        members.append(pc.binary_join_element_wise(_lit(',"cat":'), cat, _lit("")))
    members += [_lit(',"ts":'), *_us_parts(ts_rel_ns)]
    if is_x.any():
        members.append(pc.binary_join_element_wise(_lit(',"dur":'), *_us_parts(np.maximum(dur_ns, 0), ~is_x),
                                                   _lit("")))
    if is_instant.any():
        members.append(pc.binary_join_element_wise(_lit(',"s":'), _null_where(scope, ~is_instant), _lit("")))
    args_text = pc.cast(args, LS)
    left_out = pc.equal(pc.binary_length(args_text), 0).to_numpy(False)  # empty args: no member
    if args_extra is not None and args_extra.null_count < len(args_extra):
        extended = args_extra.is_valid().to_numpy(False)
        inner = _object_inner(args_text)
        separator = _SEPARATORS.take(pa.array(pc.greater(pc.binary_length(inner), 0).to_numpy(False).astype(np.int8)))
        members.append(pc.binary_join_element_wise(_lit(',"args":{'), inner, separator, args_extra, _lit("}"),
                                                   _lit("")))  # null where there is nothing to add
        left_out |= extended
    members.append(pc.binary_join_element_wise(_lit(',"args":'), _null_where(args_text, left_out), _lit("")))
    members.append(_lit("}"))
    return pc.binary_join_element_wise(*members, _lit(""), null_handling="replace", null_replacement="")


_SEPARATORS = pa.array(["", ","], LS)
_WHITESPACE = " \t\n\r\x0b\x0c"  # what bytes.strip() strips


def _object_inner(text: pa.Array) -> pa.Array:
    """The members of each JSON object text: what is inside its braces, surrounding whitespace trimmed.

    Byte kernels: whitespace and the first and last character of a JSON text are ASCII, so this is what
    the UTF-8 kernels (utf8_trim, utf8_slice_codeunits) give, without decoding each character.
    """
    trimmed = pc.ascii_trim(text, _WHITESPACE).cast(pa.large_binary())
    return pc.ascii_trim(pc.binary_slice(trimmed, 1, -1).cast(LS), _WHITESPACE)


def joined_members(first: pa.Array | None, second: pa.Array | None) -> pa.Array | None:
    """Two sets of object members per row (text, null: none) as one ('a,b'; null where neither has any)."""
    if first is None or second is None:
        return first if second is None else second
    has_first, has_second = first.is_valid().to_numpy(False), second.is_valid().to_numpy(False)
    separator = _SEPARATORS.take(pa.array((has_first & has_second).astype(np.int8)))
    # (null_handling="skip" drops the rows where all are null: pyarrow 26)
    joined = pc.binary_join_element_wise(first.fill_null(""), separator, second.fill_null(""), _lit(""))
    return _null_where(joined, ~has_first & ~has_second)


def append_members(args: pa.Array, extra: pa.Array | None) -> pa.Array:
    """`args` (JSON object text) with the object members in `extra` ('"k":v,...'; null: none) appended.

    Each extended row's object keeps its members (surrounding whitespace trimmed); an empty args becomes
    a new object. The row by row form of what event_rows writes for `args_extra`.
    """
    if extra is None or extra.null_count == len(extra):
        return args
    mask = extra.is_valid()
    text = args.filter(mask).cast(LS)
    inner = pc.utf8_trim(pc.utf8_slice_codeunits(pc.utf8_trim(text, _WHITESPACE), 1, -1), _WHITESPACE)
    sep = pc.if_else(pc.equal(pc.utf8_length(inner), 0), _lit(""), _lit(","))
    merged = pc.binary_join_element_wise(_lit("{"), inner, sep, extra.filter(mask).cast(LS), _lit("}"), _lit(""))
    return pc.replace_with_mask(args.cast(pa.large_binary()), mask, merged.cast(pa.large_binary()))


_FRACTIONS = pa.array([f".{k:03d}" for k in range(1000)], LS)  # the decimals of every ns remainder


def _int_text(values: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    """Integers as decimal text (null where `missing`)."""
    return pc.cast(pa.array(values, pa.int64(), mask=missing), LS)


def _us_parts(ns: np.ndarray, missing: np.ndarray | None = None) -> tuple[pa.Array, pa.Array]:
    """Non-negative integer ns as exact microseconds text in two members: whole us ("1234", null where
    `missing`) and the decimals (".567"); joined, what exact_us gives."""
    whole, frac = np.divmod(np.asarray(ns, dtype=np.int64), 1000)
    return _int_text(whole, missing), _FRACTIONS.take(pa.array(frac))


def _null_where(text: pa.Array, missing: np.ndarray) -> pa.Array:
    """`text` (no nulls) with the rows in `missing` made null, its offsets and data shared."""
    if not missing.any():
        return text
    valid = np.concatenate([np.ones(text.offset, dtype=bool), ~missing])  # the bitmap counts from the offset
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(text.type, len(text), [bitmap, *text.buffers()[1:]], offset=text.offset)


def plain_event_rows(ph: np.ndarray, pid: np.ndarray, tid: np.ndarray, name: pa.Array, cat: pa.Array,
                     ts_rel_ns: np.ndarray, dur_ns: np.ndarray, scope: pa.Array, args: pa.Array,
                     prefix: str = "", ph_text: pa.Array | None = None) -> pa.Array:
    """What event_rows makes, one member at a time (two kernels each: the reference it is tested against)."""
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
