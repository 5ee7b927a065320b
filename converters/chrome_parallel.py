"""Decode the chunks of a large trace on two cores: the parent and a forked child share them.

msgspec holds the GIL while it decodes, so threads cannot share the work; a forked child can, and
it sees the parent's input (bytes or a shared map) without a copy. Parent and child each claim the next chunk from a
shared counter, so the faster one does more; the child sends each chunk back (pickled, through a
pipe that a parent thread drains) and the parent yields every chunk in file order, so the result is
the same as a serial decode and few decoded chunks wait in memory. An error is raised when its
chunk's turn comes, so the first bad event in the file is the one reported. If the child dies, the
parent decodes what is missing itself.

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

from tracekit.errors import TraceError

from .chrome_chunks import Chunk, decode_chunk
from .chrome_ranges import ByteChunks
from .chrome_slices import EventSlices

ENV = "TRACEKIT_DECODE_PROCESSES"
MIN_CHUNKS = 4  # below this many chunks a second process costs more than it saves
MAX_AHEAD = 8  # decoded chunks the parent keeps waiting for their turn (memory) before it waits instead
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


def decode_chunks(path: Path, events: EventSlices | ByteChunks, object_form: bool, keep_args: bool) -> _Chunks:
    """The decoded chunks of `events`, in file order (see the module doc).

    The child (if any) starts at once, so the caller's work before it iterates overlaps with it;
    close the iterator (or exhaust it) to reap the child."""
    child = None
    if decode_processes(len(events)) >= 2:
        try:
            child = _Child(path, events, object_form, keep_args)
        except OSError:  # no process or pipe to spare (memory, limits): decode here alone
            child = None
    return _Chunks(_in_order(path, events, object_form, keep_args, child), child)


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


def _in_order(path: Path, events: EventSlices | ByteChunks, object_form: bool, keep_args: bool,
              child: _Child | None) -> Iterator[Chunk]:
    """Every chunk in order. Parent and child claim the next unclaimed chunk from a shared counter
    (so each does as much as its speed allows); the parent keeps what arrives early until its turn,
    so few decoded chunks wait in memory. An error is raised at its chunk's turn. If the child stops,
    the parent decodes what is missing."""
    n = len(events)
    waiting: dict[int, tuple] = {}  # chunk number -> ("chunk", Chunk, start) or ("error", ...)
    alive = child is not None
    try:
        done = 0
        while done < n:
            if done in waiting:
                message = waiting.pop(done)
                if message[0] == "error":
                    raise _error(*message[1:])
                yield message[1]
                done += 1
                continue
            while alive:  # what the child sent meanwhile
                message = child.poll()
                if message is _NOTHING:
                    break
                if message is None:
                    alive = False
                    break
                waiting[message[-1]] = message
            if done in waiting:
                continue
            # At most MAX_AHEAD decoded chunks wait; past that, wait for the child's next one.
            k = (child.claim() if len(waiting) < MAX_AHEAD else n) if alive else done
            if k is None:  # the child holds the lock and does not let go: it is gone
                alive = False
                k = done
            if k >= n:  # all claimed (or enough waiting): the next chunk is the child's, wait for it
                message = child.next_message()
                if message is None:
                    alive = False
                else:
                    waiting[message[-1]] = message
                continue
            waiting[k] = _decode(path, events, k, object_form, keep_args)
    finally:
        if child is not None:
            child.stop()


_NOTHING = object()  # poll: nothing has arrived yet


def _decode(path: Path, events: EventSlices | ByteChunks, k: int, object_form: bool, keep_args: bool) -> tuple:
    """Chunk k as a message: ("chunk", Chunk, k), or ("error", path, text, index, k). Its pages of a
    mapped input then leave this process's resident memory."""
    try:
        chunk = decode_chunk(path, events.text(k), events.count(k), events.start(k), object_form, keep_args)
        return ("chunk", chunk, k)
    except TraceError as exc:
        return ("error", exc.path, str(exc), exc.index, k)
    finally:
        events.done(k)


class _Child:
    """A forked process decoding the chunks it claims, and the parent thread collecting what it sends."""

    def __init__(self, path: Path, events: EventSlices | ByteChunks, object_form: bool, keep_args: bool) -> None:
        import multiprocessing

        context = multiprocessing.get_context("fork")
        self.counter = context.RawValue("q", 0)  # the next unclaimed chunk, shared with the child
        self.lock = context.Lock()
        self.chunks = len(events)
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
                _send(write_fd, self, path, events, object_form, keep_args)
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        self.blobs: queue.SimpleQueue = queue.SimpleQueue()
        self.reader = threading.Thread(target=_drain, args=(read_fd, self.blobs), daemon=True)
        self.reader.start()
        self.reaped = False
        self.ended = False

    def claim(self) -> int | None:
        """The next unclaimed chunk number (>= chunks when none is left); None if the lock is not freed."""
        if not self.lock.acquire(timeout=5):
            return None
        try:
            k = self.counter.value
            self.counter.value = k + 1
            return k
        finally:
            self.lock.release()

    def poll(self) -> tuple | object | None:
        """The next message if one has arrived, _NOTHING if none has, None once the child has ended."""
        if self.ended:
            return None
        try:
            blob = self.blobs.get(block=False)
        except queue.Empty:
            return _NOTHING
        return self._unpickle(blob)

    def next_message(self) -> tuple | None:
        """The child's next message (waits for it); None once it has stopped sending or sent a cut one."""
        if self.ended:
            return None
        return self._unpickle(self.blobs.get())

    def _unpickle(self, blob: bytes | None) -> tuple | None:
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


def _send(fd: int, child: _Child, path: Path, events: EventSlices | ByteChunks, object_form: bool,
          keep_args: bool) -> None:
    """In the child: decode the chunks it claims and send them, until none is left or one is bad."""
    with os.fdopen(fd, "wb", buffering=0) as out:
        while True:
            k = child.claim()
            if k is None or k >= child.chunks:
                return
            message = _decode(path, events, k, object_form, keep_args)
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


def _error(path: str, text: str, index: int | None, _k: int) -> TraceError:
    """The child's TraceError, with the same message (its text already names the file and event)."""
    exc = TraceError.__new__(TraceError)
    Exception.__init__(exc, text)
    exc.path, exc.index = path, index
    return exc
