"""A module track per host thread in the chrome trace: forward module spans and backward module spans.

Forward spans are the module calls themselves. Backward spans are drawn from the top-level autograd
nodes attributed to a module: consecutive nodes of the same module form one span per level of the
module path (`Block_0 (backward)` around `MLP_0 (backward)` around `Linear_4 (backward)`).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from tracekit.ancestry import nearest_marked
from tracekit.modules.attribute import BACKWARD_PREFIX
from tracekit.table import column, matches, strings
from tracekit.writers.out_event import OutEvent, raw_args

TRACK_TID_BASE = 1_500_000_000


def module_track_events(ev: pd.DataFrame, out_pid: np.ndarray, out_tid: np.ndarray, base_ns: int,
                        thread_names: dict[tuple[int, int], str]) -> list[OutEvent]:
    """Span and metadata events of the module tracks (empty when no event has a module)."""
    if "module_path" not in ev or not (_codes(column(ev, "module_path")) >= 0).any():
        return []
    kind = ev["kind"].to_numpy()
    paths = strings(column(ev, "module_path"))
    types = strings(column(ev, "module_type"))
    ts, dur = column(ev, "ts_ns"), np.maximum(column(ev, "dur_ns"), 0)
    recompute = column(ev, "recompute")
    module = column(ev, "module")
    spans = np.flatnonzero((module == np.arange(len(ev))) & (kind != "flow"))
    is_node = (kind == "cpu_op") & matches(column(ev, "name"), re.escape(BACKWARD_PREFIX))
    top_nodes = np.flatnonzero(is_node & (nearest_marked(column(ev, "parent"), is_node, include_self=False) < 0)
                               & (paths != None) & ~recompute)  # noqa: E711
    threads = sorted({(int(out_pid[r]), int(out_tid[r])) for r in np.concatenate([spans, top_nodes]).tolist()})
    track_of = {key: TRACK_TID_BASE + i for i, key in enumerate(threads)}
    events: list[OutEvent] = []
    for i, (pid, tid) in enumerate(threads):
        label = thread_names.get((pid, tid), f"thread {tid}")
        track = track_of[(pid, tid)]
        events.append(OutEvent("M", pid, track, "thread_name", args=raw_args({"name": f"modules · {label}"})))
        events.append(OutEvent("M", pid, track, "thread_sort_index", args=raw_args({"sort_index": -1 - i})))

    def us(ns: int) -> float:
        return (ns - base_ns) / 1000.0

    for row in spans.tolist():
        phase = "recompute" if recompute[row] else "forward"
        events.append(OutEvent("X", int(out_pid[row]), track_of[(int(out_pid[row]), int(out_tid[row]))],
                                 paths[row].rsplit("/", 1)[-1], "module", us(int(ts[row])), int(dur[row]) / 1000.0,
                                 args=raw_args({"module_path": paths[row], "module_type": types[row], "phase": phase})))
    nodes = top_nodes[np.lexsort((ts[top_nodes], out_tid[top_nodes], out_pid[top_nodes]))]  # by thread, then time
    node_pid, node_tid = out_pid[nodes], out_tid[nodes]
    cut = np.flatnonzero((node_pid[1:] != node_pid[:-1]) | (node_tid[1:] != node_tid[:-1])) + 1
    for begin, end in zip([0, *cut.tolist()], [*cut.tolist(), len(nodes)]):
        if begin < end:
            pid, tid = int(node_pid[begin]), int(node_tid[begin])
            events.extend(_backward_spans(nodes[begin:end], paths, ts, dur, pid, track_of[(pid, tid)], us))
    return events


def _codes(column: pd.Categorical | np.ndarray) -> np.ndarray:
    """Category codes (-1: missing) of a categorical column; of a plain one, -1 where missing."""
    if isinstance(column, pd.Categorical):
        return column.codes
    return np.where(pd.notna(column), 0, -1)


def _backward_spans(rows: np.ndarray, paths: np.ndarray, ts: np.ndarray, dur: np.ndarray, pid: int, tid: int,
                    us) -> list[OutEvent]:
    """Runs of consecutive nodes sharing a path prefix, one span per prefix level."""
    parts = [str(paths[r]).split("/") for r in rows.tolist()]
    out: list[OutEvent] = []
    depth = max((len(p) for p in parts), default=0)
    for level in range(depth):
        start = 0
        while start < len(rows):
            key = parts[start][: level + 1] if len(parts[start]) > level else None
            stop = start + 1
            while stop < len(rows) and key is not None and parts[stop][: level + 1] == key:
                stop += 1
            if key is not None:
                begin, end = int(ts[rows[start]]), max(int(ts[r] + dur[r]) for r in rows[start:stop].tolist())
                span_args = raw_args({"module_path": "/".join(key), "phase": "backward"})
                out.append(OutEvent("X", pid, tid, f"{key[-1]} (backward)", "module", us(begin),
                                    (end - begin) / 1000.0, args=span_args))
            start = stop
    return out
