"""Input readers, one per format; `read_trace` detects the format from the content."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tracekit.table import EventTable

FORMATS = ("torch", "viztracer", "npu")


def read_trace(path: str | Path, keep_args: bool = True, columns_only: bool = False) -> EventTable:
    """Read one trace of any supported format into the normalized event table.

    A folder or a SQLite file is torch_npu output (`*_ascend_pt/`, `ASCEND_PROFILER_OUTPUT/`,
    `ascend_pytorch_profiler_*.db`); a JSON file is told apart by its content. Without `keep_args` the
    table's args are empty (`info` needs only the columns); torch_npu output keeps them (its reader uses them).
    With `columns_only` (`info`), a torch or VizTracer trace's events are a tracekit.columns.Columns of the
    columns info reads, built without pandas; torch_npu output is read as without it (its reader needs pandas).
    """
    # (the readers are imported here, not with the package: `tracekit info` imports converters.loading to start
    # gunzipping while it imports the rest; torch_npu's reader needs pandas, which info on other traces never loads)
    from tracekit.errors import TraceError

    from .ascend_files import is_sqlite
    from .ascend_trace import looks_like_npu
    from .chrome_json import decode_chrome
    from .loading import read_bytes
    from .torch_profiler import looks_like_torch, read_torch
    from .viztracer import looks_like_viztracer, read_viztracer

    if Path(path).is_dir() or is_sqlite(Path(path)):
        from .torch_npu import read_npu

        return read_npu(path)
    raw = read_bytes(path)
    cols = decode_chrome(raw, keep_args=keep_args, columns_only=columns_only)
    label = str(raw.path)
    if looks_like_npu(cols):
        if not keep_args or columns_only:
            return read_trace(path)
        from .torch_npu import read_npu_decoded

        return read_npu_decoded(cols, raw.path)
    cols.columns_only = columns_only
    if looks_like_viztracer(cols.top, cols.cat):
        return read_viztracer(cols, label)
    if looks_like_torch(cols.top, cols):
        return read_torch(cols, label)
    raise TraceError(
        raw.path,
        "chrome-trace JSON, but neither torch.profiler (no schemaVersion/baseTimeNanoseconds, no "
        "cpu_op/kernel events) nor VizTracer (no viztracer_metadata) nor torch_npu (no Ascend "
        "processes); supported: " + ", ".join(FORMATS),
    )


__all__ = ["FORMATS", "read_trace"]


_LAZY = {"decode_chrome": "chrome_json", "read_bytes": "loading", "is_sqlite": "ascend_files",
         "looks_like_npu": "ascend_trace", "looks_like_torch": "torch_profiler", "read_torch": "torch_profiler",
         "looks_like_viztracer": "viztracer", "read_viztracer": "viztracer"}


def __getattr__(name: str):
    """The readers' names this package used to import at load time, imported on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
