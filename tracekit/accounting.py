"""Where every input event went: written, folded into metadata, replaced, or skipped with a reason."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from tracekit.table import DEVICE_KINDS, column, first_match, first_match_rows, in_sorted, is_in, kind_in

WRITTEN = "written"
METADATA = "metadata"  # M events: folded into tracekit's own process/thread names
FLOW_REPLACED = "flow_replaced_by_launch_link"  # cpu->device flows re-drawn from correlation ids
UNMATCHED_FLOW = "flow_unmatched"  # a flow start or end without its other half
UNBOUND_FLOW = "flow_without_slice"  # a flow end not at the start of any slice on its track
LAUNCH_FLOW_CATS = frozenset({"ac2g", "async_cpu_to_gpu", "async", "async_npu", "HostToDevice"})


def flow_status(events: pd.DataFrame, launch: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
    """Status per flow row, and the pairs (start row, end row, cat) of flows to write as they are.

    Launch flows whose id is the correlation of a linked device event are replaced by the flows
    drawn from the links; other flows are paired by (source file, cat, id) and each end is bound
    to the slice that starts at its ts on its track. Works on column codes: no copy of the frame,
    no Python string per row.
    """
    status, pairs = flow_status_arrays(events, launch)
    if pairs is None:
        return status, pd.DataFrame(columns=["start", "end", "cat"])
    return status, pd.DataFrame(pairs)


def flow_status_arrays(events: pd.DataFrame, launch: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
    """What flow_status gives, the pairs as their arrays (start, end, cat, start_row, end_row; None: no flow rows),
    without making a DataFrame (~0.3 ms a rank)."""
    status = np.full(len(events), "", dtype=object)
    is_flow = kind_in(events, ("flow",))
    if not is_flow.any():
        return status, None
    rows = np.flatnonzero(is_flow)
    src = column(events, "source_index")
    cat_codes = column(events, "cat").codes[rows]
    id_codes = column(events, "flow_id").codes[rows]
    replaced = is_in(column(events, "cat"), LAUNCH_FLOW_CATS)[rows] & _is_linked_correlation(
        events, launch, src[rows], id_codes)
    status[rows[replaced]] = FLOW_REPLACED
    rest = rows[~replaced]
    bound = _bind_to_slices(events, rest)
    status[rest[bound < 0]] = UNBOUND_FLOW
    keep = bound >= 0
    rest, bound = rest[keep], bound[keep]
    rest_cat, rest_id = cat_codes[~replaced][keep], id_codes[~replaced][keep]
    key = (src[rest], rest_cat, rest_id)
    ph = column(events, "ph")
    is_start, is_end = np.flatnonzero(is_in(ph, ("s",))[rest]), np.flatnonzero(is_in(ph, ("f",))[rest])
    # every end with the first start of its key, in the order of the starts, then of the ends (an inner merge)
    start_of = first_match(tuple(k[is_end] for k in key), tuple(k[is_start] for k in key))
    paired_end = np.flatnonzero(start_of >= 0)
    order = np.lexsort((paired_end, start_of[paired_end]))
    s_at, f_at = is_start[start_of[paired_end[order]]], is_end[paired_end[order]]
    paired = np.zeros(len(rest), dtype=bool)
    paired[s_at] = True
    paired[f_at] = True
    status[rest[paired]] = WRITTEN
    status[rest[~paired]] = UNMATCHED_FLOW
    # each category as text (what Index.astype(str) gives of categories, which are never NaN); -1: as str(NaN)
    cat_text = np.array([c if type(c) is str else str(c) for c in column(events, "cat").categories] + ["nan"],
                        dtype=object)
    return status, {"start": bound[s_at], "end": bound[f_at], "cat": cat_text[rest_cat[s_at]],
                    "start_row": rest[s_at], "end_row": rest[f_at]}


def _is_linked_correlation(events: pd.DataFrame, launch: np.ndarray, flow_src: np.ndarray,
                           id_codes: np.ndarray) -> np.ndarray:
    """Per flow row: its id is, as text, the correlation of a linked device event of its source."""
    device = kind_in(events, DEVICE_KINDS) & (launch >= 0)
    if not device.any():
        return np.zeros(len(id_codes), dtype=bool)
    # An id is comparable only where its text is the canonical text of an int64 (str(int(text)) == text).
    canonical, parsed = _canonical_ints(column(events, "flow_id").categories)
    canonical, parsed = np.append(canonical, False), np.append(parsed, 0)
    source, correlation = column(events, "source_index")[device], column(events, "correlation")[device]
    out = np.zeros(len(id_codes), dtype=bool)
    sources = np.unique(source)
    if len(sources) > _FEW_SOURCES:  # (a join of many sources' rows at once)
        comparable = canonical[id_codes]
        out[comparable] = first_match((flow_src[comparable], parsed[id_codes[comparable]]), (source, correlation)) >= 0
        return out
    lookup = PairLookup(source, correlation, sources)
    for at in range(0, len(id_codes), _CHUNK):  # the flows a chunk at a time: no int64 id of every flow row
        codes = id_codes[at : at + _CHUNK]
        rows = np.flatnonzero(canonical[codes])
        out[at + rows] = lookup.has(flow_src[at : at + _CHUNK][rows], parsed[codes[rows]])
    return out


_FEW_SOURCES = 16  # below this many sources, linked correlations are looked up per source (PairLookup)


class PairLookup:
    """Whether a (source, value) pair is among the given ones: each source's values sorted, then binary searches.
    What `first_match(query, (source, value)) >= 0` tells, without hashing the query rows with the table's (~40 B
    a row of both: the flow status's largest temporary on traces with many flows). For few sources."""

    def __init__(self, source: np.ndarray, value: np.ndarray, sources: np.ndarray | None = None) -> None:
        """`sources`: np.unique(source), where the caller has it."""
        sources = np.unique(source) if sources is None else sources
        self.values = {one: np.sort(value[source == one].astype(np.int64)) for one in sources.tolist()}

    def has(self, source: np.ndarray, value: np.ndarray) -> np.ndarray:
        out = np.zeros(len(source), dtype=bool)
        for one, values in self.values.items():
            rows = np.flatnonzero(source == one)
            out[rows] = in_sorted(values, value[rows].astype(np.int64))
        return out


