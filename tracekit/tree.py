"""Per-track call tree: parent row, depth, and the display lane that keeps nesting proper."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tracekit.table import NO_ROW, column, few_group_codes, in_sorted, is_coded, is_in

if TYPE_CHECKING:
    import pandas as pd

    from tracekit.columns import Columns

# When two events start and end together, the one with the lower rank is the outer one.
_NEST_RANK = {
    "step": 0, "annotation": 1, "module": 2, "python": 3, "collective": 4, "cpu_op": 5,
    "runtime": 6, "kernel": 7, "memcpy": 7, "memset": 7, "memory": 8, "instant": 8, "other": 9,
}
_SPAN_PH = ("X", "i", "I")


@dataclass(frozen=True)
class CallTree:
    """parent (row or -1), depth (-1 for rows outside any track), lane (0 = main track)."""

    parent: np.ndarray
    depth: np.ndarray
    lane: np.ndarray

    @property
    def overlapped(self) -> int:
        return int((self.lane > 0).sum())


def track_codes(events: pd.DataFrame | Columns) -> np.ndarray:
    """One integer per (source file, pid, tid) track."""
    code, _ = few_group_codes(column(events, "source_index"), column(events, "pid"), column(events, "tid"))
    return code


def build_call_tree(events: pd.DataFrame | Columns) -> CallTree:
    """Nest the span events of every track by time.

    Events are taken in (start, -duration) order. An event that starts inside the innermost
    open event but ends after it partly overlaps: it keeps the enclosing event as parent but is
    placed on an extra display lane (1, 2, ...) where it nests properly.
    """
    n = len(events)
    parent = np.full(n, NO_ROW, dtype=np.int64)
    depth = np.full(n, -1, dtype=np.int32)
    lane = np.zeros(n, dtype=np.int16)
    ph = column(events, "ph")
    is_span = is_in(ph, _SPAN_PH) if is_coded(ph) else events["ph"].isin(_SPAN_PH).to_numpy()
    rows = np.flatnonzero(is_span)
    if not len(rows):
        return CallTree(parent, depth, lane)
    track = track_codes(events)[rows]
    start = column(events, "ts_ns")[rows]
    dur = np.maximum(column(events, "dur_ns")[rows], 0)
    rank = _nest_rank(events)[rows]
    order = np.lexsort((rows, rank, -dur, start, track))
    del rank
    end = start + dur
    del dur
    rows, track, start, end = rows[order], track[order], start[order], end[order]
    del order
    tangled = _nest_vectorized(rows, track, start, end, parent, depth)
    del track  # (the blocks stand for the tracks from here: 8 B an event less through the untangling)
    if tangled is not None:
        # Blocks with partial overlaps: numpy again without the events that overlap partly, where they are few,
        ends = _Ends(column(events, "ts_ns"), column(events, "dur_ns"))
        tangled = _untangle(rows, start, end, *tangled, parent, depth, lane, ends)
    if tangled is not None:
        # else the exact stack walk, on those blocks only.
        where, block = tangled
        parent[rows[where]] = NO_ROW
        _nest(rows[where], block, start[where], end[where], parent, depth, lane)
    return CallTree(parent, depth, lane)


def _nest_rank(events: pd.DataFrame | Columns) -> np.ndarray:
    """_NEST_RANK of every row's kind (9 for other kinds and missing ones), looked up once per category."""
    kind = column(events, "kind")
    if is_coded(kind):
        per_code = np.array([_NEST_RANK.get(k, 9) for k in kind.categories] + [9], dtype=np.float64)
        return per_code[kind.codes]
    return events["kind"].map(_NEST_RANK).astype("float").fillna(9).to_numpy()


