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
    base_ns, base_from = _time_base(top, meta, path)
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


def _time_base(top: dict, meta: dict, path: str) -> tuple[int, str]:
    """(base_ns, where it came from); a warning that says what is missing when there is none."""
    base = clean_base_ns(path, meta.get("baseTimeNanoseconds"))
    if base is not None:
        return base, "viztracer_metadata.baseTimeNanoseconds"
    own = clean_base_ns(path, top.get("baseTimeNanoseconds"))
    if isinstance(top.get("tracekit"), dict) and own is not None:
        return own, "baseTimeNanoseconds (written by tracekit)"  # tracekit's own output (e.g. merge)
    relative = "timestamps stay relative to the recording's own start (merge estimates the offset from events)"
    if not meta:
        why = "no viztracer_metadata (the file was cut or rewritten), so no baseTimeNanoseconds"
    elif meta.get("version"):
        why = f"viztracer_metadata (version {meta['version']}) has no baseTimeNanoseconds (removed or cut off)"
    else:
        why = "viztracer_metadata has neither version nor baseTimeNanoseconds (VizTracer older than 0.16?)"
    warn(path, f"{why}: {relative}")
    return 0, f"none: {why}"
