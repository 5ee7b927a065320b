"""The process group of each collective CALL, from the calls of all ranks (pure functions over call tables).

Input: one table of calls of all ranks with the columns in `MATCH_COLUMNS` (the collectives table, or the
same columns read from rank-partitioned Parquet), the candidate groups, and the rows to decide.
Evidence, per call x on rank r and candidate group G (r in G, more than one member):

1. Counterpart: every other member m of G (the two ring neighbours of r in G when G is larger than
   `FULL_CHECK`) has a call of the same collective and size (all_to_all: any size, splits may be uneven)
   whose execution [start, end] overlaps x's (a collective
   cannot finish on one member before another member started it). For send/recv: the member at the peer
   index has the opposite op of the same size naming r's index in G as its peer, overlapping in time.
   Groups that pass are the call's candidates. One candidate -> that group.
2. Execution thread: gloo runs each process group's work on worker threads owned by that group
   (`exec_thread`: set only for such gloo work; device streams are not used, as recent torch may run
   synchronous NCCL collectives of all groups on the compute stream). The calls of one worker thread
   share one group: a group that is a candidate of every call of the thread that has candidates,
   while every other group misses a counterpart for at least one of them, labels all of them.
3. Counterparts: a labelled call's counterpart on another member takes the same group where exactly one
   call there can be it (same collective and size, overlapping, not labelled otherwise).
4. Agreement: for every group, the labelled calls of each pair of members (ring neighbours) must be the
   same sequence of collectives and sizes, pairwise overlapping in time; otherwise the group's inferred
   labels on all its members are withdrawn. A shorter sequence that matches exactly one contiguous stretch
   of the longer one (a window that cut a call or two at its start or end) withdraws only the calls left
   over at the edges. So a labelled call has an equally labelled counterpart on every member.

Work is sorting plus binary searches: O(calls x groups per rank x log calls) over all ranks.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from tracekit.parallel.call_codes import P2P as _P2P
from tracekit.parallel.call_codes import UNEVEN as _UNEVEN
from tracekit.parallel.call_codes import CallArrays, call_arrays, first_appearance

MATCH_COLUMNS = ("rank", "collective", "bytes", "start_ns", "dur_ns", "peer", "thread", "exec_row", "exec_thread",
                 "exec_link_set")
FULL_CHECK = 8  # groups up to this size are checked against every member, larger ones against ring neighbours
_UNTIMED = ("unknown: the trace shows only the call's enqueue, not its execution (no worker-thread annotation or "
            "device kernel), so it cannot be matched in time")


@dataclass(frozen=True)
class Candidate:
    """A process group a call may belong to: its name and global ranks."""

    name: str
    ranks: tuple[int, ...]

    @cached_property
    def label(self) -> str:
        """`name [members]`: one text per group, shared by every call that names it."""
        return f"{self.name} {list(self.ranks)}"

    @cached_property
    def position(self) -> dict[int, int]:
        """Each member's index in the group (its first, as list.index gives)."""
        out: dict[int, int] = {}
        for i, r in enumerate(self.ranks):
            out.setdefault(r, i)
        return out


def _members_to_check(group: Candidate, rank: int) -> list[int]:
    if len(group.ranks) <= FULL_CHECK:
        return [m for m in group.ranks if m != rank]
    i = group.position[rank]  # large groups: the ring neighbours only, found without a scan of the members
    return sorted({group.ranks[(i + 1) % len(group.ranks)], group.ranks[i - 1]})


