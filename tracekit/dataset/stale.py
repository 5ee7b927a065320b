"""Is a dataset still what its inputs would give? Size and mtime first; only when they differ, the SHA-256."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracekit.dataset.manifest import file_sha256, file_stat


@dataclass(frozen=True)
class InputState:
    """One input of a dataset as it is now: unchanged, changed (with why) or missing."""

    path: str
    state: str  # "unchanged" | "changed" | "missing"
    why: str = ""


def input_state(record: dict[str, Any]) -> InputState:
    """Compare one manifest input record with the file on disk (hash only when size/mtime say it may differ)."""
    path = Path(record["path"])
    if not path.exists():
        return InputState(str(path), "missing", "the input is no longer there; the dataset is used as converted")
    size, mtime = file_stat(path)
    if size != record["size"]:
        return InputState(str(path), "changed", f"size {record['size']:,} -> {size:,} bytes")
    if mtime == record["mtime_ns"]:
        return InputState(str(path), "unchanged")
    if file_sha256(path) != record["sha256"]:
        return InputState(str(path), "changed", "same size, different content (SHA-256)")
    return InputState(str(path), "unchanged", "touched (mtime changed), content identical")


def staleness(manifest: dict[str, Any]) -> list[InputState]:
    """The state of every input of a dataset."""
    return [input_state(rec) for rec in manifest.get("inputs", [])]
