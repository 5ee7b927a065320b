"""Decode one chunk of raw chrome-trace events into column pieces (pure: raw JSON in, arrays out).

`decode_chunk` holds no state across chunks, so chunks can be decoded in any process (see
chrome_parallel); the caller (chrome_json._Builder) merges the pieces in file order, giving strings
their global codes and text pids/tids their ids.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from itertools import compress
from pathlib import Path
from typing import Union

import msgspec
import numpy as np

from tracekit.errors import TraceError
from tracekit.lazy import pa, pc  # imported on first use: `tracekit info` decodes with columns_chunk instead
from tracekit.timeconv import us_to_ns_ranged

from .link_args import LinkArgs, decode_args, empty_link_columns, link_chunk_args, link_columns

Num = Union[int, float, str, None]

# keep_args of `tracekit info`: as False, and the chunk's columns are made without pyarrow
# (converters/columns_chunk.py).
COLUMNS_ONLY = "columns_only"
# pids/tids are ids, not quantities: one beyond this range is kept as text (a named track), not clamped.
INT_MIN, INT_MAX = -(1 << 62), 1 << 62
# Each invalid UTF-8 sequence in an event becomes one "?" (never longer than the bytes it replaces).
codecs.register_error("tracekit_qmark", lambda err: ("?", err.end))


class _EventFields(msgspec.Struct, gc=False):
    """The fields every reader decodes from an event (args are added by the subclasses)."""

    ph: str | None = None
    name: str | int | float | None = None
    cat: str | None = None
    pid: int | str | None = None
    tid: int | str | None = None
    ts: Num = None
    dur: Num = None
    id: int | str | None = None
    bp: str | None = None
    s: str | None = None


class RawEvent(_EventFields, gc=False):
    """One chrome trace event as decoded; `args` stays undecoded JSON."""

    args: msgspec.Raw = msgspec.Raw(b"")


class LeanEvent(_EventFields, gc=False):
    """An event for readers that do not keep args: only the link fields of args are decoded."""

    args: Union[LinkArgs, None] = None


class _MetaEvent(msgspec.Struct, gc=False):
    """What an M event gives `meta`, read from a chunk the lean decoder already read (so its fields fit)."""

    ph: str | None = None
    name: str | int | float | None = None
    pid: int | str | None = None
    tid: int | str | None = None
    args: msgspec.Raw = msgspec.Raw(b"")


_chunk_decoder = msgspec.json.Decoder(list[RawEvent])
_meta_decoder = msgspec.json.Decoder(list[_MetaEvent])
_lean_decoder = msgspec.json.Decoder(list[LeanEvent])


@dataclass
class Chunk:
    """The column pieces of one chunk of events (M events folded out into `meta`)."""

    start: int  # position of the chunk's first event in traceEvents
    index: np.ndarray  # positions of the kept (non-M) events
    ph: pa.Array
    name: pa.Array
    cat: pa.Array
    flow_id: pa.Array
    bp: pa.Array
    scope: pa.Array
    pid: np.ndarray | list  # int64, or the values as written when some are text
    tid: np.ndarray | list
    ts: tuple  # us_to_ns_ranged of ts: (ns, ok, lossy, out_of_range)
    dur: tuple
    args: bytes | None  # the args of the kept events back to back (None: args not kept)
    args_len: np.ndarray | None
    link: dict[str, np.ndarray]
    meta: list[tuple] = field(default_factory=list)  # distinct (name, pid, tid, args bytes) of the M events, in order
    meta_events: int = 0  # M events in the chunk (a trace may repeat the same few M events 100,000s of times)
    bad_utf8_events: int = 0
    first_bad_utf8: int | None = None


def decode_chunk(path: Path, text: bytes, count: int, start: int, object_form: bool,
                 keep_args: bool = True) -> Chunk:
    """Decode the chunk `text` (a JSON array of `count` events, event `start` onwards). Without
    `keep_args`, args are parsed for the link fields only (one pass instead of two) and not kept; a chunk
    that does not fit that lean form is decoded the full way, so the result and the damage counted are
    the same. Each event's own text is split out only where it is needed (metadata events, bad UTF-8).
    `keep_args` COLUMNS_ONLY: see there."""
    columns_only = keep_args == COLUMNS_ONLY
    keep_args = bool(keep_args) and not columns_only
    raws = _Raws(text)
    bad_utf8, first_bad = 0, None
    if not text.isascii():
        text, fixed, bad_utf8, first_bad = _repair_utf8(text, raws, start)
        if fixed is not None:
            raws = _Raws(text, fixed)
    lean = None
    if not keep_args:
        try:
            lean = _lean_decoder.decode(text)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            lean = None  # the full decode below reports or recovers it, as for convert
    if lean is None:
        try:
            events = _chunk_decoder.decode(text)
        except msgspec.ValidationError as exc:
            raise malformed(path, exc, start, object_form) from None
        except msgspec.DecodeError as exc:  # text the range scan let through that is not JSON (`"ts": "zz...`)
            raise TraceError(path, f"malformed JSON in events {start}-{start + count - 1} (bytes counted from the "
                                   f"first of them): {exc}", start) from None
        except RecursionError:
            raise TraceError(path, "an event is nested deeper than the JSON reader allows (about 1,000 "
                                   f"levels), in events {start}-{start + count - 1}") from None
    else:
        events = lean
    ph, all_args = [e.ph for e in events], [e.args for e in events]
    meta: list[tuple] = []
    meta_events = 0
    index = np.arange(start, start + len(events), dtype=np.int64)
    keep = None
    all_ph = ph
    if "M" in ph:
        is_meta = [p == "M" for p in ph]
        # (lean: one more pass over the chunk for the args of its M events; cheaper than splitting it into events
        # and decoding those again, where M events are many)
        full = events if lean is None else _meta_decoder.decode(text)
        meta = [(_name(e.name), e.pid, e.tid, bytes(e.args)) for e in full if e.ph == "M"]
        meta_events, meta = len(meta), list(dict.fromkeys(meta))  # (first appearances keep their order)
        keep = [not m for m in is_meta]
        index = index[np.asarray(keep, dtype=bool)]
        events, ph = list(compress(events, keep)), list(compress(ph, keep))
    raw_args = all_args if keep is None else list(compress(all_args, keep))
    # (one list comprehension per field: faster than one pass making a tuple per event)
    name, cat, pid, tid = [e.name for e in events], [e.cat for e in events], [e.pid for e in events], \
        [e.tid for e in events]
    ts, dur = [e.ts for e in events], [e.dur for e in events]
    if columns_only:  # (no flow ids, bp or scope: info reads none)
        from .columns_chunk import columns_chunk, full_links, lean_links

        link = lean_links(raw_args, ph) if lean is not None else full_links(text, raws, all_args, all_ph, keep)
        return columns_chunk(start, index, ph, name, cat, pid, tid, ts, dur, link, meta, bad_utf8, first_bad,
                             meta_events)
    flow, bp, scope = [e.id for e in events], [e.bp for e in events], [e.s for e in events]
    ph_array = pa.array(ph, type=pa.string())
    if lean is None:
        link = _links(all_args, all_ph, keep)
        args_len = np.fromiter(map(len, raw_args), dtype=np.int64, count=len(raw_args))
        args = b"".join(raw_args) if keep_args else None
    else:
        args, args_len = None, None
        link = link_columns(raw_args, _span(ph_array))
    return Chunk(
        start=start, index=index, ph=ph_array,
        name=_strings(name, _name).fill_null(""),
        cat=pa.array(cat, type=pa.string()),
        flow_id=_flow_ids(flow),
        bp=pa.array(bp, type=pa.string()),
        scope=pa.array(scope, type=pa.string()),
        pid=chunk_ids(pid), tid=chunk_ids(tid),
        ts=us_to_ns_ranged(ts), dur=us_to_ns_ranged(dur),
        args=args, args_len=args_len if keep_args else None, link=link, meta=meta, meta_events=meta_events,
        bad_utf8_events=bad_utf8, first_bad_utf8=first_bad,
    )


def _links(args: list, ph: list, keep: list[bool] | None) -> dict[str, np.ndarray]:
    """Link columns of the kept rows of a chunk (`args`: the raw args of all its events; `keep`: None when all
    are kept), read from the args alone in one msgspec call. If some args hold a link field of another type,
    the kept rows are read again on their own (row by row where one of them is the cause: see link_chunk)."""
    span = _span(pa.array(ph, type=pa.string()))
    try:
        decoded = decode_args(args) if span.any() else None
    except (msgspec.ValidationError, RecursionError):
        if keep is None:
            return link_chunk_args(args, span)
        mask = np.asarray(keep, dtype=bool)
        return link_chunk_args(list(compress(args, keep)), span[mask])
    link = link_columns(decoded, span) if decoded is not None else empty_link_columns(len(args))
    if keep is None:
        return link
    mask = np.asarray(keep, dtype=bool)
    return {k: v[mask] for k, v in link.items()}


def _span(ph: pa.Array) -> np.ndarray:
    """Rows whose join ids are read: the events that can become slices (B events become X)."""
    return pc.is_in(ph, value_set=pa.array(["X", "B"])).to_numpy(zero_copy_only=False)


class _Raws:
    """The events of a chunk's text as raw slices, split out the first time they are asked for."""

    _split = msgspec.json.Decoder(list[msgspec.Raw])

    def __init__(self, text: bytes, raws: list | None = None) -> None:
        self.text, self.raws = text, raws

    def get(self) -> list:
        if self.raws is None:
            self.raws = self._split.decode(self.text)
        return self.raws


