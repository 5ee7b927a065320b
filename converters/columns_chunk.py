"""The columns of one decoded chunk for `tracekit info`, made with numpy and plain lists (no pyarrow).

chrome_chunks.decode_chunk makes a chunk's columns with pyarrow; its first `pa.array` of a Python list imports
pandas too. For `keep_args=COLUMNS_ONLY` it hands the decoded fields of a chunk to `columns_chunk`, which gives
chrome_json._Builder the same values: strings dictionary-encoded per chunk (`LocalCodes`, as arrow's
dictionary_encode orders them, so a chunk decoded in the second process comes back as codes and a short list of
distinct values), pids/tids, times and link ids as numpy arrays. Only the columns info reads are filled:
flow_id, bp and scope stay empty, and of the link ids only correlation and External id. `lean_links` and
`full_links` are link_args.link_columns and chrome_chunks._links (with link_args.link_chunk) with these
columns: the same ids and bad-row counts.
"""

from __future__ import annotations

from itertools import compress
from typing import NamedTuple

import numpy as np

from tracekit.timeconv import _floats_to_ns, us_to_ns_ranged

from .chrome_chunks import INT_MAX, INT_MIN, Chunk, _name
from .link_args import _NONE, LINK_FIELDS, _events_decoder, link_columns_of, link_fits

_NUMBERS = frozenset({int, float, type(None)})
_SPAN_PH = frozenset({"X", "B"})  # the events whose join ids are read (chrome_chunks._span)


class LocalCodes(NamedTuple):
    """A chunk's string column: int32 codes (-1: missing) into `values`, in order of first appearance (what
    arrow's dictionary_encode gives; chrome_json._Codes.add maps them to the file's codes)."""

    codes: np.ndarray
    values: list


def encode(values: list) -> LocalCodes:
    """LocalCodes of a list of str/None."""
    distinct = [v for v in dict.fromkeys(values) if v is not None]
    lookup: dict = {v: i for i, v in enumerate(distinct)}
    lookup[None] = -1
    return LocalCodes(np.fromiter(map(lookup.__getitem__, values), dtype=np.int32, count=len(values)), distinct)


def columns_chunk(start: int, index: np.ndarray, ph: list, name: list, cat: list, pid: list, tid: list, ts: list,
                  dur: list, link: dict[str, np.ndarray], meta: list, bad_utf8: int, first_bad: int | None,
                  meta_events: int = 0) -> Chunk:
    """The Chunk of decode_chunk from the fields of its kept events (`link`: lean_links or full_links)."""
    n = len(ph)
    empty = LocalCodes(np.full(n, -1, dtype=np.int32), [])
    if set(map(type, name)) != {str}:
        name = [v if type(v) is str else _name(v) for v in name]
    return Chunk(
        start=start, index=index, ph=encode(ph), name=encode(name),
        cat=encode(cat), flow_id=empty, bp=empty, scope=empty,
        pid=ids(pid), tid=ids(tid),
        ts=us_to_ns(ts), dur=us_to_ns(dur),
        args=None, args_len=None, link=link, meta=meta, meta_events=meta_events,
        bad_utf8_events=bad_utf8, first_bad_utf8=first_bad,
    )


def ids(values: list) -> np.ndarray | list:
    """chrome_chunks.chunk_ids without pyarrow: int64 pids/tids (None is 0), or `values` itself when some are
    text or beyond INT_MIN..INT_MAX."""
    types = set(map(type, values))
    if str in types:
        return values
    if type(None) in types:
        values = [0 if v is None else v for v in values]
    try:
        out = np.array(values, dtype=np.int64)
    except OverflowError:
        return values
    if len(out) and (out.min() <= INT_MIN or out.max() >= INT_MAX):
        return values
    return out


def us_to_ns(values: list) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """timeconv.us_to_ns_ranged, whose fast path (ints, floats and None) is here numpy's; other lists (text
    times, ints beyond float range) go to us_to_ns_ranged itself.

    Same values: an int that float64 cannot hold exactly (|v| >= 2**53) is out of range either way, and None
    (NaN here: JSON has no NaN) is not a regular value."""
    if set(map(type, values)) <= _NUMBERS:
        try:
            floats = np.array(values, dtype=np.float64)
        except (OverflowError, TypeError, ValueError):
            floats = None
        if floats is not None:
            missing = np.isnan(floats)
            floats[missing] = 0.0
            return _floats_to_ns(floats, ~missing)
    return us_to_ns_ranged(values)


def _span(ph: list) -> np.ndarray:
    return np.fromiter(map(_SPAN_PH.__contains__, ph), dtype=bool, count=len(ph))


def lean_links(args: list, ph: list) -> dict[str, np.ndarray]:
    """The link columns of a chunk that the lean decoder read (`args`: each kept event's LinkArgs or None)."""
    return _link(args, _span(ph))


def full_links(text: bytes, raws, args: list, ph: list, keep: list[bool] | None) -> dict[str, np.ndarray]:
    """chrome_chunks._links: link columns of the kept rows of a chunk decoded the full way (`args`: the raw args
    of all its events, `keep`: None when all are kept)."""
    span = _span(ph)
    if keep is None:
        return _link_chunk(text, args, span)
    mask = np.asarray(keep, dtype=bool)
    if not link_fits(b"[" + b",".join(compress(raws.get(), (not k for k in keep))) + b"]"):
        return _link_chunk(b"[" + b",".join(compress(raws.get(), keep)) + b"]", list(compress(args, keep)),
                           span[mask])
    link = _link_chunk(text, args, span)
    return {k: (v[mask] if isinstance(v, np.ndarray) else v) for k, v in link.items()}


def _link_chunk(events_json: bytes, raw_args: list, span: np.ndarray) -> dict[str, np.ndarray]:
    """link_args.link_chunk with `_link` for its columns: one decode of the chunk, else row by row (a row
    whose link fields do not fit gets nothing and is counted in "bad_rows")."""
    return link_columns_of(lambda: [e.args for e in _events_decoder.decode(events_json)], raw_args, span, _link)


def _link(args: list, span: np.ndarray) -> dict[str, np.ndarray]:
    """link_args.link_columns of the two ids info joins on (correlation, External id); the others stay -1."""
    n = len(args)
    out = {key: np.full(n, -1, dtype=np.int64) for key in LINK_FIELDS}
    rows = np.flatnonzero(span)
    picked = [args[i] for i in rows.tolist()]
    if None in picked:
        picked = [_NONE if a is None else a for a in picked]
    corr = [a.correlation for a in picked]
    ext = [a.external_id for a in picked]
    if None in ext:  # the legacy key where the current one is absent
        ext = [a.legacy_external_id if e is None else e for a, e in zip(picked, ext)]
    out["correlation"][rows] = _ints(corr)
    out["external_id"][rows] = _ints(ext)
    return out


def _ints(values: list) -> np.ndarray:
    """int64 of ints and None (-1); the ids fit int64 (LinkArgs checks)."""
    if None in values:
        values = [-1 if v is None else v for v in values]
    return np.array(values, dtype=np.int64)
