"""flat18: a multi-rank convert's parent holds nothing per rank after the rank loop (issue 15: the parent's peak
flat in the number of ranks), and the outputs stay what they were.

Checked on real multi-rank traces (param_dlrm_8ranks, whose calls name no group; the recorded sample sets, whose
gloo/NCCL calls name theirs; Qwen3 on Ascend) and on ranks with calls missing: the executors hand each result to
the caller and drop it, the ranks are kept as columns (RankIndex) that say what the RankResults said, the merged
trace, collectives and process groups equal those of the path that kept every result, and what is held is
counted (objects alive, bytes of the columns), not timed or read from RSS.
"""

from __future__ import annotations

import gc
import json
import shutil
import weakref
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import rank_set_paths, shared

import tracekit.ranks as ranks_mod
from tracekit.convert import convert
from tracekit.errors import TraceWarning
from tracekit.executors import SUBMIT_AHEAD, LocalPool, run_on
from tracekit.group_members import collectives_table
from tracekit.parallel import crossrank, scratch
from tracekit.parallel.collectives import build_collectives
from tracekit.rankrecords import RankIndex, RankRecords
from tracekit.writers.collectives import collectives_arrow

DLRM = "gpu/param_dlrm_8ranks"
SETS = (DLRM, "sample_traces/dist_pp_dp", "sample_traces/dist_ep_dp", "sample_traces/dist_dp_cp_async",
        "npu/msinsight_qwen3_mindspeed")


class _Box:
    """A result that can be watched with a weak reference."""

    def __init__(self, value: int):
        self.value = value


def _boxed(x: int) -> _Box:
    return _Box(x * 10)


def test_local_pool_hands_each_result_over_and_keeps_none():
    """keep=False: on_done gets every result in job order, nothing is returned, and no result outlives on_done
    (in-process: the pool's own references are gone once on_done returns)."""
    seen, watched = [], []

    def done(box: _Box) -> None:
        seen.append(box.value)
        watched.append(weakref.ref(box))

    assert LocalPool(1).run(_boxed, [3, 1, 2], on_done=done, keep=False) == []
    gc.collect()
    assert seen == [30, 10, 20]
    assert all(ref() is None for ref in watched)
    assert LocalPool(1).run(_boxed, [4], on_done=lambda b: None)[0].value == 40  # the default keeps them


def test_process_pool_hands_results_over_in_order_without_keeping_them():
    """More jobs than the window submitted ahead (SUBMIT_AHEAD per worker): every result once, in job order."""
    jobs = [-(i * 7 % 23) for i in range(3 * SUBMIT_AHEAD * 2 + 1)]
    seen: list[int] = []
    out = LocalPool(2, preload=["tracekit.executors"]).run(abs, jobs, on_done=seen.append, keep=False)
    assert out == [] and seen == [abs(j) for j in jobs]
    assert LocalPool(2, preload=["tracekit.executors"]).run(abs, jobs[:3]) == [abs(j) for j in jobs[:3]]


def test_run_on_keeps_results_of_executors_without_the_argument():
    """An executor passed by the caller that knows no `keep` runs as before (its results returned)."""

    class Plain:
        name = "plain"

        def run(self, fn, jobs, on_done=None):
            out = [fn(j) for j in jobs]
            for r in out:
                if on_done:
                    on_done(r)
            return out

    seen: list[int] = []
    assert run_on(Plain(), abs, [-1, -2], on_done=seen.append, keep=False) == [1, 2] and seen == [1, 2]


@pytest.mark.parametrize("rel", ["sample_traces/dist_pp_dp", "npu/msinsight_qwen3_mindspeed"])
def test_rank_index_says_what_the_results_said(rel, tmp_path):
    """The columns kept per rank give each rank's index, rank, fragment and fragment base as the RankResults of
    the same inputs do; 8 bytes a number and the fragment's path text, no object per rank."""
    paths = rank_set_paths(rel)
    records = RankRecords(tmp_path / "r.jsonl")
    kept = ranks_mod.run_ranks(ranks_mod.job_list(paths, tmp_path / "a", calls=str(tmp_path / "a" / "calls"),
                                                  splits=False), 1, on_done=records.add)
    index = records.ranks
    assert len(index) == len(kept) == len(paths) > 1
    assert [tuple(row) for row in index] == [(r.index, r.rank, r.fragment, r.fragment_base_ns) for r in kept]
    assert [index[i].fragment for i in range(len(index))] == [r.fragment for r in kept]
    assert index[-1] == index[len(index) - 1]
    with pytest.raises(IndexError):
        index[len(index)]
    assert all(Path(r.fragment).is_file() for r in index)
    text = sum(len(r.fragment.encode()) for r in kept)
    held = sum(a.buffer_info()[1] * a.itemsize for a in (index.indexes, index.ranks, index.bases, index._ends))
    assert held == 4 * 8 * len(kept) and len(index._text) == text and len(index._has) == len(kept)


