"""Write a clean chrome trace: relative ts with a stored base, named/sorted tracks, proper nesting, flows."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tracekit.accounting import METADATA, WRITTEN, flow_status
from tracekit.opargs import op_inputs
from tracekit.table import DEVICE_KINDS, EventTable, SourceInfo, strings
from tracekit.writers.json_rows import event_rows, write_rows

CHUNK = 16_384


class OutEvent(msgspec.Struct, omit_defaults=True, gc=False):
    """One event as written (fields left at their default are omitted)."""

    ph: str
    pid: int
    tid: int
    name: str = ""
    cat: str | None = None
    ts: float | None = None
    dur: float | None = None
    id: int | None = None
    bp: str | None = None
    s: str | None = None
    args: msgspec.Raw | None = None


@dataclass
class ChromeResult:
    """Per-row status (written / metadata / replaced / skip reason) and what was written."""

    status: np.ndarray
    events_written: int
    flows_written: int
    base_ns: int


def write_chrome_trace(table: EventTable, path: Path, gzip_output: bool = False) -> ChromeResult:
    """Write `table` (with tree and link columns) as a chrome trace at `path`."""
    ev = table.events
    kind = ev["kind"].to_numpy()
    ph = strings(ev["ph"])
    launch = ev["launch"].to_numpy()
    status, flow_pairs = flow_status(ev, launch)
    is_meta = ph == "M"
    is_flow = kind == "flow"
    status[is_meta] = METADATA
    body = ~is_meta & ~is_flow
    status[body] = WRITTEN
    rows = np.flatnonzero(body)
    base_ns = int(ev["ts_ns"].to_numpy()[rows].min()) // 1000 * 1000 if len(rows) else 0
    layout = _Layout(ev, table.sources)
    out_pid_arr, out_tid_arr = layout.place(rows)
    out_pid, out_tid = out_pid_arr.tolist(), out_tid_arr.tolist()
    extra = _kernel_args(table)
    doc_meta = _top_meta(table.sources, base_ns)
    encoder = msgspec.json.Encoder()
    written = 0
    names, cats, scope = strings(ev["name"]), strings(ev["cat"]), strings(ev["scope"])
    ts_ns, dur_ns = ev["ts_ns"].to_numpy(), ev["dur_ns"].to_numpy()
    with _open_out(path, gzip_output) as fh:
        fh.write(b'{"traceEvents":[')
        first = True
        for chunk in _chunks(layout.metadata_events()):
            fh.write((b"" if first else b",") + encoder.encode(chunk)[1:-1])
            first = False
        extra_rows = np.sort(np.fromiter(extra.keys(), dtype=np.int64, count=len(extra)))
        for begin in range(0, len(rows), CHUNK):
            part = rows[begin : begin + CHUNK]
            text = event_rows(
                ph[part], out_pid_arr[part], out_tid_arr[part], names[part], cats[part],
                ts_ns[part] - base_ns, dur_ns[part], scope[part], _chunk_args(table.args, part, extra, extra_rows),
                prefix=",",
            )
            # Every row starts with its separator; the file's first event drops it.
            write_rows(fh, text, skip=1 if first else 0)
            first = False
            written += len(part)
        flows = _flow_events(ev, launch, flow_pairs, out_pid, out_tid, base_ns)
        if flows:
            fh.write((b"" if first else b",") + encoder.encode(flows)[1:-1])
        fh.write(b"]," + encoder.encode(doc_meta)[1:] )
    return ChromeResult(status, written, len(flows) // 2, base_ns)


def _chunk_args(args: pa.LargeBinaryArray, part: np.ndarray, extra: dict[int, bytes],
                extra_rows: np.ndarray) -> pa.Array:
    """args of the rows `part` (ascending), with the rows in `extra` replaced."""
    taken = args.take(pa.array(part))
    if not len(extra_rows):
        return taken
    mask = np.isin(part, extra_rows)
    if not mask.any():
        return taken
    replacements = pa.array([extra[r] for r in part[mask].tolist()], pa.large_binary())
    return pc.replace_with_mask(taken, pa.array(mask), replacements)


def _with_extra_args(args: pa.LargeBinaryArray, extra: dict[int, bytes]) -> pa.Array:
    """args with the rows in `extra` replaced."""
    if not extra:
        return args
    mask = np.zeros(len(args), dtype=bool)
    rows = np.fromiter(extra.keys(), dtype=np.int64, count=len(extra))
    mask[rows] = True
    order = np.sort(rows)
    replacements = pa.array([extra[r] for r in order.tolist()], pa.large_binary())
    return pc.replace_with_mask(args, pa.array(mask), replacements)


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


def _flow_events(ev: pd.DataFrame, launch: np.ndarray, pairs: pd.DataFrame, out_pid, out_tid,
                 base_ns: int) -> list[OutEvent]:
    """Launch flows (runtime call -> device event) from the links, then the other paired flows."""
    ts = ((ev["ts_ns"].to_numpy() - base_ns) / 1000.0).tolist()
    flows: list[OutEvent] = []
    next_id = 1
    dev = np.flatnonzero(np.isin(ev["kind"].to_numpy(), list(DEVICE_KINDS)) & (launch >= 0))
    for row, src in zip(dev.tolist(), launch[dev].tolist()):
        flows.append(OutEvent(ph="s", pid=out_pid[src], tid=out_tid[src], name="launch", cat="ac2g",
                              ts=ts[src], id=next_id))
        flows.append(OutEvent(ph="f", pid=out_pid[row], tid=out_tid[row], name="launch", cat="ac2g",
                              ts=ts[row], id=next_id, bp="e"))
        next_id += 1
    for s, f, cat in zip(pairs["start"].tolist(), pairs["end"].tolist(), pairs["cat"].tolist()):
        flows.append(OutEvent(ph="s", pid=out_pid[s], tid=out_tid[s], name=cat, cat=cat,
                              ts=ts[s], id=next_id))
        flows.append(OutEvent(ph="f", pid=out_pid[f], tid=out_tid[f], name=cat, cat=cat,
                              ts=ts[f], id=next_id, bp="e"))
        next_id += 1
    return flows


def _kernel_args(table: EventTable) -> dict[int, bytes]:
    """Args of device events extended with their launching op's name and input shapes."""
    ev = table.events
    launcher = ev["launcher"].to_numpy()
    dev = np.flatnonzero(np.isin(ev["kind"].to_numpy(), list(DEVICE_KINDS)) & (launcher >= 0))
    if not len(dev):
        return {}
    ops = np.unique(launcher[dev])
    inputs = op_inputs(table.args, ops).lookup()
    names = strings(ev["name"])
    originals = table.args.take(dev).to_pylist()
    out: dict[int, bytes] = {}
    for row, raw in zip(dev.tolist(), originals):
        op = int(launcher[row])
        dims, types = inputs.get(op, ("", ""))
        added = b'"launcher op":' + msgspec.json.encode(names[op])
        if dims:
            added += b',"launcher Input Dims":' + dims.encode()
        if types:
            added += b',"launcher Input type":' + types.encode()
        if raw and raw.strip() not in (b"{}", b""):
            body = raw.rstrip()
            out[row] = body[:-1] + b"," + added + b"}"
        else:
            out[row] = b"{" + added + b"}"
    return out


