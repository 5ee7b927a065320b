"""Decode the chunks of a large trace on two cores: a forked child decodes the second half.

msgspec holds the GIL while it decodes, so threads cannot share the work; a forked child can, and
it sees the parent's raw events without a copy. The child decodes every other chunk and sends each back
(pickled, through a pipe that a parent thread drains); the parent decodes the others and yields every
chunk in file order, so the result is the same as a serial decode, and few decoded chunks wait in
memory. An error is raised when its chunk's turn comes, so the first bad event in the file is the
one reported. If the child dies, the parent decodes what is missing itself.

TRACEKIT_DECODE_PROCESSES=1 turns this off (2 forces it on, even for small traces); it is off
inside worker processes (multi-rank convert), which already use the cores.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
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
    import multiprocessing  # here: `tracekit --help` does not import it

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
        try:
            child = _Child(path, events, size, object_form, keep_args, starts[1::2])
        except OSError:  # no process or pipe to spare (memory, limits): decode here alone
            child = None
    return _Chunks(_in_order(path, events, size, object_form, keep_args, starts, child), child)


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


def _in_order(path: Path, events: list, size: int, object_form: bool, keep_args: bool, starts: list[int],
              child: _Child | None) -> Iterator[Chunk]:
    """Every chunk in order: the even ones decoded here, the odd ones taken from the child as it sends
    them (so that at most a few of its chunks wait in memory), or decoded here if it stopped."""
    try:
        for k, start in enumerate(starts):
            message = child.next_message() if child is not None and k % 2 else None
            if message is None or message[-1] != start:
                if message is not None:
                    child.stop()  # out of step (cannot happen unless the child broke): do the rest here
                    child = None
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
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: fork with threads
                self.pid = os.fork()
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            raise
        if self.pid == 0:  # the child: decode, send, and leave without running the parent's cleanup
            code = 1
            try:
                os.close(read_fd)
                _send(write_fd, path, events, size, object_form, keep_args, starts)
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        self.blobs: queue.SimpleQueue = queue.SimpleQueue()
        self.reader = threading.Thread(target=_drain, args=(read_fd, self.blobs), daemon=True)
        self.reader.start()
        self.reaped = False
        self.ended = False

    def next_message(self) -> tuple | None:
        """The child's next message (waits for it); None once it has stopped sending or sent a cut one."""
        if self.ended:
            return None
        blob = self.blobs.get()
        try:
            if blob is not None:
                return pickle.loads(blob)
        except Exception:  # a cut message: that chunk and the rest are decoded here
            pass
        self.ended = True
        return None

    def stop(self) -> None:
        if not self.reaped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
            self.reaped = True
            self.reader.join()


def _send(fd: int, path: Path, events: list, size: int, object_form: bool, keep_args: bool,
          starts: list[int]) -> None:
    with os.fdopen(fd, "wb", buffering=0) as out:
        for start in starts:
            try:
                message = ("chunk", decode_chunk(path, events[start : start + size], start, object_form, keep_args),
                           start)
            except TraceError as exc:
                message = ("error", exc.path, str(exc), exc.index, start)
            blob = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
            out.write(_HEADER.pack(len(blob)) + blob)
            if message[0] == "error":
                return


def _drain(fd: int, blobs: queue.SimpleQueue) -> None:
    """Pass the child's framed messages on as they arrive; None when it closes the pipe."""
    with os.fdopen(fd, "rb", buffering=1 << 20) as src:
        while True:
            head = src.read(_HEADER.size)
            if len(head) < _HEADER.size:
                break
            blobs.put(src.read(_HEADER.unpack(head)[0]))
    blobs.put(None)


def _error(path: str, text: str, index: int | None, _start: int) -> TraceError:
    """The child's TraceError, with the same message (its text already names the file and event)."""
    exc = TraceError.__new__(TraceError)
    Exception.__init__(exc, text)
    exc.path, exc.index = path, index
    return exc
