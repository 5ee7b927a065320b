"""Decode the chunks of a large trace on two cores: a forked child decodes the second half.

msgspec holds the GIL while it decodes, so threads cannot share the work; a forked child can, and
it sees the parent's raw events without a copy. The child sends each decoded chunk back (pickled,
through a pipe that a parent thread drains) and the parent yields every chunk in file order, so the
result is the same as a serial decode. An error in the child's half is raised after the parent's
own half is decoded, so the first bad event in the file is the one reported. If the child dies, the
parent decodes what is missing itself.

TRACEKIT_DECODE_PROCESSES=1 turns this off (2 forces it on, even for small traces); it is off
inside worker processes (multi-rank convert), which already use the cores.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import struct
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import msgspec

from tracekit.errors import TraceError

from .chrome_chunks import Chunk, decode_chunk

ENV = "TRACEKIT_DECODE_PROCESSES"
MIN_CHUNKS = 4  # below this many chunks a second process costs more than it saves
_HEADER = struct.Struct("<Q")


def decode_processes(chunks: int) -> int:
    """How many processes decode `chunks` chunks: 2 on a machine with 2+ cores for large traces, else 1."""
    forced = os.environ.get(ENV, "").strip()
    if forced:
        return 2 if forced.isdigit() and int(forced) >= 2 and chunks >= 2 and hasattr(os, "fork") else 1
    if chunks < MIN_CHUNKS or not hasattr(os, "fork") or multiprocessing.parent_process() is not None:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 2 if cores >= 2 else 1


def decode_chunks(path: Path, events: list[msgspec.Raw], size: int, object_form: bool,
                  keep_args: bool) -> _Chunks:
    """The decoded chunks of `size` events each, in file order (see the module doc).

    The child (if any) starts at once, so the caller's work before it iterates overlaps with it;
    close the iterator (or exhaust it) to reap the child."""
    starts = list(range(0, len(events), size))
    child = None
    if decode_processes(len(starts)) >= 2:
        half = len(starts) // 2
        child = _Child(path, events, size, object_form, keep_args, starts[half:])
        starts, theirs = starts[:half], starts[half:]
    return _Chunks(_in_order(path, events, size, object_form, keep_args, starts, child, theirs if child else []),
                   child)


class _Chunks:
    """An iterator of chunks whose `close()` also stops a child that was never waited for."""

    def __init__(self, chunks: Iterator[Chunk], child: _Child | None) -> None:
        self.chunks, self.child = chunks, child

    def __iter__(self) -> Iterator[Chunk]:
        return self.chunks

    def close(self) -> None:
        self.chunks.close()
        if self.child is not None:
            self.child.stop()


def _in_order(path: Path, events: list, size: int, object_form: bool, keep_args: bool, mine: list[int],
              child: _Child | None, theirs: list[int]) -> Iterator[Chunk]:
    try:
        for start in mine:
            yield decode_chunk(path, events[start : start + size], start, object_form, keep_args)
        sent = child.finish() if child is not None else iter(())
        for start in theirs:
            message = next(sent, None)
            if message is None or message[-1] != start:  # the child did not get this far: decode it here
                sent = iter(())
                yield decode_chunk(path, events[start : start + size], start, object_form, keep_args)
            elif message[0] == "error":
                raise _error(*message[1:])
            else:
                yield message[1]
    finally:
        if child is not None:
            child.stop()


class _Child:
    """A forked process decoding `starts`, and the parent thread collecting what it sends."""

    def __init__(self, path: Path, events: list, size: int, object_form: bool, keep_args: bool,
                 starts: list[int]) -> None:
        read_fd, write_fd = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: fork with threads
            self.pid = os.fork()
        if self.pid == 0:  # the child: decode, send, and leave without running the parent's cleanup
            code = 1
            try:
                os.close(read_fd)
                _send(write_fd, path, events, size, object_form, keep_args, starts)
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        self.blobs: list[bytes] = []
        self.reader = threading.Thread(target=_drain, args=(read_fd, self.blobs), daemon=True)
        self.reader.start()
        self.reaped = False

    def finish(self) -> Iterator[tuple]:
        """Wait for the child; then its messages in order, each unpickled only when asked for (so that
        one chunk at a time exists twice), up to the first that is cut off."""
        self.reader.join()
        self._reap()
        blobs = self.blobs
        blobs.reverse()
        while blobs:
            try:
                yield pickle.loads(blobs.pop())
            except Exception:  # a cut message: that chunk and the rest are decoded again
                blobs.clear()
                return

    def stop(self) -> None:
        if not self.reaped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, 9)
            self._reap()

    def _reap(self) -> None:
        if not self.reaped:
            os.waitpid(self.pid, 0)
            self.reaped = True


def _send(fd: int, path: Path, events: list, size: int, object_form: bool, keep_args: bool,
          starts: list[int]) -> None:
    with os.fdopen(fd, "wb", buffering=1 << 20) as out:
        for start in starts:
            try:
                message = ("chunk", decode_chunk(path, events[start : start + size], start, object_form, keep_args),
                           start)
            except TraceError as exc:
                message = ("error", exc.path, str(exc), exc.index, start)
            blob = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
            out.write(_HEADER.pack(len(blob)))
            out.write(blob)
            if message[0] == "error":
                return


def _drain(fd: int, blobs: list[bytes]) -> None:
    """Read the child's framed messages until it closes the pipe."""
    with os.fdopen(fd, "rb", buffering=1 << 20) as src:
        while True:
            head = src.read(_HEADER.size)
            if len(head) < _HEADER.size:
                return
            blob = src.read(_HEADER.unpack(head)[0])
            blobs.append(blob)


def _error(path: str, text: str, index: int | None, _start: int) -> TraceError:
    """The child's TraceError, with the same message (its text already names the file and event)."""
    exc = TraceError.__new__(TraceError)
    Exception.__init__(exc, text)
    exc.path, exc.index = path, index
    return exc
