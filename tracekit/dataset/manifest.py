"""The dataset manifest (tracekit.json): what a `tracekit convert` output folder holds and where it came from.

Format version, tracekit version, each input's path, size, mtime and SHA-256, the ranks, and every table
with its layout (one file, or a folder partitioned by rank) and its Arrow schema.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracekit.errors import TraceError

if TYPE_CHECKING:
    from tracekit.table import SourceInfo  # imports numpy: not needed to read a manifest

MANIFEST = "tracekit.json"
FORMAT = "tracekit-dataset"
FORMAT_VERSION = 3  # 2: each distinct device list once (`device_lists`), a source names its list by index;
# 3: collectives.parquet names each call's member list by id, group_members.parquet holds each list once
TABLES = ("events", "kernels", "ops", "steps", "modules", "collectives", "group_members")


def _files_of(path: Path) -> list[Path]:
    """The file itself, or every file under a folder input (an NPU profiler folder), in a stable order; without
    SQLite's side files that hold no data of their own (a `-shm` index, an empty `-wal` or `-journal`), which
    SQLite creates or touches when any program opens the export."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and not _sqlite_side_file(p))
    return [path]


def _sqlite_side_file(path: Path) -> bool:
    name = path.name
    if name.endswith("-shm") and name[:-4].endswith(".db"):
        return True
    return name.endswith(("-wal", "-journal")) and ".db-" in name and path.stat().st_size == 0


def file_stat(path: str | Path) -> tuple[int, int]:
    """(size in bytes, newest mtime in ns) of a file or of all files under a folder."""
    files = _files_of(Path(path))
    stats = [f.stat() for f in files]
    return sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, or of the relative names and bytes of every file under a folder."""
    path = Path(path)
    digest = hashlib.sha256()
    for f in _files_of(path):
        if path.is_dir():
            digest.update(str(f.relative_to(path)).encode() + b"\0")
        with f.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def fingerprint(path: str | Path) -> dict[str, Any]:
    """What identifies an input: absolute path, size, mtime and SHA-256."""
    size, mtime = file_stat(path)
    return {"path": str(Path(path).resolve()), "size": size, "mtime_ns": mtime, "sha256": file_sha256(path)}


def source_record(src: SourceInfo, source_index: int) -> dict[str, Any]:
    """A SourceInfo as JSON (tuple keys of thread names/sorts become [pid, tid, value] lists)."""
    rec = {f.name: getattr(src, f.name) for f in dataclass_fields(src)}  # the JSON round trip below copies
    rec["process_names"] = [[k, v] for k, v in src.process_names.items()]
    rec["process_labels"] = [[k, v] for k, v in src.process_labels.items()]
    rec["process_sort"] = [[k, v] for k, v in src.process_sort.items()]
    rec["thread_names"] = [[*k, v] for k, v in src.thread_names.items()]
    rec["thread_sort"] = [[*k, v] for k, v in src.thread_sort.items()]
    rec["source_index"] = source_index
    return json.loads(json.dumps(rec, default=str))


def source_from_record(rec: dict[str, Any]) -> SourceInfo:
    """The SourceInfo a source_record was made from."""
    from tracekit.table import SourceInfo

    fields = {k: v for k, v in rec.items() if k in SourceInfo.__dataclass_fields__}
    fields["process_names"] = {int(k): v for k, v in rec.get("process_names", [])}
    fields["process_labels"] = {int(k): v for k, v in rec.get("process_labels", [])}
    fields["process_sort"] = {int(k): v for k, v in rec.get("process_sort", [])}
    fields["thread_names"] = {(int(p), int(t)): v for p, t, v in rec.get("thread_names", [])}
    fields["thread_sort"] = {(int(p), int(t)): v for p, t, v in rec.get("thread_sort", [])}
    return SourceInfo(**fields)


def _schema_of(path: Path) -> list[dict[str, str]]:
    """The columns as read back: a collectives file's member-list ids as the `group_ranks` lists readers put in
    (tracekit.group_members)."""
    import pyarrow.parquet as pq

    from tracekit.group_members import ID, LIST, LIST_TYPE

    return [{"name": LIST, "type": str(LIST_TYPE)} if f.name == ID and path.name == "collectives.parquet"
            else {"name": f.name, "type": str(f.type)} for f in pq.read_schema(path)]


def table_entries(root: Path, counts: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Each table written under `root`: layout, relative path, rows, columns (rank partitions add `rank`)."""
    out = {}
    for name in TABLES:
        single, folder = root / f"{name}.parquet", root / name
        if single.is_file():
            rows = counts.get(name)
            if rows is None and name == "group_members":  # written beside collectives.parquet, not counted
                import pyarrow.parquet as pq

                rows = pq.ParquetFile(single).metadata.num_rows
            out[name] = {"layout": "file", "path": single.name, "rows": rows, "columns": _schema_of(single)}
        elif folder.is_dir() and (parts := sorted(folder.glob("rank=*/*.parquet"))):
            columns = [{"name": "rank", "type": "int32"}, *_schema_of(parts[0])]
            out[name] = {"layout": "partitioned by rank", "path": f"{name}/", "partitioning": "hive",
                         "rows": counts.get(name), "columns": columns}
    return out


