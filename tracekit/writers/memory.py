"""When the writers hand freed memory back to the OS between their chunks and tables."""

from __future__ import annotations

import contextlib
import sys
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


def release_arrow_pool() -> None:
    """Hand the pages that arrow's allocator (mimalloc) keeps after frees back to the OS (a few us). Called between
    the chunks of a writer: else each chunk's freed temporaries stay resident and the writer's memory climbs
    chunk after chunk (owlv2's chrome trace: +70 MB over 58 chunks, +30 MB with this). mimalloc collects the
    calling thread's heap, so each writer thread calls it itself."""
    pa = sys.modules.get("pyarrow")
    if pa is not None:
        with contextlib.suppress(AttributeError):
            pa.default_memory_pool().release_unused()

