"""The normalized event table: one row per input event, columnar, absolute integer ns.

pandas and pyarrow are imported where a function needs them, not here: `tracekit info` on a raw trace
holds its events in a `tracekit.columns.Columns` (numpy arrays and coded strings) and runs the helpers
below on it without loading either (see tracekit/columns.py).
"""

from __future__ import annotations

import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tracekit.columns import Coded, Columns

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

KINDS = (
    "python", "module", "cpu_op", "runtime", "kernel", "memcpy", "memset", "collective",
    "annotation", "step", "memory", "counter", "instant", "flow", "metadata", "other",
)
DEVICE_KINDS = frozenset({"kernel", "memcpy", "memset"})
NO_ROW = -1


def __getattr__(name: str) -> Any:
    """KIND_DTYPE, built on first use (it needs pandas)."""
    if name == "KIND_DTYPE":
        import pandas as pd

        # object categories: turning a column into an array is then a pointer copy (not one str per row)
        dtype = pd.CategoricalDtype(pd.Index(KINDS, dtype=object))
        globals()["KIND_DTYPE"] = dtype
        return dtype
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class SourceInfo:
    """What one input file is: format, time base, devices, rank, and its own metadata."""

    path: str
    format: str  # "torch" | "viztracer" | "npu"
    source: str  # value of the `source` column
    base_ns: int  # absolute ns = base_ns + relative ns
    base_from: str  # where base_ns came from
    rank: int = -1
    rank_from: str = ""
    devices: list[dict[str, Any]] = field(default_factory=list)
    distributed: dict[str, Any] = field(default_factory=dict)
    top: dict[str, Any] = field(default_factory=dict)  # other top-level keys
    process_names: dict[int, str] = field(default_factory=dict)
    process_labels: dict[int, str] = field(default_factory=dict)
    process_sort: dict[int, int] = field(default_factory=dict)
    thread_names: dict[tuple[int, int], str] = field(default_factory=dict)
    thread_sort: dict[tuple[int, int], int] = field(default_factory=dict)
    input_events: int = 0
    metadata_folded: int = 0  # M events read into the names above (they have no row)
    skipped: dict[str, int] = field(default_factory=dict)
    damage: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # reader-specific facts for summary.json


