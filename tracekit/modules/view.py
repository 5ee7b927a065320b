"""Shape the modules table for display: step share, tree order, depth limit, sort among siblings.

One implementation on plain rows (a list of dicts, None where a value is missing), which the raw-trace and the
dataset paths of `tracekit modules` both use; `tree_view` applies the same order to a pandas frame for the report
and the Python API. Imports neither numpy nor pandas (a dataset query never loads pandas)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from tracekit.table import EventTable

SORT_KEYS = {
    "order": None, "total": "total_ns", "self": "self_ns", "first": "first_call_ns", "steady": "steady_ns",
    "device": "device_ns", "params": "params", "flops": "flops_fwd", "backward": "backward_ns",
}

Row = dict[str, Any]


def step_figures(source: np.ndarray, is_metadata: np.ndarray, is_step: np.ndarray, ts_ns: np.ndarray,
                 dur_ns: np.ndarray, step: np.ndarray | None) -> tuple[dict[int, int], int | None]:
    """(per source: the summed duration of its profiler steps, or its time span when it has none; the lowest
    ProfilerStep number recorded, None without steps), from the event columns as numpy arrays. Masks over the
    whole columns only (1 B a row), no copy of a column."""
    out: dict[int, int] = {}
    keep = ~is_metadata
    for s in _distinct(source):
        mine = source == s
        mine &= keep
        if not mine.any():  # a source of metadata events only
            continue
        picked = mine & is_step
        if picked.any():
            out[int(s)] = int(dur_ns[picked].sum())
        else:
            out[int(s)] = _span_ns(mine, ts_ns, dur_ns)
    first = None
    if step is not None:
        numbers = step[is_step]
        numbers = numbers[numbers >= 0]
        first = int(numbers.min()) if len(numbers) else None
    return out, first


_SPAN_CHUNK = 1 << 16


def _span_ns(mine: np.ndarray, ts_ns: np.ndarray, dur_ns: np.ndarray) -> int:
    """Latest end (negative durations as 0) minus earliest start of the rows in `mine` (some), chunk by chunk."""
    import numpy as np

    start, end = None, None
    for at in range(0, len(mine), _SPAN_CHUNK):
        part = mine[at : at + _SPAN_CHUNK]
        if not part.any():
            continue
        ts = ts_ns[at : at + _SPAN_CHUNK][part]
        ends = ts + np.maximum(dur_ns[at : at + _SPAN_CHUNK][part], 0)
        low, high = ts.min(), ends.max()
        start = low if start is None else min(start, low)
        end = high if end is None else max(end, high)
    return int(end - start)


def _distinct(values: np.ndarray) -> list[int]:
    """The distinct small integers (source indexes), ascending (np.unique imports numpy.ma: ~40 ms), counted
    chunk by chunk (bincount of a whole column copies it to intp first: 8 B a row)."""
    import numpy as np

    if not len(values):
        return []
    low, high = int(values.min()), int(values.max())
    counts = np.zeros(high - low + 1, dtype=np.int64)
    for at in range(0, len(values), _SPAN_CHUNK):
        counts += np.bincount(values[at : at + _SPAN_CHUNK] - low, minlength=len(counts))
    return [int(v) + low for v in np.flatnonzero(counts)]


def step_figures_of(table: EventTable) -> tuple[dict[int, int], int | None]:
    """step_figures of an event table's events (what convert stores in the module rows file)."""
    from tracekit.table import column, is_in

    ev = table.events
    has_step = "step" in ev and "kind" in ev

    def equals(name: str, value: str):  # on the codes of a categorical column (a Series compare costs ~0.1 ms)
        return is_in(column(ev, name), (value,))

    return step_figures(column(ev, "source_index"), equals("ph", "M"), equals("kind", "step"), column(ev, "ts_ns"),
                        column(ev, "dur_ns"), column(ev, "step") if has_step else None)


def step_time_ns(table: EventTable) -> dict[int, int]:
    """Per source: the summed duration of its profiler steps, or its time span when it has none."""
    return step_figures_of(table)[0]


