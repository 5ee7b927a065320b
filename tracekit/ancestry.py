"""Walks up the call tree, vectorized: every row steps to its parent in lockstep."""

from __future__ import annotations

import numpy as np

from tracekit.table import NO_ROW


def nearest_marked(parent: np.ndarray, mark: np.ndarray, include_self: bool = True) -> np.ndarray:
    """For every row, the nearest row up its ancestor chain where `mark` is true (or -1).

    With include_self, a marked row is its own answer; otherwise the search starts at its parent.
    """
    n = len(parent)
    result = np.full(n, NO_ROW, dtype=np.int64)
    if include_self:
        result[mark] = np.flatnonzero(mark)
        current = np.where(mark, NO_ROW, parent)
    else:
        current = parent.astype(np.int64, copy=True)
    pending = np.flatnonzero(current >= 0)
    while len(pending):
        anc = current[pending]
        hit = mark[anc]
        result[pending[hit]] = anc[hit]
        current[pending] = np.where(hit, NO_ROW, parent[anc])
        pending = pending[current[pending] >= 0]
    return result


def fill_down(parent: np.ndarray, values: np.ndarray, is_set: np.ndarray) -> np.ndarray:
    """Each row gets the value of its nearest ancestor-or-self where `is_set` (rows with none keep theirs)."""
    src = nearest_marked(parent, is_set)
    out = values.copy()
    has = src >= 0
    out[has] = values[src[has]]
    return out
