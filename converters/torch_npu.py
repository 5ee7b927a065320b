"""Reader for Ascend torch_npu profiler output: one rank's `*_ascend_pt` folder in any of its forms.

Input: the `*_ascend_pt` folder, its `ASCEND_PROFILER_OUTPUT/`, a `trace_view.json`, or an
`ascend_pytorch_profiler_{rank}.db`. Events come from trace_view.json (preferred), else the .db
export, else (no timeline exported) the device kernels of kernel_details.csv alone, else the HCCL
ops of communication.json alone. HCCL ops get their group and times from communication.json and
communication_matrix.json (ascend_comm). Rank and parallel groups come from profiler_info_{rank}.json
and profiler_metadata.json.
"""

from __future__ import annotations

from pathlib import Path

from tracekit.errors import TraceError
from tracekit.table import EventTable

from .ascend_comm import annotate_hccl
from .ascend_files import AscendFiles, locate
from .ascend_kernels import read_kernel_details
from .ascend_meta import read_meta
from .ascend_table import finish_npu_table
from .ascend_trace import looks_like_npu, read_trace_view
from .chrome_json import ChromeColumns, decode_chrome
from .loading import read_bytes

__all__ = ["looks_like_npu", "read_npu", "read_npu_decoded"]


def read_npu(path: str | Path) -> EventTable:
    """Read one rank of torch_npu output from a folder, trace_view.json or .db path."""
    files = locate(path)
    if files.trace_view is not None:
        raw = read_bytes(files.trace_view)
        cols = decode_chrome(raw)
        # A truncated trace_view.json may have lost the process names that mark it as Ascend output;
        # in a torch_npu output folder it is still the timeline (its loss is in cols.damage).
        if not looks_like_npu(cols) and not cols.damage:
            raise TraceError(files.trace_view, "not a torch_npu trace_view.json (no Ascend Hardware/CANN "
                                               "processes, no async_npu/HostToDevice flows)")
        return read_npu_decoded(cols, files)
    if files.db is not None:
        from .ascend_db import read_db

        return annotate_hccl(read_db(files), files.db.parent)
    if files.kernel_details is not None:
        from .ascend_csv import read_kernel_details_only

        return annotate_hccl(read_kernel_details_only(files), files.kernel_details.parent)
    if files.communication is not None:
        from .ascend_comm_only import read_comm_only

        return read_comm_only(files)
    present = sorted(p.name for p in files.root.rglob("*") if p.is_file())
    raise TraceError(files.root, "torch_npu output without trace_view.json, ascend_pytorch_profiler_*.db, "
                                 "kernel_details.csv or communication.json: no events to read (it has: "
                                 f"{', '.join(present[:12])}{', ...' if len(present) > 12 else ''})")


def read_npu_decoded(cols: ChromeColumns, files: AscendFiles | Path) -> EventTable:
    """Normalize an already decoded trace_view.json (`files`: its located output or its path)."""
    if isinstance(files, Path):
        files = locate(files)
    if files.trace_view is None:
        raise TraceError(files.root, "no trace_view.json")
    meta = read_meta(files.profiler_info, files.metadata)
    table = read_trace_view(cols, str(files.trace_view), meta)
    kd = read_kernel_details(files.kernel_details) if files.kernel_details else None
    return annotate_hccl(finish_npu_table(table, kd), files.trace_view.parent)
