"""The facts `tracekit info` reports about a trace (pure: table in, dict out).

`quick_info` runs only the stages the facts need (call tree, launch links, steps) on the table as
read: no module attribution and no copy of the table with derived columns, so `info` costs little
more than reading. `trace_info` gives the same facts from an already processed table.

Both take a table whose events are a pandas DataFrame or a tracekit.columns.Columns (what `info` reads from
raw traces, without pandas): the facts are the same, computed by pandas or by numpy in the same order.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np

from tracekit.columns import Coded, Columns
from tracekit.table import DEVICE_KINDS, EventTable, column, kind_in, matches, time_span

if TYPE_CHECKING:
    import pandas as pd

_VIZ_FORWARD = re.compile(r".*\.forward \(")


def quick_info(table: EventTable, top: int = 10) -> dict[str, Any]:
    """The facts of `trace_info`, from a table as read (runs call tree, links and steps only)."""
    from tracekit.link import link_launches
    from tracekit.steps import assign_steps
    from tracekit.table import track_view
    from tracekit.tree import build_call_tree

    ev = table.events
    tree = build_call_tree(track_view(ev))
    links = link_launches(ev, tree.parent)
    step = assign_steps(track_view(ev), links.launch)
    return _facts(table, tree.parent, tree.depth, step, links.unlinked, top, links.launch)


def trace_info(processed, top: int = 10) -> dict[str, Any]:
    """Format, devices, ranks, steps, counts by kind, time span, top ops and kernels by time."""
    return table_info(processed.table, processed.unlinked, top)


def table_info(table: EventTable, unlinked: dict[str, int], top: int = 10) -> dict[str, Any]:
    """trace_info of a processed table (pandas, or a Columns read from a dataset: tracekit.dataset.info_read),
    whose parent, depth, step and launch columns are stored; `unlinked`: the launch links' counts by cause."""
    ev = table.events
    return _facts(table, column(ev, "parent"), column(ev, "depth"), column(ev, "step"), unlinked, top,
                  column(ev, "launch"))


def _kind_in(ev: pd.DataFrame | Columns, kinds: tuple[str, ...]) -> np.ndarray:
    """kind_in on the categorical kind column of a read table; a plain column (a dataset's) by value."""
    if isinstance(ev, Columns):
        return kind_in(ev, kinds)
    import pandas as pd

    if isinstance(ev["kind"].dtype, pd.CategoricalDtype):
        return kind_in(ev, kinds)
    return ev["kind"].isin(kinds).to_numpy(dtype=bool)


def _kind_counts(ev: pd.DataFrame | Columns) -> list[tuple[str, int]]:
    """(kind, rows) by rows, largest first: `ev["kind"].value_counts()` (ties in category order)."""
    if not isinstance(ev, Columns):
        return [(k, int(v)) for k, v in ev["kind"].value_counts().items()]
    kind = ev["kind"]
    counts = np.bincount(kind.codes[kind.codes >= 0], minlength=len(kind.categories)).astype(np.int64)
    order = _descending(counts, "stable")
    return [(kind.categories[i], int(counts[i])) for i in order.tolist()]


def _descending(values: np.ndarray, kind: str) -> np.ndarray:
    """The order pandas' sort_values(ascending=False, kind=kind) gives (pandas.core.sorting.nargsort), ties
    included: reversed, sorted ascending, reversed back."""
    position = np.arange(len(values))[::-1]
    return position[values[::-1].argsort(kind=kind)][::-1]


def _facts(table: EventTable, parent: np.ndarray, depth: np.ndarray, step: np.ndarray,
           unlinked: dict[str, int], top: int, launch: np.ndarray) -> dict[str, Any]:
    ev = table.events
    start, end = time_span(ev)
    counts = _kind_counts(ev)
    devices = [
        {"name": d.get("name", "?"), "id": d.get("id"), "memory_gb": round(d.get("totalGlobalMem", 0) / 2**30, 1)}
        for s in table.sources for d in s.devices
    ]
    is_step = _kind_in(ev, ("step",))
    steps = sorted({int(s) for s in step[is_step].tolist() if s >= 0})
    has_modules = bool(_kind_in(ev, ("module",)).any()) or bool(matches(ev["name"], _VIZ_FORWARD).any())
    is_op = _kind_in(ev, ("cpu_op", "collective")) & (depth >= 0)
    return {
        "sources": [{"path": s.path, "format": s.format, "events": s.input_events, "damage": s.damage,
                     "base_from": s.base_from} for s in table.sources],
        "devices": devices or [{"name": no_device_properties(dict(counts), [s.format for s in table.sources])}],
        "ranks": sorted({s.rank for s in table.sources if s.rank >= 0}),
        "world_size": next((s.distributed.get("world_size") for s in table.sources if s.distributed), None),
        "steps": steps,
        "has_modules": has_modules,
        "counts_by_kind": {k: v for k, v in counts if v},
        "time_span_ns": {"start": start, "end": end, "duration": end - start},
        "top_ops": _top(ev, is_op & ~_parent_in(parent, is_op), top),
        "top_kernels": _top(ev, _kind_in(ev, DEVICE_KINDS), top),
        "unlinked_device_events": unlinked,
        "device_before_launch": _before_launch(ev, launch),
        "skipped": table.skipped,
    }


