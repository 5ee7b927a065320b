"""Per-step breakdown of one run: compute, communication (exposed and overlapped), idle / host-bound.

Device runs: the busy time of device events (kernels, memcpy, memset) within each step window;
communication is the kernels of collectives (launched by a collective op, or NCCL/RCCL/HCCL-named),
exposed where no compute kernel runs at the same time; idle is the step time with the device
doing nothing, which is time the host did not feed it (host-bound). Host-only runs (CPU): the
busy time of the outermost ops on all host threads; communication is collective ops (blocking
on CPU, so all exposed); idle is time with no op running. Steps are `ProfilerStep#N`; a trace
without them is split at the repeats of its top-level call (`step_kind = iteration`, inferred), or
else is one window over its whole span (`whole_trace`).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from tracekit.ancestry import nearest_marked
from tracekit.compare.iterations import find_iterations
from tracekit.table import DEVICE_KINDS, EventTable, kind_in, strings

_COMM_KERNEL = re.compile(r"(?i)nccl|rccl|hccl|allreduce|all_reduce|allgather|all_gather|reducescatter|"
                          r"reduce_scatter|alltoall|sendrecv|broadcast")
STEP_COLUMNS = ("step", "step_kind", "start_ns", "dur_ns", "basis", "busy_ns", "compute_ns", "comm_ns",
                "exposed_comm_ns", "overlapped_comm_ns", "idle_ns", "compute_frac", "exposed_comm_frac", "idle_frac")


def union_ns(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Disjoint intervals [start, end) covering the given ones, as an (n, 2) array."""
    if not len(starts):
        return np.zeros((0, 2), dtype=np.int64)
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], np.maximum.accumulate(ends[order])
    new = np.ones(len(s), dtype=bool)
    new[1:] = s[1:] > e[:-1]
    idx = np.flatnonzero(new)
    last = np.append(idx[1:] - 1, len(s) - 1)
    return np.stack([s[idx], e[last]], axis=1)


def covered_ns(intervals: np.ndarray, lo: int, hi: int) -> int:
    """Length of the part of disjoint `intervals` inside [lo, hi)."""
    if not len(intervals):
        return 0
    s = np.clip(intervals[:, 0], lo, hi)
    e = np.clip(intervals[:, 1], lo, hi)
    return int(np.sum(e - s))