class _Index:
    """Per (rank, sig): calls sorted by start with the running maximum of their ends, for overlap queries.

    All calls sit in four arrays sorted by (rank, sig, start); each (rank, sig) key is one int64 (rank x sigs +
    the sig's code) in a sorted array beside its slice's bounds and longest call: 32 bytes a key, where a dict of
    tuples cost ~140 bytes a call (a rank makes a few calls of each sig). Sig codes: the table's `_code` column
    (factorized `_sig`) where present."""

    def __init__(self, calls: pd.DataFrame | None, tolerance_ns: int):
        self.tol = tolerance_ns
        if calls is None:  # filled by `of`
            return
        sig_column = calls["_sig"].to_numpy(dtype=object)
        if "_code" in calls:
            codes = calls["_code"].to_numpy(dtype=np.int64)
        else:
            codes = pd.factorize(sig_column)[0].astype(np.int64)
        distinct, first = np.unique(codes, return_index=True)
        code_of = {sig_column[f]: int(c) for c, f in zip(distinct.tolist(), first.tolist())}
        self._build(calls["rank"].to_numpy(dtype=np.int64), calls["start_ns"].to_numpy(dtype=np.int64),
                    calls["_end"].to_numpy(dtype=np.int64), codes, calls.index.to_numpy(dtype=np.int64), code_of,
                    int(distinct[-1]) + 1 if len(distinct) else 1)

    @classmethod
    def of(cls, calls: CallArrays, rows: np.ndarray, tolerance_ns: int) -> _Index:
        """The index of the calls at positions `rows` of the per-call arrays."""
        index = cls(None, tolerance_ns)
        if _every_row(rows, len(calls)):  # every call in order: the arrays themselves, no copies
            index._build(calls.rank, calls.start, calls.end, calls.code, rows, calls.code_of, max(len(calls.sigs), 1))
        else:
            index._build(calls.rank[rows], calls.start[rows], calls.end[rows], calls.code[rows], rows, calls.code_of,
                         max(len(calls.sigs), 1))
        return index

    def _build(self, ranks: np.ndarray, starts: np.ndarray, ends: np.ndarray, codes: np.ndarray, rows: np.ndarray,
               code_of: dict[tuple, int], width: int) -> None:
        self.code_of = code_of
        self.width = width
        order = np.lexsort((starts, codes, ranks))  # stable: equal starts keep the table's order
        self.starts, self.ends = starts[order], ends[order]
        self.rows = rows[order]  # labels are positions in the full call table
        self.max_end = self.ends.copy()
        keys = ranks[order] * self.width + codes[order]
        del order
        firsts = (np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys)
                  else np.zeros(0, dtype=np.int64))
        self.keys = keys[firsts]  # ascending: the rows are sorted by rank, then code
        self.lo = firsts
        self.hi = np.r_[firsts[1:], len(keys)].astype(np.int64)
        self.longest = (np.maximum.reduceat(self.ends - self.starts, firsts) if len(keys)
                        else np.zeros(0, dtype=np.int64))
        for lo, hi in zip(self.lo.tolist(), self.hi.tolist()):
            np.maximum.accumulate(self.ends[lo:hi], out=self.max_end[lo:hi])

    def _find(self, rank: int, sig: tuple) -> tuple[int, int, int] | None:
        """(first, end, longest) of `rank`'s calls of `sig` in the arrays; None when it has none."""
        code = self.code_of.get(sig)
        if code is None or not len(self.keys):
            return None
        key = rank * self.width + code
        i = int(np.searchsorted(self.keys, key))
        if i == len(self.keys) or int(self.keys[i]) != key:
            return None
        return int(self.lo[i]), int(self.hi[i]), int(self.longest[i])

    def overlaps(self, rank: int, sig: tuple, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """For each [start, end]: does `rank` have a call of `sig` overlapping it (within the tolerance)?"""
        found = self._find(rank, sig)
        if found is None:
            return np.zeros(len(start), dtype=bool)
        lo, hi, _longest = found
        k = np.searchsorted(self.starts[lo:hi], end + self.tol, side="right")
        return (k > 0) & (self.max_end[lo + np.maximum(k - 1, 0)] >= start - self.tol)

    def overlapping(self, rank: int, sig: tuple, start: int, end: int) -> np.ndarray:
        """Positions (in the call table) of `rank`'s calls of `sig` that overlap [start, end]."""
        found = self._find(rank, sig)
        if found is None:
            return np.zeros(0, dtype=np.int64)
        lo, hi, longest = found
        starts = self.starts[lo:hi]
        a = lo + int(np.searchsorted(starts, start - self.tol - longest, side="left"))
        b = lo + int(np.searchsorted(starts, end + self.tol, side="right"))
        return self.rows[a:b][self.ends[a:b] >= start - self.tol]


def _signatures(calls: pd.DataFrame) -> list[tuple]:
    sizes = calls["bytes"].astype("Float64").fillna(-1).astype("int64").tolist()
    peers = calls["peer"].astype("Float64").fillna(-1).astype("int64").tolist()
    shared: dict[str, str] = {}  # one object per collective name (an arrow-backed column makes one per row)
    kinds = [shared.setdefault(c, c) if isinstance(c, str) else c for c in calls["collective"].tolist()]
    one: dict[tuple, tuple] = {}  # one tuple per distinct signature (~64 B a call otherwise)
    return [one.setdefault(sig, sig) for sig in ((c, -1 if c in _UNEVEN else b, p if c in _P2P else -1)
                                                 for c, b, p in zip(kinds, sizes, peers))]


def candidate_matrix(calls: CallArrays, todo: np.ndarray, groups: Sequence[Candidate], tolerance_ns: int = 0,
                     index: _Index | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(passes, checkable, slots) for the rows `todo`, one column per group of the call's rank (a rank is in a
    few groups, so memory stays linear): slots[i, k] is the group index of column k (-1: none); checkable: the
    group has another member and every member to check is among the inputs; passes: evidence 1 holds."""
    present = set(np.unique(calls.rank).tolist())
    index = _Index.of(calls, np.arange(len(calls)), tolerance_ns) if index is None else index
    every = _every_row(todo, len(calls))  # every call in order: views of the arrays (no copies)
    ranks, codes = (calls.rank, calls.code) if every else (calls.rank[todo], calls.code[todo])
    of_rank: dict[int, list[int]] = {}
    for gi, group in enumerate(groups):
        if len(group.ranks) > 1:
            for r in group.ranks:
                of_rank.setdefault(int(r), []).append(gi)
    width = max([len(of_rank.get(int(r), [])) for r in np.unique(ranks).tolist()] + [1])
    passes = np.zeros((len(todo), width), dtype=bool)
    checkable = np.zeros_like(passes)
    slots = np.full((len(todo), width), -1, dtype=np.int64)
    sigs = calls.sigs
    p2p = calls.p2p[codes] if len(codes) else np.zeros(0, dtype=bool)
    start, end = (calls.start, calls.end) if every else (calls.start[todo], calls.end[todo])
    for rank, rows in _same_value(ranks):
        mine = of_rank.get(rank, [])
        slots[np.ix_(rows, np.arange(len(mine)))] = mine
        coll_rows, p2p_rows = rows[~p2p[rows]], rows[p2p[rows]]
        by_sig = _same_code(codes[coll_rows])
        for k, gi in enumerate(mine):
            group = groups[gi]
            members = _members_to_check(group, rank)
            if len(coll_rows) and all(m in present for m in members):
                checkable[coll_rows, k] = True
                for positions in by_sig:
                    same = coll_rows[positions]
                    ok = np.ones(len(same), dtype=bool)
                    for m in members:
                        ok &= index.overlaps(m, sigs[codes[same[0]]], start[same], end[same])
                    passes[same, k] = ok
            me = group.position[rank]
            for r in p2p_rows.tolist():
                kind, size, peer = sigs[codes[r]]
                if not 0 <= peer < len(group.ranks) or group.ranks[peer] == rank or group.ranks[peer] not in present:
                    continue
                checkable[r, k] = True
                want = (_P2P[kind], size, me)
                passes[r, k] = bool(index.overlaps(group.ranks[peer], want, start[r:r + 1], end[r:r + 1])[0])
    return passes, checkable, slots


def _every_row(rows: np.ndarray, n: int) -> bool:
    """Are `rows` exactly 0, 1, ..., n - 1?"""
    return len(rows) == n and (n == 0 or (int(rows[0]) == 0 and int(rows[-1]) == n - 1
                                          and bool((rows[1:] > rows[:-1]).all())))


def _same_value(values: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(value, ascending positions) of each distinct value, values ascending (a groupby's `indices`)."""
    return [(int(values[part[0]]), part) for part in _same_code(values)]


def _same_code(codes: np.ndarray) -> list[np.ndarray]:
    """Positions of the equal codes, one ascending array per code in code order (what a groupby's `indices` holds;
    a pandas groupby per rank cost ~0.5 ms a rank of the cross-rank stage)."""
    if not len(codes):
        return []
    order = np.argsort(codes, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(codes[order])) + 1)


