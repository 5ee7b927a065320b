"""torch_npu output without a timeline export: the device kernels of kernel_details.csv as events.

Some runs export only the CSV summaries (no trace_view.json, no .db). Their kernel_details.csv
still holds every device kernel with its stream, start, duration, shapes and core type, so the
table has the device side (kind kernel, one process per device, one thread per stream; HCCL
collectives, which have no stream id, on an `HCCL` thread) and the rank and parallel groups.
"""

from __future__ import annotations

import msgspec
import numpy as np

from tracekit.table import EventTable, SourceInfo

from .ascend_files import AscendFiles
from .ascend_kernels import read_kernel_details
from .ascend_meta import read_meta
from .ascend_table import finish_npu_table
from .chrome_table import build_table
from .row_columns import columns_from_rows

BASE_FROM = "none: kernel_details.csv Start Time(us) are epoch us"
CAT = "kernel_details"


def read_kernel_details_only(files: AscendFiles) -> EventTable:
    """One kernel event per kernel_details.csv row; args are the row's fields (Task Type = Accelerator Core)."""
    if files.kernel_details is None:
        raise ValueError("no kernel_details.csv")
    kd = read_kernel_details(files.kernel_details)
    meta = read_meta(files.profiler_info, files.metadata)
    n = len(kd)
    device = np.where(kd.device >= 0, kd.device, 0)
    tid: list[int | str] = [int(s) if s >= 0 else "HCCL" for s in kd.stream.tolist()]
    args = []
    for i, detail in enumerate(kd.details):
        extra = {"Task Type": detail.get("Accelerator Core"), "Task Id": int(kd.task[i]) if kd.task[i] >= 0 else None}
        args.append(msgspec.json.encode({**{k: v for k, v in extra.items() if v is not None}, **detail}))
    cols = columns_from_rows(
        ["X"] * n, list(kd.name), [CAT] * n, device.tolist(), tid, kd.ts_ns, kd.dur_ns, [None] * n, [None] * n,
        args, {}, np.zeros(0, dtype=np.int64),
    )
    info = SourceInfo(path=str(files.kernel_details), format="npu", source="npu", base_ns=0, base_from=BASE_FROM,
                      rank=meta.rank, rank_from=meta.rank_from, distributed=meta.distributed, top=dict(meta.top),
                      input_events=n)
    for d in set(device.tolist()):
        info.process_names[d] = "Ascend Hardware"
        info.process_labels[d] = f"NPU {d} (kernel_details.csv only)"
    for d, s in set(zip(device.tolist(), kd.stream.tolist())):
        if s >= 0:
            info.thread_names[(d, s)] = f"Stream {s}"
    table = build_table(cols, info)
    info.details["kernel_details"] = {"file": str(kd.path), "columns": kd.column_set, "rows": n,
                                      "events": "one kernel per row (no trace_view.json or .db in this output)"}
    return finish_npu_table(table, None)
