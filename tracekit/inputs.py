"""Expand command-line inputs (files, folders of rank files, globs) into the list of traces to read,
and tell the rank of a trace from its file name when the trace itself does not say."""

from __future__ import annotations

import glob
import gzip
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tracekit.errors import TraceError, warn
from tracekit.table import EventTable

_RANK_IN_NAME = re.compile(r"(?:^|[^a-z])(?:rank|worker)[-_]?(\d+)", re.IGNORECASE)
_TRACE_MARKERS = (b'"traceEvents"', b'"schemaVersion"', b'"viztracer_metadata"', b'"baseTimeNanoseconds"')


def is_npu_folder(path: Path) -> bool:
    """A torch_npu profiler output folder: one input, never expanded."""
    return path.is_dir() and (path.name.endswith("_ascend_pt") or (path / "ASCEND_PROFILER_OUTPUT").is_dir()
                              or (path / "trace_view.json").is_file())


def is_dataset(path: Path) -> bool:
    """A tracekit convert output folder (it has a tracekit.json manifest): read by tracekit.dataset."""
    return path.is_dir() and (path / "tracekit.json").is_file()


def _natural(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def looks_like_trace(path: Path, probe: int = 1 << 16) -> bool:
    """Cheap check of the first bytes (after gzip) for chrome-trace keys or a bare event list."""
    try:
        with path.open("rb") as fh:
            head = fh.read(2)
        opener = gzip.open if head == b"\x1f\x8b" else open
        with opener(path, "rb") as fh:
            data = fh.read(probe)
    except (OSError, EOFError):
        return False
    start = data.lstrip()[:1]
    return start == b"[" or any(m in data for m in _TRACE_MARKERS)


def _folder_inputs(folder: Path) -> list[Path]:
    found, left_out = [], []
    for child in sorted(folder.iterdir(), key=_natural):
        if is_npu_folder(child):
            found.append(child)
        elif child.is_file() and re.search(r"\.json(\.gz)?$", child.name):
            (found if looks_like_trace(child) else left_out).append(child)
    why = "not a trace (no traceEvents, schemaVersion or viztracer_metadata)"
    if not found:
        raise TraceError(folder, "folder holds no trace files (.json, .json.gz) or *_ascend_pt folders"
                         + (f"; {', '.join(p.name for p in left_out)}: {why}" if left_out else ""))
    for child in left_out:
        warn(child, f"{why}: left out")
    return found


def expand_inputs(args: Sequence[str | Path], unique: bool = True) -> list[Path]:
    """Files as given; an NPU folder as one input; another folder as its trace files (natural order);
    a pattern with * ? [ as its matches. Duplicates are dropped (unless unique=False); nothing found is an error."""
    out: list[Path] = []
    for arg in args:
        path = Path(arg)
        if is_dataset(path):
            raise TraceError(path, "is a tracekit dataset (a convert output folder), not a trace: info, modules, "
                                   "compare, parallel, report and sql take it as their only input; convert its inputs "
                                   "instead")
        if path.is_dir():
            found = [path] if is_npu_folder(path) else _folder_inputs(path)
        elif not path.exists() and any(ch in str(arg) for ch in "*?["):
            found = sorted((Path(p) for p in glob.glob(str(arg))), key=_natural)
            found = [p for p in found if p.is_file() or is_npu_folder(p)]
            if not found:
                raise TraceError(arg, "pattern matches no files")
        else:
            found = [path]
        out.extend(p for p in found if not unique or p not in out)
    return out


def rank_from_name(path: str | Path) -> int | None:
    """The rank in a file name such as rank-3.json.gz, rank_3_ascend_pt or worker3_step_12.json.gz."""
    m = _RANK_IN_NAME.search(Path(path).name)
    return int(m.group(1)) if m else None


def with_name_rank(table: EventTable, path: str | Path) -> EventTable:
    """Give a one-source table the rank in its file name when the trace names none (stated in rank_from)."""
    src = table.sources[0]
    if src.rank < 0 and len(table.sources) == 1 and (rank := rank_from_name(path)) is not None:
        src.rank = rank
        src.rank_from = f"file name {Path(path).name} (the trace has no distributedInfo.rank)"
        table.events["rank"] = np.int32(rank)
    return table
