"""Read a trace file into bytes: gzip by magic number, truncated gzip and JSON recovered with a warning."""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import stat
import sys
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from tracekit.errors import TraceError, set_current_input, warn
from tracekit.heap import libc_handle
from tracekit.limits import max_input_bytes
from tracekit.memory_budget import check_memory

from . import scratch

GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class RawInput:
    """Decompressed bytes of one input file, plus what was lost recovering it.

    `data` is bytes, or for a large input a read-only memory map (of a scratch file holding the
    gunzipped bytes, or of the JSON file itself; see converters/scratch): both read like bytes
    (slices, find, len) and msgspec decodes either without a copy. `close()` frees it.
    """

    path: Path
    data: bytes | mmap.mmap
    compressed: bool
    damage: list[str] = field(default_factory=list)

    @property
    def mapped(self) -> bool:
        return isinstance(self.data, mmap.mmap)

    def close(self) -> None:
        """Drop the bytes (unmap a map: its scratch file, having no name, is then gone)."""
        data, self.data = self.data, b""
        scratch.close_map(data)


_READ_BLOCK = 1 << 20  # compressed bytes read at a time
_OUT_BLOCK = 1 << 22  # decompressed bytes made at a time


def read_bytes(path: str | Path, max_bytes: int | None = None) -> RawInput:
    """Read a file, gunzipping it when it starts with the gzip magic (whatever its name).

    Only regular files are read (a FIFO or a device would block or never end). The file, and its
    decompressed content, may hold at most `max_bytes` (default: limits.max_input_bytes()). Gzip
    is decompressed in blocks; a large result is held in a mapped scratch file, and a large plain
    file is copied into one (see converters/scratch), so that neither counts as process memory. An input whose
    processing would need more memory than is available is refused (tracekit.memory_budget).
    """
    path = Path(path)
    raw = _read_bytes(path, max_input_bytes() if max_bytes is None else max_bytes)
    try:
        check_memory(path, len(raw.data))
    except TraceError:
        raw.close()
        raise
    return raw


def _read_bytes(path: Path, limit: int) -> RawInput:
    set_current_input(path)
    size = regular_file_size(path)
    threshold = scratch.min_bytes()
    ahead = _take_ahead(path, limit, threshold)
    if ahead is not None:
        return ahead
    with open(path, "rb") as fh:
        head = fh.read(2)
        if head != GZIP_MAGIC and size > limit:
            raise TraceError(path, too_big(size, limit))
        if head == GZIP_MAGIC:
            # (a file that grows while read is cut at its size when opened, plus one byte)
            data, damage = _gunzip(path, _Blocks(fh, head, min(size, limit) + 1, threshold), limit, threshold)
            return RawInput(path, data, True, damage)
        if threshold is not None and size >= max(threshold, 1):
            return RawInput(path, _copy_plain(path, _Blocks(fh, head, min(size, limit) + 1, threshold), limit,
                                              threshold), False)
        # read(n) allocates n bytes up front: ask for what the file holds (a file that grows while
        # read is cut at its size when opened, plus one byte, still within the limit check below).
        blob = head + fh.read(min(size, limit) + 1 - len(head))
        if len(blob) > limit:
            raise TraceError(path, too_big(len(blob), limit))
    if not blob.strip():
        raise TraceError(path, "file is empty")
    if path.suffix == ".gz":
        raise TraceError(path, "name ends in .gz but the content is not gzip (no gzip magic bytes)")
    return RawInput(path, blob, False)


_AHEAD_ALWAYS_BYTES = 64 << 20  # a gzip file this large is gunzipped ahead whatever its trailer says
# gunzip_ahead: path -> (child pid, pipe read end, scratch fd, limit, threshold)
_AHEAD: dict[str, tuple[int, int, int, int, int]] = {}