_SHORT_CANONICAL = r"^(?:0|-?[1-9][0-9]{0,17})$"  # the canonical text of an int of at most 18 digits: in int64
_LONG_DIGITS = r"^-?[1-9][0-9]{18}$"  # 19 digits: in int64 or not (_canonical_int decides)


def _canonical_ints(texts: pd.Index | list) -> tuple[np.ndarray, np.ndarray]:
    """Per text, whether it is the canonical text of an int64 (`_canonical_int` is not None) and that int (0 where
    not): for strings with arrow kernels (RE2's `[0-9]` and `$` are ASCII digits and the very end, as the canonical
    text needs), else text by text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    all_text = (texts.inferred_type == "string" if isinstance(texts, pd.Index)  # (pandas caches it per Index)
                else all(isinstance(t, str) for t in texts))
    try:
        arr = pa.array(np.asarray(texts, dtype=object), pa.string()) if all_text else None
    except (UnicodeEncodeError, pa.ArrowException):  # (a lone surrogate)
        arr = None
    if arr is None:
        parsed = [_canonical_int(text) for text in texts]
        return (np.array([v is not None for v in parsed], dtype=bool),
                np.array([0 if v is None else v for v in parsed], dtype=np.int64))
    try:  # all ints (the usual case): canonical where the int's text is the text
        ints = pc.cast(arr, pa.int64())
        canonical = pc.equal(pc.cast(ints, pa.string()), arr).to_numpy(zero_copy_only=False)
        return canonical, np.where(canonical, ints.to_numpy(), 0)
    except pa.ArrowInvalid:  # some text is no int64
        pass
    short = pc.match_substring_regex(arr, _SHORT_CANONICAL).to_numpy(zero_copy_only=False)
    values = np.zeros(len(arr), dtype=np.int64)
    values[short] = pc.cast(arr.filter(short), pa.int64()).to_numpy(zero_copy_only=False)
    canonical = short.copy()
    for i in np.flatnonzero(pc.match_substring_regex(arr, _LONG_DIGITS).to_numpy(zero_copy_only=False)).tolist():
        value = _canonical_int(texts[i])
        if value is not None:
            canonical[i], values[i] = True, value
    return canonical, values


def _canonical_int(text: object) -> int | None:
    try:
        value = int(str(text))
    except ValueError:
        return None
    return value if str(value) == str(text) and -(2**63) <= value < 2**63 else None


def _bind_to_slices(events: pd.DataFrame, flow_rows: np.ndarray) -> np.ndarray:
    """Row of the X slice starting exactly at each flow event's ts on its track (-1 if none); of several, the
    longest (ties: the order pandas' descending quicksort left them in, kept so that the output stays the same)."""
    spans = np.flatnonzero(is_in(column(events, "ph"), ("X",)))
    if not len(flow_rows) or not len(spans):
        return np.full(len(flow_rows), -1, dtype=np.int64)
    # np.arange(n)[::-1][dur[::-1].argsort(kind="quicksort")][::-1], without the positions of every span: n - 1 - k
    order = column(events, "dur_ns")[spans][::-1].argsort(kind="quicksort")
    np.subtract(len(spans) - 1, order, out=order)
    order = order[::-1]
    # Only the spans that start when some flow event is can be bound to one: the join below takes those, in the
    # order of all (the first match among them is the first among all). Joined with every span, its hash table
    # was the flow status's largest temporary (~40 B a span).
    order = order[_starts_at_some(column(events, "ts_ns"), spans, flow_rows)[order]]
    longest_first = spans[order]
    del order, spans
    columns = [column(events, k) for k in ("source_index", "pid", "tid", "ts_ns")]
    at = first_match_rows(columns, flow_rows, longest_first)
    found = at >= 0
    at[found] = longest_first[at[found]]
    return at


def _starts_at_some(ts: np.ndarray, spans: np.ndarray, flow_rows: np.ndarray) -> np.ndarray:
    """Per span, whether its start is the time of some flow row (a binary search among the flows' sorted times,
    a chunk of spans at a time)."""
    times = np.sort(ts[flow_rows])
    out = np.empty(len(spans), dtype=bool)
    for at in range(0, len(spans), _CHUNK):
        out[at : at + _CHUNK] = in_sorted(times, ts[spans[at : at + _CHUNK]])
    return out


_CHUNK = 1 << 16


def summarize_status(status: np.ndarray, skipped_before: dict[str, int], metadata_before: int = 0
                     ) -> dict[str, object]:
    """Counts per status plus events skipped, and M events folded, while reading (conservation by construction)."""
    by = Counter(status.tolist())  # counts per status (what value_counts gives, without a Series)
    skipped = dict(skipped_before)
    for key in (UNMATCHED_FLOW, UNBOUND_FLOW):
        if by.get(key):
            skipped[key] = by[key]
    return {
        "written": by.get(WRITTEN, 0),
        "metadata_folded": by.get(METADATA, 0) + metadata_before,
        "flows_redrawn": by.get(FLOW_REPLACED, 0),
        "skipped": skipped,
    }
