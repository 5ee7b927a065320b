"""The event list of a chrome trace object cut into chunks of about `chunk_bytes` without parsing it first.

chrome_doc splits the event list with one msgspec pass over the whole text and the chunks are then decoded: the
text is parsed twice. Here the cuts are guessed from the text alone (an event's closing brace, a comma, the next
event's opening brace and the quote of its first key) and each chunk is decoded straight from its byte range: one
parse. A guessed cut is proven by the decode itself: chunk 0 starts at the list's first event, and a chunk that
starts at an event and decodes as a whole JSON array ends where an event of the list ends (the parser's state there
is the same as in the whole document), so once every chunk has decoded, every cut is real; the last chunk must end
where only white space stands before the list's `]`, and the document with the events cut out must be an object
whose `traceEvents` is that list (`top_level_ok`). Where any of that fails (a cut inside a nested object or a
string, a damaged or truncated file, another layout), the caller reads the file the exact way (chrome_doc's split)
as if this had not been tried: the guesses change no output, only the time.
"""

from __future__ import annotations

import re

import msgspec
import numpy as np

from .scratch import drop_pages

_WS = rb"[ \t\n\r]*"  # JSON white space (re's \s would also take \f and \v)
_KEY = re.compile(rb'"traceEvents"' + _WS + rb":" + _WS + rb"\[" + _WS)
# "}, {" followed by a quote: an unescaped quote cannot stand inside a JSON string, so a match is either a real cut
# or one between objects nested in an event (the decode of the chunk before it then fails).
_CUT = re.compile(rb"\}" + _WS + rb"," + _WS + rb'(\{)' + _WS + rb'"')
_TRAILING = re.compile(r"trailing characters \(byte (\d+)\)")
_split = msgspec.json.Decoder(list[msgspec.Raw])


class ByteChunks:
    """Chunks of the event list by byte range, read like chrome_slices.EventSlices: `text(k)` is chunk k's JSON
    array. How many events each holds is known only once decoded, so `start(k)` and `count(k)` are 0 (the
    decoder numbers a chunk's events from 0; chrome_json shifts them)."""

    size = None

    def __init__(self, data: object, bounds: np.ndarray, list_open: int) -> None:
        self.data = data
        self.bounds = bounds  # (start, end) byte offsets of each chunk's events
        self.list_open = list_open  # the offset of the list's `[`
        self.chunks = len(bounds)

    def __len__(self) -> int:
        return self.chunks

    def start(self, k: int) -> int:
        return 0

    def count(self, k: int) -> int:
        return 0

    def text(self, k: int) -> bytes:
        start, end = self.bounds[k].tolist()
        return b"".join((b"[", memoryview(self.data)[start:end], b"]"))

    def done(self, k: int) -> None:
        start, end = self.bounds[k].tolist()
        drop_pages(self.data, start, end)

    def drop_all(self) -> None:
        drop_pages(self.data)

    def release(self) -> None:
        self.data = b""

    def first(self) -> int:
        """The offset of the first event."""
        return int(self.bounds[0, 0])

    def end(self) -> int:
        """The offset just past the last event."""
        return int(self.bounds[-1, 1])


def plan(data: object, chunk_bytes: int) -> ByteChunks | None:
    """Candidate chunks of the event list of `data` (a chrome trace object), or None where the text does not look
    like one with a non-empty event list (the caller then reads it the exact way)."""
    head = bytes(data[:4096]).lstrip()
    if not head.startswith(b"{"):
        return None
    found = _KEY.search(data)
    if found is None or data[found.end() : found.end() + 1] != b"{":
        return None
    list_open = found.end() - 1
    while data[list_open : list_open + 1] != b"[":
        list_open -= 1
    first = found.end()
    starts, ends = [first], []
    step = max(int(chunk_bytes), 1)
    while True:
        cut = _CUT.search(data, starts[-1] + step)
        if cut is None:
            break
        ends.append(cut.start() + 1)
        starts.append(cut.start(1))
    # One chunk (a rank of a many-rank job): it starts at the list's first event, so the list's end is the chunk's.
    # A later chunk starts at a guessed cut: the parse from there (_last_end) also proves the cut is no event's inside.
    last = _list_end(data, list_open) if len(starts) == 1 else None
    if last is None or last < starts[-1]:
        last = _last_end(data, starts[-1])
    if last is None:
        return None
    ends.append(last)
    if any(e <= s for s, e in zip(starts, ends)):
        return None
    return ByteChunks(data, np.array([starts, ends], dtype=np.int64).T.copy(), list_open)


_top = msgspec.json.Decoder(dict[str, msgspec.Raw])


def _list_end(data: object, list_open: int) -> int | None:
    """Where the event list that opens at `list_open` ends (past its last event), from one parse of the whole
    document as an object of raw values (no object per event: ~2/3 of what _last_end takes); None where the document
    is no valid JSON object or its `traceEvents` is not that list (then _last_end decides)."""
    try:
        events = _top.decode(data).get("traceEvents")
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    if events is None:
        return None
    base = np.frombuffer(data, dtype=np.uint8)
    if np.frombuffer(events, dtype=np.uint8).ctypes.data - base.ctypes.data != list_open:
        return None
    close = list_open + len(events) - 1  # the list's `]`
    inner = bytes(data[max(list_open + 1, close - 4096) : close]).rstrip(b" \t\n\r")
    return max(list_open + 1, close - 4096) + len(inner)


def _last_end(data: object, start: int) -> int | None:
    """Where the event list ends (past its last event), if the events from `start` are the last ones: the parse of
    `[` + the rest stops at the list's `]` and reports what trails it."""
    try:
        _split.decode(b"".join((b"[", memoryview(data)[start:])))
    except msgspec.DecodeError as exc:
        found = _TRAILING.search(str(exc))
        if found is None:
            return None
        # (msgspec counts the trailing byte as read: byte N is text[N - 1], data[start + N - 2])
        close = start + int(found.group(1)) - 2  # the offset in `data` of the first byte that trails the list
        end = bytes(data[max(start, close - 4096) : close]).rstrip(b" \t\n\r")
        if not end.endswith(b"]"):
            return None
        end = end[:-1].rstrip(b" \t\n\r")
        return max(start, close - 4096) + len(end)
    except RecursionError:
        return None
    return None  # the whole rest is one array: not an object's list


def top_level_ok(top: bytes, list_open: int) -> bool:
    """Whether `top` (the document with the events cut out) is an object whose `traceEvents` is the list at
    `list_open` (not a nested one, not a key written twice)."""
    try:
        keys = msgspec.json.decode(top, type=dict[str, msgspec.Raw])
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return False
    events = keys.get("traceEvents")
    if events is None:
        return False
    base = np.frombuffer(top, dtype=np.uint8).ctypes.data
    return np.frombuffer(events, dtype=np.uint8).ctypes.data - base == list_open
