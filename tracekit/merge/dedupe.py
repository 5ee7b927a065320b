"""Events recorded twice (torch events of a `log_torch=True` VizTracer file that are also in the torch
file, or a file given twice) are kept once: the copy in the file first in priority order stays."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from tracekit.merge.match import SAME_TOLERANCE_NS
from tracekit.table import EventTable, strings

DUPLICATE = "duplicate_of_event_in_other_input"
_KEY = ["track", "ph", "dur", "name"]


def duplicate_rows(events: pd.DataFrame, track: np.ndarray, priority: list[int],
                   tolerance_ns: int = SAME_TOLERANCE_NS) -> np.ndarray:
    """Rows that repeat (same thread track key (see groups.track_keys), phase, duration and name, start within
    `tolerance_ns`) an event of a file earlier in `priority`. One to one: each kept event absorbs at
    most one copy per file. Metadata events are left alone (they are folded anyway)."""
    ph = strings(events["ph"])
    frame = pd.DataFrame({
        "row": np.arange(len(events)), "file": events["source_index"].to_numpy(), "track": track, "ph": ph,
        "dur": events["dur_ns"].to_numpy(), "name": events["name"].cat.codes.to_numpy(),
        "ts": events["ts_ns"].to_numpy(),
    })
    frame = frame[ph != "M"]
    dropped: list[np.ndarray] = []
    kept = frame[frame["file"] == priority[0]]
    for f in priority[1:]:
        mine = frame[frame["file"] == f].sort_values("ts")
        if mine.empty:
            continue
        if not kept.empty:
            earlier = kept.sort_values("ts").rename(columns={"row": "row_k"})[[*_KEY, "ts", "row_k"]]
            earlier = earlier.assign(ts_k=earlier["ts"])
            joined = pd.merge_asof(mine, earlier, on="ts", by=_KEY, direction="nearest", tolerance=tolerance_ns)
            joined = joined[joined["row_k"].notna()]
            joined = joined.assign(gap=(joined["ts"] - joined["ts_k"]).abs()).sort_values("gap")
            dup = joined.drop_duplicates("row_k")["row"].to_numpy()
            dropped.append(dup)
            mine = mine[~mine["row"].isin(dup)]
        kept = pd.concat([kept, mine]) if not kept.empty else mine
    return np.sort(np.concatenate(dropped)) if dropped else np.array([], dtype=np.int64)


def drop_rows(table: EventTable, rows: np.ndarray, reason: str) -> EventTable:
    """The table without `rows`; each dropped row is counted under `reason` in its file's skipped counts.

    Call before the stages that add row references (parent, launch...)."""
    if not len(rows):
        return table
    sources = [replace(s, skipped=dict(s.skipped)) for s in table.sources]
    keep = np.ones(len(table.events), dtype=bool)
    keep[rows] = False
    per_file = pd.Series(table.events["source_index"].to_numpy()[rows]).value_counts()
    for f, count in per_file.items():
        src = sources[int(f)]
        src.skipped[reason] = src.skipped.get(reason, 0) + int(count)
    idx = np.flatnonzero(keep)
    events = table.events.iloc[idx].reset_index(drop=True)
    return EventTable(events, table.args.take(idx), sources)
