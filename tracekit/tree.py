"""Per-track call tree: parent row, depth, and the display lane that keeps nesting proper."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tracekit.table import NO_ROW

# When two events start and end together, the one with the lower rank is the outer one.
_NEST_RANK = {
    "step": 0, "annotation": 1, "module": 2, "python": 3, "collective": 4, "cpu_op": 5,
    "runtime": 6, "kernel": 7, "memcpy": 7, "memset": 7, "memory": 8, "instant": 8, "other": 9,
}
_SPAN_PH = ("X", "i", "I")


@dataclass(frozen=True)
class CallTree:
    """parent (row or -1), depth (-1 for rows outside any track), lane (0 = main track)."""

    parent: np.ndarray
    depth: np.ndarray
    lane: np.ndarray

    @property
    def overlapped(self) -> int:
        return int((self.lane > 0).sum())


def track_codes(events: pd.DataFrame) -> np.ndarray:
    """One integer per (source file, pid, tid) track."""
    keys = pd.DataFrame({"s": events["source_index"], "p": events["pid"], "t": events["tid"]})
    return keys.groupby(["s", "p", "t"], sort=True, observed=True).ngroup().to_numpy()


def build_call_tree(events: pd.DataFrame) -> CallTree:
    """Nest the span events of every track by time.

    Events are taken in (start, -duration) order. An event that starts inside the innermost
    open event but ends after it partly overlaps: it keeps the enclosing event as parent but is
    placed on an extra display lane (1, 2, ...) where it nests properly.
    """
    n = len(events)
    parent = np.full(n, NO_ROW, dtype=np.int64)
    depth = np.full(n, -1, dtype=np.int32)
    lane = np.zeros(n, dtype=np.int16)
    is_span = events["ph"].isin(_SPAN_PH).to_numpy()
    rows = np.flatnonzero(is_span)
    if not len(rows):
        return CallTree(parent, depth, lane)
    track = track_codes(events)[rows]
    start = events["ts_ns"].to_numpy()[rows]
    dur = np.maximum(events["dur_ns"].to_numpy()[rows], 0)
    rank = events["kind"].map(_NEST_RANK).astype("float").fillna(9).to_numpy()[rows]
    order = np.lexsort((rows, rank, -dur, start, track))
    _nest(rows[order], track[order], start[order], (start + dur)[order], parent, depth, lane)
    return CallTree(parent, depth, lane)


def _nest(rows, track, start, end, parent, depth, lane) -> None:
    """The stack walk over events sorted by track, then start."""
    stacks: list[list[tuple[int, int, int]]] = [[]]  # per lane: (end, row, depth)
    current = None
    rows_l, track_l, start_l, end_l = rows.tolist(), track.tolist(), start.tolist(), end.tolist()
    for row, trk, s, e in zip(rows_l, track_l, start_l, end_l):
        if trk != current:
            current, stacks = trk, [[]]
        placed = False
        for k, stack in enumerate(stacks):
            while stack and stack[-1][0] <= s:
                stack.pop()
            if k == 0:
                if stack:
                    parent[row] = stack[-1][1]
                    depth[row] = stack[-1][2] + 1
                else:
                    depth[row] = 0
            if not stack or e <= stack[-1][0]:
                stack.append((e, row, int(depth[row])))
                lane[row] = k
                placed = True
                break
        if not placed:
            stacks.append([(e, row, int(depth[row]))])
            lane[row] = len(stacks) - 1

