"""The trace dataset: a `tracekit convert` output folder that describes itself (tracekit.json), read back by
every command and by the Python API with column projection, and checked for staleness against its inputs.

The reader (`Dataset`, `open_dataset`) is imported on first use: it needs pyarrow.parquet, which a command
given raw traces never loads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracekit.dataset.manifest import MANIFEST, fingerprint, is_dataset, read_manifest, write_manifest

if TYPE_CHECKING:
    from tracekit.dataset.read import Dataset, open_dataset

__all__ = ["MANIFEST", "Dataset", "fingerprint", "is_dataset", "open_dataset", "read_manifest", "write_manifest"]


def __getattr__(name: str) -> Any:
    if name in ("Dataset", "open_dataset"):
        from tracekit.dataset import read

        return getattr(read, name)
    raise AttributeError(f"module 'tracekit.dataset' has no attribute {name!r}")