def first_recorded_step(table: EventTable) -> int | None:
    """The lowest ProfilerStep number in the trace (None without steps): above 0, the recording began after the
    program's first steps, so a module's "first" call in it is not its first call (warm-up) in the program."""
    ev = table.events
    if "step" not in ev or "kind" not in ev:
        return None
    return step_figures_of(table)[1]


def missing(value: Any) -> bool:
    """None or NaN (a null of the module table)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def module_rows(table: pa.Table) -> list[Row]:
    """The module table (as Arrow: read from modules.parquet, or tracekit.writers.parquet.frame_to_arrow of the
    frame made from a raw trace) as rows; nulls are None."""
    return table.to_pylist()


def tree_order(sources: Sequence[int], parents: Sequence[str | None], paths: Sequence[str],
               sort_values: Sequence[Any] | None) -> list[int]:
    """Positions in tree order: per source (ascending) each parent before its children, siblings in call order
    or by `sort_values` (largest first, missing last)."""
    children: dict[tuple[int, str | None], list[int]] = {}
    for pos, (s, parent) in enumerate(zip(sources, parents)):
        children.setdefault((int(s), parent if isinstance(parent, str) else None), []).append(pos)
    ordered: list[int] = []

    def largest_first(pos: int) -> Any:
        value = sort_values[pos]
        return -(-1 if missing(value) else value)

    def visit(s: int, parent: str | None) -> None:
        kids = children.get((s, parent), [])
        if sort_values is not None:
            kids = sorted(kids, key=largest_first)
        for pos in kids:
            ordered.append(pos)
            visit(s, paths[pos])

    for s in sorted({int(v) for v in sources}):
        visit(s, None)
    return ordered


def _share(total: Any, backward: Any, step: Any) -> float | None:
    """(forward + backward host time) / step time; None where the step time is unknown or not positive."""
    if step is None or not step > 0 or missing(total) or missing(backward):
        return None
    return (total + backward) / max(float(step), 1.0)


def tree_rows(rows: list[Row], step_ns: dict[int, int], depth: int | None = None, sort: str = "order") -> list[Row]:
    """The rows in tree order (each parent before its children, siblings sorted), with `device_ns`, `share` of
    step time and `first_seen` (position in the module table) added; only rows down to `depth`."""
    shown = []
    for pos, row in enumerate(rows):
        if depth is not None and row["depth"] > depth:
            continue
        row = dict(row)
        row["device_ns"] = row["device_ns_fwd"] + row["device_ns_bwd"]
        row["share"] = _share(row["total_ns"], row["backward_ns"], step_ns.get(row["source_index"]))
        row["first_seen"] = pos
        shown.append(row)
    key = SORT_KEYS[sort]
    order = tree_order([r["source_index"] for r in shown], [r["parent_path"] for r in shown],
                       [r["module_path"] for r in shown], [r[key] for r in shown] if key else None)
    return [shown[i] for i in order]


def tree_view(modules: pd.DataFrame, step_ns: dict[int, int], depth: int | None = None,
              sort: str = "order") -> pd.DataFrame:
    """tree_rows' order and columns on a pandas frame (the report and the Python API)."""
    import numpy as np
    import pandas as pd

    frame = modules.copy()
    frame["device_ns"] = frame["device_ns_fwd"] + frame["device_ns_bwd"]
    steps = frame["source_index"].map(step_ns).astype(float).to_numpy()
    frame["share"] = np.where(steps > 0, (frame["total_ns"] + frame["backward_ns"]) / np.maximum(steps, 1), np.nan)
    frame["first_seen"] = np.arange(len(frame))
    if depth is not None:
        frame = frame[frame["depth"] <= depth]
    key = SORT_KEYS[sort]
    values = [None if pd.isna(v) else v for v in frame[key]] if key else None
    order = tree_order(frame["source_index"].tolist(), frame["parent_path"].tolist(),
                       frame["module_path"].astype(str).tolist(), values)
    return frame.iloc[order]
