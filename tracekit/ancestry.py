"""Walks up the call tree, vectorized by pointer jumping: O(rows x log(depth)), whatever the depth."""

from __future__ import annotations

import numpy as np

from tracekit.table import NO_ROW


def nearest_marked(parent: np.ndarray, mark: np.ndarray, include_self: bool = True) -> np.ndarray:
    """For every row, the nearest row up its ancestor chain where `mark` is true (or -1).

    With include_self, a marked row is its own answer; otherwise the search starts at its parent.

    Pointer jumping: `jump[i]` starts at i itself if marked, else at its parent; each round,
    every row whose jump lands on an unmarked row takes that row's jump, so the distance covered doubles and a
    chain of depth d is resolved in log2(d) rounds. A round goes a chunk of rows at a time, in place: a row may
    read a jump already advanced in this round, which only skips further over unmarked rows (the answer is the
    same); no array of every pending row is made beside the pending rows themselves.
    """
    parent = _row_refs(parent)
    mark = np.asarray(mark, dtype=bool)
    n = len(parent)
    if not include_self:
        self_or_up = nearest_marked(parent, mark, include_self=True)
        result = np.full(n, NO_ROW, dtype=np.int64)
        for at in range(0, n, _CHUNK):
            up = parent[at : at + _CHUNK]
            has_parent = up >= 0
            result[at : at + _CHUNK][has_parent] = self_or_up[up[has_parent]]
        return result
    jump = parent.astype(np.int64)  # a copy (int64 whatever the width the parents are held in)
    marked = np.flatnonzero(mark)
    jump[marked] = marked
    del marked
    pending = _unresolved(None, jump, mark)
    while len(pending):
        for at in range(0, len(pending), _CHUNK):
            rows = pending[at : at + _CHUNK]
            jump[rows] = jump[jump[rows]]
        pending = _unresolved(pending, jump, mark)
    return jump


_CHUNK = 1 << 16


def _row_refs(values: np.ndarray) -> np.ndarray:
    """Row references as given where they are an integer array (int32 on a large table: tracekit.narrow), else as
    int64: no int64 copy of a narrowed parent column on each call."""
    values = np.asarray(values)
    return values if values.dtype.kind == "i" else values.astype(np.int64)


def _unresolved(rows: np.ndarray | None, jump: np.ndarray, mark: np.ndarray) -> np.ndarray:
    """The rows (None: every row) whose jump lands on an unmarked row (not yet at the answer, nor at -1), a chunk
    at a time: no array of every row's positions or jumps beside the answer."""
    count = len(jump) if rows is None else len(rows)
    parts = []
    for at in range(0, count, _CHUNK):
        part = np.arange(at, min(at + _CHUNK, count)) if rows is None else rows[at : at + _CHUNK]
        target = jump[part]
        live = target >= 0
        live[live] = ~mark[target[live]]
        parts.append(part[live])
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def fill_down(parent: np.ndarray, values: np.ndarray, is_set: np.ndarray) -> np.ndarray:
    """Each row gets the value of its nearest ancestor-or-self where `is_set` (rows with none keep theirs)."""
    src = nearest_marked(parent, is_set)
    out = values.copy()
    has = src >= 0
    out[has] = values[src[has]]
    return out


def marked_above(parent: np.ndarray, rows: np.ndarray, mark: np.ndarray, include_self: bool = True,
                 climb: int = 64) -> np.ndarray:
    """`nearest_marked` for a few rows only: each climbs its own chain, one parent a step, for up to `climb` steps;
    rows still climbing after that take the whole table's answer (pointer jumping), so the cost stays within
    O(rows x climb + table x log(depth)) whatever the depth."""
    parent = _row_refs(parent)
    rows = np.asarray(rows, dtype=np.int64)
    at = rows.copy() if include_self else np.where(rows >= 0, parent[np.maximum(rows, 0)], NO_ROW)
    answer = np.full(len(rows), NO_ROW, dtype=np.int64)
    live = np.flatnonzero(at >= 0)
    for _ in range(climb):
        if not len(live):
            return answer
        here = at[live]
        found = mark[here]
        answer[live[found]] = here[found]
        live = live[~found]
        at[live] = parent[at[live]]
        live = live[at[live] >= 0]
    if len(live):
        answer[live] = nearest_marked(parent, mark, include_self=True)[at[live]]
    return answer
