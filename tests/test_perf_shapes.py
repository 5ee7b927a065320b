"""Hostile input shapes (issue 11 item 3): the near-linear algorithms give what the plain walks gave.

The fast versions (pointer-jumping ancestry, segment-tree lanes, trie roll-up) are checked against
the straightforward ones they replaced, on random forests and event sets; then bench/shapes.py
traces (a chain of identical events, deep nesting, all-overlapping ops, a name full of `/`) are
converted end to end and their outputs checked by meaning.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tracekit.ancestry import nearest_marked
from tracekit.modules.table import _roll_up
from tracekit.tree import _nest

ROOT = Path(__file__).resolve().parent.parent


def naive_nearest_marked(parent: np.ndarray, mark: np.ndarray, include_self: bool) -> np.ndarray:
    out = np.full(len(parent), -1, dtype=np.int64)
    for row in range(len(parent)):
        up = row if include_self else parent[row]
        while up >= 0 and not mark[up]:
            up = parent[up]
        out[row] = up
    return out


def random_forest(rng: np.random.Generator, n: int) -> np.ndarray:
    """parent of each row (-1 for roots), rows in a shuffled order; chains are likely."""
    parent = np.array([int(rng.integers(max(i - 3, -1), i)) if i else -1 for i in range(n)])
    perm = rng.permutation(n)
    new_of_old = np.empty(n, dtype=np.int64)
    new_of_old[perm] = np.arange(n)
    shuffled = np.full(n, -1, dtype=np.int64)
    shuffled[new_of_old] = np.where(parent >= 0, new_of_old[np.maximum(parent, 0)], -1)
    return shuffled


@pytest.mark.parametrize("seed", range(30))
def test_nearest_marked_matches_walk(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    parent = random_forest(rng, n)
    mark = rng.random(n) < rng.choice([0.0, 0.02, 0.3, 1.0])
    for include_self in (True, False):
        np.testing.assert_array_equal(nearest_marked(parent, mark, include_self),
                                      naive_nearest_marked(parent, mark, include_self))


def test_nearest_marked_long_chain() -> None:
    n = 200_000
    parent = np.arange(-1, n - 1)
    mark = np.zeros(n, dtype=bool)
    mark[[0, 1000]] = True
    got = nearest_marked(parent, mark, include_self=False)
    assert got[0] == -1 and got[1] == 0 and got[1000] == 0 and got[1001] == 1000 and got[-1] == 1000


def first_fit_nest(rows, track, start, end, parent, depth, lane) -> None:
    """The stack walk as it was before the segment tree: every lane tried in turn."""
    stacks: list[list[tuple[int, int, int]]] = [[]]
    current = None
    for row, trk, s, e in zip(rows.tolist(), track.tolist(), start.tolist(), end.tolist()):
        if trk != current:
            current, stacks = trk, [[]]
        placed = False
        for k, stack in enumerate(stacks):
            while stack and stack[-1][0] <= s:
                stack.pop()
            if k == 0:
                if stack:
                    parent[row] = stack[-1][1]
                    depth[row] = stack[-1][2] + 1
                else:
                    depth[row] = 0
            if not stack or e <= stack[-1][0]:
                stack.append((e, row, int(depth[row])))
                lane[row] = k
                placed = True
                break
        if not placed:
            stacks.append([(e, row, int(depth[row]))])
            lane[row] = len(stacks) - 1


@pytest.mark.parametrize("seed", range(60))
def test_lanes_match_first_fit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    track = np.sort(rng.integers(0, 3, n))
    start = rng.integers(0, int(rng.integers(2, 80)), n)
    dur = rng.integers(0, int(rng.integers(1, 80)), n)
    order = np.lexsort((-dur, start, track))
    track, start, dur = track[order], start[order], dur[order]
    results = []
    for walk in (first_fit_nest, _nest):
        out = (np.full(n, -1, np.int64), np.full(n, -1, np.int32), np.zeros(n, np.int16))
        walk(np.arange(n), track, start, start + dur, *out)
        results.append(out)
    for fast, slow in zip(*results):
        np.testing.assert_array_equal(fast, slow)


def naive_roll_up(exact: dict[tuple[int, str], float]) -> dict[tuple[int, str], float]:
    totals: dict[tuple[int, str], float] = {}
    for (s, p), w in exact.items():
        parts = p.split("/")
        for i in range(1, len(parts) + 1):
            key = (int(s), "/".join(parts[:i]))
            totals[key] = totals.get(key, 0) + w
    return totals


@pytest.mark.parametrize("seed", range(30))
def test_roll_up_matches_prefix_sums(seed: int) -> None:
    rng = np.random.default_rng(seed)
    exact = {}
    for _ in range(int(rng.integers(0, 40))):
        path = "/".join(str(rng.choice(list("abc"))) for _ in range(int(rng.integers(1, 6))))
        exact[(int(rng.integers(0, 3)), path)] = float(rng.integers(0, 100))
    keys = list(exact) + [(int(rng.integers(0, 3)), "/".join(str(rng.choice(list("abcd")))
                                                              for _ in range(int(rng.integers(1, 5)))))
                          for _ in range(30)]
    want = naive_roll_up(exact)
    assert _roll_up(exact, keys) == [want.get((s, p), 0) for s, p in keys]


def load_shapes():
    spec = importlib.util.spec_from_file_location("bench_shapes", ROOT / "bench" / "shapes.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_shapes"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def shapes():
    return load_shapes()


def convert_shape(shapes, tmp_path: Path, shape: str, n: int):
    from tracekit.convert import convert

    trace = tmp_path / f"{shape}.json"
    count = shapes.write(shape, n, trace)
    with pytest.warns(Warning):  # relative timestamps: the synthetic traces have no base time
        summary = convert([trace], tmp_path / "out")
    assert summary["input_events"] == count and summary["conserved"]
    return summary, pq.read_table(tmp_path / "out" / "events.parquet").to_pandas()


def test_identical_events_form_one_chain(shapes, tmp_path: Path) -> None:
    summary, events = convert_shape(shapes, tmp_path, "identical", 20_000)
    assert summary["written_events"] == 20_000
    assert sorted(events["depth"]) == list(range(20_000))
    assert (events["lane"] == 0).all()


def test_deep_nesting_links_every_kernel(shapes, tmp_path: Path) -> None:
    summary, events = convert_shape(shapes, tmp_path, "deep", 30_000)
    ops = events[events["kind"] == "cpu_op"]
    assert ops["depth"].max() == len(ops) - 1
    kernels = events[events["kind"] == "kernel"]
    assert len(kernels) == 10_000 and (kernels["launcher"] >= 0).all()
    assert "unlinked" not in json.dumps(summary["unlinked_device_events"])


def test_staircase_gets_one_lane_per_overlap(shapes, tmp_path: Path) -> None:
    summary, events = convert_shape(shapes, tmp_path, "staircase", 3_000)
    # Each op starts inside the one before and ends after it: it stays a child of the first op,
    # and is drawn on a lane of its own.
    assert sorted(events["lane"]) == list(range(3_000))
    assert summary["trace"]["overlap_lanes_events"] == 2_999


def test_slash_heavy_module_name(shapes, tmp_path: Path) -> None:
    from tracekit.convert import convert

    trace = tmp_path / "slash.json"
    shapes.write("slash_name", 3_000, trace)
    with pytest.warns(Warning):
        summary = convert([trace], tmp_path / "out")
    assert summary["conserved"]
    modules = pq.read_table(tmp_path / "out" / "modules.parquet").to_pandas()
    kernels = pq.read_table(tmp_path / "out" / "kernels.parquet").to_pandas()
    assert len(kernels) == 1000
    # Every kernel is counted under the module, whatever its name holds.
    assert int(modules["kernel_count"].max()) == 1000
