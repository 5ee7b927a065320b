"""Reader for VizTracer JSON (plain and `log_torch=True` output)."""

from __future__ import annotations

from tracekit.errors import warn
from tracekit.table import EventTable, SourceInfo

from .chrome_json import ChromeColumns
from .chrome_table import build_table
from .top_fields import clean_base_ns


def looks_like_viztracer(top: dict, cats: list | None = None) -> bool:
    """VizTracer output: its metadata key, or (when a cut file lost it) its `FEE` category."""
    if "viztracer_metadata" in top:
        return True
    return bool(cats) and not top.get("schemaVersion") and "FEE" in set(cats[:5000])


def read_viztracer(cols: ChromeColumns, path: str) -> EventTable:
    """Normalize a decoded VizTracer trace: ts are us of CLOCK_MONOTONIC from the recorded base."""
    top = cols.top
    meta = top.get("viztracer_metadata") or {}
    if not isinstance(meta, dict):
        warn(path, "viztracer_metadata is not an object; ignored")
        meta = {}
    base = clean_base_ns(path, meta.get("baseTimeNanoseconds"))
    if base is not None:
        base_ns, base_from = base, "viztracer_metadata.baseTimeNanoseconds"
    else:
        base_ns, base_from = 0, "none: no viztracer_metadata.baseTimeNanoseconds"
        warn(path, "VizTracer file without baseTimeNanoseconds (viztracer < 0.16?): timestamps stay relative")
    if meta.get("overflow"):
        warn(path, "VizTracer's buffer overflowed while recording: the earliest events are missing")
    info = SourceInfo(
        path=path,
        format="viztracer",
        source="viztracer",
        base_ns=base_ns,
        base_from=base_from,
        top={k: v for k, v in top.items() if k != "file_info"},
        input_events=cols.input_events,
        metadata_folded=cols.metadata_folded,
        skipped=dict(cols.skipped),
        damage=list(cols.damage),
    )
    # file_info (embedded sources) is kept for module resolution, not in the event table.
    file_info = top.get("file_info") or {}
    if not isinstance(file_info, dict):
        warn(path, "file_info is not an object; module classes cannot be read from the embedded sources")
        file_info = {}
    info.top["file_info"] = file_info
    return build_table(cols, info)
