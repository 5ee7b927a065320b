"""Write a clean chrome trace: relative ts with a stored base, named/sorted tracks, proper nesting, flows."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tracekit.accounting import METADATA, WRITTEN, flow_status_arrays
from tracekit.converters.args_bytes import take_args
from tracekit.table import (
    DEVICE_KINDS,
    EventTable,
    SourceInfo,
    column,
    few_group_codes,
    first_of_group,
    group_codes,
    is_in,
    kind_in,
    strings,
    track_view,
)
from tracekit.writers.json_rows import JsonText, PhText, event_rows, joined_members, write_rows
from tracekit.writers.memory import release_arrow_pool, releaser
from tracekit.writers.module_track import module_track_events
from tracekit.writers.op_text import SHARED_ROWS, op_input_text
from tracekit.writers.out_event import OutEvent
from tracekit.writers.row_parts import row_bytes, row_parts

CHUNK = 16_384  # metadata and flow events encoded at a time


@dataclass
class ChromeResult:
    """Per-row status (written / metadata / replaced / skip reason) and what was written."""

    status: np.ndarray
    events_written: int
    flows_written: int
    base_ns: int
    module_track_events: int = 0  # module spans drawn on the module tracks (not input events)


PID_STRIDE = 1 << 23  # above any Linux pid (pid_max <= 2**22): rank slots never share a pid
FLOW_STRIDE = 1 << 32
SORT_STRIDE = 100_000


def write_chrome_trace(table: EventTable, path: Path, gzip_output: bool = False, base_ns: int | None = None,
                       slot: int = 0, meta: dict[str, Any] | None = None,
                       flows: tuple[np.ndarray, dict[str, np.ndarray] | None] | None = None) -> ChromeResult:
    """Write `table` (with tree and link columns) as a chrome trace at `path`.

    `base_ns` fixes the time base (default: the first event, to the us); `slot` > 0 moves pids, flow ids
    and process sort indices into their own range, so traces of several ranks splice into one file;
    `meta` is added to the document's `tracekit` metadata. `flows`: what `flow_status_arrays` gives of the table,
    made beforehand (tracekit.convert makes it before its Parquet thread starts, see flow_status_first).
    """
    ev = table.events
    release = releaser(len(ev))
    release()
    ph = column(ev, "ph")  # its text is taken chunk by chunk (an object array of every row: 8 B a row)
    launch = column(ev, "launch")
    status, flow_pairs = flows if flows is not None else flow_status_arrays(ev, launch)
    del flows
    is_meta = is_in(ph, ("M",))
    is_flow = kind_in(ev, ("flow",))
    status[is_meta] = METADATA
    body = ~is_meta & ~is_flow
    status[body] = WRITTEN
    rows = np.flatnonzero(body)
    if base_ns is None:
        base_ns = int(column(ev, "ts_ns")[rows].min()) // 1000 * 1000 if len(rows) else 0
    layout = _Layout(track_view(ev), table.sources, slot)
    out_pid_arr, out_tid_arr = layout.place(rows)
    names, cats = JsonText(column(ev, "name")), JsonText(column(ev, "cat"))
    kernel_args = _KernelArgs(table, names)
    doc_meta = _top_meta(table.sources, base_ns)
    doc_meta["tracekit"].update(meta or {})
    encoder = msgspec.json.Encoder()
    written = 0
    ph_text = PhText(ph) if isinstance(ph, pd.Categorical) else None
    scope = JsonText(column(ev, "scope"), missing="t")
    ts_ns, dur_ns = column(ev, "ts_ns"), column(ev, "dur_ns")
    module_args = _ModuleArgs(ev)
    with _open_out(path, gzip_output) as fh:
        fh.write(b'{"traceEvents":[')
        first = True
        for chunk in _chunks(layout.metadata_events()):
            _write_list(fh, encoder.encode(chunk), first)
            first = False
        for part in _parts(rows, _row_bytes(table.args, module_args.row_bytes)):
            text = event_rows(
                strings(ph, part), out_pid_arr[part], out_tid_arr[part], names.at(part), cats.at(part),
                ts_ns[part] - base_ns, dur_ns[part], scope.at(part), take_args(table.args, part),
                prefix=",", ph_text=None if ph_text is None else ph_text.at(part),
                args_extra=joined_members(kernel_args.added(part), module_args.added(part)),
            )
            # Every row starts with its separator; the file's first event drops it.
            write_rows(fh, text, skip=1 if first else 0)
            del text
            release_arrow_pool()
            first = False
            written += len(part)
        release()
        track = module_track_events(ev, out_pid_arr, out_tid_arr, base_ns, layout.out_thread_names)
        if track:
            _write_list(fh, encoder.encode(track), first)
            first = False
        flows = 0
        for chunk in _flow_events(ev, launch, flow_pairs, out_pid_arr, out_tid_arr, base_ns, slot * FLOW_STRIDE):
            _write_list(fh, encoder.encode(chunk), first)
            first = False
            flows += len(chunk)
        fh.write(b"]," + encoder.encode(doc_meta)[1:] )
    return ChromeResult(status, written, flows // 2, base_ns, sum(e.ph == "X" for e in track))


# Tables at least this long have their flow status (the chrome writer's largest temporaries) made before the chrome
# trace, and convert writes their Parquet tables before both, so that the writers' peaks do not add up (v100_large x
# 10, 2.6 M rows: the writing stage's peak +440 -> +300 MB with the flow status first; one after the other,
# BENCHMARKS.md "narrow23"). Below, the writers run side by side from the start: a serial step would only add time.
SERIAL_FLOW_ROWS = 1_000_000


def serial_writers(table: EventTable) -> bool:
    """Whether convert writes this table's chrome trace and Parquet tables one after the other (a large table)."""
    return len(table.events) >= SERIAL_FLOW_ROWS


