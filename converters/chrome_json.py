"""Decode Chrome-trace-format JSON (torch.profiler, VizTracer) into columns in one pass.

The event list is first split into raw JSON slices (one msgspec pass). The events are then decoded
chunk by chunk into small typed structs (msgspec) with `args` kept as raw JSON bytes: nothing is
decoded that not every event needs. Each chunk's structs are turned into numpy/arrow columns
right away and dropped, so only one chunk of per-event Python objects exists at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from tracekit.errors import TraceError, warn
from tracekit.lazy import pa  # imported on first use: `tracekit info` (columns_only) never needs it

from .args_bytes import ArgsBytes, take_rows
from .begin_end import pair_begin_end, tracks_as_written
from .chrome_chunks import COLUMNS_ONLY, INT_MAX, INT_MIN, Chunk, chunk_ids
from .chrome_doc import decode_document, decode_top, decode_top_recovered
from .chrome_parallel import decode_chunks
from .chrome_ranges import ByteChunks, plan, top_level_ok
from .chrome_slices import EventSlices
from .link_args import LINK_FIELDS
from .loading import RawInput, release_free_memory
from .str_column import StrColumn

# Events are decoded into structs (chrome_chunks) this many at a time, turned into columns and dropped,
# so that the per-event Python objects of only one chunk exist at once.
CHUNK_EVENTS = 16_384
# The chunks of a clean document are cut by bytes instead (chrome_ranges: one parse, no split first), of this
# many bytes; None: CHUNK_EVENTS events of _EVENT_BYTES each (1 MiB: the decoded objects of a chunk and arrow's pages
# for its columns are ~8x its bytes; 4 MiB chunks made the reading stage's peak ~20 MB higher at the same CPU,
# BENCHMARKS.md "args24"); 0: off (the split read only).
CHUNK_BYTES: int | None = None
_EVENT_BYTES = 64
# Below this input size, handing freed memory back to the OS after decoding costs more than it saves.
_RELEASE_BYTES = 8 << 20
# Synthetic ids of text pids/tids while decoding; renumbered -1, -2, ... at the end.
_TEMP_ID = -(1 << 40)


@dataclass
class ChromeColumns:
    """Columns of the events of one chrome JSON file, in file order (`index` = event position)."""

    index: np.ndarray  # int64 position in traceEvents
    ph: StrColumn
    name: StrColumn  # "" where the event has none; numbers as their str()
    cat: StrColumn
    pid: np.ndarray  # int64; text pids get negative ids (numeric text is read as a number)
    tid: np.ndarray  # int64, like pid
    ts_ns: np.ndarray  # int64, relative to the file's own time base
    dur_ns: np.ndarray  # int64, -1 where the event has none
    flow_id: StrColumn
    bp: StrColumn
    scope: StrColumn
    args: pa.LargeBinaryArray | None  # raw JSON of args, empty where absent (None: columns_only)
    link: dict[str, np.ndarray]  # ids the pipeline joins on (correlation, External id...), -1 if absent
    meta: list[tuple]  # distinct (name, pid, tid, args bytes) of the M events, pid/tid as written
    top: dict[str, Any]  # other top-level keys, decoded
    ids: Callable[[object], int]  # pid/tid as written -> the int used in the pid/tid columns
    track_names: dict[tuple[int, int | None], str] = field(default_factory=dict)  # text pids/tids
    skipped: dict[str, int] = field(default_factory=dict)
    damage: list[str] = field(default_factory=list)
    input_events: int = 0
    metadata_folded: int = 0  # M events: read into `meta`, no row kept
    columns_only: bool = False  # set by a reader for `tracekit info`: chrome_table builds a pandas-free table


class _IdMap:
    """Map pids/tids (ints, numeric strings, other strings) to ints; other strings get synthetic ids.

    While decoding, synthetic ids are temporary (below _TEMP_ID); `renumber` then gives them
    -1, -2, ... in order of first appearance.
    """

    def __init__(self) -> None:
        self.synthetic: dict[str, int] = {}
        self.final: dict[int, int] = {}

    def __call__(self, value: object) -> int:
        if isinstance(value, int) and INT_MIN < value < INT_MAX:
            return int(value)
        if value is None:
            return 0
        text = str(value).strip()
        if text.lstrip("-").isdigit() and len(text) < 19:
            return int(text)
        digits = "".join(ch for ch in text if ch.isdigit())
        if text.lower().startswith("stream ") and digits:
            return int(digits)
        if text not in self.synthetic:
            self.synthetic[text] = _TEMP_ID - len(self.synthetic)
        return self.synthetic[text]

    def final_id(self, value: object) -> int:
        """The id of a pid/tid as written, after `renumber`."""
        mapped = self(value)
        return self.final.get(mapped, mapped)

    def renumber(self, pid: np.ndarray, tid: np.ndarray) -> None:
        """Give the temporary ids in pid/tid (in place) -1, -2, ... by first appearance (row, then pid before tid)."""
        if not self.synthetic:
            return
        temp_p, temp_t = pid <= _TEMP_ID, tid <= _TEMP_ID
        firsts: dict[int, int] = {}
        for values, temp, role in ((pid, temp_p, 0), (tid, temp_t, 1)):
            rows = np.flatnonzero(temp)
            used, first = np.unique(values[rows], return_index=True)
            for v, f in zip(used.tolist(), (rows[first] * 2 + role).tolist()):
                firsts[v] = min(f, firsts.get(v, f))
        order = sorted(firsts, key=firsts.__getitem__)
        self.final = {temp: -(k + 1) for k, temp in enumerate(order)}
        # Texts that occur in no kept row still get an id, after the others.
        for temp in self.synthetic.values():
            self.final.setdefault(temp, -(len(self.final) + 1))
        lookup = np.array(sorted(self.final), dtype=np.int64)
        targets = np.array([self.final[t] for t in lookup.tolist()], dtype=np.int64)
        for values, temp in ((pid, temp_p), (tid, temp_t)):
            if temp.any():
                values[temp] = targets[np.searchsorted(lookup, values[temp])]


class _Column:
    """A column filled chunk by chunk into one array of the final size (no pieces to join after:
    pieces and their join would need twice the memory, and freed pieces stay in the heap)."""

    def __init__(self, rows: int, dtype) -> None:
        self.data = np.empty(rows, dtype=dtype)
        self.used = 0

    def append(self, values: np.ndarray) -> None:
        end = self.used + len(values)
        if end > len(self.data):  # more rows than the caller guessed (chrome_ranges): grow
            grown = np.empty(max(end, len(self.data) * 5 // 4), dtype=self.data.dtype)
            grown[: self.used] = self.data[: self.used]
            self.data = grown
        self.data[self.used : end] = values
        self.used = end

    def whole(self) -> np.ndarray:
        """The rows filled (a view of the array: its untouched end is never resident)."""
        data, self.data = self.data[: self.used], np.zeros(0, dtype=self.data.dtype)
        return data


class _Codes:
    """Dictionary-encodes a string column chunk by chunk into one global code space (`rows`: the most
    rows it will get, if known)."""

    def __init__(self, rows: int | None = None) -> None:
        self.index: dict[str, int] = {}
        self.parts: list[np.ndarray] | _Column = [] if rows is None else _Column(rows, np.int32)

    def add(self, values: pa.Array | tuple[np.ndarray, list]) -> np.ndarray:
        if isinstance(values, tuple):  # columns_chunk.LocalCodes: (codes, distinct values)
            return self._add_coded(*values)
        if values.null_count == len(values):  # common for bp, scope, flow ids: nothing to encode
            codes = np.full(len(values), -1, dtype=np.int32)
            self.parts.append(codes)
            return codes
        encoded = values.dictionary_encode()
        local = encoded.dictionary.to_pylist()
        index = self.index
        if not index:  # the first chunk: its local codes are the global ones
            self.index = dict(zip(local, range(len(local))))
            codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
            self.parts.append(codes)
            return codes
        found = list(map(index.get, local))
        if None in found:
            for i, v in enumerate(local):
                if found[i] is None:
                    found[i] = index.setdefault(v, len(index))
        found.append(-1)
        remap = np.array(found, dtype=np.int32)
        codes = remap[encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)]
        self.parts.append(codes)
        return codes

    def _add_coded(self, local: np.ndarray, values: list) -> np.ndarray:
        """`add` of a chunk coded into its own distinct values (in order of first appearance, as arrow's)."""
        index = self.index
        remap = np.array([index.setdefault(v, len(index)) for v in values] + [-1], dtype=np.int32)
        codes = remap[local]
        self.parts.append(codes)
        return codes

    def column(self) -> StrColumn:
        if isinstance(self.parts, _Column):
            codes = self.parts.whole()
        else:
            codes = np.concatenate(self.parts) if self.parts else np.zeros(0, dtype=np.int32)
        self.parts = []
        return StrColumn(codes, list(self.index))


class _Builder:
    """Accumulates the columns of the decoded chunks."""

    def __init__(self, path: Path, size_hint: int, rows: int, columns_only: bool = False) -> None:
        """`rows`: the number of events (an upper bound of the rows: M events get none); `columns_only`: pids and
        tids are mapped without pyarrow (see columns_chunk)."""
        self.path = path
        self.chunk_ids = chunk_ids
        if columns_only:
            from .columns_chunk import ids

            self.chunk_ids = ids
        self.ph, self.name, self.cat = _Codes(rows), _Codes(rows), _Codes(rows)
        self.flow_id, self.bp, self.scope = _Codes(rows), _Codes(rows), _Codes(rows)
        self.ids = _IdMap()
        self.pid = _Column(rows, np.int64)
        self.tid = _Column(rows, np.int64)
        self.ts = (_Column(rows, np.int64), _Column(rows, bool))  # ns, valid
        self.dur = (_Column(rows, np.int64), _Column(rows, bool))
        self.lossy = {"ts": 0, "dur": 0}
        self.out_of_range = {"ts": _Column(rows, bool), "dur": _Column(rows, bool)}
        self.bad_utf8_events = 0
        self.first_bad_utf8: int | None = None
        self.bad_link_rows = 0
        self.link = {k: _Column(rows, np.int64) for k in LINK_FIELDS}
        self.meta: set[tuple] = set()
        self.metadata_folded = 0  # M events: read into `meta`, given no row
        self.index = _Column(rows, np.int64)  # position in traceEvents of every row
        self.track_names: dict[tuple, str] = {}
        self.args = ArgsBytes(size_hint, path)  # the args bytes of every event, back to back
        self.args_len = _Column(rows, np.int64)

    @contextlib.contextmanager
    def closed_on_error(self) -> Iterator[None]:
        """On an error inside, the args' scratch file (if any) goes at once, not with this object."""
        try:
            yield
        except BaseException:
            self.args.close()
            raise

    def append(self, chunk: Chunk) -> None:
        """Append the columns of a decoded chunk (chunks in file order)."""
        if chunk.meta:
            self._fold_metadata(chunk.meta, chunk.meta_events)
        self.index.append(chunk.index)
        self.ph.add(chunk.ph)
        self.name.add(chunk.name)
        self.cat.add(chunk.cat)
        self.flow_id.add(chunk.flow_id)
        self.bp.add(chunk.bp)
        self.scope.add(chunk.scope)
        pids, tids = chunk.pid, chunk.tid
        # A list here is one that chunk_ids already found not to be all ints: mapped value by value.
        pid, tid = self._ids(pids, tried=True), self._ids(tids, tried=True)
        self.pid.append(pid)
        self.tid.append(tid)
        if pid.min(initial=0) <= _TEMP_ID or tid.min(initial=0) <= _TEMP_ID:
            self._name_tracks(pids, tids, pid, tid)
        for key, store, (ns, ok, lossy, out) in (("ts", self.ts, chunk.ts), ("dur", self.dur, chunk.dur)):
            store[0].append(ns)
            store[1].append(ok)
            self.out_of_range[key].append(out)
            self.lossy[key] += lossy
        if chunk.args is not None:
            self.args.append(chunk.args)
            self.args_len.append(chunk.args_len)
        else:
            self.args_len.append(np.zeros(len(chunk.index), dtype=np.int64))
        if chunk.bad_utf8_events:
            self.bad_utf8_events += chunk.bad_utf8_events
            if self.first_bad_utf8 is None:
                self.first_bad_utf8 = chunk.first_bad_utf8
        self.bad_link_rows += int(chunk.link.get("bad_rows", 0))
        for key, column in self.link.items():
            column.append(chunk.link[key])

    def _fold_metadata(self, meta: list[tuple], events: int) -> None:
        """Read the distinct M events of a chunk (`events` M events in all) into `meta` (their text pids/tids get
        ids and track names as any row's would, in order of first appearance)."""
        for key in meta:
            self.meta.add(key)
        pids, tids = [m[1] for m in meta], [m[2] for m in meta]
        pid, tid = self._ids(pids), self._ids(tids)
        if pid.min(initial=0) <= _TEMP_ID or tid.min(initial=0) <= _TEMP_ID:
            self._name_tracks(pids, tids, pid, tid)
        self.metadata_folded += events

    def _ids(self, values: np.ndarray | list, tried: bool = False) -> np.ndarray:
        """int64 ids of pids/tids as written (`tried`: chunk_ids is known to give the list back)."""
        if isinstance(values, np.ndarray):
            return values
        if not tried:
            fast = self.chunk_ids(values)
            if isinstance(fast, np.ndarray):
                return fast
        # Each distinct value is mapped once, in order of first appearance (so synthetic ids are
        # handed out in the same order as mapping value by value would).
        mapped = {value: self.ids(value) for value in dict.fromkeys(values)}
        return np.fromiter(map(mapped.__getitem__, values), dtype=np.int64, count=len(values))

    def _name_tracks(self, pids: list, tids: list, pid: np.ndarray, tid: np.ndarray) -> None:
        """Tracks with text names ("Spans", "stream 7"): the text is the process/thread name."""
        rows = np.flatnonzero((pid <= _TEMP_ID) | (tid <= _TEMP_ID)).tolist()
        for i in rows:
            p, t = int(pid[i]), int(tid[i])
            if p <= _TEMP_ID and isinstance(pids[i], str):
                self.track_names.setdefault((p, None), pids[i])
            if t <= _TEMP_ID and isinstance(tids[i], str):
                self.track_names.setdefault((p, t), tids[i])


def decode_chrome(raw: RawInput, require_events: bool = True, chunk_events: int | None = None,
                  release_input: bool = True, keep_args: bool = True, columns_only: bool = False) -> ChromeColumns:
    """Decode a chrome-trace JSON file into columns; timestamps become exact integer ns.

    The events are decoded `chunk_events` (default CHUNK_EVENTS) at a time; the result does not
    depend on it. With `release_input`, `raw.data` is dropped (set to b"", a map closed) once it has
    been read, so that its memory is freed early, and on an error. Without `keep_args` the args column is empty (every
    other column is the same): for readers that need only the link ids (`tracekit info`). With `columns_only`
    (`tracekit info`) the chunks are decoded without pyarrow (converters/columns_chunk.py), `args` is None and
    the flow_id, bp and scope columns are left empty; every other column, the damage and the skipped counts
    are the same.
    """
    try:
        return _decode_chrome(raw, require_events, chunk_events, release_input, keep_args, columns_only)
    finally:
        if release_input:
            raw.close()


def _decode_chrome(raw: RawInput, require_events: bool, chunk_events: int | None, release_input: bool,
                   keep_args: bool, columns_only: bool = False) -> ChromeColumns:
    keep_args = keep_args and not columns_only
    size = len(raw.data)
    mode = COLUMNS_ONLY if columns_only else keep_args
    read = None
    chunk_bytes = CHUNK_EVENTS * _EVENT_BYTES if CHUNK_BYTES is None else CHUNK_BYTES
    if chunk_events is None and chunk_bytes > 0:
        read = _read_by_ranges(raw, mode, keep_args, columns_only, chunk_bytes)
    if read is None:
        read = _read_split(raw, require_events, chunk_events, mode, keep_args, columns_only)
    builder, events, top, damage, n = read
    del read
    with builder.closed_on_error():
        return _columns(raw, builder, events, top, damage, n, size, release_input, columns_only)


def _columns(raw: RawInput, builder: _Builder, events: ByteChunks | EventSlices, top: dict[str, Any],
             damage: list[str], n: int, size: int, release_input: bool, columns_only: bool) -> ChromeColumns:
    """The columns of the decoded chunks in `builder`: events without ts or with out-of-range values skipped,
    B/E pairs joined, the args column made."""
    ph = builder.ph.column()
    begin_end = "B" in ph.categories or "E" in ph.categories
    raw_tracks = tracks_as_written(events) if begin_end else None
    events.release()
    del events
    if release_input:
        raw.close()
        if size >= _RELEASE_BYTES:
            release_free_memory()
    for key in ("ts", "dur"):
        if builder.lossy[key]:
            warn(raw.path, f"{builder.lossy[key]} '{key}' values are beyond float precision; ns digits may be off")
    if builder.bad_utf8_events:
        note = (f"{builder.bad_utf8_events} events hold invalid UTF-8 (first at event {builder.first_bad_utf8}); "
                "each bad byte sequence was replaced by '?'")
        warn(raw.path, note)
        damage.append(note)
    if builder.bad_link_rows:
        note = (f"{builder.bad_link_rows} events have link ids (correlation, External id, ...) of the wrong "
                "type or beyond int64; those ids were ignored")
        warn(raw.path, note)
        damage.append(note)
    index = builder.index.whole()
    m = len(index)  # rows: the events other than M
    if raw_tracks is not None and m < n:
        raw_tracks = ([raw_tracks[0][i] for i in index.tolist()], [raw_tracks[1][i] for i in index.tolist()])
    if (ph.codes < 0).any() or "" in ph.categories:
        bad = np.flatnonzero((ph.codes < 0) | (ph.codes == ph.code_of("")))
        raise TraceError(raw.path, f"event has no 'ph' (phase); {len(bad)} such events", int(index[bad[0]]))

    ts_ns, ts_ok = builder.ts[0].whole(), builder.ts[1].whole()
    dur_ns, dur_ok = builder.dur[0].whole(), builder.dur[1].whole()
    skipped: dict[str, int] = {}
    keep = np.ones(m, dtype=bool)
    for key, ok_mask in (("ts", ts_ok), ("dur", dur_ok)):
        out = builder.out_of_range[key].whole()
        out &= keep
        if out.any():
            first = int(index[np.flatnonzero(out)[0]])
            note = (f"{int(out.sum())} events have a '{key}' beyond ±2**62 ns (146 years) and were skipped "
                    f"(first at event {first})")
            warn(raw.path, note)
            damage.append(note)
            skipped[f"{key}_out_of_range"] = int(out.sum())
            keep &= ~out
            ok_mask |= out  # counted here, not again as missing
    # Every event needs a ts (M events, which may lack one, were folded into `meta`).
    no_ts = ~ts_ok & keep
    if no_ts.any():
        first = int(index[np.flatnonzero(no_ts)[0]])
        note = f"{int(no_ts.sum())} events have no valid 'ts' and were skipped (first at event {first})"
        warn(raw.path, note)
        damage.append(note)
        skipped["missing_ts"] = int(no_ts.sum())
        keep &= ~no_ts
    is_x = ph.codes == ph.code_of("X")
    no_dur = is_x & ~dur_ok & keep
    if no_dur.any():
        first = int(index[np.flatnonzero(no_dur)[0]])
        note = (
            f"{int(no_dur.sum())} complete ('X') events have no valid 'dur'; kept with dur 0 "
            f"(first at event {first})"
        )
        warn(raw.path, note)
        damage.append(note)
    dur_ns[~dur_ok] = -1
    dur_ns[no_dur] = 0
    dur_ns[is_x & (dur_ns < 0)] = 0
    if begin_end:
        ph_list = ph.tolist()
        keep &= pair_begin_end(raw.path, ph_list, raw_tracks[0], raw_tracks[1], ts_ns, dur_ns,
                                keep, skipped, damage)
        ph = _Codes()
        if columns_only:
            from .columns_chunk import encode

            ph.add(encode(ph_list))
        else:
            ph.add(pa.array(ph_list, type=pa.string()))
        ph = ph.column()
        del ph_list, raw_tracks
    lengths = builder.args_len.whole()
    offsets = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    args = None if columns_only else pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), m, [None, pa.py_buffer(offsets), builder.args.buffer()]
    )
    link = {k: builder.link[k].whole() for k in LINK_FIELDS}
    cols = ChromeColumns(
        index=index,
        ph=ph,
        name=builder.name.column(),
        cat=builder.cat.column(),
        pid=builder.pid.whole(),
        tid=builder.tid.whole(),
        ts_ns=ts_ns,
        dur_ns=dur_ns,
        flow_id=builder.flow_id.column(),
        bp=builder.bp.column(),
        scope=builder.scope.column(),
        args=args,
        link=link,
        meta=list(builder.meta),
        top=top,
        ids=builder.ids.final_id,
        skipped=skipped,
        damage=damage,
        input_events=n,
        metadata_folded=builder.metadata_folded,
    )
    if not keep.all():
        cols = _take(cols, np.flatnonzero(keep), raw.path)
    builder.ids.renumber(cols.pid, cols.tid)
    final = builder.ids.final
    cols.track_names = {(final.get(p, p), None if t is None else final.get(t, t)): name
                        for (p, t), name in builder.track_names.items()}
    return cols


