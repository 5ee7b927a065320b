"""Candidate process groups of collective calls and the small helpers group inference and its agreement check
share (tracekit.parallel.call_groups, tracekit.parallel.agreement)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

FULL_CHECK = 8  # groups up to this size are checked against every member, larger ones against ring neighbours


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


def members_to_check(group: Candidate, rank: int) -> list[int]:
    """The members whose calls a call of `rank` in `group` is checked against: all others in small groups, the
    two ring neighbours in groups larger than FULL_CHECK."""
    if len(group.ranks) <= FULL_CHECK:
        return [m for m in group.ranks if m != rank]
    i = group.position[rank]  # large groups: the ring neighbours only, found without a scan of the members
    return sorted({group.ranks[(i + 1) % len(group.ranks)], group.ranks[i - 1]})


def every_row(rows: np.ndarray, n: int) -> bool:
    """Are `rows` exactly 0, 1, ..., n - 1?"""
    return len(rows) == n and (n == 0 or (int(rows[0]) == 0 and int(rows[-1]) == n - 1
                                          and bool((rows[1:] > rows[:-1]).all())))


def same_code(codes: np.ndarray) -> list[np.ndarray]:
    """Positions of the equal codes, one ascending array per code in code order (what a groupby's `indices` holds;
    a pandas groupby per rank cost ~0.5 ms a rank of the cross-rank stage)."""
    if not len(codes):
        return []
    order = np.argsort(codes, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(codes[order])) + 1)