def flow_status_first(table: EventTable) -> tuple[np.ndarray, dict[str, np.ndarray] | None] | None:
    """`flow_status_arrays` of a table of SERIAL_FLOW_ROWS rows or more, for write_chrome_trace's `flows` (None:
    a smaller table, whose writer makes it itself)."""
    ev = table.events
    if not serial_writers(table):
        return None
    return flow_status_arrays(ev, column(ev, "launch"))


# A chunk of rows holds at most CHUNK_ROWS rows and (roughly) CHUNK_BYTES of args and module paths: the text of a
# chunk and the arrow temporaries that make it (a few times its size) stay small, and a very long module
# name or args repeated over many events is never materialized for all of them at once. Smaller chunks
# cost more arrow calls; at 4096 rows they are ~0.1 us an event.
CHUNK_ROWS = 4096
CHUNK_BYTES = 4 << 20


def _row_bytes(args: pa.Array, extra: Callable[[np.ndarray], np.ndarray | None]
               ) -> Callable[[np.ndarray], np.ndarray]:
    """The bytes of args plus `extra` (module paths) that rows write (tracekit.writers.row_parts.row_bytes)."""
    return row_bytes(args, extra)


def _parts(rows: np.ndarray, sizes: Callable[[np.ndarray], np.ndarray]) -> Iterator[np.ndarray]:
    """`rows` in chunks of at most CHUNK_ROWS rows and (roughly) CHUNK_BYTES of `sizes` (row_parts)."""
    return row_parts(rows, sizes, CHUNK_ROWS, CHUNK_BYTES)


class _ModuleArgs:
    """Adds "module_path" and "phase" to the args of attributed events, one chunk at a time."""

    def __init__(self, ev: pd.DataFrame):
        self.active = "module_path" in ev and len(ev) > 0
        self.lengths: np.ndarray | None = None  # bytes of each module path's text (and 0 for none), made once
        if not self.active:
            return
        self.path_codes = column(ev, "module_path").codes
        self.attributed = (self.path_codes >= 0) & ~kind_in(ev, ("flow", "metadata"))
        self.quoted = pa.array([msgspec.json.encode(str(c)).decode() for c in column(ev, "module_path").categories],
                               pa.large_string())
        phase = column(ev, "phase")
        if isinstance(phase, pd.Categorical):  # the text of each category once, taken at the codes
            self.phase_text = pa.array([*map(str, phase.categories), ""], pa.large_string())
            self.phase_codes = np.where(phase.codes < 0, len(phase.categories), phase.codes)
        else:
            self.phase_text = None
            self.phase = strings(phase)

    def row_bytes(self, rows: np.ndarray) -> np.ndarray | None:
        """Bytes of module path each of `rows` gets in its args (None: no module paths)."""
        if not self.active or not len(self.quoted):
            return None
        if self.lengths is None:
            self.lengths = np.append(pc.binary_length(self.quoted).to_numpy(zero_copy_only=False), 0).astype(np.int64)
        return np.where(self.attributed[rows], self.lengths[self.path_codes[rows]], 0)

    def added(self, part: np.ndarray) -> pa.Array | None:
        """The module members ('"module_path":..,"phase":".."') of rows `part` (null where a row has no module;
        None: no row has)."""
        if not self.active:
            return None
        mask = self.attributed[part]
        if not mask.any():
            return None
        if self.phase_text is not None:
            phase = self.phase_text.take(pa.array(self.phase_codes[part]))
        else:
            phase = pa.array(self.phase[part], pa.large_string()).fill_null("")
        path = self.quoted.take(pa.array(np.where(mask, self.path_codes[part], 0), mask=~mask))
        return pc.binary_join_element_wise(_lit('"module_path":'), path, _lit(',"phase":"'), phase, _lit('"'), _lit(""))