def _read_split(raw: RawInput, require_events: bool, chunk_events: int | None, mode: bool | str, keep_args: bool,
                columns_only: bool) -> tuple:
    """(builder, events, top keys, damage, events in the list): the event list split by one msgspec pass
    (chrome_doc), then decoded in chunks of `chunk_events`."""
    events_list, top_raw, damage, object_form = decode_document(raw)
    if require_events and not events_list:
        raise TraceError(raw.path, "trace holds no events (traceEvents is empty)")
    n = len(events_list)
    chunk_events = max(int(chunk_events or CHUNK_EVENTS), 1)
    # Only the byte range of each chunk is kept; a mapped input leaves resident memory until each
    # chunk is read again to be decoded.
    events = EventSlices(raw.data, events_list, chunk_events)
    del events_list
    events.drop_all()
    # A second process may start decoding the later chunks now, while this one reads the top level.
    chunks = decode_chunks(raw.path, events, object_form, mode)
    try:
        top = _top_keys(raw, top_raw, damage)
        del top_raw
        builder = _Builder(raw.path, len(raw.data) if keep_args else 0, n, columns_only)
        with builder.closed_on_error():
            for chunk in chunks:
                builder.append(chunk)
    finally:
        chunks.close()
    return builder, events, top, damage, n


def _read_by_ranges(raw: RawInput, mode: bool | str, keep_args: bool, columns_only: bool,
                    chunk_bytes: int) -> tuple | None:
    """`_read_split`'s result with the event list cut by byte ranges and each chunk parsed once (chrome_ranges);
    None, with nothing warned, where the cuts or the document do not hold up (the caller then splits it)."""
    events = plan(raw.data, chunk_bytes)
    if events is None:
        return None
    data = raw.data
    top_raw = b"".join((memoryview(data)[: events.first()], memoryview(data)[events.end() :]))
    if not top_level_ok(top_raw, events.list_open):
        return None
    events.drop_all()
    chunks = decode_chunks(raw.path, events, True, mode)
    n = 0
    builder = None
    try:
        for chunk in chunks:
            _shift(chunk, n)
            count = len(chunk.index) + chunk.meta_events
            if builder is None:
                builder = _Builder(raw.path, len(data) if keep_args else 0, _rows_guess(events, count), columns_only)
            n += count
            builder.append(chunk)
    except TraceError:  # a guessed cut that is not one, or a bad event: the exact read says which
        if builder is not None:
            builder.args.close()
        return None
    except BaseException:
        if builder is not None:
            builder.args.close()
        raise
    finally:
        chunks.close()
    if builder is None:
        return None
    damage = list(raw.damage)
    top = _top_keys(raw, top_raw, damage)
    return builder, events, top, damage, n