def test_rank_index_without_fragments():
    index = RankIndex()
    index.add(0, 5, None, 0)
    index.add(1, 6, "/x/00001.json", 7)
    index.add(2, 7, None, 0)
    index.add(3, 8, "/x/00003.json", 9)
    assert [tuple(r) for r in index] == [(0, 5, None, 0), (1, 6, "/x/00001.json", 7), (2, 7, None, 0),
                                         (3, 8, "/x/00003.json", 9)]


@pytest.fixture(scope="module")
def dlrm_loop(tmp_path_factory):
    """convert of the 8 DLRM ranks in-process, with the RankResults alive when the merged trace is written."""
    seen: dict = {}
    real = ranks_mod.write_traces

    def spy(results, records, *args, **kwargs):
        gc.collect()
        seen["alive"] = sum(isinstance(o, ranks_mod.RankResult) for o in gc.get_objects())
        seen["given"] = results
        return real(results, records, *args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(ranks_mod, "write_traces", spy)
    try:
        out = tmp_path_factory.mktemp("dlrm") / "out"
        summary = convert(rank_set_paths(DLRM), out, workers=1)
    finally:
        mp.undo()
    return out, summary, seen


def test_no_rank_result_outlives_the_rank_loop(dlrm_loop):
    """After the loop the parent holds no RankResult: the merged trace gets the ranks as columns."""
    _out, summary, seen = dlrm_loop
    assert seen["alive"] == 0
    assert isinstance(seen["given"], RankIndex) and [r.rank for r in seen["given"]] == summary["ranks"]
    assert summary["ranks"] == list(range(8))


def test_dlrm_convert_is_the_kept_results_path(dlrm_loop, tmp_path, monkeypatch):
    """The convert that keeps nothing per rank writes what the path that keeps every RankResult writes: the merged
    trace byte for byte, summary.json (but pids), collectives.parquet (every call inferred into the world group)."""
    out, _summary, _seen = dlrm_loop
    real = ranks_mod.run_ranks
    monkeypatch.setattr(ranks_mod, "run_ranks", lambda *a, **k: real(*a, **{**k, "keep": True}))
    old = tmp_path / "old"
    convert(rank_set_paths(DLRM), old, workers=1)
    assert (old / "trace.json").read_bytes() == (out / "trace.json").read_bytes()
    a, b = (json.loads((d / "summary.json").read_text()) for d in (old, out))
    for s in (a, b):
        s["workers"].pop("pids")
    assert a == b
    got, want = collectives_table(out / "collectives.parquet"), collectives_table(old / "collectives.parquet")
    assert got.equals(want) and got.num_rows == 64
    frame = crossrank.read_collectives(out / "collectives.parquet")
    assert frame["group_from"].str.startswith("inferred").all()
    assert frame["group_ranks"].map(tuple).unique().tolist() == [tuple(range(8))]


def test_two_inputs_claiming_one_rank_warn_as_before(tmp_path):
    """check_rank_index reads the paths only when ranks repeat, and warns as check_ranks did."""
    rank0 = sorted(shared(DLRM).glob("*.json.gz"))[0]
    first, second = tmp_path / "a" / rank0.name, tmp_path / "b" / rank0.name
    for dst in (first, second):
        dst.parent.mkdir()
        shutil.copyfile(rank0, dst)
    with pytest.warns(TraceWarning, match=r"rank 0 also comes from .*a/"):
        summary = convert([first, second], tmp_path / "out", workers=1)
    assert summary["ranks"] == [0]


@pytest.mark.parametrize("rel", SETS)
def test_collectives_from_spilled_batches_are_the_in_memory_table(rel, rank_calls, tmp_path, monkeypatch):
    """spill_batches + write_batches (one batch per rank here) give the table built from all calls in memory:
    groups named by the calls (sample sets, Ascend) or inferred (DLRM), HCCL groups, bandwidth."""
    monkeypatch.setattr(crossrank, "BATCH_BYTES", 1)
    results, dist = rank_calls(rel)
    for r in results:
        scratch.write_part(r.collectives, tmp_path / "calls", r.rank, r.index)
    rows = crossrank.write_collectives_from_parts(tmp_path / "calls", dist, tmp_path / "parts.parquet")
    memory = build_collectives([r.collectives for r in results], dist)
    got = collectives_table(tmp_path / "parts.parquet")
    assert rows == len(memory) > 0
    assert pq.ParquetFile(tmp_path / "parts.parquet").metadata.num_row_groups == len({r.rank for r in results})
    assert got.equals(collectives_arrow(memory))


def test_missing_calls_on_some_ranks_are_withdrawn_as_in_memory(rank_calls, tmp_path):
    """DLRM with rank 3's second half of calls gone and rank 5 without calls: the labels from the partitions are
    those of the in-memory table, and calls whose counterparts are missing are not put in the world group."""
    results, dist = rank_calls(DLRM)
    frames = []
    for r in results:
        calls = r.collectives
        if r.rank == 3:
            calls = calls.iloc[: len(calls) // 2]
        if r.rank == 5:
            calls = calls.iloc[:0]
        frames.append(calls)
        scratch.write_part(calls, tmp_path / "calls", r.rank, r.index)
    frame = _parts_as_in_memory(frames, dist, tmp_path)
    assert len(frame) == 64 - 4 - 8 and 5 not in set(frame["rank"])
    world = frame["group_ranks"].map(lambda g: g is not None and tuple(g) == tuple(range(8)))
    assert not (world & frame["group_from"].str.startswith("inferred")).any()  # rank 5 has no counterparts
    assert frame["group_from"].str.startswith(("unknown", "undecided")).all()
    assert isinstance(frame, pd.DataFrame)


@pytest.mark.parametrize("rel", ["sample_traces/dist_ep_dp", "sample_traces/dist_pp_dp",
                                 "npu/msinsight_qwen3_mindspeed"])
def test_calls_missing_on_one_rank_where_groups_are_named(rel, rank_calls, tmp_path):
    """Sets whose groups are named (pg_config of distributedInfo; HCCL communicators on Ascend) with the last rank's
    calls cut to the first third: collectives.parquet from the partitions is the in-memory table, every call is
    there, and every inferred label is a named group (none invented for the calls whose counterparts are gone)."""
    results, dist = rank_calls(rel)
    last = max(r.rank for r in results)
    frames = []
    for r in results:
        calls = r.collectives.iloc[: len(r.collectives) // 3] if r.rank == last else r.collectives
        frames.append(calls)
        scratch.write_part(calls, tmp_path / "calls", r.rank, r.index)
    frame = _parts_as_in_memory(frames, dist, tmp_path)
    assert len(frame) == sum(len(f) for f in frames) > 0
    named = {row["group"] for row in ranks_mod.group_table(dist, frame)}
    labelled = frame["group"].notna()
    how = frame["group_from"].fillna("")
    inferred = how.str.startswith("inferred") & ~how.str.startswith("inferred: HCCL group")  # HCCL: communicator ids
    assert labelled.any() and set(frame.loc[inferred, "group"]) <= named
    full = crossrank.read_collectives(_full(rel, rank_calls, tmp_path))
    assert labelled.sum() <= full["group"].notna().sum()  # cutting calls never decides more of them


def _full(rel, rank_calls, tmp_path) -> Path:
    results, dist = rank_calls(rel)
    for r in results:
        scratch.write_part(r.collectives, tmp_path / "full", r.rank, r.index)
    crossrank.write_collectives_from_parts(tmp_path / "full", dist, tmp_path / "full.parquet")
    return tmp_path / "full.parquet"


def _parts_as_in_memory(frames: list, dist, tmp_path):
    """collectives.parquet from the call partitions under tmp_path/calls, checked equal to the in-memory table of
    `frames`; returned as read back."""
    crossrank.write_collectives_from_parts(tmp_path / "calls", dist, tmp_path / "c.parquet")
    memory = build_collectives(frames, dist)
    assert collectives_table(tmp_path / "c.parquet").equals(collectives_arrow(memory))
    return crossrank.read_collectives(tmp_path / "c.parquet")
