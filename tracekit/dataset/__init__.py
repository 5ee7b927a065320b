"""The trace dataset: a `tracekit convert` output folder that describes itself (tracekit.json), read back by
every command and by the Python API with column projection, and checked for staleness against its inputs."""

from tracekit.dataset.manifest import MANIFEST, fingerprint, is_dataset, read_manifest, write_manifest
from tracekit.dataset.read import Dataset, open_dataset

__all__ = ["MANIFEST", "Dataset", "fingerprint", "is_dataset", "open_dataset", "read_manifest", "write_manifest"]