def _repair_utf8(text: bytes, raws: _Raws, start: int) -> tuple[bytes, list | None, int, int | None]:
    """Replace each invalid UTF-8 sequence in the chunk's events by "?"; (text, raws, events fixed, first).
    Valid UTF-8 comes back as it is (raws None)."""
    try:
        text.decode("utf-8")
        return text, None, 0, None
    except UnicodeDecodeError:
        pass
    fixed, bad, first = [], 0, None
    for i, raw in enumerate(raws.get()):
        piece = bytes(raw)
        try:
            piece.decode("utf-8")
        except UnicodeDecodeError:
            raw = msgspec.Raw(piece.decode("utf-8", "tracekit_qmark").encode("utf-8"))
            bad += 1
            first = start + i if first is None else first
        fixed.append(raw)
    return b"[" + b",".join(fixed) + b"]", fixed, bad, first


def chunk_ids(values: list) -> np.ndarray | list:
    """int64 pids/tids (None is 0), or `values` itself when some are text or beyond INT_MIN..INT_MAX."""
    try:
        ids = pa.array(values, type=pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return values
    if len(ids) and (ids.min() <= INT_MIN or ids.max() >= INT_MAX):
        return values
    return ids


def malformed(path: Path, exc: msgspec.ValidationError, start: int, object_form: bool) -> TraceError:
    """The error for an event that does not fit RawEvent, with its index in the whole file."""
    text = str(exc)
    found = re.search(r"\$\[(\d+)\]", text)
    if not found:
        return TraceError(path, f"malformed event: {text}")
    index = start + int(found.group(1))
    where = f"$.traceEvents[{index}]" if object_form else f"$[{index}]"
    return TraceError(path, f"malformed event: {text[: found.start()]}{where}{text[found.end():]}", index)


def _strings(values: list, convert) -> pa.Array:
    """Arrow strings of a list of str/None, or of `convert(v)` per value where some are not."""
    try:
        return pa.array(values, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return pa.array([convert(v) for v in values], type=pa.string())


def _flow_id_text(value: object) -> str | None:
    return None if value is None else str(value)


def _flow_ids(values: list) -> pa.Array:
    """Flow ids (int, str or None) as text, like str(id)."""
    try:
        arr = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        arr = None
    if arr is not None and (pa.types.is_integer(arr.type) or pa.types.is_null(arr.type)
                            or pa.types.is_string(arr.type)):
        return arr.cast(pa.string())
    return pa.array([_flow_id_text(v) for v in values], type=pa.string())


def _name(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)
