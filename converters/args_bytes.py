"""The args text of every event, back to back: in memory for small inputs, in a scratch file for large ones.

The args column is the largest part of a decoded trace (the raw JSON of each event's args). Past
`scratch.min_bytes()` of input it is written, chunk by chunk as the events are decoded, to an unnamed
scratch file (see converters/scratch.py) that is mapped read-only at the end: the column then lives in
the page cache, which the kernel can reclaim, and only the pages a stage reads count as the process's
memory (`drop_args_pages` takes them out again).
"""

from __future__ import annotations

import mmap
import warnings
import weakref

import numpy as np

from tracekit.lazy import pa

from . import scratch


class ArgsBytes:
    """Collects the args bytes of the decoded chunks in file order."""

    def __init__(self, size_hint: int, path: object = "") -> None:
        """`size_hint`: an upper bound of the total (the input's size); `path`: the input (named in a warning)."""
        self.path = path
        limit = scratch.min_bytes()
        self.spill = scratch.ScratchWriter(0) if limit is not None and size_hint >= max(limit, 1) else None
        if self.spill is not None:  # a read given up part way (an error): the scratch file goes with this object
            weakref.finalize(self, self.spill.close)
        # In memory: the total is below the input's size, so this buffer never grows; the pages past
        # what is written are never touched.
        self.data = None if self.spill is not None else np.empty(max(size_hint, 1), dtype=np.uint8)
        self.used = 0

    def append(self, piece: bytes) -> None:
        """Add a chunk's args bytes."""
        if self.spill is not None:
            self.spill.write(piece)
        else:
            self.data[self.used : self.used + len(piece)] = np.frombuffer(piece, np.uint8)
        self.used += len(piece)

    def close(self) -> None:
        """Give up (an error while reading): the scratch file goes now."""
        if self.spill is not None:
            self.spill.close()

    def buffer(self) -> pa.Buffer:
        """All the bytes appended (a read-only map of the scratch file, or memory)."""
        if self.spill is None:
            return pa.py_buffer(self.data[: self.used])
        spill, self.spill = self.spill, None
        if spill.problem:
            warnings.warn(f"{self.path}: {spill.problem}; the args are held in memory instead", RuntimeWarning,
                          stacklevel=2)
        data = spill.result()
        buffer = pa.py_buffer(data)
        if isinstance(data, mmap.mmap) and buffer.size:
            _remember(data, buffer.address)
        return buffer


# The scratch maps that hold args columns: id -> (first address, size, weak reference to the map). An entry goes
# with its map, and the map lives as long as any arrow buffer made of it.
_MAPS: dict[int, tuple[int, int, weakref.ref]] = {}


def _remember(data: mmap.mmap, address: int) -> None:
    key = id(data)
    _MAPS[key] = (address, len(data), weakref.ref(data, lambda _ref, key=key: _MAPS.pop(key, None)))


def _map_holding(args: pa.Array | None) -> tuple[int, mmap.mmap] | None:
    """(first address, map) of the scratch map that holds the bytes of `args`, or None (memory, or no bytes)."""
    if args is None or not _MAPS:
        return None
    buffers = args.buffers()
    data = buffers[2] if len(buffers) >= 3 else None
    if data is None or buffers[1] is None:
        return None
    for first, size, ref in list(_MAPS.values()):
        held = ref()
        if held is not None and first <= data.address < first + size:
            return first, held
    return None


def is_spilled(args: pa.Array | None) -> bool:
    """Whether the bytes of `args` lie in a scratch map of this module."""
    return _map_holding(args) is not None


def drop_args_pages(args: pa.Array | None) -> None:
    """Take the pages of the bytes of `args` (a binary or string array, or a slice of one) out of the process's
    resident memory when they lie in a scratch map (see module docstring); else nothing. The bytes stay readable:
    the kernel reads them back from the page cache or the file when touched again."""
    found = _map_holding(args) if args is not None and len(args) else None
    if found is None:
        return
    first, held = found
    buffers = args.buffers()
    large = pa.types.is_large_binary(args.type) or pa.types.is_large_string(args.type)
    offsets = np.frombuffer(buffers[1], dtype=np.int64 if large else np.int32)
    at = buffers[2].address - first
    scratch.drop_pages(held, at + int(offsets[args.offset]), at + int(offsets[args.offset + len(args)]))


def take_args(args: pa.Array, rows: np.ndarray | pa.Array) -> pa.Array:
    """`args.take(rows)`, the pages read leaving the process's resident memory after (see drop_args_pages)."""
    picked = args.take(rows if isinstance(rows, pa.Array) else pa.array(np.asarray(rows, dtype=np.int64)))
    drop_args_pages(args)
    return picked


def take_rows(args: pa.LargeBinaryArray, rows: np.ndarray, chunk_rows: int = 65_536,
              path: object = "") -> pa.LargeBinaryArray:
    """`args.take(rows)`; of spilled args (the reader dropping skipped events), taken a chunk of rows at a time into
    a new scratch file, so that the column stays out of resident memory (`path`: the input, named in a warning)."""
    if not is_spilled(args) or args.null_count:
        return args.take(pa.array(rows))
    out = ArgsBytes(max(args.nbytes, scratch.min_bytes() or 0, 1), path)
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    for start in range(0, len(rows), chunk_rows):
        part = take_args(args, rows[start : start + chunk_rows])
        bounds = np.frombuffer(part.buffers()[1], dtype=np.int64, count=len(part) + 1, offset=part.offset * 8)
        offsets[start + 1 : start + len(part) + 1] = offsets[start] + bounds[1:] - bounds[0]
        if bounds[-1] > bounds[0]:
            out.append(memoryview(part.buffers()[2])[int(bounds[0]) : int(bounds[-1])])
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(rows), [None, pa.py_buffer(offsets), out.buffer()])
