"""The vectorized call-tree nesting gives exactly what the plain stack walk (`tree._nest`) gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tracekit.tree import _nest, build_call_tree


def reference(events: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """parent, depth, lane from the stack walk alone, over all span rows (the pre-vectorized code)."""
    from tracekit.tree import _NEST_RANK, _SPAN_PH, track_codes

    n = len(events)
    parent = np.full(n, -1, dtype=np.int64)
    depth = np.full(n, -1, dtype=np.int32)
    lane = np.zeros(n, dtype=np.int16)
    rows = np.flatnonzero(events["ph"].isin(_SPAN_PH).to_numpy())
    track = track_codes(events)[rows]
    start = events["ts_ns"].to_numpy()[rows]
    dur = np.maximum(events["dur_ns"].to_numpy()[rows], 0)
    rank = events["kind"].map(_NEST_RANK).astype("float").fillna(9).to_numpy()[rows]
    order = np.lexsort((rows, rank, -dur, start, track))
    _nest(rows[order], track[order], start[order], (start + dur)[order], parent, depth, lane)
    return parent, depth, lane


def random_events(seed: int, n: int, overlap: float) -> pd.DataFrame:
    """Nested spans on a few tracks with ties, zero durations, instants and some partial overlaps."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        tid = int(rng.integers(0, 3))
        start = int(rng.integers(0, 60)) * 10 ** int(rng.integers(0, 2))
        dur = int(rng.choice([0, 1, 5, 10, 50, 200]))
        ph = "i" if rng.random() < 0.05 else ("M" if rng.random() < 0.02 else "X")
        rows.append((ph, 1, tid, start, dur if ph == "X" else -1))
    # Nested structure: children cut from parents; partial overlaps: shifted copies.
    for _ in range(n // 2):
        ph, pid, tid, start, dur = rows[int(rng.integers(0, len(rows)))]
        if dur > 1:
            a = start + int(rng.integers(0, dur))
            b = int(rng.integers(a, start + dur + 1))
            rows.append(("X", pid, tid, a, b - a))
            if rng.random() < overlap:
                rows.append(("X", pid, tid, a + 1, dur))
    ph, pid, tid, ts, dur = zip(*rows)
    kinds = rng.choice(["cpu_op", "runtime", "kernel", "python", "step"], size=len(rows))
    return pd.DataFrame({
        "source_index": np.zeros(len(rows), dtype=np.int32), "pid": np.array(pid), "tid": np.array(tid),
        "ts_ns": np.array(ts, dtype=np.int64) + 1_700_000_000_000_000_000, "dur_ns": np.array(dur, dtype=np.int64),
        "ph": pd.Categorical(ph), "kind": pd.Categorical(kinds),
    })


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("overlap", [0.0, 0.05, 0.5])
def test_vectorized_nesting_matches_stack_walk(seed: int, overlap: float) -> None:
    events = random_events(seed, 300, overlap)
    tree = build_call_tree(events)
    parent, depth, lane = reference(events)
    np.testing.assert_array_equal(tree.parent, parent)
    np.testing.assert_array_equal(tree.depth, depth)
    np.testing.assert_array_equal(tree.lane, lane)


def test_empty_and_single() -> None:
    one = random_events(0, 1, 0.0).iloc[:1]
    for events in (one.iloc[:0], one):
        tree = build_call_tree(events.reset_index(drop=True))
        parent, depth, lane = reference(events.reset_index(drop=True))
        np.testing.assert_array_equal(tree.parent, parent)
        np.testing.assert_array_equal(tree.depth, depth)
        np.testing.assert_array_equal(tree.lane, lane)


def nested_events(seed: int, overlaps: int) -> pd.DataFrame:
    """Properly nested spans (ties and zero lengths included), plus `overlaps` partly overlapping ones."""
    rng = np.random.default_rng(seed)
    rows: list[tuple] = []

    def fill(tid: int, start: int, end: int, level: int) -> None:
        t = start
        while t < end and level < 6:
            length = int(rng.integers(0, max(end - t, 1) + 1))
            rows.append(("X", 1, tid, t, length))
            if length > 2 and rng.random() < 0.7:
                fill(tid, t, t + length, level + 1)
            t += length + int(rng.integers(0, 3))

    for tid in range(3):
        fill(tid, 0, 1000, 0)
    for _ in range(overlaps):
        ph, pid, tid, start, dur = rows[int(rng.integers(0, len(rows)))]
        rows.append(("X", pid, tid, start + 1, dur + 5))
    ph, pid, tid, ts, dur = zip(*rows)
    return pd.DataFrame({
        "source_index": np.zeros(len(rows), dtype=np.int32), "pid": np.array(pid), "tid": np.array(tid),
        "ts_ns": np.array(ts, dtype=np.int64), "dur_ns": np.array(dur, dtype=np.int64),
        "ph": pd.Categorical(ph), "kind": pd.Categorical(rng.choice(["cpu_op", "runtime"], size=len(rows))),
    })


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("overlaps", [0, 1, 5])
def test_vectorized_nesting_on_nested_spans(seed: int, overlaps: int) -> None:
    events = nested_events(seed, overlaps)
    tree = build_call_tree(events)
    parent, depth, lane = reference(events)
    if overlaps == 0:
        assert (lane == 0).all() and depth.max() >= 2
    np.testing.assert_array_equal(tree.parent, parent)
    np.testing.assert_array_equal(tree.depth, depth)
    np.testing.assert_array_equal(tree.lane, lane)