def _rows_guess(events: ByteChunks, first_count: int) -> int:
    """The number of events, guessed from the first chunk's bytes per event (the columns grow past it if needed).
    Not far above: numpy asks for huge pages for large arrays, so the unused end of a column much larger than
    its rows would still take resident memory."""
    first_bytes = int(events.bounds[0, 1] - events.bounds[0, 0])
    per_event = max(first_bytes / max(first_count, 1), 16.0)
    return int((events.end() - events.first()) / per_event * 1.1) + first_count + 1024


def _shift(chunk: Chunk, start: int) -> None:
    """Number a chunk's events from `start` (ByteChunks' chunks are numbered from 0)."""
    chunk.start = start
    chunk.index += start
    if chunk.first_bad_utf8 is not None:
        chunk.first_bad_utf8 += start


def _top_keys(raw: RawInput, top_raw: bytes | None, damage: list[str]) -> dict[str, Any]:
    """The top-level keys other than traceEvents (of a truncated file: those before it)."""
    try:
        top, dropped = decode_top(top_raw) if top_raw is not None else (decode_top_recovered(raw.data), [])
    except (msgspec.DecodeError, RecursionError) as exc:
        raise TraceError(raw.path, f"malformed top-level JSON: {exc}") from None
    if dropped:
        note = f"top-level keys {', '.join(dropped)} are not valid JSON text (bad UTF-8 or too deep); ignored"
        warn(raw.path, note)
        damage.append(note)
    return top


def _take(cols: ChromeColumns, rows: np.ndarray, path: object = "") -> ChromeColumns:
    """Keep only `rows` of every column (string categories renumbered by first appearance)."""
    return ChromeColumns(
        index=cols.index[rows],
        ph=cols.ph.take(rows),
        name=cols.name.take(rows),
        cat=cols.cat.take(rows),
        pid=cols.pid[rows],
        tid=cols.tid[rows],
        ts_ns=cols.ts_ns[rows],
        dur_ns=cols.dur_ns[rows],
        flow_id=cols.flow_id.take(rows),
        bp=cols.bp.take(rows),
        scope=cols.scope.take(rows),
        args=None if cols.args is None else take_rows(cols.args, rows, path=path),
        link={k: v[rows] for k, v in cols.link.items()},
        meta=cols.meta,
        top=cols.top,
        ids=cols.ids,
        track_names=cols.track_names,
        skipped=cols.skipped,
        metadata_folded=cols.metadata_folded,
        damage=cols.damage,
        input_events=cols.input_events,
    )
