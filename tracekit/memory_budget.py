"""Refuse an input that the machine clearly has too little memory for, before the work that would need it.

A trace's processing peaks at a fixed amount plus a measured multiple of its decompressed JSON (BENCHMARKS.md
"args24": `convert` 1.1-1.2x above the imports' memory at 0.5-1 GB, 1.0-1.7x on the 54-87 MB shared traces, now
that the args column is spilled to a scratch file; `info` 1.4x).
Past what the machine can give, Linux does not raise MemoryError: the kernel kills the process (or the machine
thrashes), with no message and after minutes of work.
So once an input's decompressed size is known (converters/loading.read_bytes), that multiple is compared with the
memory available now: MemAvailable + SwapFree, or less where the process's cgroup (a container, a batch job) has
a lower limit.

The command sets its multiple (TRACEKIT_MEMORY_FACTOR, so rank workers see it); TRACEKIT_MEMORY_AVAILABLE overrides
the available memory (a size such as 4G), or turns the check off (`off`). Where an input fits but needs over half of
what is available, the process goes into low-memory mode (tracekit.heap).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from tracekit import heap
from tracekit.errors import TraceError
from tracekit.limits import parse_size

FACTOR_ENV = "TRACEKIT_MEMORY_FACTOR"
AVAILABLE_ENV = "TRACEKIT_MEMORY_AVAILABLE"
# Peak memory above the import baseline: FIXED_BYTES plus a multiple of the decompressed input. FIXED_BYTES covers
# what any trace needs whatever its size (the reader's decoded chunks, the writers' buffers: a 56 MB trace peaks
# ~95 MB above imports); the multiples were measured at 0.5-1 GB (BENCHMARKS.md "args24": convert 1.09-1.20x,
# modules 1.10-1.15x on v100- and owlv2-shaped traces, `info` 1.4x). convert and modules get 1.6 (a 24 GB machine
# takes ~14 GB of JSON): the measured 1.2x plus the args column (up to ~0.4x) where the scratch folder is a RAM disk
# (tmpfs), whose pages count as used memory. report and parallel (1.02-1.06x and 1.18-1.31x at 0.5 GB) get 1.6 too;
# compare 1.8 per input (each input is checked as it is read, the first one's table held: the two together peak at
# 1.9-2.1x one input, BENCHMARKS.md "args24"). The other commands (merge holds two traces' tables and the merged
# one; not measured since) keep the 2.7 measured before.
FIXED_BYTES = 128 << 20
FACTORS = {"info": 1.5, "convert": 1.6, "modules": 1.6, "report": 1.6, "parallel": 1.6, "compare": 1.8}
DEFAULT_FACTOR = 2.7
_CGROUP = Path("/sys/fs/cgroup")
# A worker checks every rank it reads: the system's figure (/proc/meminfo and the cgroup files, ~0.2 ms) is reused
# for this long, and only where the input needs at most half of it; closer calls read the files again.
REUSE_SECONDS = 1.0
_last_reading: tuple[float, tuple[int, str] | None] | None = None


def set_command(name: str) -> None:
    """Use the memory multiple of command `name` in this process and the worker processes it starts."""
    os.environ[FACTOR_ENV] = str(FACTORS.get(name, DEFAULT_FACTOR))


def factor() -> float:
    try:
        value = float(os.environ.get(FACTOR_ENV, DEFAULT_FACTOR))
    except ValueError:
        return DEFAULT_FACTOR
    return value if 0 < value < 1000 else DEFAULT_FACTOR


def available_bytes() -> tuple[int, str] | None:
    """(bytes this process can still get, where that figure comes from), or None where it cannot be told."""
    said = os.environ.get(AVAILABLE_ENV, "").strip()
    if said.lower() == "off":
        return None
    if said:
        try:
            return parse_size(said), AVAILABLE_ENV
        except ValueError:
            pass
    return _system_room()


def _system_room() -> tuple[int, str] | None:
    """The smaller of MemAvailable + SwapFree and the cgroup's room, read now (and kept for _recent_room)."""
    global _last_reading
    found = [got for got in (_meminfo(), _cgroup_room()) if got is not None]
    room = min(found) if found else None
    _last_reading = (time.monotonic(), room)
    return room


def _recent_room(need: int) -> tuple[int, str] | None:
    """The system's figure read under REUSE_SECONDS ago if `need` is at most half of it, else None (read again)."""
    if _last_reading is None or os.environ.get(AVAILABLE_ENV, "").strip():
        return None
    when, room = _last_reading
    if time.monotonic() - when > REUSE_SECONDS or room is None or need * 2 > room[0]:
        return None
    return room


def check_memory(path: str | Path, decompressed: int) -> None:
    """Raise TraceError naming `path` where its expected peak exceeds the memory available."""
    need = int(factor() * decompressed) + FIXED_BYTES
    room = _recent_room(need) or available_bytes()
    if room is None:
        heap.consider(need, None)
        return
    available, source = room
    if need <= available:
        heap.consider(need, available)  # low-memory mode where the input needs over half of it (tracekit.heap)
    else:
        raise TraceError(path, f"not enough memory: reading {_size(decompressed)} of trace JSON takes about "
                               f"{_size(need)} ({factor():g}x + {_size(FIXED_BYTES)}), and {_size(available)} is "
                               f"available ({source}); free memory or use a larger machine (set {AVAILABLE_ENV}=off "
                               "to try anyway)")


def _meminfo() -> tuple[int, str] | None:
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        kib = int(fields["MemAvailable"].split()[0]) + int(fields.get("SwapFree", "0 kB").split()[0])
    except (OSError, KeyError, ValueError, IndexError):
        return None
    return kib * 1024, "MemAvailable + SwapFree"


def _cgroup_room() -> tuple[int, str] | None:
    """Limit less working set (usage less inactive file cache, which the kernel reclaims first) of this process's
    cgroup (v2, else v1), where it has a limit. In a container the cgroup's own folder is the hierarchy's root."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, rel = parts
        if hierarchy == "0" and not controllers:  # v2
            root, files = _CGROUP, ("memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):  # v1
            root, files = _CGROUP / "memory", ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
        else:
            continue
        folder = root / rel.lstrip("/")
        got = _room(folder if folder.is_dir() else root, *files)
        if got is not None:
            return got, "the cgroup's memory limit less its working set"
    return None


def _room(folder: Path, limit_file: str, usage_file: str, inactive_key: str) -> int | None:
    try:
        limit_text = (folder / limit_file).read_text().strip()
        if limit_text == "max":
            return None
        limit, usage = int(limit_text), int((folder / usage_file).read_text().strip())
    except (OSError, ValueError):
        return None
    if limit >= 1 << 60:  # v1 writes "no limit" as a huge number
        return None
    try:
        stat = dict(line.split(" ", 1) for line in (folder / "memory.stat").read_text().splitlines() if " " in line)
        usage -= min(int(stat.get(inactive_key, 0)), usage)
    except (OSError, ValueError):
        pass
    return max(limit - usage, 0)


def _size(n: float) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} bytes"
