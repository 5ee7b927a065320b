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

import numpy as np
import pandas as pd

from tracekit.parallel.agreement import _Sequences, compare, disagreements, rank_windows
from tracekit.parallel.call_codes import P2P as _P2P
from tracekit.parallel.call_codes import UNEVEN as _UNEVEN
from tracekit.parallel.call_codes import CallArrays, call_arrays
from tracekit.parallel.candidates import FULL_CHECK, Candidate, every_row, members_to_check, same_code

# the names this module had before the agreement check and the candidates moved out (tests and callers use them)
__all__ = ["FULL_CHECK", "MATCH_COLUMNS", "Candidate", "_Sequences", "candidate_matrix", "infer_call_groups"]
_compare, _disagreements, _every_row = compare, disagreements, every_row
_members_to_check, _same_code = members_to_check, same_code

MATCH_COLUMNS = ("rank", "collective", "bytes", "start_ns", "dur_ns", "peer", "thread", "exec_row", "exec_thread",
                 "exec_link_set")
_UNTIMED = ("unknown: the trace shows only the call's enqueue, not its execution (no worker-thread annotation or "
            "device kernel), so it cannot be matched in time")


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
            index._build(calls.rank, calls.start, calls.end, calls.code, None, calls.code_of, max(len(calls.sigs), 1))
        else:
            index._build(calls.rank[rows], calls.start[rows], calls.end[rows], calls.code[rows], rows, calls.code_of,
                         max(len(calls.sigs), 1))
        return index

    def _build(self, ranks: np.ndarray, starts: np.ndarray, ends: np.ndarray, codes: np.ndarray,
               rows: np.ndarray | None, code_of: dict[tuple, int], width: int) -> None:
        """`rows`: each call's position in the full call table (None: the calls are the table, in order)."""
        self.code_of = code_of
        self.width = width
        order = np.lexsort((starts, codes, ranks))  # stable: equal starts keep the table's order
        self.starts, self.ends = starts[order], ends[order]
        keys = ranks[order]  # rank x width + code, made in place: one array at a time
        keys *= self.width
        keys += codes[order]
        self.rows = order if rows is None else rows[order]  # labels are positions in the full call table
        del order
        self.max_end = self.ends.copy()
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


def _same_value(values: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(value, ascending positions) of each distinct value, values ascending (a groupby's `indices`)."""
    return [(int(values[part[0]]), part) for part in _same_code(values)]


def _positions(todo: np.ndarray, n: int) -> np.ndarray | None:
    """Each row's position in `todo` (-1: not to decide); None where todo is every row in order (the identity)."""
    if _every_row(todo, n):
        return None
    pos_of = np.full(n, -1, dtype=np.int64)
    pos_of[todo] = np.arange(len(todo))
    return pos_of


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
    pos_of = _positions(st.todo, len(calls))
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
                p = c if pos_of is None else int(pos_of[c])
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
    link_pos = np.flatnonzero(~np.isnan(link_sets)) if link_sets is not None else None  # the few calls with a set
    link_keys = link_sets[link_pos] if link_sets is not None else None
    del link_sets
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
    if link_pos is not None:  # calls whose gloo work may have gone to one another must agree
        for key in np.unique(link_keys).tolist():
            pos = link_pos[link_keys == key]
            found = set(st.label[pos].tolist())
            if len(found) > 1:
                named = ", ".join(groups[g].label for g in sorted(found) if g >= 0)
                why = (f"undecided: its gloo work cannot be told apart from that of {len(pos) - 1} other call(s) of "
                       f"the same collective and size waiting at the same time, and those ran in different groups "
                       f"({named}{', or undecided' if -1 in found else ''})")
                for i in pos.tolist():
                    st.label[i], st.reasons[i] = -1, why
    none: list[str] = []  # one empty list for every call without candidates (entries are replaced, never changed)
    cands: dict[int, list[str]] = {}  # the calls with candidates only (a list over every call: 8 B a call)
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
    pos_of = _positions(todo, len(arrays))
    windows = rank_windows(arrays)  # each rank's first start and last end, the same in every round
    for _ in range(4):  # withdrawing edge calls can change another pair's sequences: check again
        if pos_of is None:  # every call is to decide: positions are rows
            bad, edge = _disagreements(arrays, st.label, groups, tolerance_ns, windows)
        else:
            label = np.full(len(arrays), -1, dtype=np.int64)
            label[todo] = st.label
            bad, edge = _disagreements(arrays, label, groups, tolerance_ns, windows)
            del label
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
    candidates.fill(none)  # every call shares the one empty list, then those with candidates get theirs
    for i, c in cands.items():
        candidates[i] = c
    del cands
    rows = pd.Index(todo)
    return pd.DataFrame({"group": st.label, "group_from": pd.Series(reasons, index=rows, dtype=object),
                         "candidates": pd.Series(candidates, index=rows, dtype=object)}, index=rows)