def _nest_vectorized(rows, track, start, end, parent, depth) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The stack walk of `_nest`, in numpy, for the blocks of events that nest properly.

    Events are sorted by (track, start, -duration, ...). A block starts at an event that starts
    when every earlier event of its track has ended, so blocks are independent. In a block
    where everything nests, the parent of an event is the innermost event still open at its
    start: the last earlier one with one less open event around it. An event is open at time
    s while its end is after s (an event ending exactly at s is closed), as in `_nest`.

    Writes parent and depth of the proper blocks; returns (positions, block ids, does not nest) of the events
    in the other blocks, which `_nest` must place, or None if there are none.
    """
    n = len(rows)
    # Temporaries are freed as soon as they are used: at n events each is 8n bytes, and holding them all
    # at once cost ~170 bytes per event (0.9x the raw JSON at 0.5 GB, the peak of `tracekit info`).
    pos = np.arange(n)
    new_track = np.ones(n, dtype=bool)
    new_track[1:] = track[1:] != track[:-1]
    track_begin = np.maximum.accumulate(np.where(new_track, pos, 0))
    # (track, time) as one int64 key: the times offset from the earliest where the span of times fits
    # (ns over a run: no sort needed), else their dense ranks
    low = int(min(start.min(), end.min())) if n else 0
    width = (int(max(start.max(), end.max())) - low + 1) if n else 1
    if width * (int(track.max()) + 1 if n else 1) < (1 << 62):
        key_end = track * width + (end - low)
        key_end.sort()
        key_start = track * width + (start - low)
    else:
        times, inverse = np.unique(np.concatenate([start, end]), return_inverse=True)
        width = len(times) + 1
        del times
        inverse = inverse.ravel()
        key_end = track * width + inverse[n:]
        key_end.sort()
        key_start = track * width + inverse[:n]
        del inverse
    # Open events at each start = earlier events of the track that end after it.
    ended = np.searchsorted(key_end, key_start, side="right")
    del key_start, key_end
    ended -= track_begin
    # ... minus the zero-length events at the same start that come later (they sort last).
    new_start = new_track
    new_start[1:] |= start[1:] != start[:-1]
    group = np.cumsum(new_start) - 1
    group_end = np.append(np.flatnonzero(new_start)[1:], n)[group]
    del new_start, new_track
    # (counted at the zero-length events only, and combined in place: no float weights nor three temporaries of n)
    zero_len = np.bincount(group[end == start], minlength=group[-1] + 1 if n else 0)
    later_zero = zero_len[group]
    del group, zero_len
    np.subtract(group_end, later_zero, out=later_zero)
    np.maximum(pos, later_zero, out=later_zero)
    np.subtract(group_end, later_zero, out=later_zero)  # group_end - max(pos, group_end - zero_len[group])
    del group_end
    open_ = (pos - track_begin) - (ended - later_zero)
    del track_begin, ended, later_zero
    # Blocks: an event with nothing open starts one.
    block = np.cumsum(open_ == 0) - 1
    # Parent candidate: the last earlier event with one less open.
    order = np.lexsort((pos, open_))
    keys = open_[order] * n + pos[order]
    at = np.searchsorted(keys, (open_ - 1) * n + pos, side="left") - 1
    del keys, pos
    cand = order[np.maximum(at, 0)]
    del order
    inner = open_ > 0
    ok = ~inner | ((at >= 0) & (open_[cand] == open_ - 1) & (block[cand] == block)
                   & (end[cand] > start) & (end <= end[cand]))
    del at
    # (a mask per block, not np.unique + np.isin: numpy's unique imports numpy.ma, ~20 ms of `info`'s start)
    low = int(block.min()) if n else 0
    is_bad = np.zeros(int(block.max()) - low + 1 if n else 0, dtype=bool)
    is_bad[block[~ok] - low] = True
    tangled = is_bad[block - low]
    good = ~tangled
    depth[rows[good]] = open_[good]
    has_parent = good & inner
    parent[rows[has_parent]] = rows[cand[has_parent]]
    if not tangled.any():
        return None
    where = np.flatnonzero(tangled)
    return where, block[where], ~ok[where]


# `_untangle` gives up (the walk places the blocks) past this many rounds, events guessed to overlap partly, or
# ancestors climbed for one of them.
_ROUNDS = 6
_MAX_GUESSED = 4096
_MAX_CLIMB = 64


def _untangle(rows, start, end, where, block, bad, parent, depth, lane, ends: _Ends
              ) -> tuple[np.ndarray, np.ndarray] | None:
    """Place the tangled blocks (`where`, `block`: positions in the sorted span rows and block ids; `bad`: the
    events that did not nest) in numpy where few events overlap partly; returns (positions, block ids) of the
    blocks left to the walk, or None.

    The walk keeps lane 0 (the call tree) as a stack of the events that nest; an event that starts inside the
    innermost open one and ends after it goes to an extra lane and never onto that stack. So, given the right
    set X of such events, the others nest properly (`_nest_vectorized` places them) and each event of X gets
    the innermost open lane-0 event at its start as parent. X is guessed (first: the events that did not nest)
    and checked: a block is placed once its events outside X all nest and every event of X starts inside an
    open lane-0 event that it outlasts; until then, events that did not nest join X and those of X that do
    nest leave it. What is placed is what the walk gives, event by event in order (each event's fate depends on
    the earlier ones only); blocks still unsettled after a few rounds are left to the walk.
    """
    guess = bad.copy()
    for _ in range(_ROUNDS):
        if int(guess.sum()) > _MAX_GUESSED:
            break
        nest = ~guess
        at = where[nest]
        nest_rows, nest_start, nest_end = rows[at], start[at], end[at]
        del at
        again = _nest_vectorized(nest_rows, block[nest], nest_start, nest_end, parent, depth)
        del nest_rows, nest_start, nest_end
        unsettled = np.zeros(len(where), dtype=bool)
        if again is not None:
            in_nest = np.flatnonzero(nest)
            guess[in_nest[again[0][again[2]]]] = True  # did not nest: guessed to overlap partly
            unsettled = in_sorted(block[in_nest[again[0]]], block)  # (blocks ascend)
            del in_nest
        # (what a round leaves is let go before the next: held into it, ~40 B an event on partly overlapping traces)
        del again, nest
        # the last lane-0 event before each (events taken back onto lane 0 below are later than these)
        before = np.maximum.accumulate(np.where(guess, -1, np.arange(len(where))))
        moved = -1
        for i in np.flatnonzero(guess & ~unsettled).tolist():
            k = max(int(before[i]), moved)
            # (a block's first event is never guessed: nothing is open at its start)
            placed = None if k < 0 or block[k] != block[i] else _place_guessed(i, k, rows, start, end, where,
                                                                                parent, depth, ends)
            if placed is None:  # deep nesting: the walk is cheaper
                return where, block
            if placed:
                continue
            guess[i], moved = False, i  # it nests after all
            if unsettled[i] or not _leaf(i, start, end, where, block):
                unsettled |= block == block[i]
        del before
        settled = ~unsettled
        _extra_lanes(rows, start, end, where[settled & guess], block[settled & guess], depth, lane)
        if not unsettled.any():
            return None
        where, block, guess = where[unsettled], block[unsettled], guess[unsettled]
    return where, block


class _Ends:
    """A row's end time, its start plus its duration (negative: 0), read off the table's columns at that row: what
    `end` holds of the sorted spans, by row, without an array of every row (8 B a row through the untangling)."""

    __slots__ = ("dur", "ts")

    def __init__(self, ts: np.ndarray, dur: np.ndarray) -> None:
        self.ts, self.dur = ts, dur

    def __getitem__(self, row: int) -> int:
        return int(self.ts[row]) + max(int(self.dur[row]), 0)


def _place_guessed(i: int, k: int, rows, start, end, where, parent, depth, end_of: _Ends) -> bool | None:
    """Parent and depth of the guessed event where[i] (the innermost lane-0 event open at its start: where[k],
    the last earlier lane-0 event of its block, or the nearest of its ancestors still open); whether it
    overlaps that one partly (True) or nests in it or has none (False: parent and depth are then those of
    lane 0). None where the climb to the open ancestor passes _MAX_CLIMB events."""
    s, e = int(start[where[i]]), int(end[where[i]])
    row = int(rows[where[k]])
    for _ in range(_MAX_CLIMB):
        if row == NO_ROW or int(end_of[row]) > s:
            break
        row = int(parent[row])
    else:
        return None
    this = rows[where[i]]
    parent[this] = row
    depth[this] = 0 if row == NO_ROW else depth[row] + 1
    return row != NO_ROW and e > int(end_of[row])


def _leaf(i: int, start, end, where, block) -> bool:
    """Whether where[i] ends before the next event of its block starts: then it holds no event, and taking it
    onto lane 0 (as `_place_guessed` placed it) changes the place of no other event."""
    return i + 1 == len(where) or block[i + 1] != block[i] or start[where[i + 1]] >= end[where[i]]


def _extra_lanes(rows, start, end, where, block, depth, lane) -> None:
    """The display lanes of the events that overlap partly (in order, first fit per block, as `_nest` does)."""
    current, extra = None, _ExtraLanes()
    for p, b in zip(where.tolist(), block.tolist()):
        if b != current:
            current, extra = b, _ExtraLanes()
        row = int(rows[p])
        lane[row] = min(extra.place(int(start[p]), int(end[p]), row, int(depth[row])), _MAX_LANE)


def _nest(rows, track, start, end, parent, depth, lane) -> None:
    """The stack walk over events sorted by track, then start.

    Lane 0 holds the call tree. An event that does not nest there goes to the first extra lane
    where it nests (first fit); `_ExtraLanes` finds that lane in O(log lanes), so a track where
    every event partly overlaps the last stays O(n log n).
    """
    main: list[tuple[int, int, int]] = []  # (end, row, depth)
    extra = _ExtraLanes()
    current = None
    rows_l, track_l, start_l, end_l = rows.tolist(), track.tolist(), start.tolist(), end.tolist()
    for row, trk, s, e in zip(rows_l, track_l, start_l, end_l):
        if trk != current:
            current, main, extra = trk, [], _ExtraLanes()
        while main and main[-1][0] <= s:
            main.pop()
        if main:
            parent[row] = main[-1][1]
            d = main[-1][2] + 1
        else:
            d = 0
        depth[row] = d
        if not main or e <= main[-1][0]:
            main.append((e, row, d))
            lane[row] = 0
        else:
            # Display lanes are int16: beyond its range, events share the last lane.
            lane[row] = min(extra.place(s, e, row, d), _MAX_LANE)


_MAX_LANE = int(np.iinfo(np.int16).max)
_NONE = float("inf")


class _ExtraLanes:
    """Lanes 1, 2, ... as stacks of (end, row, depth), with a segment tree over the lanes' top ends.

    A lane accepts an event (s, e) once its ended entries (end <= s) are popped, if it is then empty
    or its top ends at or after e. A lane whose stored top end is in (s, e) cannot accept; so the
    first lane to look at is the first whose stored top end is >= e or <= s (unused lanes count as
    empty: the first of them is the new lane). The tree keeps the min and max top end per subtree.
    """

    def __init__(self) -> None:
        self.stacks: list[list[tuple[int, int, int]]] = []
        self.size = 4
        self.low = [_NONE] * (2 * self.size)
        self.high = [_NONE] * (2 * self.size)

    def place(self, s: int, e: int, row: int, d: int) -> int:
        """Push the event on the first lane that accepts it; returns the lane (1-based)."""
        low, high = self.low, self.high
        while True:
            if not (high[1] >= e or low[1] <= s):
                self._grow()
                low, high = self.low, self.high
                continue
            node = 1
            while node < self.size:
                node *= 2
                if not (high[node] >= e or low[node] <= s):
                    node += 1
            k = node - self.size
            while len(self.stacks) <= k:
                self.stacks.append([])
            stack = self.stacks[k]
            if stack and stack[-1][0] <= s:
                while stack and stack[-1][0] <= s:
                    stack.pop()
                self._set(k, stack[-1][0] if stack else _NONE)
                continue
            stack.append((e, row, d))
            self._set(k, e)
            return k + 1

    def _set(self, k: int, value: float) -> None:
        low, high = self.low, self.high
        node = k + self.size
        low[node] = high[node] = value
        node //= 2
        while node:
            low[node] = min(low[2 * node], low[2 * node + 1])
            high[node] = max(high[2 * node], high[2 * node + 1])
            node //= 2

    def _grow(self) -> None:
        old = self.size
        self.size *= 2
        leaves_low = self.low[old:] + [_NONE] * old
        leaves_high = self.high[old:] + [_NONE] * old
        self.low = [_NONE] * self.size + leaves_low
        self.high = [_NONE] * self.size + leaves_high
        for node in range(self.size - 1, 0, -1):
            self.low[node] = min(self.low[2 * node], self.low[2 * node + 1])
            self.high[node] = max(self.high[2 * node], self.high[2 * node + 1])
