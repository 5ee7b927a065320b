"""Iterations of a run without ProfilerStep markers: the repeats of its top-level call.

A training loop traced without `prof.step()` (VizTracer, `log_torch`, a profiler without a schedule)
still shows its steps: the same top-level calls repeated on the thread that does the work, one call
(`train_step (...)`, `tk_step_0`, `tk_step_1`...) or a block of them (forward, backward, optimizer step
written inline in the loop). The iterations are the back-to-back repeats (at least 2) of the block of
top-level names (trailing numbers ignored) on the busiest thread that cover the most time, provided
they cover at least MIN_COVER of that thread's top-level time (inferred; the note names the block).
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
MAX_TOP_CALLS = 500


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
    thread = thread.sort_values("ts").reset_index(drop=True)
    found = repeated_block(thread["name"].tolist()[:MAX_TOP_CALLS], thread["dur"].to_numpy()[:MAX_TOP_CALLS])
    if found is None:
        return None
    start, period, repeats = found
    covered = thread["dur"].to_numpy()[start:start + period * repeats].sum()
    if covered < MIN_COVER * thread["dur"].sum():
        return None
    firsts = start + period * np.arange(repeats)
    lasts = firsts + period - 1
    begin = thread["ts"].to_numpy()[firsts]
    end = (thread["ts"] + thread["dur"]).to_numpy()[lasts]
    windows = pd.DataFrame({"step": np.arange(repeats), "start_ns": begin, "dur_ns": end - begin})
    return Iterations(" + ".join(thread["name"].tolist()[start:start + period]), int(busiest[0]), windows)


def repeated_block(names: list[str], dur: np.ndarray) -> tuple[int, int, int] | None:
    """(start, period, repeats) of the run of back-to-back identical blocks of names covering the most time
    (at least 2 repeats; ties: the shortest period)."""
    best, best_time = None, 0
    n = len(names)
    cum = np.concatenate([[0], np.cumsum(dur)])
    for period in range(1, n // 2 + 1):
        start = 0
        while start + 2 * period <= n:
            block = names[start:start + period]
            repeats = 1
            while names[start + repeats * period:start + (repeats + 1) * period] == block:
                repeats += 1
            if repeats >= 2:
                time = cum[start + repeats * period] - cum[start]
                if time > best_time:
                    best, best_time = (start, period, repeats), time
                start += repeats * period
            else:
                start += 1
    return best


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
