"""calls19: group inference on int64 columns and integer signature codes (issue 15: the cross-rank stage's state per
collective call).

On real multi-rank traces (DLRM, whose calls name no group; the gloo PP/EP/CP/DP sample sets with send/recv and
all_to_all; Qwen3 on Ascend with HCCL; the CPU TP+DDP set): the signature codes are those of the tuples they
replace, collectives.parquet from the partitions equals the in-memory table (also with ranks missing calls), the
labels mean what they say (a call's group holds its rank, a labelled send has its receive in the same group), and
the memory the compact structures hold is counted (bytes, objects), never timed or read from RSS.
"""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import inference_peak

from tracekit.group_members import MemberIds, collectives_table, members_path, write_members
from tracekit.parallel import crossrank, scratch
from tracekit.parallel.call_codes import CallArrays, call_arrays, first_appearance, signature_codes
from tracekit.parallel.call_groups import _signatures
from tracekit.parallel.collectives import build_collectives
from tracekit.parallel.groups import group_evidence
from tracekit.writers.collectives import collectives_arrow

DLRM = "gpu/param_dlrm_8ranks"
SETS = (DLRM, "sample_traces/dist_pp_dp", "sample_traces/dist_ep_dp", "sample_traces/dist_cp_allgather",
        "sample_traces/dist_dp_cp_async", "npu/msinsight_qwen3_mindspeed", "cpu/dist_tp_ddp")


def _all_calls(results) -> pd.DataFrame:
    return pd.concat([r.collectives for r in results], ignore_index=True)


@pytest.mark.parametrize("rel", SETS)
def test_signature_codes_are_the_factorized_signature_tuples(rel, rank_calls):
    """Each call's code is what pd.factorize gives the (collective, size, peer) tuples the inference used before,
    and each code's one tuple equals every call's tuple of that code."""
    results, _dist = rank_calls(rel)
    calls = _all_calls(results)
    assert len(calls) > 0
    tuples = _signatures(calls)
    codes, sigs = signature_codes(calls)
    assert codes.tolist() == pd.factorize(pd.Series(tuples, dtype=object))[0].tolist()
    assert [sigs[c] for c in codes.tolist()] == tuples
    assert len(sigs) == len(set(tuples))


def test_signature_codes_of_missing_sizes_peers_and_uneven_splits():
    """Missing size or peer reads -1 (as before); all_to_all matches whatever its size; a peer counts only for
    send/recv; a call without a collective is a signature of its own."""
    calls = pd.DataFrame({
        "collective": ["all_reduce", "all_reduce", "all_to_all", "all_to_all", "send", "recv", "send", "broadcast",
                       None],
        "bytes": pd.array([8, None, 16, 32, 4, 4, 4, 8, 8], dtype="Int64"),
        "peer": pd.array([3, None, None, 2, 1, 0, None, 5, None], dtype="Int64"),
    })
    codes, sigs = signature_codes(calls)
    assert [sigs[c] for c in codes.tolist()] == _signatures(calls)
    assert sigs[codes[2]] == sigs[codes[3]] == ("all_to_all", -1, -1)
    assert sigs[codes[0]] == ("all_reduce", 8, -1) and sigs[codes[1]] == ("all_reduce", -1, -1)
    assert sigs[codes[4]] == ("send", 4, 1) and sigs[codes[6]] == ("send", 4, -1)
    assert codes.tolist() == [0, 1, 2, 2, 3, 4, 5, 6, 7]


def test_first_appearance_codes_large_columns():
    """Codes by first appearance, also where the columns' distinct values are too many for one int64 key."""
    rng = np.random.default_rng(19)
    a, b = rng.integers(0, 5, 500), rng.integers(0, 7, 500)
    want = pd.factorize(pd.Series(list(zip(a.tolist(), b.tolist())), dtype=object))[0]
    assert first_appearance(a, b).tolist() == want.tolist()
    big = [rng.integers(-(1 << 40), 1 << 40, 300) for _ in range(4)]  # ~300^4 > 2^62: the np.unique way
    big[0][150:] = big[0][:150]
    big[1][150:] = big[1][:150]
    big[2][150:] = big[2][:150]
    big[3][150:] = big[3][:150]
    want = pd.factorize(pd.Series(list(zip(*(c.tolist() for c in big))), dtype=object))[0]
    assert first_appearance(*big).tolist() == want.tolist()


