"""Parquet tables: events, kernels, ops, steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tracekit.opargs import op_inputs
from tracekit.steps import step_table
from tracekit.table import DEVICE_KINDS, EventTable, strings

EVENT_COLUMNS = (
    "source", "rank", "pid", "tid", "ts_ns", "dur_ns", "name", "cat", "kind", "ph", "parent", "depth",
    "lane", "launch", "launcher", "step", "correlation", "external_id", "sequence", "fwd_thread",
    "python_id", "python_parent", "flow_id", "input_index", "source_index", "module", "module_path",
    "module_type", "phase", "recompute", "module_from",
)


def events_frame(table: EventTable) -> pa.Table:
    """The event table as arrow, with the original args as JSON text."""
    ev = table.events
    cols = [c for c in EVENT_COLUMNS if c in ev]
    arrow = pa.Table.from_pandas(ev[cols], preserve_index=False)
    return arrow.append_column("args", table.args.cast(pa.large_string()))


def kernels_frame(table: EventTable) -> pd.DataFrame:
    """One row per device event (kernel, memcpy, memset) with its launch and launching op."""
    ev = table.events
    rows = np.flatnonzero(ev["kind"].isin(DEVICE_KINDS).to_numpy())
    launch = ev["launch"].to_numpy()[rows]
    launcher = ev["launcher"].to_numpy()[rows]
    names = strings(ev["name"])
    inputs = op_inputs(table.args, np.unique(launcher[launcher >= 0])).lookup()
    return pd.DataFrame({
        "row": rows,
        "source": strings(ev["source"])[rows],
        "rank": ev["rank"].to_numpy()[rows],
        "device": ev["pid"].to_numpy()[rows],
        "stream": ev["tid"].to_numpy()[rows],
        "kind": strings(ev["kind"])[rows],
        "name": names[rows],
        "ts_ns": ev["ts_ns"].to_numpy()[rows],
        "dur_ns": ev["dur_ns"].to_numpy()[rows],
        "step": ev["step"].to_numpy()[rows],
        "correlation": ev["correlation"].to_numpy()[rows],
        "launch_row": launch,
        "launch_name": [names[r] if r >= 0 else None for r in launch.tolist()],
        "launcher_row": launcher,
        "op_name": [names[r] if r >= 0 else None for r in launcher.tolist()],
        "op_input_dims": [inputs[r][0] if r >= 0 else None for r in launcher.tolist()],
        "op_input_types": [inputs[r][1] if r >= 0 else None for r in launcher.tolist()],
        **_module_columns(ev, rows),
    })


def ops_frame(table: EventTable) -> pd.DataFrame:
    """One row per cpu op (collective ops included) with input dims and types as JSON text."""
    ev = table.events
    rows = np.flatnonzero(ev["kind"].isin(["cpu_op", "collective"]).to_numpy())
    inputs = op_inputs(table.args, rows)
    launcher = ev["launcher"].to_numpy()
    kernel_count = np.bincount(launcher[launcher >= 0], minlength=len(ev))[rows] if len(ev) else []
    return pd.DataFrame({
        "row": rows,
        "source": strings(ev["source"])[rows],
        "rank": ev["rank"].to_numpy()[rows],
        "pid": ev["pid"].to_numpy()[rows],
        "tid": ev["tid"].to_numpy()[rows],
        "name": strings(ev["name"])[rows],
        "kind": strings(ev["kind"])[rows],
        "ts_ns": ev["ts_ns"].to_numpy()[rows],
        "dur_ns": ev["dur_ns"].to_numpy()[rows],
        "parent": ev["parent"].to_numpy()[rows],
        "depth": ev["depth"].to_numpy()[rows],
        "step": ev["step"].to_numpy()[rows],
        "sequence": ev["sequence"].to_numpy()[rows],
        "external_id": ev["external_id"].to_numpy()[rows],
        "input_dims": inputs.dims,
        "input_types": inputs.types,
        "kernel_count": kernel_count,
        **_module_columns(ev, rows),
    })


def _module_columns(ev: pd.DataFrame, rows: np.ndarray) -> dict[str, np.ndarray]:
    """module_path, module_type, phase, recompute and module_from of `rows`, where attributed."""
    out: dict[str, np.ndarray] = {}
    for col in ("module_path", "module_type", "phase", "module_from"):
        if col in ev:
            out[col] = strings(ev[col])[rows]
    if "recompute" in ev:
        out["recompute"] = ev["recompute"].to_numpy()[rows]
    return out


def write_parquet_tables(table: EventTable, outdir: Path) -> dict[str, int]:
    """Write events/kernels/ops/steps .parquet into outdir; returns row counts."""
    counts = {}
    events = events_frame(table)
    pq.write_table(events, outdir / "events.parquet", compression="zstd")
    counts["events"] = events.num_rows
    for name, frame in (("kernels", kernels_frame(table)), ("ops", ops_frame(table)),
                        ("steps", step_table(table.events))):
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), outdir / f"{name}.parquet",
                       compression="zstd")
        counts[name] = len(frame)
    return counts


def write_module_table(processed, outdir: Path) -> int:
    """modules.parquet: one row per module instance (empty, with its columns, when the trace has none)."""
    from tracekit.modules.table import module_table

    frame = module_table(processed.table, processed.modules)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), outdir / "modules.parquet", compression="zstd")
    return len(frame)
