"""The event list of a chrome trace as chunks of JSON text, without one Python object per event.

After the document is split (chrome_doc), the raw events are slices of the input bytes. Only the byte
range of each chunk of `size` events is kept (two int64 per chunk); the per-event objects are
dropped, and a chunk's text is cut from the input when it is decoded. For an input held in a memory
map, the pages of a decoded chunk are then taken out of the process's resident memory.
"""

from __future__ import annotations

import msgspec
import numpy as np

from .scratch import drop_pages


def _address(buffer: object) -> int:
    return np.frombuffer(buffer, dtype=np.uint8).ctypes.data


class EventSlices:
    """Chunks of `size` events: `text(k)` is the JSON array of chunk k, `count(k)` its events."""

    def __init__(self, data: object, events: list[msgspec.Raw], size: int) -> None:
        self.data = data
        self.size = size
        self.total = len(events)
        self.chunks = (self.total + size - 1) // size
        self.bounds = _bounds(data, events, size)
        # Events that are not slices of `data` (a truncated document decoded from a repaired copy)
        # are kept as they are.
        self.events = events if self.bounds is None else None

    def __len__(self) -> int:
        return self.chunks

    def start(self, k: int) -> int:
        """The position in the event list of chunk k's first event."""
        return k * self.size

    def count(self, k: int) -> int:
        return min(self.size, self.total - k * self.size)

    def text(self, k: int) -> bytes:
        """The JSON array of chunk k's events."""
        if self.bounds is None:
            return b"[" + b",".join(self.events[k * self.size : (k + 1) * self.size]) + b"]"
        start, end = self.bounds[k].tolist()
        return b"[" + self.data[start:end] + b"]"

    def done(self, k: int) -> None:
        """Chunk k has been read: its pages of a mapped input leave resident memory."""
        if self.bounds is not None:
            start, end = self.bounds[k].tolist()
            drop_pages(self.data, start, end)

    def drop_all(self) -> None:
        """Take all of a mapped input out of resident memory (it is read again chunk by chunk)."""
        drop_pages(self.data)

    def release(self) -> None:
        self.events = None
        self.data = b""


def _bounds(data: object, events: list[msgspec.Raw], size: int) -> np.ndarray | None:
    """(start, end) byte offsets in `data` of each chunk's events, or None when they are not slices of it."""
    if not events:
        return np.zeros((0, 2), dtype=np.int64)
    try:
        base = _address(data)
    except (TypeError, ValueError):
        return None
    length = len(data)
    firsts = events[::size]
    lasts = events[size - 1 :: size]
    if len(lasts) < len(firsts):
        lasts.append(events[-1])
    starts = np.fromiter((_address(e) - base for e in firsts), dtype=np.int64, count=len(firsts))
    ends = np.fromiter((_address(e) - base + len(e) for e in lasts), dtype=np.int64, count=len(lasts))
    if starts.min() < 0 or ends.max() > length or (ends < starts).any() or (starts[1:] < ends[:-1]).any():
        return None
    return np.stack([starts, ends], axis=1)
