"""The facts `tracekit info` reports about a processed trace (pure: table in, dict out)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from tracekit.pipeline import Processed
from tracekit.table import DEVICE_KINDS, time_span


def trace_info(processed: Processed, top: int = 10) -> dict[str, Any]:
    """Format, devices, ranks, steps, counts by kind, time span, top ops and kernels by time."""
    table = processed.table
    ev = table.events
    start, end = time_span(ev)
    counts = ev["kind"].value_counts()
    devices = [
        {"name": d.get("name", "?"), "id": d.get("id"), "memory_gb": round(d.get("totalGlobalMem", 0) / 2**30, 1)}
        for s in table.sources for d in s.devices
    ]
    steps = sorted(int(s) for s in ev.loc[ev["kind"] == "step", "step"].unique() if s >= 0)
    has_modules = bool((ev["kind"] == "module").any()) or bool(
        ev["name"].astype(str).str.contains(r"\.forward \(", regex=True).any())
    return {
        "sources": [{"path": s.path, "format": s.format, "events": s.input_events, "damage": s.damage,
                     "base_from": s.base_from} for s in table.sources],
        "devices": devices or [{"name": "CPU only (no device events)"}],
        "ranks": sorted({s.rank for s in table.sources if s.rank >= 0}),
        "world_size": next((s.distributed.get("world_size") for s in table.sources if s.distributed), None),
        "steps": steps,
        "has_modules": has_modules,
        "counts_by_kind": {k: int(v) for k, v in counts.items() if v},
        "time_span_ns": {"start": start, "end": end, "duration": end - start},
        "top_ops": _top(ev[ev["kind"].isin(["cpu_op", "collective"]) & (ev["depth"] >= 0)], top, outermost=True),
        "top_kernels": _top(ev[ev["kind"].isin(DEVICE_KINDS)], top),
        "unlinked_device_events": processed.unlinked,
        "skipped": table.skipped,
    }


def _top(frame: pd.DataFrame, n: int, outermost: bool = False) -> list[dict[str, Any]]:
    """Largest total time by name; for ops only the outermost op of a nest counts (no double time)."""
    if outermost and len(frame):
        op_rows = set(frame.index.tolist())
        frame = frame[~frame["parent"].isin(op_rows)]
    if not len(frame):
        return []
    grouped = frame.groupby(frame["name"].astype(str))["dur_ns"].agg(["sum", "count"])
    total = grouped["sum"].sum() or 1
    best = grouped.sort_values("sum", ascending=False).head(n)
    return [{"name": name, "total_ns": int(r["sum"]), "calls": int(r["count"]),
             "share": float(r["sum"] / total)} for name, r in best.iterrows()]
