"""Parquet tables: events, kernels, ops, steps."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tracekit.converters.loading import release_free_memory
from tracekit.opargs import _Inputs, op_inputs
from tracekit.steps import step_table
from tracekit.table import DEVICE_KINDS, EventTable, kind_in, strings

EVENT_COLUMNS = (
    "source", "rank", "pid", "tid", "ts_ns", "dur_ns", "name", "cat", "kind", "ph", "parent", "depth",
    "lane", "launch", "launcher", "step", "correlation", "external_id", "sequence", "fwd_thread",
    "python_id", "python_parent", "flow_id", "input_index", "source_index", "module", "module_path",
    "module_type", "phase", "recompute", "module_from", "bp", "scope", "stream", "device",
)


def events_frame(table: EventTable) -> pa.Table:
    """The event table as arrow, with the original args as JSON text."""
    ev = table.events
    cols = [c for c in EVENT_COLUMNS if c in ev]
    arrow = pa.Table.from_pandas(ev, columns=cols, preserve_index=False)  # no copy of the frame
    return arrow.append_column("args", table.args.cast(pa.large_string()))


def kernels_frame(table: EventTable) -> pa.Table:
    """One row per device event (kernel, memcpy, memset) with its launch and launching op."""
    ev = table.events
    rows = np.flatnonzero(kind_in(ev, DEVICE_KINDS))
    launch = ev["launch"].to_numpy()[rows]
    launcher = ev["launcher"].to_numpy()[rows]
    names = strings(ev["name"])
    ops = np.unique(launcher[launcher >= 0])
    dims, types = op_input_columns(table.args, ops)
    at = pa.array(np.searchsorted(ops, launcher), mask=launcher < 0) if len(ops) else None
    return _arrow_table({
        "row": rows,
        "source": strings(ev["source"], rows),
        "rank": ev["rank"].to_numpy()[rows],
        "device": ev["pid"].to_numpy()[rows],
        "stream": ev["tid"].to_numpy()[rows],
        "kind": strings(ev["kind"], rows),
        "name": names[rows],
        "ts_ns": ev["ts_ns"].to_numpy()[rows],
        "dur_ns": ev["dur_ns"].to_numpy()[rows],
        "step": ev["step"].to_numpy()[rows],
        "correlation": ev["correlation"].to_numpy()[rows],
        "launch_row": launch,
        "launch_name": _names_at(names, launch),
        "launcher_row": launcher,
        "op_name": _names_at(names, launcher),
        "op_input_dims": _text_at(dims, at, len(rows)),
        "op_input_types": _text_at(types, at, len(rows)),
        **_module_columns(ev, rows),
    })


def _names_at(names: np.ndarray, rows: np.ndarray) -> np.ndarray | list:
    """names[rows], None where rows < 0."""
    if not len(rows):
        return []
    out = names[np.maximum(rows, 0)] if len(names) else np.full(len(rows), None, dtype=object)
    out[rows < 0] = None
    return out


def _text_at(values: pa.Array, at: pa.Array | None, n: int) -> pa.Array:
    """values[at] (None where `at` is null), or all None."""
    if at is None:
        return pa.nulls(n, pa.large_string()) if n else pa.array([], pa.null())
    return values.take(at)


def op_input_columns(args: pa.LargeBinaryArray, rows: np.ndarray,
                     chunk: int = 8_192) -> tuple[pa.Array, pa.Array]:
    """`Input Dims` and `Input type` JSON text of `rows` ("" where absent), as arrow strings.

    The same values as opargs.op_inputs, without a Python str per row: per chunk of rows, one
    msgspec call over their args, and the raw slices joined into arrow columns.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if not len(rows):
        empty = pa.array([], pa.large_string())
        return empty, empty
    parts = [_op_input_chunk(args, rows[i : i + chunk]) for i in range(0, len(rows), chunk)]
    if len(parts) == 1:
        return parts[0]
    return pa.concat_arrays([p[0] for p in parts]), pa.concat_arrays([p[1] for p in parts])


def _op_input_chunk(args: pa.LargeBinaryArray, rows: np.ndarray) -> tuple[pa.Array, pa.Array]:
    picked = args.take(pa.array(rows))
    pieces = pc.if_else(pc.greater(pc.binary_length(picked), 0), picked, pa.scalar(b"null", pa.large_binary()))
    del picked
    listed = pc.binary_join_element_wise(pieces, pa.scalar(b",", pa.large_binary()), pa.scalar(b"", pa.large_binary()))
    del pieces
    offsets = np.frombuffer(listed.buffers()[1], dtype=np.int64, count=len(listed) + 1, offset=listed.offset * 8)
    body = memoryview(listed.buffers()[2])[int(offsets[0]) : int(offsets[-1]) - 1]
    text = bytearray(len(body) + 2)
    text[0:1], text[1:-1], text[-1:] = b"[", body, b"]"
    del body, listed
    try:
        decoded = _inputs_decoder.decode(text)
    except (msgspec.ValidationError, msgspec.DecodeError):
        slow = op_inputs(args, rows)
        return pa.array(slow.dims, pa.large_string()), pa.array(slow.types, pa.large_string())
    none = _Inputs()
    decoded = [none if d is None else d for d in decoded]
    return _raw_text([d.dims for d in decoded]), _raw_text([d.types for d in decoded])


