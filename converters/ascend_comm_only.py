"""A torch_npu rank whose output holds only communication.json: its HCCL ops as events.

Some ranks of a job export no timeline and no kernel_details.csv (only the communication summaries,
e.g. ranks 1 and 3 of the shared Qwen3 MindSpeed run). Their HCCL ops still say which collectives
and p2p transfers the rank ran, in which group, when, and how long it waited, so the rank takes part
in `tracekit parallel` (groups, send/recv between pipeline stages) though it has no compute events.
"""

from __future__ import annotations

import msgspec
import numpy as np

from tracekit.table import EventTable, SourceInfo

from .ascend_comm import COMM_FILE, comm_facts, op_args
from .ascend_files import AscendFiles
from .ascend_meta import read_meta
from .ascend_table import finish_npu_table
from .chrome_table import build_table
from .row_columns import columns_from_rows

BASE_FROM = "none: communication.json Start Timestamp(us) are epoch us"
CAT = "communication.json"
NOTE = "one HCCL op per communication.json entry (no trace_view.json, .db or kernel_details.csv: no compute events)"


def read_comm_only(files: AscendFiles) -> EventTable:
    """One span per HCCL op on the HCCL process, a thread per group; args carry the op's HCCL facts."""
    if files.communication is None:
        raise ValueError(f"no {COMM_FILE}")
    ops, links = comm_facts(files.communication.parent)
    meta = read_meta(files.profiler_info, files.metadata)
    ops = sorted(ops, key=lambda o: (o.start_ns, o.name))
    groups = {g: i for i, g in enumerate(dict.fromkeys(o.group for o in ops))}
    n = len(ops)
    args = [msgspec.json.encode({"Task Type": "HCCL", **op_args(o, None, links, o.name)}) for o in ops]
    cols = columns_from_rows(
        ["X"] * n, [o.name for o in ops], [CAT] * n, [0] * n, [groups[o.group] for o in ops],
        np.array([o.start_ns for o in ops], dtype=np.int64), np.array([o.elapse_ns for o in ops], dtype=np.int64),
        [None] * n, [None] * n, args, {}, np.zeros(0, dtype=np.int64),
    )
    info = SourceInfo(path=str(files.communication), format="npu", source="npu", base_ns=0, base_from=BASE_FROM,
                      rank=meta.rank, rank_from=meta.rank_from, distributed=meta.distributed, top=dict(meta.top),
                      input_events=n)
    info.process_names[0] = "HCCL"
    info.process_labels[0] = "NPU (communication.json only)"
    for group, number in groups.items():
        info.thread_names[(0, number)] = f"Group {number} Communication ({group})"
    table = build_table(cols, info)
    info.details["communication"] = {"file": str(files.communication), "ops": n, "groups": len(groups),
                                     "events": NOTE}
    return finish_npu_table(table, None)
