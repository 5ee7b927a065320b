"""Refuse to merge files that do not look like one run, and name the likely cause from the evidence.

A file is merged only when, at the offset chosen for it (unless forced with `--offset`):
- its time range overlaps the files already placed, and
- where all files have time bases and those put the ranges apart by less than MAX_BASE_GAP_NS (one
  clock, a pause between recordings), the offset is the bases' own: events that fit at another offset
  then are as well explained by the same code running in both recordings (repeated steps), and
- of its events matched to theirs (nearest start, same key), at least MIN_CONTAINED_SHARE nest
  properly, and an estimated offset rests on at least MIN_NESTED_PAIRS nested pairs.
Otherwise the merge stops (exit 2) and the message says what was measured and, where the
evidence shows it, why: the files were recorded one after the other (their time bases put them
apart), or torch.profiler's with_stack/with_modules hook displaced VizTracer (the VizTracer file has
'B' events without 'E' and ends where the profiler started).
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from tracekit.errors import TraceError
from tracekit.table import SourceInfo

MIN_CONTAINED_SHARE = 0.9
MIN_NESTED_PAIRS = 10
MAX_BASE_GAP_NS = 3_600 * 10**9  # time bases this far apart are taken for different clocks, not a pause
HOOK_END_WINDOW_NS = 2_000_000  # a displaced VizTracer file ends this close to the profiler's start
_UNCLOSED_B = "'B' events have no matching 'E'"


def human(ns: int) -> str:
    """12_345_678 -> '12.346 ms' (unsigned)."""
    for unit, size in (("days", 86_400 * 10**9), ("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if abs(ns) >= size:
            return f"{abs(ns) / size:.3f} {unit}"
    return f"{abs(ns)} ns"


def gap_ns(spans: pd.DataFrame, f: int, fixed: Iterable[int], shift: dict[int, int]) -> int:
    """Time between file f's event range and the nearest fixed file's range (0 when they overlap)."""
    if f not in spans.index:
        return 0
    start, end = spans.loc[f, "start"] + shift.get(f, 0), spans.loc[f, "end"] + shift.get(f, 0)
    gaps = [max(int(spans.loc[i, "start"] + shift.get(i, 0) - end),
                int(start - spans.loc[i, "end"] - shift.get(i, 0)), 0) for i in fixed if i in spans.index]
    return min(gaps) if gaps else 0


def overlaps(spans: pd.DataFrame, f: int, fixed: Iterable[int], shift: dict[int, int]) -> bool:
    """Whether file f's [first, last] event range meets any fixed file's range (after `shift`)."""
    if f not in spans.index:
        return True
    start, end = spans.loc[f, "start"] + shift.get(f, 0), spans.loc[f, "end"] + shift.get(f, 0)
    return any(i in spans.index and start <= spans.loc[i, "end"] + shift.get(i, 0)
               and spans.loc[i, "start"] + shift.get(i, 0) <= end for i in fixed)


def unclosed_begins(info: SourceInfo) -> int:
    """How many 'B' events of the file had no 'E' (from the reader's damage notes)."""
    for note in info.damage:
        if _UNCLOSED_B in note:
            head = note.split(" ", 1)[0]
            return int(head) if head.isdigit() else 1
    return 0


def likely_causes(sources: list[SourceInfo], spans: pd.DataFrame, f: int, fixed: Iterable[int],
                  has_base: list[bool]) -> list[str]:
    """Causes the evidence shows for file f not fitting the fixed files (at their recorded time bases)."""
    causes = []
    fixed = [i for i in fixed if i in spans.index]
    if f not in spans.index or not fixed:
        return causes
    start, end = int(spans.loc[f, "start"]), int(spans.loc[f, "end"])
    name = sources[f].path
    for i in fixed:
        if not (has_base[f] and has_base[i]):
            continue
        o_start, o_end = int(spans.loc[i, "start"]), int(spans.loc[i, "end"])
        other = sources[i].path
        viz, prof = (f, i) if sources[f].format == "viztracer" else (i, f)
        unclosed = unclosed_begins(sources[viz]) if sources[prof].format == "torch" else 0
        viz_end = end if viz == f else o_end
        prof_start = o_start if viz == f else start
        if unclosed and sources[viz].format == "viztracer" and abs(viz_end - prof_start) <= HOOK_END_WINDOW_NS:
            causes.append(
                f"{sources[viz].path} has {unclosed} 'B' events without 'E' and its recording stops "
                f"{human(viz_end - prof_start)} from where {sources[prof].path} starts: torch.profiler's "
                "with_stack/with_modules hook displaced VizTracer (on Python 3.11+ they share one per-thread "
                "profiling hook and the one started last wins). Record the pair with the profiler's "
                "with_stack=False and with_modules=False, or in separate runs (README: Merge)")
        elif start > o_end:
            causes.append(f"at the recorded time bases {name} starts {human(start - o_end)} after {other} ended: "
                          "they were recorded one after the other, not at the same time")
        elif end < o_start:
            causes.append(f"at the recorded time bases {name} ended {human(o_start - end)} before {other} "
                          "started: they were recorded one after the other, not at the same time")
    return causes


def refuse(path: str, against: list[str], measured: str, causes: list[str], fits_at: int | None = None) -> TraceError:
    """The error for a file that does not fit: what was measured, the likely cause, the way to force."""
    why = ("; likely cause: " + "; ".join(causes)) if causes else ""
    value = "NS" if fits_at is None else str(fits_at)
    return TraceError(path, (
        f"does not look like the same run as {', '.join(against)}: {measured}{why}. Not merged. "
        f"If they are one run, give the offset by hand: --offset {path}={value}"))