@dataclass
class _State:
    """Decisions so far for the rows to decide: label (group index or -1) and the evidence of each."""

    todo: np.ndarray
    passes: np.ndarray
    checkable: np.ndarray
    slots: np.ndarray
    label: np.ndarray
    reasons: list[str]

    def may_be(self, i: int, group: int) -> bool:
        """Does evidence 1 allow row i in `group`?"""
        k = np.flatnonzero(self.slots[i] == group)
        return bool(len(k) and self.passes[i, k[0]])

    def names(self, i: int, groups: Sequence[Candidate]) -> list[str]:
        """Labels of the groups evidence 1 allows for row i."""
        return [groups[g].label for g in self.slots[i][self.passes[i]].tolist()]


def _lane_step(lanes: dict[tuple[int, int], np.ndarray], st: _State, groups: Sequence[Candidate]) -> list[int]:
    """Evidence 2: label the open calls of each execution lane whose group is certain; returns them."""
    new: list[int] = []
    for (rank, thread), pos in lanes.items():
        open_ = pos[st.label[pos] < 0]
        if not len(open_):
            continue
        slot_map = st.slots[pos[0]]  # one rank: the same columns for every row of the lane
        known = set(st.label[pos][st.label[pos] >= 0].tolist())
        has_any = st.passes[pos].any(axis=1)
        support = st.passes[pos][has_any].sum(axis=0)
        refuted = (~st.passes[pos] & st.checkable[pos])[has_any].sum(axis=0)
        if len(known) == 1:
            win = known.pop()
            k = np.flatnonzero(slot_map == win)
            if not len(k) or refuted[k[0]]:
                continue
            why = (f"inferred: ran on execution thread {thread} of rank {rank}, owned by one process group, whose "
                   f"other calls are matched in {groups[win].label}")
        elif not known:
            alive = [k for k in range(len(slot_map)) if slot_map[k] >= 0 and support[k] and not refuted[k]]
            if len(alive) != 1:
                continue
            win = int(slot_map[alive[0]])
            others = [groups[g].label for k, g in enumerate(slot_map.tolist())
                      if g >= 0 and g != win and st.checkable[pos][:, k].any()]
            why = (f"inferred: ran on execution thread {thread} of rank {rank}, owned by one process group; "
                   f"{int(support[alive[0]])} of its {len(pos)} calls have matching calls overlapping in time on "
                   f"every member of {groups[win].label}" + (f", while {', '.join(others)} lack a counterpart for "
                                                             f"at least one of them" if others else ""))
        else:
            continue
        for i in open_.tolist():
            st.label[i] = win
            st.reasons[i] = why + ("" if st.may_be(i, win) else "; this call itself has no counterpart in the window")
        new.extend(open_.tolist())
    return new