def _lit(text: str) -> pa.Scalar:
    return pa.scalar(text, pa.large_string())


def _open_out(path: Path, gzip_output: bool):
    if gzip_output:
        return gzip.open(path, "wb", compresslevel=3)
    return open(path, "wb")


def _chunks(items: list, size: int = CHUNK):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _top_meta(sources: list[SourceInfo], base_ns: int) -> dict[str, Any]:
    return {
        "displayTimeUnit": "ms",
        "baseTimeNanoseconds": base_ns,
        "tracekit": {
            "note": "ts are microseconds relative to baseTimeNanoseconds (absolute ns = base + ts*1000)",
            "sources": [
                {"path": s.path, "format": s.format, "rank": s.rank, "base_ns": s.base_ns,
                 "base_from": s.base_from}
                for s in sources
            ],
        },
        "deviceProperties": [d for s in sources for d in s.devices],
        **({"distributedInfo": sources[0].distributed} if len(sources) == 1 and sources[0].distributed else {}),
    }


def _flow_events(ev: pd.DataFrame, launch: np.ndarray, pairs: dict[str, np.ndarray] | None, out_pid: np.ndarray,
                 out_tid: np.ndarray, base_ns: int, first_id: int = 0, chunk: int = CHUNK // 2
                 ) -> Iterator[list[OutEvent]]:
    """Launch flows (runtime call -> device event) from the links, then the other paired flows.

    Flow ids count up from `first_id` + 1. Yields lists of at most 2 * `chunk` events (a start and
    an end per flow), in order.
    """
    ts_ns = column(ev, "ts_ns")
    dev = np.flatnonzero(kind_in(ev, DEVICE_KINDS) & (launch >= 0))
    pairs = pairs or {"start": np.zeros(0, dtype=np.int64), "end": np.zeros(0, dtype=np.int64),
                      "cat": np.zeros(0, dtype=object)}  # (None: no flow rows)
    starts = np.concatenate([launch[dev], np.asarray(pairs["start"], dtype=np.int64)])
    ends = np.concatenate([dev, np.asarray(pairs["end"], dtype=np.int64)])
    cats = pairs["cat"].tolist()
    for begin in range(0, len(starts), chunk):
        s_rows, f_rows = starts[begin : begin + chunk], ends[begin : begin + chunk]
        s_pid, s_tid = out_pid[s_rows].tolist(), out_tid[s_rows].tolist()
        f_pid, f_tid = out_pid[f_rows].tolist(), out_tid[f_rows].tolist()
        s_ts, f_ts = ((ts_ns[s_rows] - base_ns) / 1000.0).tolist(), ((ts_ns[f_rows] - base_ns) / 1000.0).tolist()
        flows: list[OutEvent] = []
        for k in range(len(s_rows)):
            at = begin + k
            cat = "ac2g" if at < len(dev) else cats[at - len(dev)]
            name = "launch" if at < len(dev) else cat
            flow_id = first_id + at + 1
            flows.append(OutEvent(ph="s", pid=s_pid[k], tid=s_tid[k], name=name, cat=cat, ts=s_ts[k], id=flow_id))
            flows.append(OutEvent(ph="f", pid=f_pid[k], tid=f_tid[k], name=name, cat=cat, ts=f_ts[k], id=flow_id,
                                  bp="e"))
        yield flows


def _write_list(fh, encoded: bytes, first: bool) -> None:
    """Write the items of an encoded JSON list (without its brackets) after a separator unless first."""
    if not first:
        fh.write(b",")
    fh.write(memoryview(encoded)[1:-1])


