"""small21: compare's list paths give exactly what the pandas code they replace gives (values, order, dtypes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import compared_pair

from tracekit.compare import ops as ops_mod
from tracekit.compare.ops import kahan_sum, one_sided

PAIRS = {
    "bert h100 vs falconsai h100": ("gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz",
                                    "gpu/tracelens/h100/Falconsai_nsfw_image_detection__1016002.json.gz"),
    "gpt vs tp+ddp": ("cpu/gpt/prof_stack_modules.json.gz", "cpu/dist_tp_ddp/rank-0.json.gz"),
}


def test_kahan_sum_is_pandas_groupby_sum():
    """Bit for bit, on values whose naive sum differs from the compensated one."""
    rng = np.random.default_rng(21)
    values = np.concatenate([rng.normal(0, 1e9, 5000) / rng.integers(1, 7, 5000), [np.nan, 1e-3, np.inf, -1e16]])
    groups = rng.integers(0, 40, len(values))
    expected = pd.Series(values).groupby(groups).sum()
    got = [kahan_sum(values[groups == g].tolist()) for g in expected.index]
    assert np.array_equal(np.array(got), expected.to_numpy(), equal_nan=True)
    assert kahan_sum([]) == 0.0 and kahan_sum([np.nan]) == 0.0
    assert sum(values[:4000].tolist()) != kahan_sum(values[:4000].tolist())  # the test does tell them apart


@pytest.mark.parametrize("name", list(PAIRS))
def test_one_sided_lists_equal_pandas(name, monkeypatch):
    cmp = compared_pair(*PAIRS[name])
    fast = one_sided(cmp.ops)
    with monkeypatch.context() as m:
        m.setattr(ops_mod, "_one_sided_lists", lambda ops: None)
        slow = one_sided(cmp.ops)
    assert len(fast)
    pd.testing.assert_frame_equal(fast, slow)
    # ties in time keep the (op, phase) order; ops outside modules count as one module
    ops = cmp.ops.copy()
    ops["base_ns"] = ops["base_ns"].round(-6)
    ops.loc[ops.index[::3], "module_path"] = None
    with monkeypatch.context() as m:
        m.setattr(ops_mod, "_one_sided_lists", lambda ops: None)
        slow = one_sided(ops)
    pd.testing.assert_frame_equal(one_sided(ops), slow)


@pytest.mark.parametrize("name", list(PAIRS))
def test_op_frame_order_and_ordinal_are_pandas_sort_and_cumcount(name):
    """op_frame sorts and numbers its rows with numpy: the order is pandas' stable sort (missing module paths
    first) and `ordinal` is the cumcount within (module path, phase, call)."""
    cmp = compared_pair(*PAIRS[name])
    for side in (cmp.base, cmp.target):
        ops = side.ops
        keys = ["module_path", "phase", "call"]
        resorted = ops.sort_values([*keys, "ts_ns", "row"], kind="stable", na_position="first")
        assert resorted.index.tolist() == list(range(len(ops)))
        expected = ops.groupby(keys, dropna=False, sort=False).cumcount()
        assert ops["ordinal"].tolist() == expected.tolist() and ops["ordinal"].dtype == np.int64


@pytest.mark.parametrize("rel", ["gpu/tracelens/h100/Falconsai_nsfw_image_detection__1016002.json.gz",
                                 "cpu/gpt/prof_stack_modules.json.gz", "cpu/dist_tp_ddp/rank-0.json.gz"])
def test_compare_module_table_is_the_full_tables_columns(rel):
    """compare's module table (COMPARE_COLUMNS, no notes or last-call shapes made) holds the full table's values and
    dtypes in those columns."""
    from conftest import processed_trace

    from tracekit.modules.table import COMPARE_COLUMNS, module_table

    processed = processed_trace(rel)
    full = module_table(processed.table, processed.modules)
    lean = module_table(processed.table, processed.modules, COMPARE_COLUMNS)
    assert len(lean) and list(lean.columns) == list(COMPARE_COLUMNS)
    pd.testing.assert_frame_equal(lean, full[list(COMPARE_COLUMNS)])


def _step_windows_pandas(table):
    """step_windows' ProfilerStep windows as the pandas code before small21 made them (the reference)."""
    from tracekit.compare.steps import PROFILER_STEP

    ev = table.events
    steps = ev[ev["kind"] == "step"]
    host_steps = steps[steps["cat"].astype(str) != "gpu_user_annotation"]
    steps = host_steps if len(host_steps) else steps
    numbers = steps["name"].astype(str).str.extract(r"#(\d+)$", expand=False).fillna(-1).astype(int)
    out = pd.DataFrame({"step": numbers.to_numpy(), "start_ns": steps["ts_ns"].to_numpy(),
                        "dur_ns": np.maximum(steps["dur_ns"].to_numpy(), 0)})
    out = out.sort_values("start_ns").drop_duplicates("step").reset_index(drop=True)
    return out.assign(step_kind=PROFILER_STEP)


@pytest.mark.parametrize("rel", ["gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz",
                                 "cpu/dist_tp_ddp/rank-0.json.gz"])
