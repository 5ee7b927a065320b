"""Find the files of one torch_npu profiler output (`*_ascend_pt/` folder) from any path into it."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from tracekit.errors import TraceError

OUTPUT_DIR = "ASCEND_PROFILER_OUTPUT"
SQLITE_MAGIC = b"SQLite format 3\x00"
_PROFILER_DB = re.compile(r"^ascend_pytorch_profiler(_\d+)?\.db$")


@dataclass(frozen=True)
class AscendFiles:
    """Paths of one rank's profiler output; a missing file is None."""

    root: Path  # the *_ascend_pt folder (or the folder given)
    trace_view: Path | None = None
    db: Path | None = None
    kernel_details: Path | None = None
    profiler_info: Path | None = None
    metadata: Path | None = None
    communication: Path | None = None  # communication.json (HCCL ops, groups, wait times)

    @property
    def label(self) -> str:
        """The file the events come from (what errors and SourceInfo.path name)."""
        return str(self.trace_view or self.db or self.kernel_details or self.communication or self.root)


def is_sqlite(path: Path) -> bool:
    """True for a SQLite database file (by its magic header, not its name)."""
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        return fh.read(16) == SQLITE_MAGIC


def locate(path: str | Path) -> AscendFiles:
    """The files of the profiler output that `path` (folder, ASCEND_PROFILER_OUTPUT, trace_view.json, .db) is in."""
    path = Path(path)
    if not path.exists():
        raise TraceError(path, "no such file or folder")
    if path.is_file():
        out = path.parent
        root = out.parent if out.name == OUTPUT_DIR else out
        files = _collect(root, out)
        if is_sqlite(path):
            return replace(files, trace_view=None, db=path)
        return replace(files, trace_view=path, db=None)
    if path.name == OUTPUT_DIR:
        return _collect(path.parent, path)
    if (path / OUTPUT_DIR).is_dir():
        return _collect(path, path / OUTPUT_DIR)
    files = _collect(path, path)
    if files.trace_view or files.db or files.kernel_details or files.communication:
        return files
    ranks = sorted(p.name for p in path.iterdir() if p.is_dir() and (p / OUTPUT_DIR).is_dir())
    if ranks:
        raise TraceError(path, f"folder of {len(ranks)} rank outputs ({', '.join(ranks[:4])}"
                               f"{', ...' if len(ranks) > 4 else ''}): pass each rank's *_ascend_pt folder")
    raise TraceError(path, f"not a torch_npu profiler output: no {OUTPUT_DIR}/, trace_view.json, "
                           "ascend_pytorch_profiler_*.db or kernel_details.csv in this folder")


def _collect(root: Path, out: Path) -> AscendFiles:
    """Look up the known file names in the rank folder and its output folder."""
    dbs = sorted(p for p in out.glob("*.db") if _PROFILER_DB.match(p.name))
    infos = sorted(root.glob("profiler_info*.json"))
    return AscendFiles(
        root=root,
        trace_view=_file(out / "trace_view.json"),
        db=dbs[0] if dbs else None,
        kernel_details=_file(out / "kernel_details.csv"),
        profiler_info=infos[0] if infos else None,
        metadata=_file(root / "profiler_metadata.json"),
        communication=_file(out / "communication.json"),
    )


def _file(path: Path) -> Path | None:
    """`path` if it is a readable regular file; None if absent. Present but unreadable is an error:
    falling back to another part of the output would silently lose what this file holds."""
    if not path.exists() and not path.is_symlink():
        return None
    if not path.is_file():
        raise TraceError(path, "is part of this torch_npu output but is not a readable file (a folder, a "
                               "dangling link or a special file); fix or remove it to read the rest")
    if not os.access(path, os.R_OK):
        raise TraceError(path, "is part of this torch_npu output but cannot be read (permission denied)")
    return path
