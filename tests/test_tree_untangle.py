"""Blocks with a few partial overlaps are placed in numpy (tree._untangle) with exactly what the stack walk
(tree._nest) gives: parent, depth and display lane of every row, on real traces and random shapes; where it
gives up (many overlaps, deep climbs), the walk places the block, with the same result."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import shared
from test_perf_tree import random_events, reference

from tracekit import tree
from tracekit.info_inputs import read_for_info
from tracekit.table import track_view


def build(events, monkeypatch) -> tuple[tree.CallTree, int]:
    """The call tree and how many rows the stack walk placed."""
    walked = []
    real = tree._nest

    def spy(rows, *args):
        walked.append(len(rows))
        return real(rows, *args)

    monkeypatch.setattr(tree, "_nest", spy)
    result = tree.build_call_tree(events)
    monkeypatch.setattr(tree, "_nest", real)
    return result, sum(walked)


def text(coded) -> pd.Categorical:
    return pd.Categorical.from_codes(coded.codes, categories=coded.categories)


def as_frame(ev) -> pd.DataFrame:
    """The columns the reference walk reads, as a DataFrame."""
    return pd.DataFrame({
        "source_index": ev["source_index"], "pid": ev["pid"], "tid": ev["tid"], "ts_ns": ev["ts_ns"],
        "dur_ns": ev["dur_ns"], "ph": text(ev["ph"]), "kind": text(ev["kind"]),
    })


@pytest.mark.parametrize("rel", [
    "gpu/tracelens/h100/google_owlv2-large-patch14-ensemble__1016001.json.gz",  # one 112k-row block, 7 overlaps
    "cpu/gpt/gpt.1795342577847977888.pt.trace.json.gz",
    "gpu/tracelens/b200/eager_trace.json.gz",
    "gpu/hta/trace_diff/v100_test.json.gz",
])
def test_real_traces_without_the_walk(rel, monkeypatch) -> None:
    ev = track_view(read_for_info([shared(rel)]).events)
    got, walked = build(ev, monkeypatch)
    assert walked == 0
    assert (got.lane > 0).sum() > 0  # there were partial overlaps to place
    want = reference(as_frame(ev))
    for a, b, name in zip((got.parent, got.depth, got.lane), want, ("parent", "depth", "lane")):
        assert np.array_equal(a, b), name


def assert_as_walked(got, events: pd.DataFrame) -> None:
    """parent, depth and lane equal to the reference stack walk's."""
    for a, b, name in zip((got.parent, got.depth, got.lane), reference(events), ("parent", "depth", "lane")):
        assert np.array_equal(a, b), name


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("overlap", [0.01, 0.05, 0.3])
def test_random_shapes_match_the_walk(seed, overlap, monkeypatch) -> None:
    events = random_events(seed, 400, overlap)
    got, _ = build(events, monkeypatch)
    assert_as_walked(got, events)


def nested_with_overlaps(seed: int, n: int, k: int) -> pd.DataFrame:
    """n properly nested spans on two tracks (ties and zero durations included), then k events that each start
    inside a span and end after it."""
    rng = np.random.default_rng(seed)
    spans = []  # (tid, start, dur)

    def fill(tid: int, lo: int, hi: int, budget: int) -> None:
        t = lo
        while budget > 0 and t < hi:
            dur = int(rng.integers(0, max(1, (hi - t) // 2) + 1))
            spans.append((tid, t, dur))
            budget -= 1
            inner = int(rng.integers(0, budget + 1)) if dur > 2 else 0
            if inner:
                fill(tid, t, t + dur, inner)
                budget -= inner
            t += dur + int(rng.integers(0, 3))

    for tid in (1, 2):
        fill(tid, 0, 10 ** 6, n // 2)
    added = 0
    while added < k:
        tid, start, dur = spans[int(rng.integers(0, len(spans)))]
        if dur > 1:
            a = start + int(rng.integers(1, dur))
            spans.append((tid, a, start + dur - a + int(rng.integers(1, 1000))))
            added += 1
    tid, ts, dur = (np.array(v, dtype=np.int64) for v in zip(*spans))
    m = len(ts)
    return pd.DataFrame({
        "source_index": np.zeros(m, dtype=np.int32), "pid": np.ones(m, dtype=np.int64), "tid": tid,
        "ts_ns": ts, "dur_ns": dur, "ph": pd.Categorical(["X"] * m),
        "kind": pd.Categorical(rng.choice(["cpu_op", "runtime", "python"], size=m)),
    })


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("k", [1, 5, 40])
def test_few_overlaps_without_the_walk(seed, k, monkeypatch) -> None:
    """Nested spans with a few partial overlaps: placed in numpy (mostly), always as the walk places them."""
    events = nested_with_overlaps(seed, 3000, k)
    got, walked = build(events, monkeypatch)
    assert_as_walked(got, events)
    if k <= 5:
        assert walked == 0
    assert (got.lane > 0).any()


def staircase(n: int, deep: int = 0) -> pd.DataFrame:
    """`deep` events nested in each other, then n events each starting inside the previous one and ending after."""
    ts = list(range(deep)) + [deep + 10 + 2 * j for j in range(n)]
    dur = [10 * (deep + 2 * n + 20) - 2 * i for i in range(deep)] + [5] * n
    m = len(ts)
    return pd.DataFrame({
        "source_index": np.zeros(m, dtype=np.int32), "pid": np.ones(m, dtype=np.int64),
        "tid": np.ones(m, dtype=np.int64), "ts_ns": np.array(ts, dtype=np.int64),
        "dur_ns": np.array(dur, dtype=np.int64), "ph": pd.Categorical(["X"] * m),
        "kind": pd.Categorical(["cpu_op"] * m),
    })


@pytest.mark.parametrize(("n", "deep", "walks"), [(300, 0, False), (300, 200, False),
                                                  (tree._MAX_GUESSED + 50, 0, True)])
def test_staircases(n, deep, walks, monkeypatch) -> None:
    """Every event overlaps the one before: one display lane each; past _MAX_GUESSED the walk places them."""
    events = staircase(n, deep)
    got, walked = build(events, monkeypatch)
    assert (walked > 0) == walks
    for a, b in zip((got.parent, got.depth, got.lane), reference(events)):
        assert np.array_equal(a, b)
    assert (got.lane > 0).sum() >= n // 2


def test_deep_climb_gives_up_to_the_walk(monkeypatch) -> None:
    """A guessed event whose open ancestor is more than _MAX_CLIMB events up: the walk places the block."""
    k = tree._MAX_CLIMB + 10
    # a chain of k nested events that all end early, a long outer event, then one partly overlapping it
    ts = [0] + [10 + i for i in range(k)] + [500]
    dur = [1000] + [2 * (k - i) + 1 for i in range(k)] + [800]
    m = len(ts)
    events = pd.DataFrame({
        "source_index": np.zeros(m, dtype=np.int32), "pid": np.ones(m, dtype=np.int64),
        "tid": np.ones(m, dtype=np.int64), "ts_ns": np.array(ts, dtype=np.int64),
        "dur_ns": np.array(dur, dtype=np.int64), "ph": pd.Categorical(["X"] * m),
        "kind": pd.Categorical(["cpu_op"] * m),
    })
    got, walked = build(events, monkeypatch)
    assert walked == m
    for a, b in zip((got.parent, got.depth, got.lane), reference(events)):
        assert np.array_equal(a, b)
    assert got.lane[-1] == 1 and got.parent[-1] == 0
