"""Input readers, one per format; `read_trace` detects the format from the file's content."""

from __future__ import annotations

from pathlib import Path

from tracekit.errors import TraceError
from tracekit.table import EventTable

from .chrome_json import decode_chrome
from .loading import read_bytes
from .torch_profiler import looks_like_torch, read_torch
from .viztracer import looks_like_viztracer, read_viztracer

FORMATS = ("torch", "viztracer")


def read_trace(path: str | Path) -> EventTable:
    """Read one trace file of any supported format into the normalized event table."""
    raw = read_bytes(path)
    cols = decode_chrome(raw)
    label = str(raw.path)
    if looks_like_viztracer(cols.top, cols.cat):
        return read_viztracer(cols, label)
    if looks_like_torch(cols.top, cols):
        return read_torch(cols, label)
    raise TraceError(
        raw.path,
        "chrome-trace JSON, but neither torch.profiler (no schemaVersion/baseTimeNanoseconds, no "
        "cpu_op/kernel events) nor VizTracer (no viztracer_metadata); supported: " + ", ".join(FORMATS),
    )


__all__ = ["FORMATS", "read_trace"]