def _parts_equal_memory(frames, dist, tmp_path: Path) -> pd.DataFrame:
    """collectives.parquet from the call partitions of `frames` checked equal to build_collectives' table in
    memory; returned as read back."""
    for rank, frame in enumerate(frames):
        scratch.write_part(frame, tmp_path / "calls", int(frame["rank"].iloc[0]) if len(frame) else rank, rank)
    rows = crossrank.write_collectives_from_parts(tmp_path / "calls", dist, tmp_path / "c.parquet")
    memory = build_collectives(frames, dist)
    got = collectives_table(tmp_path / "c.parquet")
    assert rows == len(memory)
    assert got.equals(collectives_arrow(memory))
    return crossrank.read_collectives(tmp_path / "c.parquet")


def _check_meaning(frame: pd.DataFrame) -> None:
    """A labelled call's group holds its rank; a labelled send has a labelled receive of its size on the peer in
    the same group (and the other way round); an inferred label says so."""
    labelled = frame[frame["group_ranks"].notna() & frame["group"].notna()]
    for rank, members in zip(labelled["rank"].tolist(), labelled["group_ranks"].tolist()):
        assert rank in list(members)
    p2p = labelled[labelled["collective"].isin(["send", "recv"])]
    for row in p2p.itertuples():
        members = list(row.group_ranks)
        other = members[int(row.peer)]
        want = "recv" if row.collective == "send" else "send"
        there = p2p[(p2p["rank"] == other) & (p2p["collective"] == want) & (p2p["group"] == row.group)
                    & (p2p["bytes"] == row.bytes)]
        assert len(there) > 0, (row.rank, row.collective, other)
    inferred = frame["group_from"].fillna("").str.startswith("inferred")
    assert frame.loc[inferred, "group"].notna().all()


@pytest.mark.parametrize("rel", SETS)
def test_parts_are_the_in_memory_table_and_labels_mean_what_they_say(rel, rank_calls, tmp_path):
    """Every set whole: the partitions' table is the in-memory one, labels check out (see _check_meaning)."""
    results, dist = rank_calls(rel)
    frame = _parts_equal_memory([r.collectives for r in results], dist, tmp_path)
    assert len(frame) == sum(len(r.collectives) for r in results)
    _check_meaning(frame)
    if rel == DLRM:  # no group named: every call inferred into the world group of 8
        assert frame["group_from"].str.startswith("inferred").all()
        assert {tuple(g) for g in frame["group_ranks"]} == {tuple(range(8))}
    if rel == "sample_traces/dist_pp_dp":  # send/recv inferred into 2-rank groups
        p2p = frame[frame["collective"].isin(["send", "recv"]) & frame["group"].notna()]
        assert len(p2p) > 0 and (p2p["group_ranks"].map(len) == 2).all()


@pytest.mark.parametrize("rel", [DLRM, "sample_traces/dist_pp_dp", "sample_traces/dist_ep_dp",
                                 "npu/msinsight_qwen3_mindspeed"])