def _propagate(new: array, calls: CallArrays, st: _State, groups: Sequence[Candidate], index: _Index,
               stated: np.ndarray) -> array:
    """Evidence 1 across ranks: the counterpart of a labelled call on each member, where exactly one call there
    (same collective and size, overlapping, not labelled otherwise) can be it, takes the same group."""
    pos_of = np.full(len(calls), -1, dtype=np.int64)
    pos_of[st.todo] = np.arange(len(st.todo))
    width = max(len(calls.sigs), 1)
    open_rows = st.todo[st.label < 0]  # open calls counted per (rank, signature) key: one int64 key each
    keys, counts = np.unique(calls.rank[open_rows] * width + calls.code[open_rows], return_counts=True)
    open_left = dict(zip(keys.tolist(), counts.tolist()))
    del open_rows, keys, counts
    said: dict[tuple[int, int, int], str] = {}  # one reason text per (rank, signature, group): calls share it
    found = array("q")  # positions as 8 bytes each
    queue = array("q", new)  # last in, first out
    while queue:
        i = queue.pop()
        row, g = int(st.todo[i]), int(st.label[i])
        code = int(calls.code[row])
        group, rank, sig = groups[g], int(calls.rank[row]), calls.sigs[code]
        if sig[0] in _P2P:
            if not 0 <= sig[2] < len(group.ranks):
                continue
            targets = [(group.ranks[sig[2]], (_P2P[sig[0]], sig[1], group.position[rank]))]
        else:
            targets = [(m, sig) for m in _members_to_check(group, rank)]
        for member, want in targets:
            want_code = calls.code_of.get(want)
            key = member * width + want_code if want_code is not None else None
            if key is None or not open_left.get(key, 0):
                continue
            viable = []
            for c in index.overlapping(member, want, int(calls.start[row]), int(calls.end[row])).tolist():
                p = int(pos_of[c])
                if p >= 0 and (st.label[p] == g or (st.label[p] < 0 and st.may_be(p, g))):
                    viable.append(p)
                elif p < 0 and stated[c] == group.name:
                    viable.append(-1)
            if len(viable) == 1 and viable[0] >= 0 and st.label[viable[0]] < 0:
                p = viable[0]
                open_left[key] -= 1
                st.label[p] = g
                if (rank, code, g) not in said:
                    said[(rank, code, g)] = (f"inferred: the only call here that can be the counterpart of rank "
                                             f"{rank}'s {sig[0]} matched in {group.label} (same collective and "
                                             f"size, overlapping in time)")
                st.reasons[p] = said[(rank, code, g)]
                found.append(p)
                queue.append(p)
    return found


