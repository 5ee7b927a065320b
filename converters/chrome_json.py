"""Decode Chrome-trace-format JSON (torch.profiler, VizTracer) into columns in one pass.

Every event is decoded into a small typed struct (msgspec) with `args` kept as raw JSON bytes:
nothing is decoded that not every event needs. The structs are turned into numpy/arrow
columns right away and dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Union

import msgspec
import numpy as np
import pyarrow as pa

from tracekit.errors import TraceError, warn
from tracekit.table import categorical
from tracekit.timeconv import us_to_ns

from .link_args import link_columns
from .loading import RawInput, recover_truncated_json

Num = Union[int, float, str, None]


class RawEvent(msgspec.Struct, gc=False):
    """One chrome trace event as decoded; `args` stays undecoded JSON."""

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
    args: msgspec.Raw = msgspec.Raw(b"")


class ChromeDoc(msgspec.Struct):
    """Top level of a chrome trace object: events plus every other key, undecoded."""

    traceEvents: Union[list[RawEvent], None] = None


@dataclass
class ChromeColumns:
    """Columns of the events of one chrome JSON file, in file order (`index` = event position)."""

    index: np.ndarray  # int64 position in traceEvents
    ph: list[str]
    name: list[str]
    cat: list[str | None]
    pid: list[int | str | None]
    tid: list[int | str | None]
    ts_ns: np.ndarray  # int64, relative to the file's own time base
    dur_ns: np.ndarray  # int64, -1 where the event has none
    flow_id: list[str | None]
    bp: list[str | None]
    scope: list[str | None]
    args: pa.LargeBinaryArray  # raw JSON of args, empty where absent
    link: dict[str, np.ndarray]  # ids the pipeline joins on (correlation, External id...), -1 if absent
    meta: list[tuple]  # distinct (name, pid, tid, args bytes) of the M events
    top: dict[str, Any]  # other top-level keys, decoded
    skipped: dict[str, int] = field(default_factory=dict)
    damage: list[str] = field(default_factory=list)
    input_events: int = 0


_doc_decoder = msgspec.json.Decoder(ChromeDoc)
_list_decoder = msgspec.json.Decoder(list[RawEvent])


def _decode_document(raw: RawInput) -> tuple[list[RawEvent], bytes | None, list[str]]:
    """Decode the event list (object or bare list form), recovering a truncated file."""
    data, damage = raw.data, list(raw.damage)
    first = re.search(rb"\S", data[:4096])
    head = data[first.start() : first.start() + 1] if first else b""
    if head not in (b"{", b"["):
        raise TraceError(raw.path, "not JSON (does not start with '{' or '[')")
    decoder = _doc_decoder if head == b"{" else _list_decoder
    try:
        doc = decoder.decode(data)
        cut = None
    except msgspec.ValidationError as exc:
        found = re.search(r"traceEvents\[(\d+)\]|^.*\$\[(\d+)\]", str(exc))
        index = int(next(g for g in found.groups() if g is not None)) if found else None
        raise TraceError(raw.path, f"malformed event: {exc}" if index is not None
                         else f"not a chrome trace: {exc}", index) from None
    except msgspec.DecodeError as exc:
        if "truncated" not in str(exc):
            raise TraceError(raw.path, f"malformed JSON: {exc}") from None
        doc, note = recover_truncated_json(raw.path, data, decoder.decode)
        warn(raw.path, note)
        damage.append(note)
        cut = True
    if head == b"{" and doc.traceEvents is None:
        raise TraceError(raw.path, "not a chrome trace: the JSON object has no 'traceEvents' list")
    events = doc.traceEvents if head == b"{" else doc
    top_raw = data if (head == b"{" and cut is None) else None
    return events, top_raw, damage


def _decode_top(data: bytes | None) -> dict[str, Any]:
    """Decode the top-level keys other than traceEvents (cheap: the events are skipped raw)."""
    if data is None:
        return {}
    import orjson  # local: only used for the small top-level object

    meta = msgspec.json.decode(data, type=dict[str, msgspec.Raw])
    meta.pop("traceEvents", None)
    return {k: orjson.loads(bytes(v)) for k, v in meta.items()}


def decode_chrome(raw: RawInput, require_events: bool = True) -> ChromeColumns:
    """Decode a chrome-trace JSON file into columns; timestamps become exact integer ns."""
    events, top_raw, damage = _decode_document(raw)
    if require_events and not events:
        raise TraceError(raw.path, "trace holds no events (traceEvents is empty)")
    top = _decode_top(top_raw) if top_raw is not None else _decode_top_recovered(raw.data)
    n = len(events)
    ph = [e.ph for e in events]
    ph_cat = categorical(ph)
    if (ph_cat.codes < 0).any() or "" in ph_cat.categories:
        bad = np.flatnonzero((ph_cat.codes < 0) | (ph_cat == ""))
        raise TraceError(raw.path, f"event has no 'ph' (phase); {len(bad)} such events", int(bad[0]))
    ts_obj = [e.ts for e in events]
    dur_obj = [e.dur for e in events]
    ts_ns, ts_ok = us_to_ns(ts_obj, raw.path, "ts")
    dur_ns, dur_ok = us_to_ns(dur_obj, raw.path, "dur")
    skipped: dict[str, int] = {}
    keep = np.ones(n, dtype=bool)
    # Metadata events may lack ts; every other event needs one.
    is_meta = np.asarray(ph_cat == "M")
    ts_ns[~ts_ok & is_meta] = 0
    no_ts = ~ts_ok & ~is_meta
    if no_ts.any():
        first = int(np.flatnonzero(no_ts)[0])
        note = f"{int(no_ts.sum())} events have no valid 'ts' and were skipped (first at event {first})"
        warn(raw.path, note)
        damage.append(note)
        skipped["missing_ts"] = int(no_ts.sum())
        keep &= ~no_ts
    is_x = np.asarray(ph_cat == "X")
    no_dur = is_x & ~dur_ok & keep
    if no_dur.any():
        first = int(np.flatnonzero(no_dur)[0])
        note = (
            f"{int(no_dur.sum())} complete ('X') events have no valid 'dur'; kept with dur 0 "
            f"(first at event {first})"
        )
        warn(raw.path, note)
        damage.append(note)
    dur_ns[~dur_ok] = -1
    dur_ns[no_dur] = 0
    dur_ns[is_x & (dur_ns < 0)] = 0
    raw_args = [e.args for e in events]
    args = _raw_column(raw_args)
    names = [_name(e.name) for e in events]
    meta = list({(names[i], events[i].pid, events[i].tid, bytes(raw_args[i]))
                 for i in np.flatnonzero(is_meta).tolist()})
    if ("B" in ph_cat.categories) or ("E" in ph_cat.categories):
        keep &= _pair_begin_end(raw.path, ph, [e.pid for e in events], [e.tid for e in events], ts_ns, dur_ns,
                                keep, skipped, damage)
    span_rows = np.flatnonzero(np.array([p == "X" for p in ph], dtype=bool) & keep)
    cols = ChromeColumns(
        index=np.arange(n, dtype=np.int64),
        ph=ph,
        name=names,
        cat=[e.cat for e in events],
        pid=[e.pid for e in events],
        tid=[e.tid for e in events],
        ts_ns=ts_ns,
        dur_ns=dur_ns,
        flow_id=[None if e.id is None else str(e.id) for e in events],
        bp=[e.bp for e in events],
        scope=[e.s for e in events],
        args=args,
        link=link_columns([raw_args[i] for i in span_rows.tolist()], span_rows, n),
        meta=meta,
        top=top,
        skipped=skipped,
        damage=damage,
        input_events=n,
    )
    del events, raw_args
    if not keep.all():
        cols = _take(cols, np.flatnonzero(keep))
    return cols


def _pair_begin_end(path, ph: list, pid: list, tid: list, ts_ns: np.ndarray, dur_ns: np.ndarray,
                    keep: np.ndarray, skipped: dict[str, int], damage: list[str]) -> np.ndarray:
    """Turn matched B/E pairs into X events (the E is folded into its B); recover unmatched ones.

    An unmatched B is closed at the last timestamp of its track; an unmatched E is skipped.
    Returns the mask of rows that stay.
    """
    rows = [i for i, p in enumerate(ph) if p in ("B", "E") and keep[i]]
    rows.sort(key=lambda i: (str(pid[i]), str(tid[i]), ts_ns[i], ph[i] == "B"))
    stay = np.ones(len(ph), dtype=bool)
    open_: dict[tuple, list[int]] = {}
    unmatched_end = 0
    for i in rows:
        track = (pid[i], tid[i])
        if ph[i] == "B":
            open_.setdefault(track, []).append(i)
        elif open_.get(track):
            b = open_[track].pop()
            ph[b] = "X"
            dur_ns[b] = ts_ns[i] - ts_ns[b]
            stay[i] = False
        else:
            stay[i] = False
            unmatched_end += 1
    folded = int((~stay).sum()) - unmatched_end
    if folded:
        skipped["end_folded_into_begin"] = folded
    last_ts: dict[tuple, int] = {}
    for i in range(len(ph)):
        if keep[i] and ph[i] != "M":
            track = (pid[i], tid[i])
            last_ts[track] = max(last_ts.get(track, ts_ns[i]), int(ts_ns[i] + max(dur_ns[i], 0)))
    unclosed = [b for track in open_.values() for b in track]
    for b in unclosed:
        ph[b] = "X"
        dur_ns[b] = last_ts[(pid[b], tid[b])] - ts_ns[b]
    if unclosed:
        note = f"{len(unclosed)} 'B' events have no matching 'E'; closed at their track's last timestamp"
        warn(path, note)
        damage.append(note)
    if unmatched_end:
        note = f"{unmatched_end} 'E' events have no matching 'B' and were skipped"
        warn(path, note)
        damage.append(note)
        skipped["unmatched_end"] = unmatched_end
    return stay


def _name(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _decode_top_recovered(data: bytes) -> dict[str, Any]:
    """For a truncated file, keep the top-level keys written before traceEvents."""
    start = data.find(b'"traceEvents"')
    if start <= 0:
        return {}
    head = data[:start].rstrip()
    if head.endswith(b","):
        head = head[:-1]
    try:
        import orjson

        return orjson.loads(head + b"}")
    except Exception:
        return {}


def _raw_column(raws: list[msgspec.Raw]) -> pa.LargeBinaryArray:
    """Concatenate raw JSON slices into one arrow binary column without per-row copies."""
    lengths = np.fromiter(map(len, raws), dtype=np.int64, count=len(raws))
    offsets = np.zeros(len(raws) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = b"".join(raws)
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(raws), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def _take(cols: ChromeColumns, rows: np.ndarray) -> ChromeColumns:
    """Keep only `rows` of every column."""
    pick = rows.tolist()

    def sub(values: list) -> list:
        return [values[i] for i in pick]

    return ChromeColumns(
        index=cols.index[rows],
        ph=sub(cols.ph),
        name=sub(cols.name),
        cat=sub(cols.cat),
        pid=sub(cols.pid),
        tid=sub(cols.tid),
        ts_ns=cols.ts_ns[rows],
        dur_ns=cols.dur_ns[rows],
        flow_id=sub(cols.flow_id),
        bp=sub(cols.bp),
        scope=sub(cols.scope),
        args=cols.args.take(pa.array(rows)),
        link={k: v[rows] for k, v in cols.link.items()},
        meta=cols.meta,
        top=cols.top,
        skipped=cols.skipped,
        damage=cols.damage,
        input_events=cols.input_events,
    )

