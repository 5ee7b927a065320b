"""When the writers hand freed memory back to the OS between their chunks and tables."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable

from tracekit.converters.loading import release_free_memory

# Tables at least this long (a trace of ~8 MB and more, where the decoder does the same) hand their garbage
# back between stages, so that the next stage's peak does not stack on it. Below, the garbage is small and
# each call costs ~0.4 ms: two per rank of a many-rank job, for nothing.
RELEASE_ROWS = 32_768


def releaser(rows: int) -> Callable[[], None]:
    """release_free_memory for a table of `rows` rows at least RELEASE_ROWS long, else a no-op."""
    return release_free_memory if rows >= RELEASE_ROWS else _keep


def _keep() -> None:
    """Nothing to hand back (a small table)."""


# release_arrow_pool hands pages back once the process has grown this much since its thread's last release: each
# release costs the next chunks fresh pages (faults, zeroing), so one per chunk cost 6-14% more CPU.
POOL_STEP_BYTES = 16 << 20
_since = threading.local()


def release_arrow_pool() -> None:
    """Hand the pages that arrow's allocator keeps after frees back to the OS, once the process has grown
    POOL_STEP_BYTES since this thread's last release (the CLI runs arrow on the system allocator, whose release trims
    glibc's heaps; the API on the wheel's default, mimalloc). Called between the chunks of a writer: else each chunk's
    freed temporaries stay resident and the writer's memory climbs chunk after chunk (owlv2's chrome trace: +70 MB
    over 58 chunks). mimalloc collects the calling thread's heap, so each writer thread calls it itself."""
    pa = sys.modules.get("pyarrow")
    if pa is None:
        return
    now = resident_bytes()
    last = getattr(_since, "rss", None)
    if last is not None and now - last < POOL_STEP_BYTES:
        _since.rss = min(last, now)
        return
    with contextlib.suppress(AttributeError):
        pa.default_memory_pool().release_unused()
    _since.rss = resident_bytes()


def resident_bytes() -> int:
    """This process's resident memory now (0 where /proc cannot tell)."""
    try:
        fd = os.open("/proc/self/statm", os.O_RDONLY)
        try:
            return int(os.read(fd, 256).split()[1]) * _PAGE
        finally:
            os.close(fd)
    except (OSError, ValueError, IndexError):
        return 0


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
