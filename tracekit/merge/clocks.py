"""Decide each file's clock offset: forced, the recorded time bases (verified from the events), or an
estimate from the events when the bases disagree or are missing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tracekit.errors import warn
from tracekit.merge.align import Estimate, Verification, best_offset, bounds, verify
from tracekit.merge.match import PAIR_KINDS, candidate_pairs, nearest_pairs, shifted, sides
from tracekit.merge.refuse import (
    MAX_BASE_GAP_NS,
    MIN_CONTAINED_SHARE,
    MIN_NESTED_PAIRS,
    gap_ns,
    likely_causes,
    overlaps,
    refuse,
)
from tracekit.table import SourceInfo

VERIFIED_SHARE = 0.9  # bases are trusted when this share of matched pairs nests properly


@dataclass
class FileClock:
    """The offset applied to one file, how it was found, and how well its events nest after it."""

    file: int
    path: str
    offset_ns: int
    method: str
    against: list[str] = field(default_factory=list)
    verification: Verification = field(default_factory=Verification)
    estimate: Estimate | None = None
    pairs: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "offset_ns": self.offset_ns, "method": self.method, "against": self.against,
            **self.verification.to_dict(),
            "estimate": None if self.estimate is None else {
                "offset_ns": self.estimate.offset_ns, "support": self.estimate.support,
                "stretch_ns": [self.estimate.low_ns, self.estimate.high_ns]},
        }


def file_priority(sources: list[SourceInfo]) -> list[int]:
    """Order in which files are aligned and win duplicates: torch files first, then input order."""
    return sorted(range(len(sources)), key=lambda i: (sources[i].format != "torch", i))


def _has_base(info: SourceInfo) -> bool:
    return not info.base_from.startswith("none")


def align_files(events: pd.DataFrame, sources: list[SourceInfo], track: np.ndarray, priority: list[int],
                forced: dict[int, int]) -> list[FileClock]:
    """Offsets for every file, in priority order; the first is the reference (offset 0 unless forced)."""
    sided = sides(events, track)
    spans = _spans(events)
    ref = priority[0]
    shift = {ref: forced.get(ref, 0)}
    clocks = [FileClock(ref, sources[ref].path, shift[ref],
                        "forced (--offset)" if ref in forced else "reference")]
    has_base = [_has_base(s) for s in sources]
    for f in priority[1:]:
        fixed = set(shift)
        names = [sources[i].path for i in sorted(fixed)]
        if f in forced:
            shift[f] = forced[f]
            matched = _matched(sided, f, fixed, shift)
            clocks.append(FileClock(f, sources[f].path, forced[f], "forced (--offset)", names, verify(matched), None,
                                    matched))
            continue
        clock = _decide(sided, f, fixed, shift, has_base[f] and all(has_base[i] for i in fixed))
        clock.path, clock.against = sources[f].path, names
        shift[f] = clock.offset_ns
        _check_one_run(clock, sources, spans, fixed, shift, has_base)
        if clock.offset_ns:
            warn(sources[f].path, f"{clock.method}: applied an offset of {clock.offset_ns} ns")
        clocks.append(clock)
    return clocks


def _decide(sided, f: int, fixed: set[int], shift: dict[int, int], bases: bool) -> FileClock:
    """The offset for file f: its time base when the events verify it, else the best estimate."""
    trial = {**shift, f: 0}
    matched = _matched(sided, f, fixed, trial)
    base_check = verify(matched)
    if bases and base_check.total and base_check.contained_share >= VERIFIED_SHARE:
        return FileClock(f, "", 0, "time bases, verified by events", [], base_check, None, matched)
    est = _estimate(sided, f, fixed, trial)
    if est is None:
        how = "time bases, not verified (no events to match)" if bases else "no time base, nothing to match"
        return FileClock(f, "", 0, how, [], base_check, None, matched)
    return _estimated(sided, f, fixed, trial, est, base_check, bases)


def _check_one_run(clock: FileClock, sources: list[SourceInfo], spans: pd.DataFrame, fixed: set[int],
                   shift: dict[int, int], has_base: list[bool]) -> None:
    """Raise when file `clock.file` does not fit the files already placed (see tracekit.merge.refuse)."""
    f, v = clock.file, clock.verification
    at = f"at offset {human_ns(clock.offset_ns)} ({clock.method})"
    bases = has_base[f] and all(has_base[i] for i in fixed)
    base_gap = gap_ns(spans, f, fixed, {i: 0 for i in (*fixed, f)}) if bases else 0
    if not overlaps(spans, f, fixed, shift):
        measured = ("no overlap in time" + (" and no events to match" if not v.total else "")
                    + f" {at}")
    elif v.total and v.contained_share < MIN_CONTAINED_SHARE:
        measured = (f"only {v.contained} of {v.total} matched event pairs ({v.contained_share:.1%}) nest {at}; "
                    f"one run needs at least {MIN_CONTAINED_SHARE:.0%}")
    elif clock.estimate is not None and clock.method.startswith("estimated") and v.contained < MIN_NESTED_PAIRS:
        measured = (f"the offset {human_ns(clock.offset_ns)} rests on only {v.contained} nested pairs; an "
                    f"estimate needs at least {MIN_NESTED_PAIRS}")
    elif clock.offset_ns and 0 < base_gap <= MAX_BASE_GAP_NS:
        measured = (f"their time bases put the recordings {human_ns(base_gap)[1:]} apart; the events alone would "
                    f"fit at offset {human_ns(clock.offset_ns)} ({v.contained} of {v.total} pairs nested), but the "
                    "same code running in both recordings (repeated steps) fits just as well, so they cannot tell")
    else:
        return
    fits_at = clock.offset_ns if clock.offset_ns and v.contained_share >= MIN_CONTAINED_SHARE else None
    raise refuse(clock.path, clock.against, measured, likely_causes(sources, spans, f, fixed, has_base), fits_at)


def _matched(sided, f: int, fixed: set[int], shift: dict[int, int]) -> dict[str, pd.DataFrame]:
    return {k: nearest_pairs(*sided[k], f, fixed, shift) for k in PAIR_KINDS}


def _estimate(sided, f: int, fixed: set[int], shift: dict[int, int]) -> Estimate | None:
    """The offset most pairs agree on (all same-key combinations, whatever their time)."""
    lows, highs = [], []
    for kind in PAIR_KINDS:
        outer, inner = (shifted(s, shift) for s in sided[kind])
        if kind == "same":
            inner = outer
        cands = candidate_pairs(outer, inner, f, fixed)
        if len(cands):
            lo, hi = bounds(cands, kind)
            lows.append(lo)
            highs.append(hi)
    if not lows:
        return None
    return best_offset(np.concatenate(lows), np.concatenate(highs))


def _estimated(sided, f: int, fixed: set[int], shift: dict[int, int], est: Estimate,
               base_check: Verification, bases: bool) -> FileClock:
    """Apply the estimate, centre it in the containment bounds of the pairs it nests, and keep it
    only when it nests more pairs than the bases did."""
    trial = {**shift, f: est.offset_ns}
    matched = _matched(sided, f, fixed, trial)
    check = verify(matched)
    offset = est.offset_ns
    if check.bounds_ns and check.bounds_ns[0] <= check.bounds_ns[1]:
        offset += (check.bounds_ns[0] + check.bounds_ns[1]) // 2
        trial[f] = offset
        matched = _matched(sided, f, fixed, trial)
        check = verify(matched)
    if bases and check.contained <= base_check.contained:
        return FileClock(f, "", 0, "time bases; events do not verify them and no better offset was found",
                         [], base_check, est, _matched(sided, f, fixed, {**shift, f: 0}))
    why = f"the time bases disagreed by {human_ns(offset)}" if bases else "no time base"
    method = f"estimated from {check.contained} nested pairs: {why}"
    return FileClock(f, "", offset, method, [], check, est, matched)


def human_ns(ns: int) -> str:
    """-4492800000000000 -> '-52.000 days'."""
    for unit, size in (("days", 86_400 * 10**9), ("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if abs(ns) >= size:
            return f"{ns / size:+.3f} {unit}"
    return f"{ns:+d} ns"


def _spans(events: pd.DataFrame) -> pd.DataFrame:
    timed = events[~events["ph"].isin(("M",))]
    ends = timed["ts_ns"] + timed["dur_ns"].clip(lower=0)
    frame = pd.DataFrame({"file": timed["source_index"].to_numpy(), "start": timed["ts_ns"].to_numpy(),
                          "end": ends.to_numpy()})
    return frame.groupby("file").agg(start=("start", "min"), end=("end", "max"))