@dataclass
class EventTable:
    """Events of one or more sources.

    `events` holds one row per kept input event (pandas, categorical strings, int64 ns);
    `args` holds each row's original args as raw JSON bytes (same row order). `tracekit info` on raw
    traces reads a lighter form: `events` a tracekit.columns.Columns and `args` None.
    """

    events: pd.DataFrame
    args: pa.LargeBinaryArray
    sources: list[SourceInfo]

    def __len__(self) -> int:
        return len(self.events)

    @property
    def skipped(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for src in self.sources:
            for reason, count in src.skipped.items():
                total[reason] = total.get(reason, 0) + count
        return total

    @property
    def input_events(self) -> int:
        return sum(s.input_events for s in self.sources)

    @property
    def metadata_folded(self) -> int:
        return sum(s.metadata_folded for s in self.sources)

    def with_columns(self, **columns: Any) -> EventTable:
        """A copy of the table with columns added or replaced (the table itself is unchanged)."""
        import pandas as pd

        if any(name in self.events for name in columns):
            events = self.events.assign(**columns)
        else:  # one concat: assign inserts the columns one at a time, ~3x slower on a small table
            events = pd.concat([self.events, pd.DataFrame(columns, index=self.events.index)], axis=1)
        return EventTable(events, self.args, self.sources)


def concat(tables: list[EventTable]) -> EventTable:
    """Stack the tables of several sources; row references (parent, launcher...) are shifted."""
    if len(tables) == 1:
        return tables[0]
    import pandas as pd
    import pyarrow as pa

    frames, offset = [], 0
    for table in tables:
        frame = table.events.copy()
        for col in ROW_COLUMNS:
            if col in frame:
                values = frame[col].to_numpy()
                frame[col] = np.where(values >= 0, values + offset, values)
        frames.append(frame)
        offset += len(frame)
    events = pd.concat(frames, ignore_index=True)
    for col in CATEGORICAL_COLUMNS:
        if col in events and events[col].dtype != "category":
            events[col] = object_categories(events[col].astype("category").array)
        elif col in events:
            events[col] = object_categories(events[col].array)
    args = pa.concat_arrays([t.args for t in tables])
    return EventTable(events, args, [s for t in tables for s in t.sources])


ROW_COLUMNS = ("parent", "launcher", "launch", "flow_peer")
CATEGORICAL_COLUMNS = ("source", "ph", "name", "cat", "kind", "track", "flow_id", "bp", "scope")


def track_view(events: pd.DataFrame) -> pd.DataFrame:
    """The events as track-building stages see them: `tracekit merge` sets `track_source` so that rows
    of several files recorded by one process are drawn on that process's tracks (one file's index)."""
    if "track_source" not in events:
        return events
    return events.assign(source_index=events["track_source"])


_NUMPY_EXTENSION: type | None = None  # pandas' NumpyExtensionArray, found on first use


def _numpy_extension() -> type:
    global _NUMPY_EXTENSION
    import pandas as pd

    _NUMPY_EXTENSION = getattr(pd.arrays, "NumpyExtensionArray", None) or pd.arrays.PandasArray  # pandas < 2.1
    return _NUMPY_EXTENSION


def column_array(frame: pd.DataFrame | Columns, name: str) -> np.ndarray | pd.api.extensions.ExtensionArray | Coded:
    """The array that holds column `name` (numpy, or a pandas extension array such as a Categorical),
    without building a Series; numpy arrays come read-only. See `column`."""
    if isinstance(frame, Columns):
        return frame.array(name)
    loc = frame.columns.get_loc(name)  # KeyError for a missing column, as frame[name]
    getter = getattr(frame, "_get_column_array", None)  # pandas internals; the public way where absent
    if type(loc) is int and getter is not None:
        values = getter(loc)
    else:  # also a name held by several columns (or a numpy integer position): what frame[name] gives
        import pandas as pd

        selected = frame[name]
        values = selected.array if isinstance(selected, pd.Series) else selected.to_numpy()
    if type(values) is not np.ndarray and isinstance(values, _NUMPY_EXTENSION or _numpy_extension()):
        values = values.to_numpy()
    if isinstance(values, np.ndarray):
        values = values.view()
        values.flags.writeable = False
    return values


def column(frame: pd.DataFrame | Columns, name: str) -> np.ndarray | pd.Categorical | Coded:
    """The values of column `name` without building a Series: a read-only numpy array (what
    `frame[name].to_numpy()` gives), or the Categorical of a categorical column (`frame[name].array`);
    of a Columns, its array or its Coded string column.

    `frame[name]` costs ~15-30 us with pandas 3 (a Series, its index, copy-on-write references); the
    per-rank stages read a few hundred columns of frames of a few thousand rows, where that is the cost."""
    values = column_array(frame, name)
    if isinstance(values, np.ndarray | Coded):
        return values
    import pandas as pd

    if isinstance(values, pd.Categorical):
        return values
    return frame[name].to_numpy()


def is_coded(values) -> bool:
    """Whether a column is dictionary-encoded (a pandas Categorical or categorical Series, or a Coded)."""
    return _categorical(values) is not None


def _categorical(values) -> pd.Categorical | Coded | None:
    """The Categorical of a categorical Series or a Categorical itself, or a Coded column (both have `codes`
    and `categories`); None for other columns."""
    if isinstance(values, Coded):
        return values
    pd = sys.modules.get("pandas")
    if pd is None:  # then `values` is no pandas object
        return None
    if isinstance(values, pd.Categorical):
        return values
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        return values.array
    return None


def is_in(column: pd.Series | pd.Categorical | np.ndarray, values) -> np.ndarray:
    """Mask of the rows of a categorical column whose value is one of `values`, computed on the codes
    (a plain column is compared row by row)."""
    cat = _categorical(column)
    if cat is None:
        return np.isin(np.asarray(column, dtype=object), list(values))
    # hits[codes], not hits.take(codes): take first copies the int8/int16 codes to intp (8 B a row)
    return _category_hits(cat.categories, frozenset(values))[cat.codes]  # code -1 (missing) -> the last: False


_HITS_LOCK = threading.Lock()
_HITS: OrderedDict[tuple[int, frozenset], tuple[pd.Index, np.ndarray]] = OrderedDict()


def _category_hits(cats: pd.Index | list, wanted: frozenset) -> np.ndarray:
    """Per category, whether it is in `wanted`, and False appended (for code -1). The stages ask the same few
    questions of the same columns (the kind column, whose categories are one Index for every table, ~30 times a
    rank): the answers for the last few (categories, values) pairs are kept, for an Index (immutable; the entry
    holds it, so its id is not reused while cached), not for a list."""
    cacheable = not isinstance(cats, list)
    key = (id(cats), wanted)
    if cacheable:
        with _HITS_LOCK:
            found = _HITS.get(key)
            if found is not None and found[0] is cats:
                _HITS.move_to_end(key)
                return found[1]
    hits = np.zeros(len(cats) + 1, dtype=bool)
    hits[:-1] = np.fromiter((c in wanted for c in cats), dtype=bool, count=len(cats))
    hits.flags.writeable = False
    if cacheable:
        with _HITS_LOCK:
            _HITS[key] = (cats, hits)
            if len(_HITS) > 64:
                _HITS.popitem(last=False)
    return hits


def kind_in(events: pd.DataFrame | Columns, kinds) -> np.ndarray:
    """Mask of the rows whose kind is one of `kinds`."""
    return is_in(column(events, "kind"), kinds)


def object_categories(values: pd.Categorical) -> pd.Categorical:
    """The same categorical with its categories held as Python objects (see KIND_DTYPE)."""
    import pandas as pd

    if values.categories.dtype == object:
        return values
    cats = pd.Index(values.categories.to_numpy(dtype=object), dtype=object)
    return pd.Categorical.from_codes(values.codes, dtype=pd.CategoricalDtype(cats, ordered=values.ordered))


def categorical(values: list) -> pd.Categorical:
    """Dictionary-encode a list of strings (None stays missing), in C via arrow."""
    import pandas as pd
    import pyarrow as pa

    encoded = pa.array(values, type=pa.string()).dictionary_encode()
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
    return pd.Categorical.from_codes(codes, categories=pd.Index(encoded.dictionary.to_pylist(), dtype=object))


def strings(column: pd.Series | pd.Categorical | np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Object array of the values of a categorical (or plain) string column, or of its `rows`; missing -> None."""
    cat = _categorical(column)
    if cat is not None:
        cats = np.asarray(cat.categories, dtype=object)
        codes = cat.codes
        if rows is not None:
            codes = codes[rows]
        out = np.append(cats, None)[codes] if len(cats) else np.full(len(codes), None, dtype=object)
        return out
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(column, pd.Series):
        values = column.astype(object).to_numpy()
    else:
        values = np.asarray(column, dtype=object)
    return values if rows is None else values[rows]


class TextAt:
    """`strings(column)[row]` one row at a time: for a caller that reads a few rows of a long column, without the
    object array of every row (8 B a row). `values_by_code`: one value per category instead of its text."""

    def __init__(self, column: pd.Series | pd.Categorical | np.ndarray, values_by_code: list | None = None) -> None:
        cat = _categorical(column)
        if cat is None:
            self._values, self._codes = strings(column), None
            return
        by_code = np.asarray(cat.categories, dtype=object) if values_by_code is None else values_by_code
        self._values = np.empty(len(by_code) + 1, dtype=object)  # code -1 (missing) -> the last: None
        self._values[: len(by_code)] = by_code
        self._codes = cat.codes

    def __getitem__(self, row: int) -> object:
        return self._values[row] if self._codes is None else self._values[self._codes[row]]


def int_column(values: list) -> np.ndarray:
    """int64 array from a list of ints and None (None becomes -1), in C via arrow."""
    import pyarrow as pa

    return pa.array(values, type=pa.int64()).fill_null(-1).to_numpy(zero_copy_only=False)



def time_span(events: pd.DataFrame | Columns) -> tuple[int, int]:
    """(first start, last end) in ns of the non-metadata events, (0, 0) when there are none (no frame copy)."""
    ph = column(events, "ph")
    timed = ~is_in(ph, ("M",)) if is_coded(ph) else (events["ph"] != "M").to_numpy()
    if not timed.any():
        return 0, 0
    ts = column(events, "ts_ns")[timed]
    return int(ts.min()), int((ts + np.maximum(column(events, "dur_ns")[timed], 0)).max())


def matches(column: pd.Series | pd.Categorical | np.ndarray, pattern: str | re.Pattern) -> np.ndarray:
    """Rows of a (categorical) string column that match `pattern` at their start, tested once per
    distinct value rather than once per row."""
    cat = _categorical(column)
    if cat is None:
        import pandas as pd

        plain = column if isinstance(column, pd.Series) else pd.Series(np.asarray(column, dtype=object))
        return plain.astype(object).str.match(pattern, na=False).to_numpy(dtype=bool)
    regex = re.compile(pattern) if isinstance(pattern, str) else pattern
    return np.append(_category_matches(cat.categories, regex), False)[cat.codes]  # -1 -> False


_MATCHED_LOCK = threading.Lock()
_MATCHED: OrderedDict[tuple[int, str, int], tuple[pd.Index | list, np.ndarray]] = OrderedDict()


def _category_matches(cats: pd.Index | list, regex: re.Pattern) -> np.ndarray:
    """Which categories `regex` matches at their start. The stages ask the same questions of the same name
    column several times: the answers for the last few (categories, pattern) pairs are kept (an Index is
    immutable; the entry holds it, so its id is not reused while cached)."""
    key = (id(cats), regex.pattern, regex.flags)
    with _MATCHED_LOCK:
        found = _MATCHED.get(key)
        if found is not None and found[0] is cats:
            _MATCHED.move_to_end(key)
            return found[1]
    hits = _matches_by_text(cats, regex)
    with _MATCHED_LOCK:
        _MATCHED[key] = (cats, hits)
        if len(_MATCHED) > 32:
            _MATCHED.popitem(last=False)
    return hits


_TEXT_MATCHES: dict[tuple[str, int], dict[object, bool]] = {}  # per process: pattern -> {category: matches}
_TEXT_MATCHES_KEPT = 65_536  # categories remembered per pattern (then forgotten and started again)


def _matches_by_text(cats: pd.Index | list, regex: re.Pattern) -> np.ndarray:
    """Which categories `regex` matches at their start, each text tested once per process: the ranks of a job
    (one worker converts many) name the same ops, so most categories were tested on an earlier rank."""
    memo = _TEXT_MATCHES.get((regex.pattern, regex.flags))
    if memo is None or len(memo) > _TEXT_MATCHES_KEPT:
        memo = _TEXT_MATCHES[(regex.pattern, regex.flags)] = {}
    known = [memo.get(c) for c in cats]
    if None in known:
        for i, (c, hit) in enumerate(zip(cats, known)):
            if hit is None:
                known[i] = memo[c] = isinstance(c, str) and regex.match(c) is not None
    return np.array(known, dtype=bool) if known else np.zeros(0, dtype=bool)


def group_codes(*columns: np.ndarray, sort: bool = False) -> tuple[np.ndarray, int]:
    """Per row, the number of its group of rows equal in every column, and the number of groups.

    Groups are numbered in order of first appearance, or with `sort` in lexicographic order of their
    values. Integer columns are packed into one int64 key while their value ranges fit (others are
    factorized first), then one hash factorization numbers the groups: no sort of the rows, microseconds on
    small tables and linear on large ones, where a pandas groupby or merge costs a millisecond each."""
    n = len(columns[0]) if columns else 0
    return _codes_of(iter(columns), n, sort)


class NonNegative:
    """`np.maximum(values, 0)` at the rows asked (a duration read at some rows, without a copy of the column)."""

    def __init__(self, values: np.ndarray) -> None:
        self._values = values

    def __getitem__(self, rows: Any) -> Any:
        return np.maximum(self._values[rows], 0)


def group_codes_at(columns: Sequence[np.ndarray], rows: np.ndarray, sort: bool = False) -> tuple[np.ndarray, int]:
    """group_codes of the columns taken at `rows`, one column at a time (never a copy of each at once)."""
    return _codes_of((values[rows] for values in columns), len(rows), sort)


def _codes_of(columns: Iterator[np.ndarray], n: int, sort: bool) -> tuple[np.ndarray, int]:
    """group_codes of the columns of length `n` that `columns` yields, each taken when needed and let go once
    packed (first_match makes each from two arrays: only one is held at a time)."""
    if not n:
        return np.zeros(0, dtype=np.int64), 0
    key, span = np.zeros(n, dtype=np.int64), 1
    for column in columns:
        values, width = _dense(np.asarray(column), sort)
        del column
        if span * width >= _PACKED:
            key, uniques = _factorize(key, sort=sort)
            key = key.astype(np.int64, copy=False)
            span = len(uniques)
        if span * width >= _PACKED:
            values, uniques = _factorize(values, sort=sort)
            width = len(uniques)
        key *= width  # in place: key * width + values without two more arrays of n
        key += values
        del values
        span *= width
    code, uniques = _factorize(key, sort=sort)
    return code.astype(np.int64, copy=False), len(uniques)


def _factorize(values: np.ndarray, sort: bool) -> tuple[np.ndarray, np.ndarray]:
    """pd.factorize of an int64 array (codes, uniques): by hashing where pandas is loaded, else the same
    codes from numpy (np.unique: sorted, renumbered by first appearance unless `sort`), so that a command that
    never loads pandas (`info` on raw traces) gets the same groups."""
    pd = sys.modules.get("pandas")
    if pd is not None:
        return pd.factorize(values, sort=sort)
    uniques, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    if sort:
        return inverse.astype(np.int64), uniques
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    return rank[inverse], uniques[order]


_PACKED = 1 << 62


def _dense(values: np.ndarray, sort: bool) -> tuple[np.ndarray, int]:
    """Non-negative int64 codes of a column (order-preserving) and their bound: integers minus their minimum
    where their range is small enough to pack, else hash factorization (missing values are one value)."""
    if values.dtype.kind in "iub":
        low, high = int(values.min()), int(values.max())
        if high - low < _PACKED:
            dense = values.astype(np.int64)  # a copy: subtracted in place
            dense -= low
            return dense, high - low + 1
    import pandas as pd

    codes, uniques = pd.factorize(values, sort=sort, use_na_sentinel=False)
    return codes.astype(np.int64, copy=False), max(len(uniques), 1)


_FIRST_CHUNK = 1 << 16
_FEW_GROUPS = 1 << 16  # few_group_codes: more distinct keys than this, and group_codes is used instead


def few_group_codes(*columns: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """group_codes(*columns, sort=True) of integer columns with few distinct rows (the tracks: source, pid,
    tid), chunk by chunk: the key of each chunk packed, its distinct keys kept, then each chunk's codes by a
    binary search among them. The same codes without a hash table sized by the rows nor a key of every row
    (~48 B a row at group_codes' peak; here the codes' 8 B and a chunk's). Other columns: group_codes.
    `rows`: of the columns taken at these rows (group_codes_at)."""
    if rows is None:
        n = len(columns[0]) if columns else 0
        if not n or any(c.dtype.kind not in "ib" for c in columns):  # (unsigned: group_codes)
            return group_codes(*columns, sort=True)
    else:
        n = len(rows)
        if not n or any(c.dtype.kind not in "ib" for c in columns):  # (unsigned: group_codes)
            return group_codes_at(columns, rows, sort=True)
    lows = [int(c.min()) for c in columns]
    widths = [int(c.max()) - low + 1 for c, low in zip(columns, lows)]
    span = 1
    for width in widths:
        span *= width

    def fallback() -> tuple[np.ndarray, int]:
        return group_codes(*columns, sort=True) if rows is None else group_codes_at(columns, rows, sort=True)

    if span >= _PACKED or n <= _FIRST_CHUNK:  # (a table of one chunk: group_codes takes less time there)
        return fallback()

    def key(at: int) -> np.ndarray:  # the packed key of rows [at, at + _FIRST_CHUNK): order-preserving
        out = np.zeros(min(_FIRST_CHUNK, n - at), dtype=np.int64)
        picked = None if rows is None else rows[at : at + _FIRST_CHUNK]
        for values, low, width in zip(columns, lows, widths):
            out *= width
            out += values[at : at + _FIRST_CHUNK] if picked is None else values[picked]
            out -= low
        return out

    seen: list[np.ndarray] = []
    count = 0
    for at in range(0, n, _FIRST_CHUNK):
        keys = np.sort(key(at))
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
        seen.append(keys)
        count += len(keys)
        if count > _FEW_GROUPS * 4:  # many distinct keys: not the case this is for
            return fallback()
    keys = np.sort(np.concatenate(seen))
    keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
    if len(keys) > _FEW_GROUPS:
        return fallback()
    codes = np.empty(n, dtype=np.int64)
    for at in range(0, n, _FIRST_CHUNK):
        codes[at : at + _FIRST_CHUNK] = np.searchsorted(keys, key(at))
    return codes, len(keys)


def first_of_group(code: np.ndarray, groups: int) -> np.ndarray:
    """The first position of each group of `code` (see group_codes); chunk by chunk (the positions of every row
    at once were 8 B a row)."""
    first = np.full(groups, len(code), dtype=np.int64)
    for at in range(0, len(code), _FIRST_CHUNK):
        part = code[at : at + _FIRST_CHUNK]
        np.minimum.at(first, part, np.arange(at, at + len(part), dtype=np.int64))
    return first


def in_sorted(values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Per query value, whether the sorted `values` hold it (a binary search: no hash table, no np.unique)."""
    if not len(values):
        return np.zeros(len(query), dtype=bool)
    return values[np.minimum(np.searchsorted(values, query), len(values) - 1)] == query


def first_match(query: tuple[np.ndarray, ...], table: tuple[np.ndarray, ...]) -> np.ndarray:
    """Per query row, the position of the first table row whose key (one value per column) is the same; -1 if none.

    What `query.merge(table.drop_duplicates(key), how="left")` finds, without building either frame."""
    size = len(query[0])
    if not size or not len(table[0]):
        return np.full(size, -1, dtype=np.int64)
    return _first_match((np.concatenate([q, t]) for q, t in zip(query, table)), size, len(table[0]))


def first_match_rows(columns: Sequence[np.ndarray], query_rows: np.ndarray, table_rows: np.ndarray) -> np.ndarray:
    """first_match(tuple(c[query_rows] for c in columns), tuple(c[table_rows] for c in columns)), each column taken
    at its rows only when packed (never all the key columns of both sides at once)."""
    size = len(query_rows)
    if not size or not len(table_rows):
        return np.full(size, -1, dtype=np.int64)
    return _first_match((np.concatenate([c[query_rows], c[table_rows]]) for c in columns), size, len(table_rows))


def _first_match(joined: Iterator[np.ndarray], size: int, table_size: int) -> np.ndarray:
    """first_match of the key columns that `joined` yields (each: the query's values, then the table's)."""
    code, groups = _codes_of(joined, size + table_size, False)
    first = first_of_group(code[size:], groups)
    found = first[code[:size]]
    del code, first
    found[found >= table_size] = -1
    return found
