"""The numpy replacements of per-rank pandas groupby/merge calls (issue 15, fixed cost per rank) give what
pandas gives: group codes and first matches against groupby/merge on real trace columns and random keys,
the module table's subtree sums against the trie roll-up, the steps table's device extents against a
pandas groupby over the same events, and the per-category caches against a plain per-row test."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from conftest import shared
from tracekit.converters import read_trace

from tracekit.modules.table import _Inclusive, _roll_up
from tracekit.pipeline import process
from tracekit.steps import step_table
from tracekit.table import DEVICE_KINDS, first_match, group_codes, is_in, matches


@pytest.fixture(scope="module")
def nccl_events() -> pd.DataFrame:
    table = read_trace(shared("gpu/hta/nccl_data.json.gz"))
    table.events["source_index"] = 0
    return process(table).table.events


def test_group_codes_match_groupby_on_trace_tracks(nccl_events: pd.DataFrame) -> None:
    cols = [nccl_events[c].to_numpy() for c in ("source_index", "pid", "tid", "ts_ns")]
    frame = pd.DataFrame({str(i): c for i, c in enumerate(cols)})
    for sort in (True, False):
        code, groups = group_codes(*cols, sort=sort)
        want = frame.groupby(list(frame.columns), sort=sort).ngroup().to_numpy()
        assert groups == want.max() + 1
        np.testing.assert_array_equal(code, want)


@pytest.mark.parametrize("seed", range(20))
def test_group_codes_and_first_match_on_random_keys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    wide = rng.integers(-(2**62), 2**62, n) if seed % 2 else rng.integers(-2, 3, n)
    cols = [rng.integers(0, 3, n).astype(np.int32), wide, rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64)
            if seed % 3 == 0 else rng.integers(0, 4, n)]
    frame = pd.DataFrame({"a": cols[0], "b": cols[1], "c": cols[2]})
    for sort in (True, False):
        code, _ = group_codes(*cols, sort=sort)
        np.testing.assert_array_equal(code, frame.groupby(["a", "b", "c"], sort=sort).ngroup().to_numpy())
    query = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    query.loc[::3, "c"] = 7  # some keys that are not in the table
    table = frame.assign(pos=np.arange(n)).drop_duplicates(["a", "b", "c"])
    want = query.merge(table, on=["a", "b", "c"], how="left")["pos"].fillna(-1).astype(np.int64).to_numpy()
    got = first_match(tuple(query[c].to_numpy() for c in "abc"), tuple(frame[c].to_numpy() for c in "abc"))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed", range(10))
def test_inclusive_sums_match_trie_roll_up(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    paths = np.array(["/".join(rng.choice(list("abc"), int(rng.integers(1, 5)))) for _ in range(n)], dtype=object)
    paths[rng.random(n) < 0.1] = None
    src = rng.integers(0, 2, n)
    weight = rng.integers(0, 1000, n)
    mask = rng.random(n) < 0.6
    out_keys = sorted({(int(s), p) for s, p in zip(src, paths) if p is not None} | {(0, "a"), (1, "zz")})
    out_src = np.array([k[0] for k in out_keys])
    out_paths = np.array([k[1] for k in out_keys], dtype=object)
    inclusive = _Inclusive(src, pd.Series(pd.Categorical(paths)), out_src, out_paths)
    exact: dict[tuple[int, str], float] = {}
    for s, p, w, m in zip(src, paths, weight, mask):
        if m and p is not None:
            exact[(int(s), p)] = exact.get((int(s), p), 0) + int(w)
    assert inclusive.sums(mask, weight).tolist() == _roll_up(exact, out_keys)
    counts = {k: 0 for k in exact}
    for s, p, m in zip(src, paths, mask):
        if m and p is not None:
            counts[(int(s), p)] += 1
    assert inclusive.sums(mask).tolist() == _roll_up(counts, out_keys)


def test_step_device_extents_match_groupby(nccl_events: pd.DataFrame) -> None:
    steps = step_table(nccl_events)
    assert len(steps) and steps["step"].notna().all()
    ev = nccl_events
    device = ev[is_in(ev["kind"], DEVICE_KINDS) & (ev["step"].to_numpy() >= 0)]
    want = device.assign(end=device["ts_ns"] + device["dur_ns"].clip(lower=0)).groupby("step").agg(
        start=("ts_ns", "min"), end=("end", "max"))
    for _, row in steps.iterrows():
        if row["device_from"] == "device_events":
            assert row["device_start_ns"] == want.loc[row["step"], "start"]
            assert row["device_start_ns"] + row["device_dur_ns"] == want.loc[row["step"], "end"]
    # host extent: the ProfilerStep annotation itself
    host = ev[is_in(ev["kind"], ("step",)) & (ev["cat"].astype(str) != "gpu_user_annotation").to_numpy()]
    assert sorted(steps["start_ns"].dropna().tolist()) == sorted(host["ts_ns"].tolist())


def test_category_tests_match_row_tests(nccl_events: pd.DataFrame) -> None:
    names = nccl_events["name"]
    plain = names.astype(object)
    for pattern in (r"nccl", r"(?i).*wait", re.compile(r"^aten::(mm|addmm)$")):
        first, again = matches(names, pattern), matches(names, pattern)  # the second answer is the cached one
        want = plain.str.match(pattern, na=False).to_numpy(dtype=bool)
        np.testing.assert_array_equal(first, want)
        np.testing.assert_array_equal(again, want)
    kinds = ("kernel", "cpu_op")
    np.testing.assert_array_equal(is_in(nccl_events["kind"], kinds),
                                  nccl_events["kind"].astype(object).isin(kinds).to_numpy())