def test_ranks_missing_calls_are_labelled_as_in_memory(rel, rank_calls, tmp_path):
    """One rank cut to its first half and (where there are more than 2 ranks) another without calls: the same
    table from partitions as in memory, no label without its counterparts, labels that check out."""
    results, dist = rank_calls(rel)
    ranks = sorted(r.rank for r in results)
    frames = []
    for r in results:
        calls = r.collectives
        if r.rank == ranks[-1]:
            calls = calls.iloc[: len(calls) // 2]
        if len(ranks) > 2 and r.rank == ranks[1]:
            calls = calls.iloc[:0]
        frames.append(calls)
    frame = _parts_equal_memory(frames, dist, tmp_path)
    assert len(frame) == sum(len(f) for f in frames)
    _check_meaning(frame)
    if rel == DLRM:  # rank 1 has no calls: no call can be matched in the world group
        assert not frame["group_from"].str.startswith("inferred").any()


def test_call_arrays_hold_no_object_per_call(rank_calls, tmp_path):
    """The inference's per-call state on DLRM copied to 256 ranks: four int64 columns and a bool (33 B a call),
    one tuple per distinct signature, nothing per call in Python objects (tracemalloc of what it holds)."""
    results, _dist = rank_calls(DLRM)
    for i in range(256):
        scratch.write_part(results[i % len(results)].collectives, tmp_path / "c", i, i)
    narrow, _used = crossrank.narrow_calls(scratch.list_parts(tmp_path / "c"))
    call_arrays(narrow)  # warm
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        arrays = call_arrays(narrow)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert isinstance(arrays, CallArrays) and len(arrays) == len(narrow) == 256 * 8
    assert arrays.nbytes == 33 * len(arrays)
    assert len(arrays.sigs) < len(arrays) / 100
    assert held < arrays.nbytes + 16_384, (held, arrays.nbytes)
    assert all(isinstance(s, tuple) for s in arrays.sigs) and arrays.p2p.dtype == bool


def test_inference_peak_per_added_call(rank_calls, tmp_path):
    """Group inference (label_calls) on DLRM copied to 32 and 256 ranks: its Python peak grows by less than 240 B
    per added call (tracemalloc; 180-192 B with the compact state, 284-300 B on main before it), every call
    inferred into the world group."""
    results, _dist = rank_calls(DLRM)
    peaks, sizes = [], []
    for n in (32, 256):
        for i in range(n):
            scratch.write_part(results[i % len(results)].collectives, tmp_path / f"c{n}", i, i)
        dist = group_evidence([{**results[i % len(results)].distributed, "rank": i, "world_size": n}
                               for i in range(n)])
        narrow, _used = crossrank.narrow_calls(scratch.list_parts(tmp_path / f"c{n}"))
        peak, labelled = inference_peak(narrow, dist)
        peaks.append(peak)
        sizes.append(len(narrow))
        assert labelled["group_from"].str.startswith("inferred").all()
        assert {len(g) for g in labelled["group_ranks"]} == {n}
    per_call = (peaks[1] - peaks[0]) / (sizes[1] - sizes[0])
    assert 0 < per_call < 240, per_call


def test_spilled_batches_keep_each_schema_once(rank_calls, tmp_path, monkeypatch):
    """Batches of finished ranks (DLRM copied to 64 ranks, small batches): one schema kept per distinct schema,
    not one per batch, and the file written from them is the in-memory table."""
    results, dist = rank_calls(DLRM)
    frames = []
    for i in range(64):
        frame = results[i % len(results)].collectives.assign(rank=i)
        frames.append(frame)
        scratch.write_part(frame, tmp_path / "c", i, i)
    dist = group_evidence([{**results[i % len(results)].distributed, "rank": i, "world_size": 64}
                           for i in range(64)])
    monkeypatch.setattr(crossrank, "BATCH_BYTES", 1)  # a batch per rank
    ranks = crossrank.finished_tables(tmp_path / "c", dist)
    scratch_dir = tmp_path / "spill"
    scratch_dir.mkdir()
    registry = MemberIds()
    batches, schemas = crossrank.spill_batches(ranks, scratch_dir, registry)
    assert len(batches) == 64 and len(schemas) <= 2  # the first rank's pandas metadata, and the others'
    assert len({s.serialize().to_pybytes() for s in schemas}) == len(schemas)  # distinct, metadata included
    assert len(registry) == 1  # one world group of 64: its list stored once
    rows = crossrank.write_batches(batches, schemas, tmp_path / "c.parquet")
    write_members(registry, members_path(tmp_path / "c.parquet"))
    memory = build_collectives(frames, dist)
    assert rows == len(memory) == 64 * 8
    assert collectives_table(tmp_path / "c.parquet").equals(collectives_arrow(memory))
