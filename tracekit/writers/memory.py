"""When the writers hand freed memory back to the OS between their chunks and tables."""

from __future__ import annotations

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
