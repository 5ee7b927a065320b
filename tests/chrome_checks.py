"""Checks that a Chrome trace JSON document written by tracekit is clean.

Pure stdlib + orjson.  Public API:

* :func:`load_trace` - read a ``.json`` or gzip-compressed ``.json.gz`` trace.
* :func:`check_trace` - list of human-readable problems (empty when clean).
* :func:`track_events` - events of one (pid, tid) track, sorted by time.
* :func:`summarize` - counts by phase, processes, threads and flows.

Every per-event problem message starts with ``event <index>:`` where
``<index>`` is the position in ``traceEvents``.
"""

from __future__ import annotations

import bisect
import gzip
import math
import os
from collections import defaultdict
from typing import Any

import orjson

__all__ = ["ALLOWED_PH", "check_trace", "load_trace", "summarize", "track_events"]

#: Event phases that tracekit is allowed to write.
ALLOWED_PH = frozenset({"X", "i", "I", "M", "s", "t", "f", "C", "b", "e", "n"})
#: Flow (v1) phases.
FLOW_PH = frozenset({"s", "t", "f"})
#: Phases whose (pid, tid) does not need a ``thread_name`` metadata event.
NO_THREAD_NAME_PH = FLOW_PH | {"C", "M"}
#: Relative timestamps (microseconds) must stay below this bound.
MAX_TS_US = 1e12

_GZIP_MAGIC = b"\x1f\x8b"


