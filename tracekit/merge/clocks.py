"""Decide each file's clock offset: forced, the recorded time bases (verified from the events), or an
estimate from the events when the bases disagree or are missing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tracekit.errors import TraceError, warn
from tracekit.merge.align import Estimate, Verification, best_offset, bounds, verify
from tracekit.merge.match import PAIR_KINDS, candidate_pairs, nearest_pairs, shifted, sides
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
    for f in priority[1:]:
        fixed = set(shift)
        names = [sources[i].path for i in sorted(fixed)]
        if f in forced:
            shift[f] = forced[f]
            matched = _matched(sided, f, fixed, shift)
            clocks.append(FileClock(f, sources[f].path, forced[f], "forced (--offset)", names, verify(matched), None,
                                    matched))
            continue
        shift[f] = 0
        matched = _matched(sided, f, fixed, shift)
        base_check = verify(matched)
        bases = _has_base(sources[f]) and all(_has_base(sources[i]) for i in fixed)
        if bases and base_check.total and base_check.contained_share >= VERIFIED_SHARE:
            clocks.append(FileClock(f, sources[f].path, 0, "time bases, verified by events", names, base_check,
                                    None, matched))
            continue
        est = _estimate(sided, f, fixed, shift)
        if est is None:
            if not _overlaps(spans, f, fixed, shift):
                raise TraceError(sources[f].path, (
                    f"no overlap in time with {', '.join(names)} and no events to match: they do not look "
                    f"like one run. If they are, give the offset by hand: --offset {sources[f].path}=NS"))
            how = "time bases, not verified (no events to match)" if bases else "no time base, nothing to match"
            clocks.append(FileClock(f, sources[f].path, 0, how, names, base_check, None, matched))
            continue
        clock = _estimated(sided, f, fixed, shift, est, base_check, bases)
        shift[f] = clock.offset_ns
        clock.path, clock.against = sources[f].path, names
        if clock.offset_ns:
            warn(sources[f].path, f"{clock.method}: applied an offset of {clock.offset_ns} ns")
        clocks.append(clock)
    return clocks


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


def _overlaps(spans: pd.DataFrame, f: int, fixed: set[int], shift: dict[int, int]) -> bool:
    if f not in spans.index:
        return True
    start, end = spans.loc[f, "start"] + shift[f], spans.loc[f, "end"] + shift[f]
    for i in fixed:
        if i in spans.index and start <= spans.loc[i, "end"] + shift[i] and spans.loc[i, "start"] + shift[i] <= end:
            return True
    return False