def no_device_properties(counts_by_kind: dict[str, int], formats: list[str]) -> str:
    """What stands for the device list where the trace names no device: CPU only, or how many device events
    there are (an Ascend trace records its NPU tasks but no device model)."""
    device_events = sum(counts_by_kind.get(k, 0) for k in DEVICE_KINDS)
    if not device_events:
        return "CPU only (no device events)"
    if "npu" in formats:
        return f"Ascend NPU ({device_events:,} device events; the trace names no device model)"
    return f"device events ({device_events:,}) without device properties in the trace"


def _before_launch(ev: pd.DataFrame | Columns, launch: np.ndarray) -> dict[str, int]:
    """Device events that start before the host call that launched them: impossible in real time, so the
    host and device clocks of the trace disagree by at least `max_ns` (Ascend traces show up to ~11 us).
    Empty when there are none."""
    rows = np.flatnonzero(_kind_in(ev, DEVICE_KINDS) & (launch >= 0))
    ts = np.asarray(column(ev, "ts_ns"))
    early = ts[launch[rows]] - ts[rows]
    early = early[early > 0]
    return {"events": len(early), "of": len(rows), "max_ns": int(early.max())} if len(early) else {}


def _parent_in(parent: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Rows whose parent is a row of `mask` (for ops: not the outermost op of a nest)."""
    has = parent >= 0
    out = np.zeros(len(parent), dtype=bool)
    out[has] = mask[parent[has]]
    return out


def _top(ev: pd.DataFrame | Columns, rows: np.ndarray, n: int) -> list[dict[str, Any]]:
    """Largest total time by name over the masked rows (for ops: the outermost only, no double time)."""
    picked = np.flatnonzero(rows)
    if not len(picked):
        return []
    if isinstance(ev, Columns):
        return _top_coded(ev["name"], ev["dur_ns"], picked, n)
    import pandas as pd

    name = ev["name"]
    codes = name.cat.codes.to_numpy()[picked] if isinstance(name.dtype, pd.CategoricalDtype) else None
    frame = pd.DataFrame({"name": name.to_numpy()[picked].astype(str) if codes is None else codes,
                          "dur": ev["dur_ns"].to_numpy()[picked]})
    grouped = frame.groupby("name")["dur"].agg(["sum", "count"])
    if codes is not None:
        labels = np.append(np.asarray(name.cat.categories, dtype=object).astype(str), "nan")
        grouped.index = labels[grouped.index.to_numpy()]
        grouped = grouped.groupby(level=0).sum().sort_index()
    total = grouped["sum"].sum() or 1
    best = grouped.sort_values("sum", ascending=False).head(n)
    return [{"name": name, "total_ns": int(r["sum"]), "calls": int(r["count"]),
             "share": float(r["sum"] / total)} for name, r in best.iterrows()]


def _top_coded(name: Coded, dur: np.ndarray, picked: np.ndarray, n: int) -> list[dict[str, Any]]:
    """`_top` of a Columns table, in numpy, with pandas' result: totals by name (a missing name is "nan"),
    names in sorted order, then sorted by total with pandas' sort (quicksort, so ties fall as they do there)."""
    codes = name.codes[picked].astype(np.int64) + 1  # 0: missing
    size = len(name.categories) + 1
    sums = np.zeros(size, dtype=np.int64)
    np.add.at(sums, codes, dur[picked].astype(np.int64))
    calls = np.bincount(codes, minlength=size).astype(np.int64)
    by_label: dict[str, list[int]] = {}
    for code in np.flatnonzero(calls).tolist():
        label = "nan" if code == 0 else str(name.categories[code - 1])
        entry = by_label.setdefault(label, [0, 0])
        entry[0] += int(sums[code])
        entry[1] += int(calls[code])
    labels = sorted(by_label)
    total_by_name = np.array([by_label[k][0] for k in labels], dtype=np.int64)
    total = total_by_name.sum() or 1
    best = _descending(total_by_name, "quicksort")[:n]
    return [{"name": labels[i], "total_ns": int(total_by_name[i]), "calls": by_label[labels[i]][1],
             "share": float(total_by_name[i] / total)} for i in best.tolist()]