def test_step_windows_equal_the_pandas_reference(rel):
    """Host ProfilerSteps (the device copies left out), a step recorded twice kept once (the earlier), names
    without a number as -1: the same frame as the pandas code."""
    from conftest import processed_trace

    from tracekit.compare.steps import step_windows
    from tracekit.table import EventTable

    table = processed_trace(rel).table
    assert (table.events["kind"] == "step").any()
    pd.testing.assert_frame_equal(step_windows(table), _step_windows_pandas(table))
    ev = table.events
    first = int(np.flatnonzero((ev["kind"] == "step").to_numpy())[0])
    twice = pd.concat([ev, ev.iloc[[first]]], ignore_index=True)  # the same step again, later
    twice.loc[len(twice) - 1, "ts_ns"] += 1
    odd = EventTable(twice, table.args.take(np.r_[np.arange(len(ev)), first]), table.sources)
    pd.testing.assert_frame_equal(step_windows(odd), _step_windows_pandas(odd))


@pytest.mark.parametrize("name", list(PAIRS))
def test_rolled_up_sums_equal_the_pandas_groupby(name):
    """compare_modules' per-module sums over a module and its descendants (format casts; collectives, of which
    the tp+ddp side has some) over lists equal the groupby sums they replace, and every module gets a value."""
    from tracekit.compare.table import _rolled_up

    cmp = compared_pair(*PAIRS[name])
    for side in (cmp.base, cmp.target):
        ops, paths = side.ops, set(side.modules["module_path"].tolist())
        for value, collectives in (("cast_ns", False), ("device_ns", True), ("host_ns", True)):
            own = ops[ops["module_path"].notna()]
            own = own[own["collective"].astype(bool)] if collectives else own
            exact = own.groupby("module_path")[value].sum()
            expected = {p: float(sum(v for q, v in exact.items() if q == p or q.startswith(p + "/"))) for p in paths}
            got = _rolled_up(ops, value, collectives, paths)
            assert got == expected and len(got) == len(paths)
    assert any(cmp.ops["collective"]) or name.startswith("bert")


def _nearest_pairs_pandas(outer, inner, moving, fixed, shift, window_ns=1_000_000):
    """merge.match.nearest_pairs as the pandas code before small21 made its one-to-one choice (the reference)."""
    from tracekit.merge.match import JOIN, PAIR_COLUMNS, shifted

    frames = []
    for mov_side, fix_side, mov_is_outer in ((outer, inner, True), (inner, outer, False)):
        mov = mov_side[mov_side["file"] == moving]
        fix = fix_side[fix_side["file"].isin(list(fixed))]
        if mov.empty or fix.empty:
            continue
        mov = shifted(mov, shift).sort_values("start")
        fix = shifted(fix, shift).sort_values("start")
        joined = pd.merge_asof(mov, fix[[*JOIN, "start", "row"]].rename(columns={"row": "row_f"}),
                               on="start", by=JOIN, direction="nearest", tolerance=window_ns)
        joined = joined[joined["row_f"].notna()]
        row_f = joined["row_f"].to_numpy().astype(np.int64)
        by_row = fix.set_index("row")
        m = pd.DataFrame({"row_m": joined["row"].to_numpy(), "start_m": joined["start"].to_numpy(),
                          "end_m": joined["end"].to_numpy(), "row_f": row_f,
                          "start_f": by_row.loc[row_f, "start"].to_numpy(),
                          "end_f": by_row.loc[row_f, "end"].to_numpy()})
        m = m.assign(gap=(m["start_m"] - m["start_f"]).abs()).sort_values("gap")
        m = m.drop_duplicates("row_f").drop_duplicates("row_m")
        o, i = ("m", "f") if mov_is_outer else ("f", "m")
        frames.append(pd.DataFrame({
            "row_o": m[f"row_{o}"].to_numpy(), "row_i": m[f"row_{i}"].to_numpy(),
            "start_o": m[f"start_{o}"].to_numpy(), "end_o": m[f"end_{o}"].to_numpy(),
            "start_i": m[f"start_{i}"].to_numpy(), "end_i": m[f"end_{i}"].to_numpy(),
            "moving_is_outer": mov_is_outer}))
        if outer is inner:
            break
    if not frames:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values("row_i").drop_duplicates("row_i").drop_duplicates("row_o")


def test_nearest_pairs_equal_the_pandas_reference():
    """The merge's one-to-one nearest pairs (dispatch, module, same) on VizTracer + profiler files of one run, at the
    true offset and at wrong ones: the same frame (values, dtypes, index labels) as the pandas code."""
    from conftest import shared

    from tracekit.merge import job
    from tracekit.merge.match import PAIR_KINDS, nearest_pairs, sides
    from tracekit.pipeline import read_inputs

    table = read_inputs([shared("cpu/gpt/viz_both.json"), shared("cpu/gpt/prof_both.json")], unique=False)
    priority = job.file_priority(table.sources)
    rep = job.file_groups(table.sources, job.host_pids(table.events, len(table.sources)), priority)
    sided = sides(table.events, job.track_source(table.events, rep))
    found = 0
    for kind in PAIR_KINDS:
        for offset in (0, 700, -40_000, 2_000_000):
            shift = {priority[0]: 0, priority[1]: offset}
            got = nearest_pairs(*sided[kind], priority[1], {priority[0]}, shift)
            expected = _nearest_pairs_pandas(*sided[kind], priority[1], {priority[0]}, shift)
            if not len(expected):
                assert not len(got) and list(got.columns) == list(expected.columns)
                continue
            pd.testing.assert_frame_equal(got, expected)
            found += len(got)
    assert found > 1000