class _Layout:
    """Output pids/tids, names and sort order of every track (host first, then devices)."""

    def __init__(self, ev: pd.DataFrame, sources: list[SourceInfo]):
        self.ev = ev
        self.sources = sources
        self.processes: dict[tuple[int, int], int] = {}
        self.threads: dict[tuple[int, int, int, int], int] = {}
        self.meta: list[OutEvent] = []

    def place(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ev = self.ev
        src = ev["source_index"].to_numpy()
        pid = ev["pid"].to_numpy()
        tid = ev["tid"].to_numpy()
        lane = ev["lane"].to_numpy()
        kind = ev["kind"].to_numpy()
        out_pid = np.zeros(len(ev), dtype=np.int64)
        out_tid = np.zeros(len(ev), dtype=np.int64)
        tracks = pd.DataFrame({"src": src[rows], "pid": pid[rows], "tid": tid[rows], "lane": lane[rows],
                               "device": np.isin(kind[rows], list(DEVICE_KINDS))
                               | (strings(ev["cat"])[rows] == "gpu_user_annotation")})
        procs = tracks.groupby(["src", "pid"], sort=True)["device"].any().reset_index()
        multi = len(self.sources) > 1
        used: set[int] = set()
        pid_map: dict[tuple[int, int], int] = {}
        next_free = max([int(p) for p in procs["pid"].tolist() if p >= 0] + [0]) + 1
        order = []
        for s, p, is_dev in procs.itertuples(index=False):
            s, p = int(s), int(p)
            new = p if (p >= 0 and p not in used) else None
            if new is None:
                new, next_free = next_free, next_free + 1
            used.add(new)
            pid_map[(s, p)] = new
            info = self.sources[s]
            group = 2 if p < 0 else (1 if is_dev else 0)
            order.append((s, group, p, new, self._process_name(info, p, bool(is_dev), multi)))
        for sort_index, (_, _, _, new, name) in enumerate(sorted(order, key=lambda o: (o[1], o[0], o[2]))):
            self.meta.append(OutEvent(ph="M", pid=new, tid=0, name="process_name",
                                      args=msgspec.Raw(msgspec.json.encode({"name": name}))))
            self.meta.append(OutEvent(ph="M", pid=new, tid=0, name="process_sort_index",
                                      args=msgspec.Raw(msgspec.json.encode({"sort_index": sort_index}))))
        thr = tracks.drop_duplicates(["src", "pid", "tid", "lane"]).sort_values(["src", "pid", "tid", "lane"])
        tid_map: dict[tuple[int, int, int, int], int] = {}
        per_pid_used: dict[int, set[int]] = {}
        per_pid_rank: dict[int, list] = {}
        for s, p, t, ln, _dev in thr.itertuples(index=False):
            s, p, t, ln = int(s), int(p), int(t), int(ln)
            newp = pid_map[(s, p)]
            taken = per_pid_used.setdefault(newp, set())
            new = t if (ln == 0 and t >= 0 and t not in taken) else None
            if new is None:
                new = 1_000_000_000 + len(taken) if t >= 0 or ln else 2_000_000_000 + len(taken)
                while new in taken:
                    new += 1
            taken.add(new)
            tid_map[(s, p, t, ln)] = new
            info = self.sources[s]
            name = info.thread_names.get((p, t)) or self._default_thread_name(p, t)
            if ln:
                name = f"{name} (overlap {ln})"
            main = 0 if t == p else 1
            base_sort = info.thread_sort.get((p, t), t)
            per_pid_rank.setdefault(newp, []).append(((main, base_sort, t, ln), new, name))
        for newp, entries in per_pid_rank.items():
            for sort_index, (_, new, name) in enumerate(sorted(entries, key=lambda e: e[0])):
                self.meta.append(OutEvent(ph="M", pid=newp, tid=new, name="thread_name",
                                          args=msgspec.Raw(msgspec.json.encode({"name": name}))))
                self.meta.append(OutEvent(ph="M", pid=newp, tid=new, name="thread_sort_index",
                                          args=msgspec.Raw(msgspec.json.encode({"sort_index": sort_index}))))
        out_pid[rows] = [pid_map[k] for k in zip(src[rows].tolist(), pid[rows].tolist())]
        tkeys = zip(src[rows].tolist(), pid[rows].tolist(), tid[rows].tolist(), lane[rows].tolist())
        out_tid[rows] = [tid_map[k] for k in tkeys]
        return out_pid, out_tid

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
