"""pmem17: the cross-rank stage holds compact state per call and per partition (issue 15: the parent's peak flat).

Checked on real multi-rank traces (param_dlrm_8ranks, whose calls do not name their group; the gloo/PP/EP sample
sets; Qwen3 on Ascend): the compact structures answer as the ones they replace, collectives.parquet from the
partitions equals the table built in memory, and the memory they hold is counted (bytes, rows, objects), not
timed or read from RSS.
"""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import inference_peak

from tracekit.group_members import collectives_table
from tracekit.parallel import crossrank, scratch
from tracekit.parallel.call_groups import _P2P, Candidate, _Index, _Sequences, _signatures
from tracekit.parallel.collectives import build_collectives, label_calls
from tracekit.parallel.groups import LAZY_COPY, assign_groups, group_evidence, groups_from_ranks
from tracekit.ranks import group_table
from tracekit.writers.collectives import collectives_arrow

SETS = ("gpu/param_dlrm_8ranks", "sample_traces/dist_pp_dp", "sample_traces/dist_ep_dp",
        "sample_traces/dist_dp_cp_async", "npu/msinsight_qwen3_mindspeed")




def _copies(results, n: int, folder: Path):
    """Call partitions of n ranks copied round robin from the real ranks' calls, and their distributedInfo."""
    for i in range(n):
        scratch.write_part(results[i % len(results)].collectives, folder, i, i)
    return group_evidence([{**results[i % len(results)].distributed, "rank": i, "world_size": n} for i in range(n)])


def _prepared(narrow: pd.DataFrame) -> pd.DataFrame:
    """The call table as infer_call_groups prepares it (signatures, ends, signature codes)."""
    calls = narrow.reset_index(drop=True)
    calls = calls.assign(_sig=_signatures(calls), _end=calls["start_ns"].to_numpy() + calls["dur_ns"].to_numpy())
    calls["_code"] = pd.factorize(calls["_sig"])[0]
    return calls


@pytest.mark.parametrize("rel", SETS)
def test_collectives_from_parts_are_the_in_memory_table(rel, rank_calls, tmp_path):
    """collectives.parquet from the partitions (compact partition list, compact inference state) equals the table
    built from all calls in memory, types and content, and gives the same process groups."""
    results, dist = rank_calls(rel)
    for r in results:
        scratch.write_part(r.collectives, tmp_path / "calls", r.rank, r.index)
    rows = crossrank.write_collectives_from_parts(tmp_path / "calls", dist, tmp_path / "parts.parquet")
    memory = build_collectives([r.collectives for r in results], dist)
    want = collectives_arrow(memory)
    got = collectives_table(tmp_path / "parts.parquet")
    assert rows == len(memory) > 0
    assert got.schema.remove_metadata().equals(want.schema.remove_metadata())  # pandas metadata: first rank's
    assert got.equals(want)
    assert group_table(dist, crossrank.read_collectives(tmp_path / "parts.parquet")) == group_table(dist, memory)


def test_dlrm_calls_all_land_in_the_world_group(rank_calls, tmp_path):
    """DLRM's events name no group: every call of the 8 ranks is inferred into the one group of all 8 ranks (the
    only group: distributedInfo has world_size only), dimension `world`, marked inferred."""
    results, dist = rank_calls("gpu/param_dlrm_8ranks")
    for r in results:
        scratch.write_part(r.collectives, tmp_path / "calls", r.rank, r.index)
    crossrank.write_collectives_from_parts(tmp_path / "calls", dist, tmp_path / "c.parquet")
    frame = crossrank.read_collectives(tmp_path / "c.parquet")
    assert len(frame) == sum(len(r.collectives) for r in results) == 64
    assert frame["group_ranks"].map(list).map(tuple).unique().tolist() == [tuple(range(8))]
    assert frame["group_from"].str.startswith("inferred").all()
    assert (frame["parallel_dim"] == "world").all() and frame["parallel_dim_inferred"].all()


@pytest.mark.parametrize("rel", ["gpu/param_dlrm_8ranks", "sample_traces/dist_pp_dp", "sample_traces/dist_ep_dp"])
def test_sequences_are_the_groupby_parts(rel, rank_calls):
    """_Sequences (sorted arrays, one int64 key per (group, rank)) gives each (group, rank)'s labelled calls as the
    pandas groupby parts the agreement check compared before; absent keys give empty arrays."""
    results, dist = rank_calls(rel)
    calls = _prepared(pd.concat([r.collectives for r in results], ignore_index=True))
    labelled = label_calls(calls.drop(columns=["_sig", "_end", "_code"]), dist)
    names = {Candidate(g.name, g.ranks).label: i for i, g in enumerate(groups_from_ranks(dist, calls).values())}
    label = np.array([names.get(f"{g} {list(r)}", -1) if r is not None else -1
                      for g, r in zip(labelled["group"], labelled["group_ranks"])], dtype=np.int64)
    hit = label >= 0
    assert hit.sum() > 0
    frame = calls.loc[hit, ["rank", "start_ns", "_end", "_code", "_sig"]].assign(_label=label[hit])
    frame = frame.sort_values(["_label", "rank", "start_ns"], kind="stable")
    frame = frame[~frame["_sig"].map(lambda sig: sig[0] in _P2P).to_numpy(dtype=bool)]
    seqs = _Sequences(frame)
    parts = dict(frame.groupby(["_label", "rank"], sort=False).__iter__())
    assert seqs.labels() == sorted({int(g) for g, _r in parts})
    for (g, r), part in parts.items():
        got = seqs.get(int(g), int(r))
        for a, b in zip(got, (part["_code"], part["start_ns"], part["_end"], pd.Series(part.index))):
            assert a.tolist() == b.tolist()
    for g, r in ((0, -5), (10**6, 0), (seqs.labels()[0], 10**6)):
        assert all(len(a) == 0 for a in seqs.get(g, r))