def intersect(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Disjoint intervals where both disjoint interval sets `a` and `b` hold."""
    if not len(a) or not len(b):
        return np.zeros((0, 2), dtype=np.int64)
    out = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i, 0], b[j, 0]), min(a[i, 1], b[j, 1])
        if lo < hi:
            out.append((lo, hi))
        if a[i, 1] < b[j, 1]:
            i += 1
        else:
            j += 1
    return np.array(out, dtype=np.int64).reshape(-1, 2)


PROFILER_STEP, ITERATION, WHOLE_TRACE = "profiler_step", "iteration", "whole_trace"


def step_windows(table: EventTable, iterations: bool = False) -> pd.DataFrame:
    """(step, start_ns, dur_ns, step_kind) of every ProfilerStep (host copy); else of every iteration (the
    repeats of the top-level call, tracekit.compare.iterations, when `iterations`); else one window
    (step -1) over the trace."""
    ev = table.events
    rows = np.flatnonzero(kind_in(ev, ("step",)))  # the step rows' columns only, not a copy of the table's rows
    host_rows = rows[strings(ev["cat"], rows) != "gpu_user_annotation"]
    rows = host_rows if len(host_rows) else rows
    if len(rows):
        found = (_STEP_NUMBER.search(str(n) if n is not None else "nan") for n in strings(ev["name"], rows).tolist())
        numbers = np.array([int(m.group(1)) if m else -1 for m in found], dtype=np.int64)
        start = ev["ts_ns"].to_numpy()[rows]
        order = np.argsort(start, kind="quicksort")  # what sort_values("start_ns") does (one int64 key)
        keep = _first_of_each(numbers[order])  # drop_duplicates("step"): the first in that order
        return pd.DataFrame({"step": numbers[order][keep], "start_ns": start[order][keep],
                             "dur_ns": np.maximum(ev["dur_ns"].to_numpy()[rows], 0)[order][keep],
                             "step_kind": PROFILER_STEP})
    found = find_iterations(table) if iterations else None
    if found is not None:
        return found.windows.assign(step_kind=ITERATION)
    body = ev[~ev["kind"].isin(["metadata", "flow"])]
    if not len(body):
        return pd.DataFrame({"step": [], "start_ns": [], "dur_ns": [], "step_kind": []})
    start = int(body["ts_ns"].min())
    end = int((body["ts_ns"] + body["dur_ns"].clip(lower=0)).max())
    return pd.DataFrame({"step": [-1], "start_ns": [start], "dur_ns": [end - start], "step_kind": [WHOLE_TRACE]})


_STEP_NUMBER = re.compile(r"#(\d+)$")


def _first_of_each(values: np.ndarray) -> np.ndarray:
    """Positions of the first occurrence of each value, in order."""
    _, first = np.unique(values, return_index=True)
    return np.sort(first)


def comm_named(names: np.ndarray) -> np.ndarray:
    """Which names are collective kernels by name (NCCL/RCCL/HCCL, allreduce, ...): each distinct name searched once."""
    if not len(names):
        return np.zeros(0, dtype=bool)
    codes, uniques = pd.factorize(names, use_na_sentinel=False)
    hits = np.array([bool(_COMM_KERNEL.search(str(n))) for n in uniques], dtype=bool)
    return hits[codes]


def step_breakdown(table: EventTable, iterations: bool = False) -> pd.DataFrame:
    """One row per step window with its compute / exposed communication / idle split."""
    ev = table.events
    kind = ev["kind"].to_numpy()
    ts = ev["ts_ns"].to_numpy()
    end = ts + np.maximum(ev["dur_ns"].to_numpy(), 0)
    device = np.isin(kind, list(DEVICE_KINDS))
    if device.any():
        basis = "device"
        launcher = ev["launcher"].to_numpy()
        coll_op = kind[np.maximum(launcher, 0)] == "collective"
        named = np.zeros(len(kind), dtype=bool)
        named[device] = comm_named(strings(ev["name"])[device])
        comm = device & (((launcher >= 0) & coll_op) | named)
        compute = device & ~comm
    else:
        basis = "host"
        ops = np.isin(kind, ("cpu_op", "collective")) & _main_threads(ev, kind)
        outer = ops & (nearest_marked(ev["parent"].to_numpy(), ops, include_self=False) < 0)
        coll = (kind == "collective") & ops
        comm = coll & (nearest_marked(ev["parent"].to_numpy(), coll, include_self=False) < 0)
        compute = outer
    comm_u = union_ns(ts[comm], end[comm])
    busy_u = union_ns(np.concatenate([ts[compute], ts[comm]]), np.concatenate([end[compute], end[comm]]))
    compute_u = union_ns(ts[compute], end[compute])
    overlap_u = intersect(comm_u, compute_u) if basis == "device" else np.zeros((0, 2), dtype=np.int64)
    rows = []
    for step, start, dur, step_kind in step_windows(table, iterations).itertuples(index=False):
        lo, hi = int(start), int(start) + int(dur)
        busy = covered_ns(busy_u, lo, hi)
        comm_ns = covered_ns(comm_u, lo, hi)
        overlapped = covered_ns(overlap_u, lo, hi)
        exposed = comm_ns - overlapped
        compute_ns = busy - exposed
        idle = int(dur) - busy
        rows.append((int(step), step_kind, lo, int(dur), basis, busy, compute_ns, comm_ns, exposed, overlapped, idle,
                     *(v / dur if dur else np.nan for v in (compute_ns, exposed, idle))))
    return pd.DataFrame(rows, columns=list(STEP_COLUMNS))


def _main_threads(ev: pd.DataFrame, kind: np.ndarray) -> np.ndarray:
    """Rows on the threads that run the steps (or the modules, or else the most op time).

    Background threads (gloo/NCCL workers, dataloaders) overlap the main thread, so counting them
    would call their time exposed.
    """
    keys = pd.MultiIndex.from_arrays([ev["source_index"].to_numpy(), ev["pid"].to_numpy(), ev["tid"].to_numpy()])
    for marker in (kind == "step", kind == "module"):
        if marker.any():
            return keys.isin(keys[marker].unique())
    ops = kind == "cpu_op"
    if not ops.any():
        return np.zeros(len(ev), dtype=bool)
    busiest = pd.Series(np.maximum(ev["dur_ns"].to_numpy()[ops], 0), index=keys[ops]).groupby(level=[0, 1, 2]).sum()
    return keys.isin([busiest.idxmax()])
