"""Exposed communication: the time of each collective call not overlapped by compute on its rank (pure functions)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from tracekit.table import DEVICE_KINDS, column, kind_in, matches

_COMM_KERNEL = re.compile(r"(?i:nccl|rccl)|.*all_reduce_kernel|hcom_")  # communication kernels (not compute)
_WAIT = re.compile(r"(?i).*wait")


def compute_intervals(ev: pd.DataFrame, calls: pd.DataFrame) -> np.ndarray:
    """Merged [start, end) intervals of compute on one rank: non-communication device kernels when the rank
    has any, else cpu ops that neither contain nor are communication or a wait."""
    ts, dur = column(ev, "ts_ns"), column(ev, "dur_ns")
    dev = kind_in(ev, DEVICE_KINDS)
    if dev.any():
        comm = matches(column(ev, "name"), _COMM_KERNEL)
        rows = np.flatnonzero(dev & ~comm)
    else:
        kind = ev["kind"].to_numpy()
        parent = column(ev, "parent")
        blocked = np.zeros(len(ev), dtype=bool)
        waits = np.flatnonzero(kind_in(ev, ["collective"]) | matches(column(ev, "name"), _WAIT) & (kind == "cpu_op"))
        for row in np.concatenate([waits, calls["call_row"].to_numpy()]).tolist():
            cur = int(row)
            while cur >= 0 and not blocked[cur]:
                blocked[cur] = True
                cur = int(parent[cur])
        rows = np.flatnonzero((kind == "cpu_op") & ~blocked)
    return merge_intervals(ts[rows], ts[rows] + np.maximum(dur[rows], 0))


def merge_intervals(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Union of intervals as a sorted (n, 2) array of disjoint [start, end)."""
    if not len(starts):
        return np.zeros((0, 2), dtype=np.int64)
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    run_end = np.maximum.accumulate(e)
    new = np.ones(len(s), dtype=bool)
    new[1:] = s[1:] > run_end[:-1]
    idx = np.flatnonzero(new)
    return np.stack([s[idx], np.append(run_end[idx[1:] - 1], run_end[-1])], axis=1)


def covered_ns(intervals: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """For each [start, end), the ns covered by the disjoint sorted `intervals`."""
    if not len(intervals):
        return np.zeros(len(start), dtype=np.int64)
    cum = np.concatenate([[0], np.cumsum(intervals[:, 1] - intervals[:, 0])])

    def upto(t: np.ndarray) -> np.ndarray:
        i = np.searchsorted(intervals[:, 0], t, side="right")
        full = cum[np.maximum(i - 1, 0)]
        partial = np.clip(t - intervals[np.maximum(i - 1, 0), 0], 0,
                          intervals[np.maximum(i - 1, 0), 1] - intervals[np.maximum(i - 1, 0), 0])
        return np.where(i > 0, full + partial, 0)

    return upto(np.asarray(end)) - upto(np.asarray(start))


def exposed_ns(ev: pd.DataFrame, calls: pd.DataFrame) -> np.ndarray:
    """Time of each collective not overlapped by compute on its rank."""
    if not len(calls):
        return np.zeros(0, dtype=np.int64)
    start = calls["start_ns"].to_numpy(dtype=np.int64)
    end = start + calls["dur_ns"].to_numpy(dtype=np.int64)
    return (end - start) - covered_ns(compute_intervals(ev, calls), start, end)