def test_index_holds_arrays_not_objects_per_key(rank_calls, tmp_path):
    """The overlap index of DLRM calls copied to 256 ranks holds five int64 arrays over the calls and 32 bytes a
    (rank, signature) key, and nothing per key in Python objects (the dict of tuples it replaces: ~140 B a call).
    Signatures are one tuple object per distinct signature."""
    results, _dist = rank_calls("gpu/param_dlrm_8ranks")
    _copies(results, 256, tmp_path / "c")
    narrow, _used = crossrank.narrow_calls(scratch.list_parts(tmp_path / "c"))
    calls = _prepared(narrow)
    sigs = calls["_sig"].tolist()
    assert len({id(s) for s in sigs}) == len(set(sigs)) < len(sigs) / 100
    _Index(calls, 0)  # warm
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        index = _Index(calls, 0)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    keys = len(index.keys)
    assert keys == calls.groupby(["rank", "_code"]).ngroups
    assert index.keys.nbytes + index.lo.nbytes + index.hi.nbytes + index.longest.nbytes == 32 * keys
    arrays = sum(a.nbytes for a in (index.starts, index.ends, index.rows, index.max_end, index.keys, index.lo,
                                    index.hi, index.longest))
    assert held < arrays + 16_384, (held, arrays)  # the arrays, the code table and headers: no per-key objects
    assert held / len(calls) < 80


def test_part_list_holds_little_per_partition(rank_calls, tmp_path):
    """The partitions the cross-rank stage keeps (512 ranks): ~0.1 KB each, against ~0.6 KB for a tuple with a
    Path; iterating gives the (rank, path, offset, columns) the stage used, by_rank the ranks in order."""
    results, _dist = rank_calls("gpu/param_dlrm_8ranks")
    _copies(results, 512, tmp_path / "c")
    listed = scratch.list_parts(tmp_path / "c")
    names = scratch.Part(listed[0][2]).schema.names
    gc.collect()
    tracemalloc.start()
    try:
        parts = scratch.PartList()
        offset = 0
        for _index, rank, path in listed:
            parts.add(rank, path, offset, names)
            offset += 8
        # what PartList's own lines allocated: not a resize of CPython's interned-string table that other tests'
        # paths may trigger during the loop (one 3.9 MB block, seen in a whole-suite run)
        mine = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, scratch.__file__)])
        held = sum(stat.size for stat in mine.statistics("filename"))
    finally:
        tracemalloc.stop()
    assert 0 < held / len(listed) < 160, held / len(listed)
    assert [(r, p, o) for r, p, o, _c in parts] == [(r, p, 8 * k) for k, (_i, r, p) in enumerate(listed)]
    assert all(c is parts.schemas[0] for _r, _p, _o, c in parts) and len(parts.schemas) == 1
    assert [r for r, _pos in parts.by_rank()] == list(range(512))
    assert list(parts.all_columns()) == names
    odd = scratch.PartList()  # a partition outside the folder layout keeps its whole path
    odd.add(3, tmp_path / "c" / "rank=3" / "part-00003.arrow", 0, names)
    odd.add(4, tmp_path / "elsewhere.arrow", 8, names)
    inside = tmp_path / "c" / "rank=3" / "part-00003.arrow"
    assert [p for _r, p, _o, _c in odd] == [inside, tmp_path / "elsewhere.arrow"]


def test_group_inference_peak_per_call(rank_calls, tmp_path):
    """Group inference on DLRM calls copied to 32 and 256 ranks: the Python memory at its peak grows by less than
    0.45 KB per added call (tracemalloc; ~0.3 KB now, ~0.7 KB before pmem17), every call inferred."""
    results, _dist = rank_calls("gpu/param_dlrm_8ranks")
    peaks, sizes = [], []
    for n in (32, 256):
        dist = _copies(results, n, tmp_path / f"c{n}")
        narrow, _used = crossrank.narrow_calls(scratch.list_parts(tmp_path / f"c{n}"))
        peak, labelled = inference_peak(narrow, dist)
        peaks.append(peak)
        sizes.append(len(narrow))
        assert labelled["group_from"].str.startswith("inferred").all()
    per_call = (peaks[1] - peaks[0]) / (sizes[1] - sizes[0])
    assert 0 < per_call < 450, per_call


def test_assigned_groups_share_the_unchanged_columns(rank_calls):
    """assign_groups' result is a copy as far as the caller can tell (the input is unchanged), and with pandas'
    copy-on-write it shares the columns it does not set instead of holding them twice."""
    results, dist = rank_calls("gpu/param_dlrm_8ranks")
    calls = pd.concat([r.collectives for r in results], ignore_index=True)
    before = calls.copy()
    out = assign_groups(calls, groups_from_ranks(dist, calls))
    pd.testing.assert_frame_equal(calls, before)
    assert out["group"].notna().all() and calls["group"].isna().all()
    shared = np.shares_memory(out["start_ns"].to_numpy(), calls["start_ns"].to_numpy())
    assert shared == LAZY_COPY
