"""Give freed heap memory back to the operating system between the ranks of a long job.

A parent that reads hundreds of ranks one after the other (a dataset's event partitions, Parquet files decoded
by Arrow) frees what it read each time, but glibc keeps the freed pages in its arenas, so the resident size
climbs with the number of ranks although live memory does not (measured: +33 MB over 512 dataset ranks in
`tracekit parallel`, +2 MB of it Python objects). `malloc_trim` hands them back.
"""

from __future__ import annotations

from tracekit.converters.loading import release_free_memory

EVERY = 16  # ranks between two releases (a release costs ~1 ms of CPU: measured in BENCHMARKS.md, "Scale")


def release_freed_memory() -> None:
    """Return the unused memory of Arrow's pool and glibc's free heap pages to the OS (no-op where unsupported)."""
    release_free_memory()


def every(count: int, step: int = EVERY) -> None:
    """release_freed_memory after every `step`-th item (count starts at 1)."""
    if count % step == 0:
        release_freed_memory()