def load_trace(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a trace file; gzip is detected by its magic bytes, not by name."""
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:2] == _GZIP_MAGIC:
        data = gzip.decompress(data)
    return orjson.loads(data)


def _is_int(x: Any) -> bool:
    """True for a real int (bool excluded)."""
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x: Any) -> bool:
    """True for a finite int or float (bool excluded)."""
    if isinstance(x, bool):
        return False
    if isinstance(x, int):
        return True
    return isinstance(x, float) and math.isfinite(x)


def _to_ns(us: int | float) -> int:
    """Microseconds (as written in the trace) to integer nanoseconds."""
    if isinstance(us, int):
        return us * 1000
    return round(us * 1000)


def _ns_exact(us: int | float) -> bool:
    """True when ``us`` is a whole number of nanoseconds, allowing float repr.

    Accepts values within 1e-3 ns of an integer, and also values that are
    exactly the float nearest to ``n / 1000`` (what writing ``ns / 1000``
    produces; needed for large ts where ``us * 1000`` itself is inexact).
    """
    if isinstance(us, int):
        return True
    scaled = us * 1000
    n = round(scaled)
    return abs(scaled - n) <= 1e-3 or us == n / 1000


def _check_time(i: int, ev: dict[str, Any], problems: list[str]) -> int | None:
    """Validate ``ts`` of one event; return it in ns when usable."""
    ph = ev.get("ph")
    if "ts" not in ev:
        if ph != "M":
            problems.append(f"event {i}: ph={ph!r} has no 'ts'")
        return None
    ts = ev["ts"]
    if not _is_num(ts):
        problems.append(f"event {i}: 'ts' must be a finite number, got {ts!r}")
        return None
    if ts < 0:
        problems.append(f"event {i}: 'ts' is negative ({ts!r})")
        return None
    ok = True
    if ts >= MAX_TS_US:
        problems.append(
            f"event {i}: 'ts' {ts!r} >= 1e12 us; looks absolute, must be relative to baseTimeNanoseconds"
        )
        ok = False
    if not _ns_exact(ts):
        problems.append(f"event {i}: 'ts' {ts!r} is not a whole number of ns")
    return _to_ns(ts) if ok else None


def check_trace(doc: Any) -> list[str]:
    """Return every problem found in ``doc`` (an empty list when clean)."""
    problems: list[str] = []
    if not isinstance(doc, dict):
        return [f"top level must be an object, got {type(doc).__name__}"]
    events = doc.get("traceEvents")
    if not isinstance(events, list):
        return ["top level has no 'traceEvents' list"]
    if "baseTimeNanoseconds" not in doc:
        problems.append("top level: missing 'baseTimeNanoseconds'")
    elif not _is_int(doc["baseTimeNanoseconds"]):
        problems.append(
            f"top level: 'baseTimeNanoseconds' must be an int, got {doc['baseTimeNanoseconds']!r}"
        )

    process_names: dict[int, int] = {}
    thread_names: dict[tuple[int, int], int] = {}
    used_pids: dict[int, int] = {}  # pid -> first event index using it
    used_threads: dict[tuple[int, int], int] = {}
    # track -> list of (ts_ns, -dur_ns, index)
    slices: dict[tuple[int, int], list[tuple[int, int, int]]] = defaultdict(list)
    # (cat, id) -> list of (ph, index)
    flows: dict[tuple[str, Any], list[tuple[str, int]]] = defaultdict(list)
    # (index, track, ts_ns) of flow events needing an enclosing slice
    bindings: list[tuple[int, tuple[int, int], int]] = []

    for i, ev in enumerate(events):
        if not isinstance(ev, dict):
            problems.append(f"event {i}: not an object ({type(ev).__name__})")
            continue
        ph = ev.get("ph")
        if ph not in ALLOWED_PH:
            problems.append(f"event {i}: ph {ph!r} is not allowed")
            continue

        pid, tid = ev.get("pid"), ev.get("tid")
        ids_ok = True
        for key, val in (("pid", pid), ("tid", tid)):
            if key not in ev:
                problems.append(f"event {i}: missing '{key}'")
                ids_ok = False
            elif not _is_int(val):
                problems.append(f"event {i}: '{key}' must be an int, got {val!r}")
                ids_ok = False

        if "name" in ev and not isinstance(ev["name"], str):
            problems.append(f"event {i}: 'name' must be a string, got {ev['name']!r}")
        args = ev.get("args")
        if "args" in ev and not isinstance(args, dict):
            problems.append(f"event {i}: 'args' must be an object, got {args!r}")
            args = None

        ts_ns = _check_time(i, ev, problems)

        if ph == "M":
            if ids_ok:
                _check_metadata(i, ev, args, pid, tid, process_names, thread_names, problems)
            continue

        if ids_ok:
            used_pids.setdefault(pid, i)
            if ph not in NO_THREAD_NAME_PH:
                used_threads.setdefault((pid, tid), i)

        if ph == "X":
            dur = ev.get("dur")
            if "dur" not in ev:
                problems.append(f"event {i}: X event has no 'dur'")
            elif not _is_num(dur):
                problems.append(f"event {i}: 'dur' must be a finite number, got {dur!r}")
            elif dur < 0:
                problems.append(f"event {i}: 'dur' is negative ({dur!r})")
            elif ids_ok and ts_ns is not None:
                slices[(pid, tid)].append((ts_ns, -_to_ns(dur), i))
        elif ph == "C":
            if not args:
                problems.append(f"event {i}: counter has no values in 'args'")
            else:
                for k, v in args.items():
                    if not _is_num(v):
                        problems.append(f"event {i}: counter value {k!r} must be a number, got {v!r}")
        elif ph in FLOW_PH:
            fid, cat = ev.get("id"), ev.get("cat")
            fid_ok = _is_int(fid) or isinstance(fid, str)
            if not fid_ok:
                problems.append(f"event {i}: flow 'id' must be an int or str, got {fid!r}")
            if not isinstance(cat, str):
                problems.append(f"event {i}: flow 'cat' must be a string, got {cat!r}")
            if fid_ok and isinstance(cat, str):
                flows[(cat, fid)].append((ph, i))
            if ids_ok and ts_ns is not None:
                bindings.append((i, (pid, tid), ts_ns))

    _check_nesting(slices, problems)
    _check_flows(flows, problems)
    _check_bindings(bindings, slices, problems)

    for pid, i in used_pids.items():
        if pid not in process_names:
            problems.append(f"event {i}: pid {pid} has no process_name metadata event")
    for (pid, tid), i in used_threads.items():
        if (pid, tid) not in thread_names:
            problems.append(f"event {i}: (pid {pid}, tid {tid}) has no thread_name metadata event")
    return problems


def _check_metadata(
    i: int,
    ev: dict[str, Any],
    args: dict[str, Any] | None,
    pid: int,
    tid: int,
    process_names: dict[int, int],
    thread_names: dict[tuple[int, int], int],
    problems: list[str],
) -> None:
    """Validate one M event and record process/thread names."""
    name = ev.get("name")
    if name in ("process_name", "thread_name"):
        if args is None or not isinstance(args.get("name"), str):
            problems.append(f"event {i}: {name} needs a string args.name")
        if name == "process_name":
            if pid in process_names:
                problems.append(
                    f"event {i}: duplicate process_name for pid {pid} (first at event {process_names[pid]})"
                )
            else:
                process_names[pid] = i
        else:
            key = (pid, tid)
            if key in thread_names:
                problems.append(
                    f"event {i}: duplicate thread_name for (pid {pid}, tid {tid}) "
                    f"(first at event {thread_names[key]})"
                )
            else:
                thread_names[key] = i
    elif name in ("process_sort_index", "thread_sort_index") and (
        args is None or not _is_int(args.get("sort_index"))
    ):
        problems.append(f"event {i}: {name} needs an int args.sort_index")


def _check_nesting(slices: dict[tuple[int, int], list[tuple[int, int, int]]], problems: list[str]) -> None:
    """Report partially overlapping X slices on each track (stack sweep)."""
    for (pid, tid), items in slices.items():
        items.sort()
        stack: list[tuple[int, int]] = []  # (end_ns, index)
        for ts, neg_dur, i in items:
            end = ts - neg_dur
            while stack and stack[-1][0] <= ts:
                stack.pop()
            if stack and end > stack[-1][0]:
                j = stack[-1][1]
                problems.append(
                    f"event {i}: X slice partly overlaps event {j} on "
                    f"(pid {pid}, tid {tid}): starts inside it but ends "
                    f"{end - stack[-1][0]} ns after it"
                )
                continue
            stack.append((end, i))


def _check_flows(flows: dict[tuple[str, Any], list[tuple[str, int]]], problems: list[str]) -> None:
    """Each flow (cat, id) needs exactly one ``s`` and at least one ``f``."""
    for (cat, fid), evs in flows.items():
        starts = [i for ph, i in evs if ph == "s"]
        ends = [i for ph, i in evs if ph == "f"]
        first = evs[0][1]
        label = f"flow cat={cat!r} id={fid!r}"
        if not starts:
            problems.append(f"event {first}: {label} has no start ('s') event")
        elif len(starts) > 1:
            problems.append(f"event {starts[1]}: {label} has {len(starts)} start events (events {starts})")
        if not ends:
            problems.append(f"event {first}: {label} has no end ('f') event")


def _check_bindings(
    bindings: list[tuple[int, tuple[int, int], int]],
    slices: dict[tuple[int, int], list[tuple[int, int, int]]],
    problems: list[str],
) -> None:
    """Each flow event needs an X slice on its track containing its ts."""
    # Per track: sorted slice starts and running max of ends, so a point p is
    # enclosed iff max(end for start <= p) >= p.
    index: dict[tuple[int, int], tuple[list[int], list[int]]] = {}
    for track, items in slices.items():
        items.sort()
        starts: list[int] = []
        max_ends: list[int] = []
        best = -1
        for ts, neg_dur, _ in items:
            best = max(best, ts - neg_dur)
            starts.append(ts)
            max_ends.append(best)
        index[track] = (starts, max_ends)
    for i, (pid, tid), ts in bindings:
        found = False
        if (pid, tid) in index:
            starts, max_ends = index[(pid, tid)]
            k = bisect.bisect_right(starts, ts)
            found = k > 0 and max_ends[k - 1] >= ts
        if not found:
            problems.append(
                f"event {i}: flow event at ts={ts / 1000:g} us has no enclosing "
                f"X slice on (pid {pid}, tid {tid})"
            )


def _sort_key(ev: dict[str, Any]) -> tuple[float, float]:
    """Sort by (ts, -dur); events without a numeric ts go first."""
    ts = ev.get("ts")
    dur = ev.get("dur")
    return (
        ts if _is_num(ts) else -math.inf,
        -dur if _is_num(dur) else 0,
    )


def track_events(doc: dict[str, Any], pid: int, tid: int, ph: str | None = None) -> list[dict[str, Any]]:
    """Events on track (pid, tid), sorted by (ts, -dur), stable.

    Metadata (M) events are left out unless ``ph`` names them.  ``ph``, when
    given, is a string of wanted phases, e.g. ``"X"`` or ``"Xi"``.
    """
    wanted = set(ph) if ph is not None else None

    def keep(ev: Any) -> bool:
        if not isinstance(ev, dict) or ev.get("pid") != pid or ev.get("tid") != tid:
            return False
        p = ev.get("ph")
        if not isinstance(p, str):
            return False
        return p in wanted if wanted is not None else p != "M"

    out = [ev for ev in doc.get("traceEvents", []) if keep(ev)]
    out.sort(key=_sort_key)
    return out


def summarize(doc: dict[str, Any]) -> dict[str, Any]:
    """Counts for tests.

    Returns ``events`` (total), ``by_ph`` ({ph: count}), ``processes`` and
    ``threads`` (distinct pids / (pid, tid) used by events or named by
    metadata; flow and counter events do not add threads), ``flows`` (distinct
    (cat, id) among s/t/f), ``slices`` (X count), ``process_names``
    ({pid: name}) and ``thread_names`` ({(pid, tid): name}).
    """
    by_ph: dict[str, int] = defaultdict(int)
    pids: set[Any] = set()
    threads: set[tuple[Any, Any]] = set()
    flows: set[tuple[Any, Any]] = set()
    process_names: dict[Any, str] = {}
    thread_names: dict[tuple[Any, Any], str] = {}
    events = doc.get("traceEvents", [])
    for ev in events:
        if not isinstance(ev, dict):
            continue
        ph = ev.get("ph")
        by_ph[str(ph)] += 1
        pid, tid = ev.get("pid"), ev.get("tid")
        args = ev.get("args") if isinstance(ev.get("args"), dict) else {}
        if ph == "M":
            if ev.get("name") == "process_name":
                pids.add(pid)
                process_names.setdefault(pid, args.get("name"))
            elif ev.get("name") == "thread_name":
                pids.add(pid)
                threads.add((pid, tid))
                thread_names.setdefault((pid, tid), args.get("name"))
            continue
        pids.add(pid)
        if ph in FLOW_PH:
            flows.add((ev.get("cat"), ev.get("id")))
        elif ph != "C":
            threads.add((pid, tid))
    return {
        "events": len(events),
        "by_ph": dict(by_ph),
        "processes": len(pids),
        "threads": len(threads),
        "flows": len(flows),
        "slices": by_ph.get("X", 0),
        "process_names": process_names,
        "thread_names": thread_names,
    }