class _KernelArgs:
    """Adds the launching op's name and input shapes to the args of device events, one chunk at a time.

    The text added is built once per op (arrow kernels over the ops); the rows of a chunk are edited with arrow
    kernels. `names`: the JSON text of the name column (made here when not given). A table of more than
    SHARED_ROWS rows builds the text of a chunk's ops with the chunk (that of every launching op at once held
    ~200 B an op through the whole trace: +57 MB on a 510 MB trace); a smaller one builds it once, from the
    input text op_input_text decodes once for the table's writers.
    """

    def __init__(self, table: EventTable, names: JsonText | None = None):
        ev = table.events
        launcher = column(ev, "launcher")
        self.is_row = kind_in(ev, DEVICE_KINDS) & (launcher >= 0)
        self.rows = np.flatnonzero(self.is_row)
        self.op_of_row = launcher
        self.per_op: pa.Array | None = None
        if not len(self.rows):
            return
        self.args, self.ev = table.args, ev
        self.names = names or JsonText(column(ev, "name"))
        self.ops = np.unique(launcher[self.rows])
        if len(ev) <= SHARED_ROWS:
            self.per_op = self._text(self.ops)

    def _text(self, ops: np.ndarray) -> pa.Array:
        """The members added for each of `ops` (ascending op rows)."""
        dims_text, types_text = op_input_text(self.args, self.ev, ops)
        return pc.binary_join_element_wise(
            _lit('"launcher op":'), self.names.at(ops).fill_null("null"),  # (a missing name: null)
            _member(',"launcher Input Dims":', dims_text), _member(',"launcher Input type":', types_text),
            _lit(""), null_handling="replace", null_replacement="")

    def added(self, part: np.ndarray) -> pa.Array | None:
        """The launcher members of rows `part` (null where a row is no launched device event; None: none is)."""
        if not len(self.rows):
            return None
        mask = self.is_row[part]  # a lookup per row: np.isin against every device row made this O(n^2)
        if not mask.any():
            return None
        ops_here = self.op_of_row[part[mask]]
        ops, per_op = self.ops, self.per_op
        if per_op is None:  # a large table: the text of this chunk's ops only
            ops = np.unique(ops_here)
            per_op = self._text(ops)
        index = np.zeros(len(part), dtype=np.int64)
        index[mask] = np.searchsorted(ops, ops_here)
        return per_op.take(pa.array(index, mask=~mask))


def _member(key: str, text: pa.Array) -> pa.Array:
    """`key` + text per row, null where the text is empty or null (no member)."""
    text = text.cast(pa.large_string())
    joined = pc.binary_join_element_wise(_lit(key), text, _lit(""))
    return pc.if_else(pc.greater(pc.binary_length(text.fill_null("")), 0), joined, pa.scalar(None, pa.large_string()))


class Placed:
    """An output pid or tid per event row, read at the rows asked (`placed[rows]`, or one row): one value per
    output thread and each row's thread number; 0 for a row not written as an event (metadata, flows)."""

    def __init__(self, per_thread: np.ndarray, code: np.ndarray) -> None:
        self._values = np.append(per_thread, 0)  # code -1 -> the last: 0
        self._code = code

    def __getitem__(self, rows: Any) -> Any:
        return self._values[self._code[rows]]


