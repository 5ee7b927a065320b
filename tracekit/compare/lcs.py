"""Sequence alignment by longest common subsequence, with a score per pair (0: cannot pair)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence

DP_CELLS = 1_000_000  # above this, difflib's matcher (near-linear on real op streams) is used


def align(a: Sequence, b: Sequence, score: Callable[[object, object], int],
          key: Callable[[object], object] = lambda x: x) -> list[tuple[int | None, int | None]]:
    """Pairs (i, j) in order: matched pairs, and (i, None)/(None, j) for the unpaired ones.

    Maximizes the summed score of the matched pairs (a weighted LCS); `score` of 0 means no pair.
    Sequences too long for the table are matched on `key` equality by difflib instead.
    """
    if len(a) * len(b) > DP_CELLS:
        return _difflib(a, b, score, key)
    n, m = len(a), len(b)
    # Python lists, not a numpy table: the loop reads one cell at a time, and a numpy scalar read costs ~10x
    table = [[0] * (m + 1) for _ in range(n + 1)]
    scores = [[score(x, y) for y in b] for x in a]
    for i in range(n - 1, -1, -1):
        row, below = table[i], table[i + 1]
        s = scores[i]
        for j in range(m - 1, -1, -1):
            best = below[j] if below[j] >= row[j + 1] else row[j + 1]
            if s[j] and below[j + 1] + s[j] > best:
                best = below[j + 1] + s[j]
            row[j] = best
    out: list[tuple[int | None, int | None]] = []
    i = j = 0
    while i < n and j < m:
        if scores[i][j] and table[i][j] == table[i + 1][j + 1] + scores[i][j]:
            out.append((i, j))
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            out.append((i, None))
            i += 1
        else:
            out.append((None, j))
            j += 1
    out.extend((k, None) for k in range(i, n))
    out.extend((None, k) for k in range(j, m))
    return out


def _difflib(a: Sequence, b: Sequence, score: Callable[[object, object], int],
             key: Callable[[object], object]) -> list[tuple[int | None, int | None]]:
    """Long sequences: matching blocks of equal keys (pairs with score > 0 among equal keys only)."""
    out: list[tuple[int | None, int | None]] = []
    i = j = 0
    matcher = difflib.SequenceMatcher(None, [key(x) for x in a], [key(y) for y in b], autojunk=False)
    for ai, bj, size in matcher.get_matching_blocks():
        out.extend((k, None) for k in range(i, ai))
        out.extend((None, k) for k in range(j, bj))
        for k in range(size):
            out.append((ai + k, bj + k) if score(a[ai + k], b[bj + k]) else (ai + k, None))
        i, j = ai + size, bj + size
    return out