Records = Sequence[dict[str, Any]] | Callable[[], Iterable[dict[str, Any]]]


def write_manifest(root: Path, inputs: Records, sources: Records, ranks: Sequence[int], counts: dict[str, int],
                   trace_files: Sequence[str]) -> dict[str, Any]:
    """Write tracekit.json into a convert output folder (called on the staged folder, before it moves).

    `inputs` and `sources` are lists, or functions giving their items one at a time (a multi-rank job's records
    read from its spill file: written one by one, never held whole). Returns the manifest (those two lists left
    empty when they were streamed)."""
    from tracekit import __version__
    from tracekit.rankrecords import dump_streamed

    device_lists: list[list[Any]] = []  # filled while the sources are written
    streams = {key: value for key, value in (("inputs", inputs), ("sources", sources)) if callable(value)}
    if callable(sources):
        streams["sources"] = lambda: shared_device_lists(sources(), device_lists)
        streams["device_lists"] = lambda: iter(device_lists)
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "tracekit_version": __version__,
        "inputs": [] if callable(inputs) else list(inputs), "ranks": sorted(set(ranks)),
        "sources": [] if callable(sources) else list(shared_device_lists(sources, device_lists)),
        "device_lists": device_lists,
        "tables": table_entries(root, counts), "traces": list(trace_files), "summary": "summary.json",
    }
    from tracekit.writers.module_rows import manifest_entry

    if (rows_entry := manifest_entry(root, counts.get("modules"))) is not None:
        manifest["module_rows"] = rows_entry  # what `tracekit modules DATASET` reads (json only)
    with (root / MANIFEST).open("w") as fh:
        dump_streamed(fh, manifest, 1, streams)
    for source in manifest["sources"]:  # returned as read_manifest gives it
        if isinstance(source.get("devices"), int):
            source["devices"] = device_lists[source["devices"]]
    return manifest


def shared_device_lists(sources: Iterable[dict[str, Any]], device_lists: list[list[Any]]
                        ) -> Iterator[dict[str, Any]]:
    """Each source record with its `devices` list replaced by its index in `device_lists` (appended to when new):
    every rank's trace lists all devices of its node (8 V100s: 2.9 KB of the 4.2 KB of a DLRM rank's record),
    so a many-rank manifest holds each distinct list once."""
    index: dict[str, int] = {}
    for source in sources:
        devices = source.get("devices")
        if isinstance(devices, list):
            key = json.dumps(devices, sort_keys=True)
            if key not in index:
                index[key] = len(device_lists)
                device_lists.append(devices)
            source = {**source, "devices": index[key]}
        yield source


def read_manifest(root: str | Path) -> dict[str, Any]:
    """The manifest of a dataset folder; a clear TraceError when it is missing, damaged or too new."""
    path = Path(root) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise TraceError(root, f"not a tracekit dataset: no {MANIFEST} (convert the traces with `tracekit "
                               "convert INPUT -o DIR` first)") from None
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: nested too deep for json
        raise TraceError(path, f"damaged dataset manifest: {type(exc).__name__}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise TraceError(path, f"not a tracekit dataset manifest (format is not {FORMAT!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise TraceError(path, f"dataset format version {version!r} is newer than this tracekit reads "
                               f"({FORMAT_VERSION}); upgrade tracekit or convert again")
    from tracekit.dataset.manifest_check import manifest_problem, resolve_device_lists

    if problem := resolve_device_lists(manifest) or manifest_problem(manifest):
        raise TraceError(path, f"damaged dataset manifest: {problem}")
    return manifest


def is_dataset(path: str | Path) -> bool:
    """A folder with a tracekit.json manifest."""
    path = Path(path)
    return path.is_dir() and (path / MANIFEST).is_file()

