"""Both runs on one timeline: the target shifted so that its first step starts with the base's."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from tracekit.compare.side import Side
from tracekit.compare.steps import step_windows
from tracekit.table import EventTable, concat

MODULE_STRINGS = ("module_path", "module_type", "phase", "module_from")


def first_step_ns(table: EventTable) -> int:
    """Start of the first step, or of the first event when there are no steps."""
    windows = step_windows(table)
    return int(windows["start_ns"].min()) if len(windows) else 0


def side_by_side(base: Side, target: Side) -> EventTable:
    """One table of both runs: source 0 is the base, 1 the target (named so in the trace)."""
    shift = first_step_ns(base.processed.table) - first_step_ns(target.processed.table)
    parts = []
    for index, side, delta in ((0, base, 0), (1, target, shift)):
        table = side.processed.table
        events = table.events.copy()
        events["ts_ns"] = events["ts_ns"] + delta
        events["source_index"] = np.int32(index)
        sources = [dataclasses.replace(s, path=f"{side.label} {Path(s.path).name}",
                                       base_ns=s.base_ns + delta) for s in table.sources]
        parts.append(EventTable(events, table.args, sources))
    offset = len(parts[0].events)
    module = parts[1].events["module"].to_numpy()
    parts[1].events["module"] = np.where(module >= 0, module + offset, module)
    out = concat(parts)
    for col in MODULE_STRINGS:
        if col in out.events:
            out.events[col] = pd.Categorical(out.events[col].astype(object))
    return out