_inputs_decoder = msgspec.json.Decoder(list[_Inputs | None])


def _raw_text(raws: list) -> pa.Array:
    """Raw JSON slices as one arrow string column (no per-row copies)."""
    lengths = np.fromiter(map(len, raws), dtype=np.int64, count=len(raws))
    offsets = np.zeros(len(raws) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = b"".join(raws)
    binary = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(raws), [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    return binary.cast(pa.large_string())


def ops_frame(table: EventTable) -> pa.Table:
    """One row per cpu op (collective ops included) with input dims and types as JSON text."""
    ev = table.events
    rows = np.flatnonzero(kind_in(ev, ("cpu_op", "collective")))
    dims, types = op_input_columns(table.args, rows)
    launcher = ev["launcher"].to_numpy()
    kernel_count = np.bincount(launcher[launcher >= 0], minlength=len(ev))[rows] if len(ev) else np.zeros(0, np.int64)
    return _arrow_table({
        "row": rows,
        "source": strings(ev["source"], rows),
        "rank": ev["rank"].to_numpy()[rows],
        "pid": ev["pid"].to_numpy()[rows],
        "tid": ev["tid"].to_numpy()[rows],
        "name": strings(ev["name"], rows),
        "kind": strings(ev["kind"], rows),
        "ts_ns": ev["ts_ns"].to_numpy()[rows],
        "dur_ns": ev["dur_ns"].to_numpy()[rows],
        "parent": ev["parent"].to_numpy()[rows],
        "depth": ev["depth"].to_numpy()[rows],
        "step": ev["step"].to_numpy()[rows],
        "sequence": ev["sequence"].to_numpy()[rows],
        "external_id": ev["external_id"].to_numpy()[rows],
        "input_dims": dims,
        "input_types": types,
        "kernel_count": kernel_count,
        **_module_columns(ev, rows),
    })


def _arrow_table(columns: dict[str, object]) -> pa.Table:
    """An arrow table of numpy/arrow columns and text (object arrays or lists) as large_string."""
    arrays = {}
    for name, values in columns.items():
        if isinstance(values, pa.Array | pa.ChunkedArray):
            arrays[name] = values
        elif isinstance(values, np.ndarray) and values.dtype != object:
            arrays[name] = pa.array(values)
        else:  # text (object array or list), typed even when empty
            arrays[name] = pa.array(values, pa.large_string())
    return pa.table(arrays)


# Module paths and types repeat one string over many rows and can be long: stored as dictionary codes
# (as in events.parquet), never one copy per row (a 1 MB module name over 300 ops took 1 GB).
_DICTIONARY_COLUMNS = ("module_path", "module_type")


def _dictionary_at(values: pd.Series, rows: np.ndarray) -> pa.DictionaryArray:
    codes = values.array.codes[rows]
    cats = pa.array(values.array.categories.to_numpy(dtype=object), pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32), mask=codes < 0), cats)


def _module_columns(ev: pd.DataFrame, rows: np.ndarray) -> dict[str, np.ndarray]:
    """module_path, module_type, phase, recompute and module_from of `rows`, where attributed."""
    out: dict[str, np.ndarray | pa.Array] = {}
    for col in ("module_path", "module_type", "phase", "module_from"):
        if col in ev and col in _DICTIONARY_COLUMNS and isinstance(ev[col].dtype, pd.CategoricalDtype):
            out[col] = _dictionary_at(ev[col], rows)
        elif col in ev:
            out[col] = strings(ev[col], rows)
    if "recompute" in ev:
        out["recompute"] = ev["recompute"].to_numpy()[rows]
    return out


def write_parquet_tables(table: EventTable, outdir: Path) -> dict[str, int]:
    """Write events/kernels/ops/steps .parquet into outdir; returns row counts.

    One table at a time: each is dropped once written, so their memory does not add up.
    """
    counts = {}
    release_free_memory()
    events = events_frame(table)
    pq.write_table(events, outdir / "events.parquet", compression="zstd")
    counts["events"] = events.num_rows
    del events
    release_free_memory()
    frames = (("kernels", kernels_frame), ("ops", ops_frame), ("steps", lambda t: step_table(t.events)))
    for name, make in frames:
        made = make(table)
        arrow = made if isinstance(made, pa.Table) else pa.Table.from_pandas(made, preserve_index=False)
        del made
        pq.write_table(arrow, outdir / f"{name}.parquet", compression="zstd")
        counts[name] = arrow.num_rows
        del arrow
        release_free_memory()
    return counts


def write_module_table(processed, outdir: Path) -> int:
    """modules.parquet: one row per module instance (empty, with its columns, when the trace has none)."""
    from tracekit.modules.table import module_table

    frame = module_table(processed.table, processed.modules)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), outdir / "modules.parquet", compression="zstd")
    return len(frame)
