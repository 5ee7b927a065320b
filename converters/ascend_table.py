"""Finish a torch_npu event table: NPU kinds, launch-link ids, and kernel_details joined into kernel args.

Shared by the trace_view.json, .db and kernel_details-only readers, which all build a table whose
device and CANN events carry `Task Type`, `Task Id` and `connection_id` in their args, and whose
`async_npu` flows run from the launching host op to the device task.

Link columns (what tracekit.link expects):
- `correlation` = CANN `connection_id` on the CANN call (kind runtime) and on the device tasks it
  submitted, so `launch` is the CANN call (the counterpart of cudaLaunchKernel);
- `external_id` = the input index of the host op at the start of an `async_npu` flow, on that op
  and on the device task at the flow's end, so `launcher` is the op (link.py's External id join;
  CANN calls run on the task-queue thread of a separate process, outside any op).
"""

from __future__ import annotations

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa

from tracekit.errors import warn
from tracekit.kinds import NPU_PROCESSES, classify_npu_rows
from tracekit.table import DEVICE_KINDS, EventTable, strings

from .ascend_kernels import JoinResult, KernelDetails, join_kernel_details


class NpuArgs(msgspec.Struct, gc=False):
    """The args fields of device and CANN events that classification and linking need."""

    task_type: str | None = msgspec.field(default=None, name="Task Type")
    task_id: int | None = msgspec.field(default=None, name="Task Id")
    connection_id: int | None = None


_decoder = msgspec.json.Decoder(NpuArgs)


def finish_npu_table(table: EventTable, kd: KernelDetails | None) -> EventTable:
    """Classify, set link ids and join kernel_details; the table's single source records the join counts."""
    ev = table.events
    info = table.sources[0]
    pid, tid = ev["pid"].to_numpy(), ev["tid"].to_numpy()
    process = [info.process_names.get(p) for p in pid.tolist()]
    thread = [info.thread_names.get(k) for k in zip(pid.tolist(), tid.tolist())]
    npu_rows = np.flatnonzero(np.isin(np.array(process, dtype=object), list(NPU_PROCESSES))
                              & (ev["ph"] == "X").to_numpy())
    task_type = np.full(len(ev), None, dtype=object)
    task_id = np.full(len(ev), -1, dtype=np.int64)
    conn = np.full(len(ev), -1, dtype=np.int64)
    for row, raw in zip(npu_rows.tolist(), table.args.take(pa.array(npu_rows)).to_pylist()):
        a = _decode(raw)
        task_type[row] = a.task_type
        task_id[row] = a.task_id if a.task_id is not None else -1
        conn[row] = a.connection_id if a.connection_id is not None else -1
    names = strings(ev["name"])
    kind = classify_npu_rows(ev["kind"].values, process, thread, list(names), list(task_type))
    correlation = ev["correlation"].to_numpy().copy()
    correlation[npu_rows] = conn[npu_rows]
    external = ev["external_id"].to_numpy().copy()
    _async_npu_ids(ev, np.asarray(kind), external)
    out = table.with_columns(kind=kind, correlation=correlation, external_id=external)
    if kd is None:
        return out
    kernels = np.flatnonzero(np.asarray(kind) == "kernel")
    result = join_kernel_details(kd, list(names[kernels]), tid[kernels], task_id[kernels],
                                 ev["ts_ns"].to_numpy()[kernels])
    info.details["kernel_details"] = result.counts
    if result.counts["kernels_not_joined"]:
        warn(kd.path, f"{result.counts['kernels_not_joined']} of {len(kernels)} device kernels have no row "
                      "in kernel_details.csv (no shapes for them)")
    return EventTable(out.events, _args_with_details(out.args, kernels, result, kd), out.sources)


def _decode(raw: bytes | None) -> NpuArgs:
    try:
        return _decoder.decode(raw) if raw else NpuArgs()
    except (msgspec.ValidationError, msgspec.DecodeError):
        return NpuArgs()


def _async_npu_ids(ev: pd.DataFrame, kind: np.ndarray, external: np.ndarray) -> None:
    """Give each async_npu flow's host op and device task the op's input index as external_id."""
    flows = ev[(ev["cat"] == "async_npu").to_numpy() & (kind == "flow")]
    if flows.empty:
        return
    keys = ["pid", "tid", "ts_ns"]
    spans = pd.DataFrame({"pid": ev["pid"], "tid": ev["tid"], "ts_ns": ev["ts_ns"], "dur": ev["dur_ns"],
                          "kind": kind, "row": np.arange(len(ev))})
    spans = spans[(ev["ph"] == "X").to_numpy()]
    ops = spans[spans["kind"].isin(["cpu_op", "collective"])].sort_values("dur").drop_duplicates(keys)
    dev = spans[spans["kind"].isin(list(DEVICE_KINDS))].drop_duplicates(keys)
    starts = flows[flows["ph"] == "s"][[*keys, "flow_id"]].merge(ops[[*keys, "row"]], on=keys)
    ends = flows[flows["ph"] == "f"][[*keys, "flow_id"]].merge(dev[[*keys, "row"]], on=keys)
    pairs = starts.drop_duplicates("flow_id").merge(ends.drop_duplicates("flow_id"), on="flow_id",
                                                    suffixes=("_op", "_dev"))
    op_rows, dev_rows = pairs["row_op"].to_numpy(), pairs["row_dev"].to_numpy()
    index = ev["input_index"].to_numpy()
    external[op_rows] = index[op_rows]
    external[dev_rows] = index[op_rows]


def _args_with_details(args: pa.LargeBinaryArray, kernels: np.ndarray, result: JoinResult,
                       kd: KernelDetails) -> pa.Array:
    """args of joined kernels extended with their kernel_details fields (keys already there are kept)."""
    joined = np.flatnonzero(result.match >= 0)
    if not len(joined):
        return args
    rows = kernels[joined]
    values = args.to_pylist()
    for row, krow in zip(rows.tolist(), result.match[joined].tolist()):
        raw = values[row] or b"{}"
        current = msgspec.json.decode(raw)
        extra = {k: v for k, v in kd.details[krow].items() if k not in current}
        if not extra:
            continue
        body = raw.rstrip()
        added = msgspec.json.encode(extra)
        values[row] = body[:-1] + (b"," if current else b"") + added[1:]
    return pa.array(values, type=pa.large_binary())
