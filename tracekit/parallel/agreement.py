"""Evidence 4 of group inference (tracekit.parallel.call_groups): the labelled calls of each pair of members of a
group (ring neighbours in large groups) must be the same sequence of collectives and sizes, pairwise overlapping in
time; a shorter sequence that matches one contiguous stretch of the longer one withdraws only the calls left over
at the window's edges.

The check is swept over ONE array: the labelled calls' positions sorted by (group, rank, start). Each (group, rank)
sequence is gathered from the call arrays when a pair needs it (signature codes, starts, ends of a few calls at a
time), so what the check holds beyond the inference's arrays is 8 bytes a labelled call, where five sorted copies
(codes, starts, ends, rows, keys) held ~40 B a call, plus the sort's transients.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from tracekit.parallel.call_codes import CallArrays, first_appearance
from tracekit.parallel.candidates import Candidate, members_to_check, same_code

Windows = tuple[dict[int, int], dict[int, int]]


def rank_windows(calls: CallArrays) -> Windows:
    """({rank: its first call's start}, {rank: its last call's end}) over every call of the table."""
    first = pd.Series(calls.start).groupby(calls.rank).min().to_dict()
    last = pd.Series(calls.end).groupby(calls.rank).max().to_dict()
    return first, last


def disagreements(calls: CallArrays, label: np.ndarray, groups: Sequence[Candidate], tolerance_ns: int,
                  windows: Windows | None = None) -> tuple[dict[int, str], dict[int, str]]:
    """Evidence 4. Returns (groups whose labelled calls differ between two members -> reason, calls at the edge
    of one member's window whose counterpart lies outside the other member's traced window -> reason). `label`:
    each call's group index (-1: none); `windows`: rank_windows(calls), computed here when not given."""
    bad: dict[int, str] = {}
    edge: dict[int, str] = {}
    first, last = rank_windows(calls) if windows is None else windows
    rows = np.flatnonzero(label >= 0)
    is_p2p = calls.p2p[calls.code[rows]] if len(rows) else np.zeros(0, dtype=bool)
    p2p = rows[is_p2p]
    seqs = _Sequences.picked(calls, rows[~is_p2p], label)
    del rows, is_p2p
    said: dict[tuple[int, int], str] = {}  # one edge reason per (group, rank named): calls share it
    for gi in seqs.labels():
        group = groups[gi]
        for rank in group.ranks:
            mine = seqs.get(gi, rank)
            for m in members_to_check(group, rank):
                why, extra = compare(mine, seqs.get(gi, m), tolerance_ns,
                                     windows=((first[rank], last[rank]), (first.get(m, 0), last.get(m, 0))))
                if why and gi not in bad:
                    bad[gi] = f"{group.label}: rank {rank} vs rank {m}: {why}"
                for row in extra.tolist():
                    named = m if row in mine[3] else rank
                    if (gi, named) not in said:
                        said[(gi, named)] = (f"undecided: matched in {group.label}, but its counterpart on rank "
                                             f"{named} lies outside that rank's traced window")
                    edge[row] = said[(gi, named)]
    del seqs
    p2p = p2p[np.lexsort((calls.start[p2p], calls.rank[p2p], label[p2p]))]  # stable: by label, rank, start
    by_key = {}  # (group, rank, signature) -> its rows, keys in order of first appearance
    for part in same_code(first_appearance(label[p2p], calls.rank[p2p], calls.code[p2p])):
        rows_of = p2p[part]
        by_key[(int(label[rows_of[0]]), int(calls.rank[rows_of[0]]), int(calls.code[rows_of[0]]))] = rows_of
    none = np.zeros(0, dtype=np.int64)
    for (gi, rank, code), sends in by_key.items():
        sig = calls.sigs[code]
        if sig[0] != "send":
            continue
        group = groups[gi]
        other = group.ranks[sig[2]]
        recv = calls.code_of.get(("recv", sig[1], group.position[rank]))
        recvs = by_key.get((gi, other, recv), none) if recv is not None else none
        why, _extra = compare((None, calls.start[sends], calls.end[sends], sends),
                              (None, calls.start[recvs], calls.end[recvs], recvs), tolerance_ns, trim=False)
        if why and gi not in bad:
            bad[gi] = f"{group.label}: sends rank {rank} -> {other} vs its receives: {why}"
    return bad, edge