def _disagreements(calls: CallArrays, label: np.ndarray, groups: Sequence[Candidate],
                   tolerance_ns: int) -> tuple[dict[int, str], dict[int, str]]:
    """Evidence 4. Returns (groups whose labelled calls differ between two members -> reason, calls at the edge
    of one member's window whose counterpart lies outside the other member's traced window -> reason)."""
    bad: dict[int, str] = {}
    edge: dict[int, str] = {}
    rows = np.flatnonzero(label >= 0)
    rows = rows[np.lexsort((calls.start[rows], calls.rank[rows], label[rows]))]  # stable: by label, rank, start
    is_p2p = calls.p2p[calls.code[rows]] if len(rows) else np.zeros(0, dtype=bool)
    coll = rows[~is_p2p]
    seqs = _Sequences.of(calls.code[coll], calls.start[coll], calls.end[coll], coll, label[coll], calls.rank[coll])
    del coll
    first = pd.Series(calls.start).groupby(calls.rank).min().to_dict()
    last = pd.Series(calls.end).groupby(calls.rank).max().to_dict()
    said: dict[tuple[int, int], str] = {}  # one edge reason per (group, rank named): calls share it
    for gi in seqs.labels():
        group = groups[gi]
        for rank in group.ranks:
            mine = seqs.get(gi, rank)
            for m in _members_to_check(group, rank):
                why, extra = _compare(mine, seqs.get(gi, m), tolerance_ns,
                                      windows=((first[rank], last[rank]), (first.get(m, 0), last.get(m, 0))))
                if why and gi not in bad:
                    bad[gi] = f"{group.label}: rank {rank} vs rank {m}: {why}"
                for row in extra.tolist():
                    named = m if row in mine[3] else rank
                    if (gi, named) not in said:
                        said[(gi, named)] = (f"undecided: matched in {group.label}, but its counterpart on rank "
                                             f"{named} lies outside that rank's traced window")
                    edge[row] = said[(gi, named)]
    p2p = rows[is_p2p]
    by_key = {}  # (group, rank, signature) -> its rows, keys in order of first appearance
    for part in _same_code(first_appearance(label[p2p], calls.rank[p2p], calls.code[p2p])):
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
        why, _extra = _compare((None, calls.start[sends], calls.end[sends], sends),
                               (None, calls.start[recvs], calls.end[recvs], recvs), tolerance_ns, trim=False)
        if why and gi not in bad:
            bad[gi] = f"{group.label}: sends rank {rank} -> {other} vs its receives: {why}"
    return bad, edge