def gunzip_ahead(path: str | Path) -> None:
    """Start gunzipping `path` into a scratch file in a forked process, so that it overlaps the work the caller does
    before `read_bytes(path)` (`tracekit info` imports numpy and its stages meanwhile: ~0.1 s each, on two cores).

    `read_bytes` takes the result where it is the one it would make itself: a clean gzip stream larger than the
    scratch threshold, within the input limit. Anything else (not gzip, small, damaged, an error, a scratch file
    that cannot be made or written) is thrown away and `read_bytes` reads the file itself, with its own warnings
    and errors; so this never changes a result, only when the work is done."""
    threshold = scratch.min_bytes()
    if threshold is None or not hasattr(os, "fork") or str(path) in _AHEAD:
        return
    limit = max_input_bytes()
    try:
        size = regular_file_size(Path(path))
        with open(path, "rb") as fh:
            if fh.read(2) != GZIP_MAGIC:
                return
            # A small trace would be gunzipped twice (read_bytes keeps it in memory): skip it when the size in the
            # gzip trailer (a hint only: modulo 4 GiB, last member) says so and the file itself is not large.
            fh.seek(max(size - 4, 0))
            hint = int.from_bytes(fh.read(4), "little")
            if hint <= threshold and size < _AHEAD_ALWAYS_BYTES:
                return
        fd = scratch.open_scratch()
    except (TraceError, OSError):
        return
    try:
        read_fd, write_fd = os.pipe()
    except OSError:
        os.close(fd)
        return
    try:
        pid = os.fork()
    except OSError:
        for each in (fd, read_fd, write_fd):
            os.close(each)
        return
    if pid == 0:  # the child: decompress, say how it went, leave without the parent's cleanup
        try:
            os.close(read_fd)
            os.write(write_fd, _gunzip_into(Path(path), fd, size, limit, threshold).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    if not _AHEAD:
        import atexit

        atexit.register(_stop_ahead)
    _AHEAD[str(path)] = (pid, read_fd, fd, limit, threshold)


def _gunzip_into(path: Path, fd: int, size: int, limit: int, threshold: int) -> str:
    """In gunzip_ahead's child: `_gunzip` into the scratch file `fd`; "ok TOTAL" if nothing was damaged."""
    out = scratch.ScratchWriter(threshold)
    out.fd = fd  # every block goes to the file
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
            damage = _inflate_members(path, _Blocks(fh, head, min(size, limit) + 1, threshold), limit, out)
    except Exception:  # the parent reads the file again and reports it
        return "failed"
    clean = not damage and out.problem is None and out.fd is not None
    return f"ok {out.total}" if clean else "failed"


def _take_ahead(path: Path, limit: int, threshold: int | None) -> RawInput | None:
    """What gunzip_ahead made of `path`, if it is what read_bytes would make (else None: read it here)."""
    entry = _AHEAD.pop(str(path), None)
    if entry is None:
        return None
    pid, read_fd, fd, ahead_limit, ahead_threshold = entry
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            said = pipe.read().decode()
        os.waitpid(pid, 0)
        total = int(said.split()[1]) if said.startswith("ok ") else -1
        if (threshold is None or (ahead_limit, ahead_threshold) != (limit, threshold) or total > limit
                or total <= threshold or total < 1):
            return None
        return RawInput(path, scratch.map_fd(fd, total), True, [])
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


def _stop_ahead() -> None:
    """At exit: end the gunzip_ahead children that were never waited for."""
    for pid, read_fd, fd, _, _ in list(_AHEAD.values()):
        for each in (read_fd, fd):
            with contextlib.suppress(OSError):
                os.close(each)
        with contextlib.suppress(OSError):
            os.kill(pid, 9)
            os.waitpid(pid, 0)
    _AHEAD.clear()


def _copy_plain(path: Path, blocks: _Blocks, limit: int, threshold: int) -> bytes | mmap.mmap:
    """A large plain file copied in blocks into a scratch file, and that mapped. The user's file itself is not
    mapped: one emptied or rewritten while mapped (a profiler run writing the same name again) would kill
    the process on access (SIGBUS) instead of giving an error."""
    out = scratch.ScratchWriter(threshold)
    try:
        while block := blocks.next():
            out.write(block)
            if out.total > limit:
                raise TraceError(path, too_big(out.total, limit))
        data = out.result()
    finally:
        out.close()
    if out.problem:
        warnings.warn(f"{path}: {out.problem}; read into memory instead", RuntimeWarning, stacklevel=2)
    if re.search(rb"\S", data) is None:
        scratch.close_map(data)
        raise TraceError(path, "file is empty")
    if path.suffix == ".gz":
        scratch.close_map(data)
        raise TraceError(path, "name ends in .gz but the content is not gzip (no gzip magic bytes)")
    return data


def regular_file_size(path: Path) -> int:
    """The size of `path`, which must be a regular file (FIFOs, devices and folders are errors)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise TraceError(path, "no such file") from None
    except OSError as exc:
        raise TraceError(path, f"cannot read: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise TraceError(path, "is a folder, not a trace file")
    if not stat.S_ISREG(info.st_mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(info.st_mode) else "a device" if
                stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "a socket" if
                stat.S_ISSOCK(info.st_mode) else "not a regular file")
        raise TraceError(path, f"is {kind}; tracekit reads regular files only")
    if not os.access(path, os.R_OK):
        raise TraceError(path, "cannot read: permission denied")
    return info.st_size


class _Blocks:
    """The compressed bytes of a file, a block at a time, at most `cap` in all (`read` counts them).

    With no scratch file to spill to (`threshold` None), the file is read and decompressed whole, so
    that the output is one piece (pieces joined at the end would need twice its size)."""

    def __init__(self, fh, head: bytes, cap: int, threshold: int | None) -> None:
        self.fh, self.first, self.left, self.read = fh, head, cap - len(head), len(head)
        self.block = _READ_BLOCK if threshold is not None else max(self.left, 1)
        self.out_block = _OUT_BLOCK if threshold is not None else None

    def next(self) -> bytes:
        if self.first:
            first, self.first = self.first, b""
            return first
        if self.left <= 0:
            return b""
        block = self.fh.read(min(self.block, self.left))
        self.left -= len(block)
        self.read += len(block)
        return block


def _gunzip(path: Path, blocks: _Blocks, limit: int, threshold: int | None) -> tuple[bytes | mmap.mmap, list[str]]:
    """Decompress gzip (every member, as `cat a.gz b.gz` makes), stopping at `limit` bytes of output.

    The input is read and decompressed in blocks; the output goes to a ScratchWriter (memory, or a
    scratch file past `threshold` bytes). The size in the gzip trailer is not trusted (it can claim
    anything): the output grows as it is decompressed. A cut-off stream keeps what was decompressed
    and reports the damage.
    """
    out = scratch.ScratchWriter(threshold)
    try:
        damage = _inflate_members(path, blocks, limit, out)
        data = out.result()
    finally:
        out.close()
    if out.problem:
        warnings.warn(f"{path}: {out.problem}; read into memory instead", RuntimeWarning, stacklevel=2)
    for note in damage:
        warn(path, note)
    return data, damage


def _inflate_members(path: Path, blocks: _Blocks, limit: int, out: scratch.ScratchWriter) -> list[str]:
    total = 0
    members = 0
    damage: list[str] = []
    rest = memoryview(blocks.next())
    while True:
        if not rest:
            rest = memoryview(blocks.next())
            if not rest:
                break
        inflater = zlib.decompressobj(wbits=31)
        member_start = total
        try:
            while True:
                piece = inflater.decompress(rest, min(blocks.out_block or limit + 1, limit + 1 - total))
                out.write(piece)
                total += len(piece)
                if total > limit:
                    raise TraceError(path, too_big(total, limit, compressed=True))
                rest = inflater.unconsumed_tail
                if inflater.eof:
                    break
                if not rest:
                    rest = memoryview(blocks.next())
                    if not rest:
                        break
            if not inflater.eof:
                tail = inflater.flush()
                out.write(tail)
                total += len(tail)
        except zlib.error as exc:
            # The whole member's output is dropped, as one decompress call of the member gave nothing.
            out.truncate(member_start)
            total = member_start
            if members == 0 and not total:
                raise TraceError(path, f"corrupt gzip data: {exc}") from None
            damage.append(f"gzip member {members + 1} is corrupt ({exc}) after {total} decompressed bytes; "
                          "kept the bytes before it")
            break
        members += 1
        if not inflater.eof:
            damage.append(f"gzip stream is cut off after {blocks.read} compressed bytes; recovered {total} bytes")
            break
        rest = inflater.unused_data
        while len(rest) < 2 and (more := blocks.next()):
            rest += more
        rest = memoryview(rest)
        if rest and bytes(rest[:2]) != GZIP_MAGIC:
            # zero padding after the last member is not data
            after, nonzero = len(rest), bool(bytes(rest).strip(b"\x00"))
            while more := blocks.next():
                after += len(more)
                nonzero = nonzero or bool(more.strip(b"\x00"))
            if nonzero:
                damage.append(f"{after} bytes after the last gzip member are not gzip; ignored")
            break
    if not total:
        raise TraceError(path, "gzip stream holds no data")
    return damage


def too_big(size: int, limit: int, compressed: bool = False) -> str:
    """The message for an input over the --max-input-bytes limit."""
    what = "decompresses to more than" if compressed else f"is {size} bytes, more than"
    return (f"{what} the input limit of {limit} bytes ({limit / (1 << 30):.3g} GiB); "
            "raise it with --max-input-bytes (e.g. --max-input-bytes 64G) or TRACEKIT_MAX_INPUT_BYTES")


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
            except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
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
    pa = sys.modules.get("pyarrow")  # not loaded: nothing of arrow's to release (and no import of it)
    try:
        if pa is not None:
            # Arrow's allocator (mimalloc/jemalloc) keeps freed pages for reuse until asked.
            pa.default_memory_pool().release_unused()
    except AttributeError:
        pass
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _malloc_trim():
    return getattr(libc_handle(), "malloc_trim", None)
