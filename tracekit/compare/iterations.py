"""Iterations of a run without ProfilerStep markers: the repeats of its top-level call.

A training loop traced without `prof.step()` (VizTracer, `log_torch`, a profiler without a schedule)
still shows its steps: the same top-level call (`train_step (...)`, `tk_step_0`, `tk_step_1`...)
repeated on the thread that does the work. When one name (trailing numbers ignored) is repeated at
least twice at the top level of the busiest thread and its repeats cover at least MIN_COVER of that
thread's top-level time, those repeats are the iterations (inferred; the note says from what).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tracekit.table import EventTable, strings

_NUMBER_SUFFIX = re.compile(r"[#_ .-]?\d+$")
TOP_KINDS = ("python", "annotation", "cpu_op", "module", "step")
MIN_COVER = 0.5


@dataclass(frozen=True)
class Iterations:
    """Windows (step, start_ns, dur_ns) of the repeats of `name` in source `source_index`."""

    name: str
    source_index: int
    windows: pd.DataFrame


def find_iterations(table: EventTable) -> Iterations | None:
    """The repeated top-level call of the busiest thread, or None when there is none."""
    ev = table.events
    if not len(ev) or "parent" not in ev:
        return None
    dur = ev["dur_ns"].to_numpy()
    top = np.flatnonzero((ev["parent"].to_numpy() < 0) & ev["kind"].isin(TOP_KINDS).to_numpy() & (dur > 0)
                         & (ev["pid"].to_numpy() >= 0))
    if len(top) < 2:
        return None
    frame = pd.DataFrame({"row": top, "s": ev["source_index"].to_numpy()[top], "p": ev["pid"].to_numpy()[top],
                          "t": ev["tid"].to_numpy()[top], "ts": ev["ts_ns"].to_numpy()[top], "dur": dur[top],
                          "name": [_NUMBER_SUFFIX.sub("", str(n)) for n in strings(ev["name"])[top]]})
    busiest = frame.groupby(["s", "p", "t"])["dur"].sum().idxmax()
    thread = frame[(frame["s"] == busiest[0]) & (frame["p"] == busiest[1]) & (frame["t"] == busiest[2])]
    groups = thread.groupby("name")["dur"].agg(["size", "sum"])
    groups = groups[groups["size"] >= 2]
    if groups.empty:
        return None
    name = str(groups["sum"].idxmax())
    if groups.loc[name, "sum"] < MIN_COVER * thread["dur"].sum():
        return None
    reps = thread[thread["name"] == name].sort_values("ts")
    windows = pd.DataFrame({"step": np.arange(len(reps)), "start_ns": reps["ts"].to_numpy(),
                            "dur_ns": reps["dur"].to_numpy()})
    return Iterations(name, int(busiest[0]), windows)


def steps_from_iterations(table: EventTable, found: Iterations) -> np.ndarray:
    """The `step` column with each row of the iterations' source numbered by the iteration it ran in
    (device rows by their launch's time); other rows keep theirs."""
    ev = table.events
    step = ev["step"].to_numpy().copy()
    ts = ev["ts_ns"].to_numpy()
    launch = ev["launch"].to_numpy() if "launch" in ev else np.full(len(ev), -1)
    when = np.where(launch >= 0, ts[np.maximum(launch, 0)], ts)
    rows = np.flatnonzero(ev["source_index"].to_numpy() == found.source_index)
    starts = found.windows["start_ns"].to_numpy()
    ends = starts + found.windows["dur_ns"].to_numpy()
    pos = np.searchsorted(starts, when[rows], side="right") - 1
    inside = (pos >= 0) & (when[rows] < ends[np.maximum(pos, 0)])
    step[rows] = -1
    step[rows[inside]] = found.windows["step"].to_numpy()[pos[inside]]
    return step.astype(np.int32)