class _Layout:
    """Output pids/tids, names and sort order of every track (host first, then devices)."""

    def __init__(self, ev: pd.DataFrame, sources: list[SourceInfo], slot: int = 0):
        self.slot = slot
        self.ev = ev
        self.sources = sources
        self.processes: dict[tuple[int, int], int] = {}
        self.threads: dict[tuple[int, int, int, int], int] = {}
        self.meta: list[OutEvent] = []
        self.out_thread_names: dict[tuple[int, int], str] = {}

    def place(self, rows: np.ndarray) -> tuple[Placed, Placed]:
        """The output pid and tid of each of `rows` (0 for every other row), and the tracks' metadata events.

        Each row is numbered by its thread (source, pid, tid, lane), and a thread by its process (source, pid):
        what is held per row is one int32 (the thread's number), not two int64 columns of every row."""
        ev = self.ev
        src = column(ev, "source_index")
        pid = column(ev, "pid")
        tid = column(ev, "tid")
        lane = column(ev, "lane")
        thread_code, threads = few_group_codes(src, pid, tid, lane, rows=rows)
        thread_first = rows[first_of_group(thread_code, threads)]
        t_src, t_pid, t_tid, t_lane = src[thread_first], pid[thread_first], tid[thread_first], lane[thread_first]
        device = kind_in(ev, DEVICE_KINDS)
        device |= is_in(column(ev, "cat"), ("gpu_user_annotation",))
        thread_device = np.zeros(threads, dtype=bool)
        thread_device[thread_code[device[rows]]] = True
        del device
        proc_of_thread, procs = group_codes(t_src, t_pid, sort=True)  # processes in (src, pid) order
        proc_first = first_of_group(proc_of_thread, procs)
        proc_device = np.zeros(procs, dtype=bool)
        proc_device[proc_of_thread[thread_device]] = True
        multi = len(self.sources) > 1
        used: set[int] = set()
        pid_map: dict[tuple[int, int], int] = {}
        next_free = max([p for p in t_pid[proc_first].tolist() if p >= 0] + [0]) + 1
        next_free += self.slot * PID_STRIDE
        order = []
        new_pids = []
        for s, p, is_dev in zip(t_src[proc_first].tolist(), t_pid[proc_first].tolist(), proc_device.tolist()):
            new = p + self.slot * PID_STRIDE if (p >= 0 and p + self.slot * PID_STRIDE not in used) else None
            if new is None:
                new, next_free = next_free, next_free + 1
            used.add(new)
            pid_map[(s, p)] = new
            new_pids.append(new)
            info = self.sources[s]
            group = 2 if p < 0 else (1 if is_dev else 0)
            order.append((s, group, p, new, self._process_name(info, p, bool(is_dev), multi)))
        for sort_index, (_, _, _, new, name) in enumerate(sorted(order, key=lambda o: (o[1], o[0], o[2]))):
            self.meta.append(OutEvent(ph="M", pid=new, tid=0, name="process_name",
                                      args=msgspec.Raw(msgspec.json.encode({"name": name}))))
            self.meta.append(OutEvent(ph="M", pid=new, tid=0, name="process_sort_index", args=msgspec.Raw(
                msgspec.json.encode({"sort_index": self.slot * SORT_STRIDE + sort_index}))))
        per_pid_used: dict[int, set[int]] = {}
        per_pid_rank: dict[int, list] = {}
        new_tids = []
        for s, p, t, ln in zip(t_src.tolist(), t_pid.tolist(), t_tid.tolist(), t_lane.tolist()):
            newp = pid_map[(s, p)]
            taken = per_pid_used.setdefault(newp, set())
            new = t if (ln == 0 and t >= 0 and t not in taken) else None
            if new is None:
                new = 1_000_000_000 + len(taken) if t >= 0 or ln else 2_000_000_000 + len(taken)
                while new in taken:
                    new += 1
            taken.add(new)
            new_tids.append(new)
            info = self.sources[s]
            name = info.thread_names.get((p, t)) or self._default_thread_name(p, t)
            if ln:
                name = f"{name} (overlap {ln})"
            main = 0 if t == p else 1
            base_sort = info.thread_sort.get((p, t), t)
            per_pid_rank.setdefault(newp, []).append(((main, base_sort, t, ln), new, name))
        for newp, entries in per_pid_rank.items():
            for sort_index, (_, new, name) in enumerate(sorted(entries, key=lambda e: e[0])):
                self.out_thread_names[(newp, new)] = name
                self.meta.append(OutEvent(ph="M", pid=newp, tid=new, name="thread_name",
                                          args=msgspec.Raw(msgspec.json.encode({"name": name}))))
                self.meta.append(OutEvent(ph="M", pid=newp, tid=new, name="thread_sort_index",
                                          args=msgspec.Raw(msgspec.json.encode({"sort_index": sort_index}))))
        code = np.full(len(ev), -1, dtype=np.int32 if threads < 2**31 - 1 else np.int64)
        code[rows] = thread_code
        del thread_code
        return (Placed(np.asarray(new_pids, dtype=np.int64)[proc_of_thread], code),
                Placed(np.asarray(new_tids, dtype=np.int64), code))

    def metadata_events(self) -> list[OutEvent]:
        return self.meta

    def _process_name(self, info: SourceInfo, pid: int, device: bool, multi: bool) -> str:
        label = info.process_labels.get(pid)
        name = info.process_names.get(pid, "")
        if pid < 0:
            text = name or "trace"
        elif device:
            text = label or (f"device {pid}" if not name else f"{name} device {pid}")
        else:
            text = f"{name or 'process'} (pid {pid})" + (f" [{label}]" if label else "")
        prefix = []
        if info.rank >= 0:
            prefix.append(f"rank {info.rank}")
        if multi:
            prefix.append(Path(info.path).name)
        return " · ".join([*prefix, text]) if prefix else text

    @staticmethod
    def _default_thread_name(pid: int, tid: int) -> str:
        return f"thread {tid}" if tid >= 0 else "track"
