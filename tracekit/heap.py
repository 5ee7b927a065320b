"""Low-memory mode: when an input needs more than half the memory the machine can give, the process hands freed
blocks back to the OS at once and convert writes its chrome trace and Parquet tables one after the other.

By default glibc raises its mmap threshold (up to 32 MB) each time a mapped block is freed, so after the first
large array most blocks of a few MB come from the heap and stay resident once freed, in the arena of the thread
that freed them. A fixed 1 MB threshold (and a 64 MB trim threshold, so that the heap's top is not trimmed after
every free) takes convert's peak on the 54-56 MB shared traces from ~1.5x to 1.30-1.39x its size and at 0.5 GB from
1.09-1.19x to 1.03-1.15x, for 2-13% more CPU; with convert's writers one after the other too, the mode took the
54-56 MB traces to 1.23x and 1.10x for ~17% more wall time (BENCHMARKS.md "alloc25"): worth it only where memory is
short.

TRACEKIT_LOW_MEMORY: `auto` (set by the CLI: on where an input needs over LOW_SHARE of the memory available, as
tracekit.memory_budget estimates it), `on`, `off`; unset (the Python API) is `off`: a library does not retune its
host process's allocator unless asked. Workers inherit the variable and decide for their own input.
"""

from __future__ import annotations

import os

MODE_ENV = "TRACEKIT_LOW_MEMORY"
LOW_SHARE = 0.5  # `auto`: on where an input's estimated need is above this share of the memory available
MMAP_THRESHOLD = 1 << 20
TRIM_THRESHOLD = 64 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (glibc malloc.h)
_state = {"low": False}
_LIBC: list = []


def mode() -> str:
    """`auto`, `on` or `off` (anything else: `off`)."""
    value = os.environ.get(MODE_ENV, "off").strip().lower()
    return value if value in ("auto", "on", "off") else "off"


def consider(need: int, available: int | None) -> bool:
    """Turn low-memory mode on for this process where the mode asks for it (`on`; `auto` and `need` over LOW_SHARE
    of `available`); returns whether it is on."""
    wanted = mode()
    if wanted == "on" or (wanted == "auto" and available is not None and need > LOW_SHARE * available):
        enter()
    return _state["low"]


def enter() -> None:
    """Low-memory mode from now on in this process (and the processes it forks)."""
    libc = libc_handle()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    _state["low"] = True


def low_memory() -> bool:
    """Whether this process is in low-memory mode (convert then writes its outputs one after the other)."""
    return _state["low"]


def libc_handle():
    """The C library through ctypes, or None where it cannot be loaded."""
    if not _LIBC:
        try:
            import ctypes
            import ctypes.util

            _LIBC.append(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"))
        except OSError:
            _LIBC.append(None)
    return _LIBC[0]
