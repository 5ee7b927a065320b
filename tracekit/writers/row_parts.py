"""Rows cut into parts bounded both in rows and in the bytes of their args: what a writer builds for one part, and
the arrow temporaries that make it (a few times its bytes), stay small whatever the args hold."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def row_bytes(args: pa.Array, extra: Callable[[np.ndarray], np.ndarray | None] = lambda _rows: None
              ) -> Callable[[np.ndarray], np.ndarray]:
    """The bytes of args (plus `extra` of the same rows, e.g. module paths) that rows write, asked a part at a time:
    the lengths are read off the args' offsets at those rows (no length of every row). They only size the parts: a
    null row's length (its offsets may span bytes) changes where a part ends, never what is written."""
    if isinstance(args, pa.LargeBinaryArray | pa.LargeStringArray):
        offsets = np.frombuffer(args.buffers()[1], dtype=np.int64, count=len(args) + 1, offset=args.offset * 8)

        def sizes_of(rows: np.ndarray) -> np.ndarray:
            return offsets[rows + 1] - offsets[rows]
    else:  # another layout (not what the readers make): the lengths of every row, once
        lengths = pc.binary_length(args).to_numpy(zero_copy_only=False)

        def sizes_of(rows: np.ndarray) -> np.ndarray:
            return lengths[rows]

    def of(rows: np.ndarray) -> np.ndarray:
        sizes, added = sizes_of(rows), extra(rows)
        return sizes if added is None else sizes + added

    return of


def row_parts(rows: np.ndarray, sizes: Callable[[np.ndarray], np.ndarray], max_rows: int, max_bytes: int
              ) -> Iterator[np.ndarray]:
    """`rows` in parts of at most `max_rows` rows and (roughly) `max_bytes` of `sizes` (a single row above it: a
    part of its own). Each part's end is found among the sizes of the rows after its start (a window that grows
    when it holds no end), not in a running total of every row."""
    begin, window, count = 0, max_rows, len(rows)
    while begin < count:
        limit = min(begin + max_rows, count)
        while True:
            stop = min(begin + window, limit)
            total = np.cumsum(sizes(rows[begin:stop]))
            end = int(np.searchsorted(total, max_bytes, side="right"))
            if end < len(total) or stop == limit:
                break
            window *= 2
        end = begin + max(end, 1)
        yield rows[begin:end]
        window = max(2 * (end - begin), 64)
        begin = end