class _Sequences:
    """The labelled non-p2p calls of each (group, rank) in start order, as what `disagreements` compares: (sig
    codes, starts, ends, rows). The calls sit in one order sorted by (label, rank, start); each key's bounds are
    found by a binary search over one int64 per key (label x rank span + rank). Built from a frame or arrays so
    sorted (`_Sequences(frame)`, `of`: copies), or from the call arrays and the labelled calls' positions
    (`picked`: each sequence gathered from the arrays when asked for)."""

    def __init__(self, frame: pd.DataFrame | None):
        self.pick: np.ndarray | None = None  # positions in the source arrays of the sorted calls (None: in order)
        if frame is not None:
            self._build(frame["_code"].to_numpy(), frame["start_ns"].to_numpy(), frame["_end"].to_numpy(),
                        frame.index.to_numpy(), frame["_label"].to_numpy(dtype=np.int64),
                        frame["rank"].to_numpy(dtype=np.int64))

    @classmethod
    def of(cls, codes: np.ndarray, starts: np.ndarray, ends: np.ndarray, rows: np.ndarray, label: np.ndarray,
           rank: np.ndarray) -> _Sequences:
        """The sequences of calls given as arrays sorted by (label, rank, start)."""
        seqs = cls(None)
        seqs._build(codes, starts, ends, rows, label.astype(np.int64, copy=False), rank.astype(np.int64, copy=False))
        return seqs

    @classmethod
    def picked(cls, calls: CallArrays, rows: np.ndarray, label: np.ndarray) -> _Sequences:
        """The sequences of the calls at positions `rows` (ascending) of the call arrays, `label` giving each
        call's group: the positions sorted by (label, rank, start), stably, and nothing else copied."""
        seqs = cls(None)
        seqs.codes, seqs.starts, seqs.ends = calls.code, calls.start, calls.end
        ranks = calls.rank[rows]
        seqs.low = int(ranks.min()) if len(ranks) else 0
        seqs.span = int(ranks.max()) - seqs.low + 1 if len(ranks) else 1
        keys = label[rows].astype(np.int64, copy=False)  # label x span + (rank - low), in place
        keys *= seqs.span
        ranks -= seqs.low
        keys += ranks
        del ranks
        order = np.lexsort((calls.start[rows], keys))  # = lexsort((start, rank, label)): the key keeps that order
        seqs.pick = seqs.rows = rows[order]
        keys = keys[order]
        del order
        seqs._bounds(keys)
        return seqs

    def _build(self, codes: np.ndarray, starts: np.ndarray, ends: np.ndarray, rows: np.ndarray, label: np.ndarray,
               rank: np.ndarray) -> None:
        self.codes, self.starts, self.ends, self.rows = codes, starts, ends, rows
        self.low = int(rank.min()) if len(rank) else 0
        self.span = int(rank.max()) - self.low + 1 if len(rank) else 1
        self._bounds(label * self.span + (rank - self.low))  # ascending: the frame is sorted by label, then rank

    def _bounds(self, keys: np.ndarray) -> None:
        firsts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, dtype=np.int64)
        self.keys, self.lo = keys[firsts], firsts
        self.hi = np.r_[firsts[1:], len(keys)].astype(np.int64)
        self.label_of = self.keys // self.span

    def labels(self) -> list[int]:
        """The groups that have labelled calls, ascending."""
        return np.unique(self.label_of).tolist()

    def get(self, label: int, rank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(codes, starts, ends, rows) of `rank`'s calls labelled `label` (empty arrays when none)."""
        lo = hi = 0
        if self.low <= rank < self.low + self.span:
            key = label * self.span + (rank - self.low)
            i = int(np.searchsorted(self.keys, key))
            if i < len(self.keys) and int(self.keys[i]) == key:
                lo, hi = int(self.lo[i]), int(self.hi[i])
        if self.pick is None:
            return self.codes[lo:hi], self.starts[lo:hi], self.ends[lo:hi], self.rows[lo:hi]
        at = self.pick[lo:hi]
        return self.codes[at], self.starts[at], self.ends[at], self.rows[lo:hi]


def compare(mine: tuple, theirs: tuple, tol: int, trim: bool = True,
            windows: tuple = ((0, 0), (0, 0))) -> tuple[str | None, np.ndarray]:
    """Why two members' sequences (sig codes or None, starts, ends, rows) of one group cannot be the same calls
    (None if they are), and the rows of the longer one left over at its window's edges when the shorter one
    matches exactly one contiguous stretch of it and the leftovers start before the other member's first call
    or end after its last (traces whose windows cut a call or two at the start or end)."""
    none = np.zeros(0, dtype=np.int64)
    if len(mine[1]) == len(theirs[1]):
        why = _mismatch(mine, theirs, tol)
        if why is None or not trim:
            return why, none
    if not trim or not len(mine[1]) or not len(theirs[1]):
        return f"{len(mine[1])} vs {len(theirs[1])} calls", none
    short, long_ = (mine, theirs) if len(mine[1]) <= len(theirs[1]) else (theirs, mine)
    win_first, win_last = windows[0] if short is mine else windows[1]
    n, extra = len(short[1]), len(long_[1]) - len(short[1])
    fits = [o for o in range(extra + 1)
            if _mismatch(short, tuple(x[o:o + n] if x is not None else None for x in long_), tol) is None
            and (long_[1][:o] < win_first).all() and (long_[2][o + n:] > win_last).all()]
    if len(fits) != 1 or extra == 0 or extra > max(2, n // 10):
        return f"{len(mine[1])} vs {len(theirs[1])} calls" + (", no unique alignment" if extra else ""), none
    rows = long_[3]
    return None, np.concatenate([rows[:fits[0]], rows[fits[0] + n:]])


def _mismatch(mine: tuple, theirs: tuple, tol: int) -> str | None:
    c1, s1, e1 = mine[:3]
    c2, s2, e2 = theirs[:3]
    if c1 is not None:
        diff = np.flatnonzero(c1 != c2)
        if len(diff):
            return f"different collective or size at position {diff[0]}"
    apart = np.flatnonzero((s1 > e2 + tol) | (s2 > e1 + tol))
    return f"the calls at position {apart[0]} do not overlap in time" if len(apart) else None
