"""Assign each event the profiler step (`ProfilerStep#N`) it ran in."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

_STEP_NUMBER = re.compile(r"#(\d+)$")


def assign_steps(events: pd.DataFrame, launch: np.ndarray) -> np.ndarray:
    """Step number per row (-1 outside any step); device events take the step of their launch."""
    n = len(events)
    step = np.full(n, -1, dtype=np.int32)
    kind = events["kind"].to_numpy()
    src = events["source_index"].to_numpy()
    ts = events["ts_ns"].to_numpy()
    when = np.where(launch >= 0, ts[np.maximum(launch, 0)], ts)
    step_rows = np.flatnonzero(kind == "step")
    for source in np.unique(src[step_rows]):
        mine = step_rows[src[step_rows] == source]
        numbers = np.array(
            [int(m.group(1)) if (m := _STEP_NUMBER.search(str(nm))) else -1
             for nm in events["name"].to_numpy()[mine]], dtype=np.int32)
        starts = ts[mine]
        ends = starts + np.maximum(events["dur_ns"].to_numpy()[mine], 0)
        order = np.argsort(starts, kind="stable")
        starts, ends, numbers = starts[order], ends[order], numbers[order]
        rows = np.flatnonzero(src == source)
        pos = np.searchsorted(starts, when[rows], side="right") - 1
        inside = (pos >= 0) & (when[rows] < ends[np.maximum(pos, 0)])
        step[rows[inside]] = numbers[pos[inside]]
    return step


def step_table(events: pd.DataFrame) -> pd.DataFrame:
    """One row per step annotation: source, step, start, duration."""
    rows = events[events["kind"] == "step"]
    numbers = rows["name"].astype(str).str.extract(_STEP_NUMBER, expand=False).astype("Int64")
    return pd.DataFrame({
        "source": rows["source"].astype(str), "rank": rows["rank"], "step": numbers,
        "start_ns": rows["ts_ns"], "dur_ns": rows["dur_ns"],
    }).reset_index(drop=True)