class _Sequences:
    """The labelled non-p2p calls of each (group, rank) in start order, as what `_disagreements` compares: (sig
    codes, starts, ends, rows) views of four arrays sorted by (label, rank, start), each key's bounds found by a
    binary search over one int64 per key (four arrays per key would cost ~0.5 KB each: ~60 B a call where a rank
    makes a few calls of a group)."""

    def __init__(self, frame: pd.DataFrame | None):
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

    def _build(self, codes: np.ndarray, starts: np.ndarray, ends: np.ndarray, rows: np.ndarray, label: np.ndarray,
               rank: np.ndarray) -> None:
        self.codes, self.starts, self.ends, self.rows = codes, starts, ends, rows
        self.low = int(rank.min()) if len(rank) else 0
        self.span = int(rank.max()) - self.low + 1 if len(rank) else 1
        keys = label * self.span + (rank - self.low)  # ascending: the frame is sorted by label, then rank
        firsts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, dtype=np.int64)
        self.keys, self.lo = keys[firsts], firsts
        self.hi = np.r_[firsts[1:], len(keys)].astype(np.int64)
        self.label_of = label[firsts]

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
        return self.codes[lo:hi], self.starts[lo:hi], self.ends[lo:hi], self.rows[lo:hi]


def _compare(mine: tuple, theirs: tuple, tol: int, trim: bool = True,
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


def infer_call_groups(calls: pd.DataFrame, todo: np.ndarray, groups: Sequence[Candidate],
                      tolerance_ns: int = 0) -> pd.DataFrame:
    """For the rows `todo` (positions in `calls`, which holds every rank's calls with `MATCH_COLUMNS` and, for
    calls whose events name their group, `group`): `group` (index into `groups`, -1 when undecided),
    `group_from` (the evidence, or why there is none) and `candidates` (labels of the groups the evidence could
    not tell apart)."""
    calls = calls.reset_index(drop=True)
    todo = np.asarray(todo, dtype=np.int64)
    arrays = call_arrays(calls)  # int64 columns and signature codes: no Python object per call
    timed = arrays.timed
    index = _Index.of(arrays, np.flatnonzero(timed), tolerance_ns)
    passes, checkable, slots = candidate_matrix(arrays, todo, groups, tolerance_ns, index)
    passes[~timed[todo]] = False
    checkable[~timed[todo]] = False
    st = _State(todo, passes, checkable, slots, np.full(len(todo), -1, dtype=np.int64), [""] * len(todo))
    every = _every_row(todo, len(calls))
    # the group each call's events name, read only for calls not to decide (none when every call is to decide)
    stated = (np.full(0, None) if every else calls["group"].astype(object).to_numpy() if "group" in calls
              else np.full(len(calls), None))

    cols = {name: calls[name] if every else calls[name].iloc[todo]  # the rows to decide (every row: no copy)
            for name in ("thread", "exec_thread", "exec_link_set") if name in calls}
    exec_thread = (cols["exec_thread"].astype("Float64") if "exec_thread" in cols
                   else pd.Series(np.nan, index=cols["thread"].index))
    own = (exec_thread.notna() & (exec_thread != cols["thread"].astype("Float64"))).to_numpy(dtype=bool)
    link_sets = (cols["exec_link_set"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
                 if "exec_link_set" in cols else None)
    del cols
    del calls  # what follows reads the arrays
    lanes: dict[tuple[int, int], list[int]] = {}
    owned = np.flatnonzero(own)  # (rank, execution thread) keys made for these rows only
    lane_ranks = arrays.rank[todo[owned]].astype(int).tolist()
    lane_threads = exec_thread.to_numpy(dtype=float, na_value=-1)[owned].astype(int).tolist()
    del exec_thread, own
    for i, key in zip(owned.tolist(), zip(lane_ranks, lane_threads)):
        lanes.setdefault(key, []).append(i)
    lane_pos = {k: np.asarray(v, dtype=np.int64) for k, v in lanes.items()}
    single = np.flatnonzero(passes.sum(axis=1) == 1)
    st.label[single] = slots[single, np.argmax(passes[single], axis=1)]
    checked = checkable[single].sum(axis=1)
    for count in np.unique(checked).tolist():  # one text per number of groups checked, shared by the calls
        text = (f"inferred: the only candidate group whose members all have a matching call "
                f"overlapping this one in time ({count} groups checked)")
        for i in single[checked == count]:
            st.reasons[i] = text
    del checked
    new = array("q", single.tobytes())  # positions as 8 bytes each, not a Python int apiece
    del single
    while True:
        new.extend(_lane_step(lane_pos, st, groups))
        if not new:
            break
        new = _propagate(new, arrays, st, groups, index, stated)
    del index, stated
    for (rank, thread), pos in lane_pos.items():  # a worker thread serves one group: conflicting labels are wrong
        seen = Counter(st.label[pos][st.label[pos] >= 0].tolist())
        if len(seen) > 1:
            counts = ", ".join(f"{groups[g].label}: {n}" for g, n in seen.items())
            why = (f"undecided: calls of execution thread {thread} of rank {rank}, which serves one process group, "
                   f"were matched in different groups ({counts})")
            for i in pos[st.label[pos] >= 0].tolist():
                st.label[i], st.reasons[i] = -1, why
    if link_sets is not None:  # calls whose gloo work may have gone to one another must agree
        sets = link_sets
        for key in np.unique(sets[~np.isnan(sets)]).tolist():
            pos = np.flatnonzero(sets == key)
            found = set(st.label[pos].tolist())
            if len(found) > 1:
                named = ", ".join(groups[g].label for g in sorted(found) if g >= 0)
                why = (f"undecided: its gloo work cannot be told apart from that of {len(pos) - 1} other call(s) of "
                       f"the same collective and size waiting at the same time, and those ran in different groups "
                       f"({named}{', or undecided' if -1 in found else ''})")
                for i in pos.tolist():
                    st.label[i], st.reasons[i] = -1, why
    none: list[str] = []  # one empty list for every call without candidates (entries are replaced, never changed)
    cands: list[list[str]] = [none] * len(todo)
    undecided: dict[tuple[str, ...], tuple[list[str], str]] = {}
    for i in np.flatnonzero(st.label < 0).tolist():
        names = st.names(i, groups)
        if st.reasons[i]:
            cands[i] = names
        elif names:
            key = tuple(names)  # calls with the same candidates share one list and one text
            if key not in undecided:
                undecided[key] = (names, f"undecided: {len(names)} groups have matching calls overlapping this "
                                         f"one on every member ({', '.join(names)}); neither its execution thread "
                                         f"nor its counterparts tell them apart")
            cands[i], st.reasons[i] = undecided[key]
        else:
            st.reasons[i] = ("unknown: no candidate group has a matching call overlapping this one on every member"
                             if checkable[i].any() else _UNTIMED if not timed[todo[i]] else
                             "unknown: the events do not name their group and no other member of the rank's groups "
                             "is among the inputs")
    pos_of = np.full(len(arrays), -1, dtype=np.int64)  # row -> position in todo (-1: not to decide)
    pos_of[todo] = np.arange(len(todo))
    for _ in range(4):  # withdrawing edge calls can change another pair's sequences: check again
        label = np.full(len(arrays), -1, dtype=np.int64)
        label[todo] = st.label
        bad, edge = _disagreements(arrays, label, groups, tolerance_ns)
        edge = {int(pos_of[row]): why for row, why in edge.items() if pos_of[row] >= 0}
        for i in sorted(set(np.flatnonzero(np.isin(st.label, list(bad))).tolist()) | set(edge)):
            g = int(st.label[i])
            cands[i] = st.names(i, groups) or [groups[g].label]
            st.reasons[i] = (f"undecided: labelled calls disagree across ranks ({bad[g]})" if g in bad
                             else edge[i])
            st.label[i] = -1
        if not bad and not edge:
            break
    texts: dict[str, str] = {}  # one object per distinct reason (calls share them: ~170 B a call otherwise)
    reasons = np.empty(len(todo), dtype=object)  # object: a `str` column would copy each text
    for i, r in enumerate(st.reasons):
        reasons[i] = texts.setdefault(r, r)
    st.reasons = []
    candidates = np.empty(len(todo), dtype=object)
    for i, c in enumerate(cands):
        candidates[i] = c
    del cands
    rows = pd.Index(todo)
    return pd.DataFrame({"group": st.label, "group_from": pd.Series(reasons, index=rows, dtype=object),
                         "candidates": pd.Series(candidates, index=rows, dtype=object)}, index=rows)
