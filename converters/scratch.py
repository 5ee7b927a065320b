"""Hold a large decompressed input in a scratch file read through a memory map, not in process memory.

A gzip input is decompressed in bounded blocks; past `min_bytes()` of output the blocks go to an
unnamed scratch file in the temporary folder (TMPDIR), which is then mapped read-only. A plain
JSON input of that size is copied into one (the user's file is not mapped: rewritten while mapped, it would
kill the process with SIGBUS). The mapped bytes are page cache: once a region has been
read, `drop_pages` takes it out of the process's resident memory (the kernel reads it again if it is
touched later), so the raw text no longer adds to the reader's peak.

The scratch file never has a name in the folder (O_TMPFILE, else created and unlinked at once): it
disappears when the process closes it or ends, however it ends (error, SIGTERM, SIGKILL).

TRACEKIT_SCRATCH: "off" reads every input into memory (as before), "on" maps every input whatever
its size; unset (auto), inputs of 8 MiB or more once decompressed are mapped.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import tempfile

ENV = "TRACEKIT_SCRATCH"
MIN_BYTES = 8 << 20  # below this, the bytes stay in memory: a file and a map cost more than they save
_PAGE = mmap.PAGESIZE


def mode() -> str:
    """"off", "on" or "auto" (TRACEKIT_SCRATCH; anything else is auto)."""
    value = os.environ.get(ENV, "").strip().lower()
    if value in ("off", "0", "no", "false", "memory"):
        return "off"
    if value in ("on", "1", "yes", "true", "always"):
        return "on"
    return "auto"


def min_bytes() -> int | None:
    """Inputs at least this large (decompressed) are mapped; None: never."""
    current = mode()
    return None if current == "off" else 0 if current == "on" else MIN_BYTES


def scratch_folder() -> str:
    """Where scratch files go: the temporary folder (TMPDIR, else /tmp, as `tempfile` picks it)."""
    return tempfile.gettempdir()


def open_scratch() -> int:
    """A new, empty scratch file with no name (read-write fd). Raises OSError when none can be made."""
    folder = scratch_folder()
    flag = getattr(os, "O_TMPFILE", 0)
    if flag:
        try:
            return os.open(folder, flag | os.O_RDWR | getattr(os, "O_CLOEXEC", 0), 0o600)
        except OSError:
            pass  # a file system without O_TMPFILE: name it and unlink it at once
    fd, name = tempfile.mkstemp(prefix=".tracekit-scratch-", dir=folder)
    try:
        os.unlink(name)
    except OSError:
        os.close(fd)
        raise
    return fd


class ScratchWriter:
    """Collects decompressed blocks: in memory up to `threshold` bytes, then in a scratch file.

    `result()` gives bytes (small inputs, or no scratch file could be made) or a read-only map."""

    def __init__(self, threshold: int | None) -> None:
        self.threshold = threshold
        self.pieces: list[bytes] = []
        self.fd: int | None = None
        self.total = 0
        self.problem: str | None = None  # why the scratch file could not be used (then: in memory)

    def write(self, piece: bytes) -> None:
        if not piece:
            return
        self.total += len(piece)
        if self.fd is not None:
            self._write_out(piece)
            return
        self.pieces.append(piece)
        if self.threshold is not None and self.problem is None and self.total > self.threshold:
            try:
                self.fd = open_scratch()
            except OSError as exc:
                self.problem = f"cannot create a scratch file in {scratch_folder()}: {exc.strerror or exc}"
                return
            pieces, self.pieces = self.pieces, []
            for held in pieces:
                self._write_out(held)

    def _write_out(self, piece: bytes) -> None:
        view = memoryview(piece)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError as exc:  # disk full: go on in memory with what was written before this piece
            self.problem = f"cannot write the scratch file in {scratch_folder()}: {exc.strerror or exc}"
            fd, self.fd = self.fd, None
            try:
                earlier = _read_back(fd, self.total - len(piece))
            finally:
                os.close(fd)
            self.pieces = [earlier, piece]

    def truncate(self, size: int) -> None:
        """Keep only the first `size` bytes written."""
        if size >= self.total:
            return
        if self.fd is not None:
            os.ftruncate(self.fd, size)
            os.lseek(self.fd, size, os.SEEK_SET)
        else:
            data = b"".join(self.pieces)[:size]
            self.pieces = [data] if data else []
        self.total = size

    def result(self) -> bytes | mmap.mmap:
        """The bytes written (the scratch file, if any, mapped and its fd closed)."""
        if self.fd is None or not self.total:
            data = self.pieces[0] if len(self.pieces) == 1 else b"".join(self.pieces)
            self.pieces = []
            return data
        fd, self.fd = self.fd, None
        try:
            return map_fd(fd, self.total)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Give up (an error while decompressing): the scratch file goes."""
        self.pieces = []
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)


def _read_back(fd: int, size: int) -> bytes:
    pieces, offset = [], 0
    while offset < size:
        block = os.pread(fd, min(size - offset, 1 << 24), offset)
        if not block:
            break
        pieces.append(block)
        offset += len(block)
    return b"".join(pieces)


def map_fd(fd: int, size: int) -> mmap.mmap:
    """A read-only shared map of the first `size` bytes of `fd` (the fd may be closed after)."""
    mapped = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
    with contextlib.suppress(AttributeError, OSError):
        mapped.madvise(mmap.MADV_SEQUENTIAL)
    return mapped


def drop_pages(data: object, start: int = 0, end: int | None = None) -> None:
    """Take the whole pages of `data[start:end]` out of the process's resident memory (a map only).

    The pages of a shared file map stay in the file (and the page cache): touching them again reads
    them back, so this never changes what is read, only what counts as this process's memory."""
    if not isinstance(data, mmap.mmap) or data.closed:
        return
    size = len(data)
    end = size if end is None else min(end, size)
    first = (max(start, 0) // _PAGE) * _PAGE
    if end <= first:
        return
    with contextlib.suppress(AttributeError, OSError, ValueError):
        data.madvise(mmap.MADV_DONTNEED, first, end - first)


def close_map(data: object) -> None:
    """Unmap `data` if it is a map; a map still referenced elsewhere (a buffer of it is held) is left to
    be freed with its last reference."""
    if isinstance(data, mmap.mmap) and not data.closed:
        drop_pages(data)
        with contextlib.suppress(BufferError):
            data.close()
