"""Shape the modules table for display: step share, tree order, depth limit, sort among siblings."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tracekit.table import EventTable

SORT_KEYS = {
    "order": None, "total": "total_ns", "self": "self_ns", "first": "first_call_ns", "steady": "steady_ns",
    "device": "device_ns", "params": "params", "flops": "flops_fwd", "backward": "backward_ns",
}


def step_time_ns(table: EventTable) -> dict[int, int]:
    """Per source: the summed duration of its profiler steps, or its time span when it has none."""
    ev = table.events
    out = {}
    for source, frame in ev[ev["ph"] != "M"].groupby("source_index", observed=True):
        steps = frame[frame["kind"] == "step"]
        if len(steps):
            out[int(source)] = int(steps["dur_ns"].sum())
        else:
            end = frame["ts_ns"] + frame["dur_ns"].clip(lower=0)
            out[int(source)] = int(end.max() - frame["ts_ns"].min())
    return out


def first_recorded_step(table: EventTable) -> int | None:
    """The lowest ProfilerStep number in the trace (None without steps): above 0, the recording began after the
    program's first steps, so a module's "first" call in it is not its first call (warm-up) in the program."""
    ev = table.events
    if "step" not in ev or "kind" not in ev:
        return None
    steps = ev["step"][(ev["kind"] == "step").to_numpy()]
    steps = steps[steps >= 0]
    return int(steps.min()) if len(steps) else None


def tree_view(modules: pd.DataFrame, step_ns: dict[int, int], depth: int | None = None,
              sort: str = "order") -> pd.DataFrame:
    """Rows in tree order (each parent before its children, siblings sorted), with `share` of step time."""
    frame = modules.copy()
    frame["device_ns"] = frame["device_ns_fwd"] + frame["device_ns_bwd"]
    steps = frame["source_index"].map(step_ns).astype(float).to_numpy()
    frame["share"] = np.where(steps > 0, (frame["total_ns"] + frame["backward_ns"]) / np.maximum(steps, 1), np.nan)
    frame["first_seen"] = np.arange(len(frame))
    if depth is not None:
        frame = frame[frame["depth"] <= depth]
    key = SORT_KEYS[sort]
    children: dict[tuple[int, str | None], list[int]] = {}
    for idx, s, parent in zip(frame.index, frame["source_index"], frame["parent_path"]):
        children.setdefault((int(s), parent if isinstance(parent, str) else None), []).append(idx)
    ordered: list[int] = []

    def visit(s: int, parent: str | None) -> None:
        kids = children.get((s, parent), [])
        if key:
            kids = sorted(kids, key=lambda i: -(frame.at[i, key] if pd.notna(frame.at[i, key]) else -1))
        for idx in kids:
            ordered.append(idx)
            visit(s, frame.at[idx, "module_path"])

    for s in sorted({int(v) for v in frame["source_index"]}):
        visit(s, None)
    return frame.loc[ordered]
