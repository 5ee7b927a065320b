"""Clock offsets between files from paired events: containment bounds, a robust estimate, residuals.

An offset `d` (ns) is added to every timestamp of the moving file. A pair stays properly nested for
every `d` in an interval (its containment bounds); the estimate is the middle of the stretch of `d`
covered by the most pairs, so mismatched pairs cannot pull it (unlike a mean).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tracekit.merge.match import SAME, SAME_TOLERANCE_NS


def bounds(pairs: pd.DataFrame, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Per pair, the offsets [lo, hi] for the moving file that keep inner inside outer."""
    so, eo = pairs["start_o"].to_numpy(np.int64), pairs["end_o"].to_numpy(np.int64)
    si, ei = pairs["start_i"].to_numpy(np.int64), pairs["end_i"].to_numpy(np.int64)
    outer_moves = pairs["moving_is_outer"].to_numpy(bool)
    lo = np.where(outer_moves, ei - eo, so - si)
    hi = np.where(outer_moves, si - so, eo - ei)
    if kind == SAME:
        lo, hi = lo - SAME_TOLERANCE_NS, hi + SAME_TOLERANCE_NS
    return lo, hi


@dataclass(frozen=True)
class Estimate:
    """The best-supported offset: how many pairs allow it, and the stretch [low, high] they allow."""

    offset_ns: int
    support: int
    low_ns: int
    high_ns: int


def best_offset(lo: np.ndarray, hi: np.ndarray) -> Estimate | None:
    """Sweep the intervals; the middle of the stretch covered by the most of them (ties: nearest 0)."""
    ok = lo <= hi
    lo, hi = lo[ok], hi[ok]
    if not len(lo):
        return None
    pos = np.concatenate([lo, hi + 1])
    delta = np.concatenate([np.ones(len(lo), np.int64), -np.ones(len(hi), np.int64)])
    order = np.lexsort((delta, pos))  # at equal positions apply -1 first: [lo, hi] is closed
    pos, cover = pos[order], np.cumsum(delta[order])
    best = cover.max()
    # a stretch starts where cover reaches best and runs to the next position
    starts = np.flatnonzero((cover == best) & np.append(pos[1:] != pos[:-1], True))
    ends = np.minimum(starts + 1, len(pos) - 1)
    low, high = pos[starts], pos[ends] - 1
    mid = (low + high) // 2
    k = int(np.argmin(np.abs(mid)))
    return Estimate(int(mid[k]), int(best), int(low[k]), int(high[k]))


def support_at(lo: np.ndarray, hi: np.ndarray, offset: int) -> int:
    """How many intervals contain `offset`."""
    return int(((lo <= offset) & (offset <= hi)).sum())


@dataclass
class Verification:
    """How well a file's events nest in another's at the offset used (nearest-start matching)."""

    pairs: dict[str, int] = field(default_factory=dict)
    contained: int = 0
    residual_p50_ns: int | None = None
    residual_p95_ns: int | None = None
    bounds_ns: list[int] | None = None  # extra offset for the moving file keeping every contained pair nested

    @property
    def total(self) -> int:
        return sum(self.pairs.values())

    @property
    def contained_share(self) -> float:
        return self.contained / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_pairs": self.total, "contained_share": round(self.contained_share, 6)}


def verify(matched: dict[str, pd.DataFrame]) -> Verification:
    """Containment and residuals of pairs matched on aligned times (start_* and end_* already shifted).

    The residual of a pair is |inner start - outer start|: the dispatch delay plus any clock error.
    """
    out = Verification()
    resid, lows, highs = [], [], []
    for kind, pairs in matched.items():
        if pairs.empty:
            continue
        out.pairs[kind] = len(pairs)
        lo, hi = bounds(pairs, kind)  # offsets, relative to the one used, that keep each pair nested
        inside = (lo <= 0) & (hi >= 0)
        out.contained += int(inside.sum())
        resid.append(np.abs(pairs["start_i"].to_numpy(np.int64) - pairs["start_o"].to_numpy(np.int64)))
        lows.append(lo[inside])
        highs.append(hi[inside])
    if resid:
        r = np.concatenate(resid)
        out.residual_p50_ns = int(np.percentile(r, 50))
        out.residual_p95_ns = int(np.percentile(r, 95))
    low = np.concatenate(lows) if lows else np.array([], np.int64)
    if len(low):
        out.bounds_ns = [int(low.max()), int(np.concatenate(highs).min())]
    return out
