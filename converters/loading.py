"""Read a trace file into bytes: gzip by magic number, truncated gzip and JSON recovered with a warning."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from tracekit.errors import TraceError, warn

GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class RawInput:
    """Decompressed bytes of one input file, plus what was lost recovering it."""

    path: Path
    data: bytes
    compressed: bool
    damage: list[str] = field(default_factory=list)


def read_bytes(path: str | Path) -> RawInput:
    """Read a file, gunzipping it when it starts with the gzip magic (whatever its name)."""
    path = Path(path)
    if not path.exists():
        raise TraceError(path, "no such file")
    if path.is_dir():
        raise TraceError(path, "is a folder, not a trace file")
    blob = path.read_bytes()
    if not blob.strip():
        raise TraceError(path, "file is empty")
    if blob[:2] == GZIP_MAGIC:
        data, damage = _gunzip(path, blob)
        return RawInput(path, data, True, damage)
    if path.suffix == ".gz":
        raise TraceError(path, "name ends in .gz but the content is not gzip (no gzip magic bytes)")
    return RawInput(path, blob, False)


def _gunzip(path: Path, blob: bytes) -> tuple[bytes, list[str]]:
    """Decompress gzip; a cut-off stream keeps what was decompressed and reports the damage."""
    # The gzip trailer holds the size mod 2**32: one output allocation instead of repeated growth.
    size_hint = int.from_bytes(blob[-4:], "little") + 1 if len(blob) > 18 else 1 << 16
    try:
        return zlib.decompress(blob, wbits=47, bufsize=max(size_hint, 1 << 16)), []
    except zlib.error:
        pass
    inflater = zlib.decompressobj(wbits=47)
    try:
        data = inflater.decompress(blob)
    except zlib.error as exc:
        raise TraceError(path, f"corrupt gzip data: {exc}") from None
    if not data:
        raise TraceError(path, "gzip stream holds no data")
    note = f"gzip stream is cut off after {len(blob)} compressed bytes; recovered {len(data)} bytes"
    warn(path, note)
    return data, [note]


_EVENT_END = re.compile(rb"\}\s*,\s*(?=\{)|\}\s*(?=\]\s*[,}])")


def recover_truncated_json(path: Path, data: bytes, decode, max_tries: int = 200):
    """Decode JSON that was cut mid-file: close the event array after the last complete event.

    `decode(bytes)` decodes a whole document. Returns (document, note) where note says what
    was lost. Raises TraceError when no complete event can be recovered.
    """
    tail_start = max(0, len(data) - (1 << 22))
    ends = [m.start() for m in _EVENT_END.finditer(data, tail_start)]
    if not ends and tail_start:
        ends = [m.start() for m in _EVENT_END.finditer(data)]
    # A cut right after a complete event ("...}" or "...},") keeps that event too.
    last = re.search(rb"\}\s*,?\s*$", data[-64:])
    if last:
        ends.append(len(data) - 64 + last.start() if len(data) > 64 else last.start())
    for tries, end in enumerate(reversed(ends)):
        if tries >= max_tries:
            break
        head = data[: end + 1]
        for closer in (b"]}", b"]", b"]}}"):
            try:
                doc = decode(head + closer)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            lost = len(data) - len(head)
            note = f"JSON is truncated: kept the events before byte {len(head)}, dropped the last {lost} bytes"
            return doc, note
    raise TraceError(path, "JSON is truncated and no complete event could be recovered")


def release_free_memory() -> None:
    """Hand memory that the process has freed back to the OS (arrow's pool, then glibc `malloc_trim`).

    After a large buffer is freed, glibc raises its mmap threshold, so later arrays come from the
    heap and stay resident after they are freed. Called between stages, this keeps the next
    stage's peak from stacking on the previous stage's garbage.
    """
    try:
        import pyarrow as pa

        # Arrow's allocator (mimalloc/jemalloc) keeps freed pages for reuse until asked.
        pa.default_memory_pool().release_unused()
    except (ImportError, AttributeError):
        pass
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


_TRIM: list = []


def _malloc_trim():
    if not _TRIM:
        try:
            import ctypes
            import ctypes.util

            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _TRIM.append(libc.malloc_trim)
        except (OSError, AttributeError):
            _TRIM.append(None)
    return _TRIM[0]
