"""stream22: group inference with bounded transients (issue 15, the cross-rank stage's label step).

Signature codes are made a chunk of calls at a time and the agreement check sweeps one array of the labelled calls'
positions, gathering each (group, rank) sequence when a pair needs it. Checked here: both give what the whole-table
versions gave (codes and signatures; the groups that disagree and the edge calls, with their reasons; the whole
inference's result) on the shared multi-rank sets and on hand-made hard cases, and their Python peak per added call
(tracemalloc: bytes, never time) is below what the whole-table versions need.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import pytest

from tracekit.parallel import call_groups
from tracekit.parallel.agreement import _Sequences, compare, disagreements, rank_windows
from tracekit.parallel.call_codes import CallArrays, call_arrays, first_appearance, signature_codes
from tracekit.parallel.call_groups import Candidate, _signatures, infer_call_groups
from tracekit.parallel.candidates import members_to_check, same_code
from tracekit.parallel.groups import groups_from_ranks

SETS = ("gpu/param_dlrm_8ranks", "sample_traces/dist_pp_dp", "sample_traces/dist_ep_dp",
        "sample_traces/dist_cp_allgather", "sample_traces/dist_dp_cp_async", "npu/msinsight_qwen3_mindspeed",
        "cpu/dist_tp_ddp")


def whole_table_disagreements(calls: CallArrays, label: np.ndarray, groups: Sequence[Candidate], tolerance_ns: int,
                              windows: object = None) -> tuple[dict[int, str], dict[int, str]]:
    """The agreement check as it was before stream22 (every sequence copied out of one lexsort of all labelled
    calls), kept here as the reference the streamed one must equal."""
    bad: dict[int, str] = {}
    edge: dict[int, str] = {}
    rows = np.flatnonzero(label >= 0)
    rows = rows[np.lexsort((calls.start[rows], calls.rank[rows], label[rows]))]
    is_p2p = calls.p2p[calls.code[rows]] if len(rows) else np.zeros(0, dtype=bool)
    coll = rows[~is_p2p]
    seqs = _Sequences.of(calls.code[coll], calls.start[coll], calls.end[coll], coll, label[coll], calls.rank[coll])
    first = pd.Series(calls.start).groupby(calls.rank).min().to_dict()
    last = pd.Series(calls.end).groupby(calls.rank).max().to_dict()
    said: dict[tuple[int, int], str] = {}
    for gi in seqs.labels():
        group = groups[gi]
        for rank in group.ranks:
            mine = seqs.get(gi, rank)
            for m in members_to_check(group, rank):
                why, extra = compare(mine, seqs.get(gi, m), tolerance_ns,
                                     windows=((first[rank], last[rank]), (first.get(m, 0), last.get(m, 0))))
                if why and gi not in bad:
                    bad[gi] = f"{group.label}: rank {rank} vs rank {m}: {why}"
                for row in extra.tolist():
                    named = m if row in mine[3] else rank
                    if (gi, named) not in said:
                        said[(gi, named)] = (f"undecided: matched in {group.label}, but its counterpart on rank "
                                             f"{named} lies outside that rank's traced window")
                    edge[row] = said[(gi, named)]
    p2p = rows[is_p2p]
    by_key = {}
    for part in same_code(first_appearance(label[p2p], calls.rank[p2p], calls.code[p2p])):
        rows_of = p2p[part]
        by_key[(int(label[rows_of[0]]), int(calls.rank[rows_of[0]]), int(calls.code[rows_of[0]]))] = rows_of
    none = np.zeros(0, dtype=np.int64)
    for (gi, rank, code), sends in by_key.items():
        sig = calls.sigs[code]
        if sig[0] != "send":
            continue
        group = groups[gi]
        other = group.ranks[sig[2]]
        recv = calls.code_of.get(("recv", sig[1], group.position[rank]))
        recvs = by_key.get((gi, other, recv), none) if recv is not None else none
        why, _extra = compare((None, calls.start[sends], calls.end[sends], sends),
                              (None, calls.start[recvs], calls.end[recvs], recvs), tolerance_ns, trim=False)
        if why and gi not in bad:
            bad[gi] = f"{group.label}: sends rank {rank} -> {other} vs its receives: {why}"
    return bad, edge


def _set(rank_calls, rel: str) -> tuple[pd.DataFrame, list[Candidate]]:
    results, dist = rank_calls(rel)
    calls = pd.concat([r.collectives for r in results], ignore_index=True)
    return calls, [Candidate(g.name, g.ranks) for g in groups_from_ranks(dist, calls).values()]


def _factorized(calls: pd.DataFrame) -> tuple[list[int], list[tuple]]:
    codes, uniques = pd.factorize(pd.Series(_signatures(calls), dtype=object))
    return codes.tolist(), list(uniques)


def _hand_made() -> pd.DataFrame:
    """Calls whose signatures come back across chunk bounds, with missing names (None and NaN), missing sizes
    and peers, uneven all_to_all sizes and send/recv peers."""
    kinds = ["all_reduce", None, "send", "recv", "all_to_all", np.nan, "all_reduce", "broadcast", "all_to_all",
             "send", "all_reduce", None, "recv", "barrier"] * 3
    n = len(kinds)
    sizes = pd.array([8, 8, 16, 16, 1, 4, None, 8, 2, 16, 8, None, 16, None] * 3, dtype="Int64")
    peers = pd.array([None, 1, 1, 0, 3, None, 2, None, None, 2, 5, 1, 0, None] * 3, dtype="Int64")
    return pd.DataFrame({"rank": np.arange(n) % 4, "collective": pd.Series(kinds, dtype=object), "bytes": sizes,
                         "peer": peers, "start_ns": np.arange(n) * 10, "dur_ns": np.full(n, 5)})


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 13, 64, 10**6])
def test_chunked_codes_are_the_factorized_signatures_hand_made(chunk):
    calls = _hand_made()
    codes, sigs = signature_codes(calls, chunk=chunk)
    want_codes, want_sigs = _factorized(calls)
    assert codes.tolist() == want_codes
    assert [(None if isinstance(k, float) else k, s, p) for k, s, p in sigs] == \
        [(None if isinstance(k, float) else k, s, p) for k, s, p in want_sigs]
    assert signature_codes(calls.iloc[:0], chunk=chunk)[0].tolist() == []


@pytest.mark.parametrize("rel", SETS)
def test_chunked_codes_equal_the_whole_table_codes(rel, rank_calls):
    calls, _groups = _set(rank_calls, rel)
    whole = signature_codes(calls, chunk=len(calls))
    want_codes, want_sigs = _factorized(calls)
    assert whole[0].tolist() == want_codes and whole[1] == want_sigs
    for chunk in (1, 7, 100):
        codes, sigs = signature_codes(calls, chunk=chunk)
        assert codes.tolist() == want_codes and sigs == want_sigs


def _labels(calls: pd.DataFrame, groups: list[Candidate]) -> np.ndarray:
    """Each call's inferred group index (-1: none), as the inference leaves them before its agreement check."""
    todo = np.arange(len(calls))
    found = infer_call_groups(calls.assign(group=None), todo, groups)
    return found["group"].to_numpy(dtype=np.int64)


@pytest.mark.parametrize("rel", SETS)
def test_streamed_agreement_equals_whole_table_on_shared_sets(rel, rank_calls):
    """On each set's labels, and on labels spoiled every way the check must catch (a call dropped from one rank,
    two calls of one rank swapped, a call moved in time, a call cut at a window's edge), the streamed check
    names the same groups with the same reasons and the same edge calls as the whole-table one."""
    calls, groups = _set(rank_calls, rel)
    arrays = call_arrays(calls.reset_index(drop=True))
    label = _labels(calls, groups)
    rng = np.random.default_rng(22)
    cases = [label]
    labelled = np.flatnonzero(label >= 0)
    for _ in range(12):
        if not len(labelled):
            break
        spoiled = label.copy()
        spoiled[rng.choice(labelled, size=min(len(labelled), int(rng.integers(1, 4))), replace=False)] = -1
        cases.append(spoiled)
    for case in cases:
        assert disagreements(arrays, case, groups, 0) == whole_table_disagreements(arrays, case, groups, 0)
    moved = CallArrays(arrays.rank, arrays.start.copy(), arrays.end.copy(), arrays.code, arrays.timed, arrays.sigs)
    if len(labelled):
        i = int(labelled[len(labelled) // 2])
        moved.start[i] += 10**12
        moved.end[i] += 10**12
        assert disagreements(moved, label, groups, 0) == whole_table_disagreements(moved, label, groups, 0)
        assert disagreements(moved, label, groups, 0, rank_windows(moved)) == disagreements(moved, label, groups, 0)


def _ring(n_ranks: int, calls_per_rank: int, kinds: Sequence[str] = ("all_reduce",)) -> CallArrays:
    """Calls of one world group on `n_ranks` ranks: call k of every rank overlaps call k of the others."""
    rank = np.repeat(np.arange(n_ranks), calls_per_rank)
    k = np.tile(np.arange(calls_per_rank), n_ranks)
    start = k * 100 + rank % 3
    sigs = [(kind, 64, -1) for kind in kinds]
    code = k % len(sigs)
    return CallArrays(rank.astype(np.int64), start.astype(np.int64), (start + 50).astype(np.int64),
                      code.astype(np.int64), np.ones(len(rank), dtype=bool), sigs)


@pytest.mark.parametrize("size", [4, 16])
def test_streamed_agreement_equals_whole_table_hand_made(size):
    """Groups of 4 (every member checked) and 16 (ring neighbours), with sequences that differ, differ in length
    by a call at a window's edge (trimmed), differ by many calls (no unique alignment), shuffled rows, two groups
    sharing ranks, and a send without its receive."""
    base = _ring(size, 12, ("all_reduce", "all_gather"))
    groups = [Candidate("world", tuple(range(size))), Candidate("half", tuple(range(0, size, 2)))]
    label = np.zeros(len(base), dtype=np.int64)
    variants: list[tuple[CallArrays, np.ndarray]] = [(base, label)]
    edge_cut = label.copy()
    edge_cut[(base.rank == 1) & (base.start < 100)] = -1  # rank 1's first call cut by its window
    variants.append((base, edge_cut))
    many = label.copy()
    many[(base.rank == 2) & (base.start > 500)] = -1  # far more than a call or two missing
    variants.append((base, many))
    other = CallArrays(base.rank, base.start, base.end, base.code.copy(), base.timed, base.sigs)
    other.code[(base.rank == 3) & (base.start // 100 == 5)] ^= 1  # another collective at one position
    variants.append((other, label))
    two = label.copy()
    two[(base.rank % 2 == 0) & (base.start // 100 % 2 == 1)] = 1  # some calls of the even ranks in "half"
    variants.append((base, two))
    order = np.random.default_rng(5).permutation(len(base))  # rows in no particular order
    shuffled = CallArrays(base.rank[order], base.start[order], base.end[order], base.code[order], base.timed,
                          base.sigs)
    variants.append((shuffled, label[order]))
    p2p = CallArrays(np.r_[base.rank, 0, 1], np.r_[base.start, 5000, 7000], np.r_[base.end, 5050, 7050],
                     np.r_[base.code, 2, 3], np.ones(len(base) + 2, dtype=bool),
                     [*base.sigs, ("send", 64, 1), ("recv", 64, 0)])
    variants.append((p2p, np.r_[label, 0, 0]))
    for calls, lab in variants:
        for tol in (0, 10):
            assert disagreements(calls, lab, groups, tol) == whole_table_disagreements(calls, lab, groups, tol)
    bad, _edge = disagreements(base, many, groups, 0)
    assert 0 in bad and "no unique alignment" in bad[0]
    assert disagreements(p2p, np.r_[label, 0, 0], groups, 0)[0][0].startswith("world")


@pytest.mark.parametrize("rel", SETS)
def test_inference_equals_its_whole_table_check(rel, rank_calls, monkeypatch):
    """The whole inference (every call to decide, and only the calls that do not name their group) gives the
    same groups, reasons and candidates with the streamed agreement check as with the whole-table one."""
    calls, groups = _set(rank_calls, rel)
    todos = [np.arange(len(calls)), np.flatnonzero(calls["group"].isna().to_numpy())]
    frames = [calls.assign(group=None), calls]
    got = [infer_call_groups(f, t, groups) for f, t in zip(frames, todos)]
    monkeypatch.setattr(call_groups, "_disagreements", whole_table_disagreements)
    want = [infer_call_groups(f, t, groups) for f, t in zip(frames, todos)]
    for a, b in zip(got, want):
        pd.testing.assert_frame_equal(a, b)


def _peak(run: Callable[[], object]) -> int:
    """Python memory at the peak of `run()` above its start (tracemalloc), after one warm run."""
    run()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        out = run()
        peak = tracemalloc.get_traced_memory()[1] - before
        del out
        return peak
    finally:
        tracemalloc.stop()


def _per_added_call(make: Callable[[int], tuple[int, Callable[[], object]]], sizes=(2_048, 32_768)) -> float:
    points = [make(n) for n in sizes]
    peaks = [_peak(run) for _n, run in points]
    return (peaks[1] - peaks[0]) / (points[1][0] - points[0][0])


def test_signature_codes_peak_per_call_is_bounded():
    """Coding 2,048 -> 32,768 calls (DLRM-like: a few signatures, nullable sizes): the chunked coding's Python peak
    grows by the codes it returns (8 B a call) and little more; coding the whole table at once needs ~70 B more."""
    def make(chunk: int | None) -> Callable[[int], tuple[int, Callable[[], object]]]:
        def at(n: int) -> tuple[int, Callable[[], object]]:
            calls = pd.DataFrame({"collective": pd.Series(np.array(["all_reduce", "all_to_all", "broadcast"],
                                                                   dtype=object)[np.arange(n) % 3]),
                                  "bytes": pd.array(np.arange(n) % 5 * 1024, dtype="Int64"),
                                  "peer": pd.array([None] * n, dtype="Int64")})
            return n, lambda: signature_codes(calls, chunk=chunk or n)
        return at
    chunked = _per_added_call(make(1024))
    whole = _per_added_call(make(None))
    assert chunked < 24, chunked
    assert whole > 40, whole  # the whole-table coding (before stream22) fails the bound above


def test_agreement_peak_per_call_is_bounded():
    """The agreement check over a 64-rank world group, 2,048 -> 32,768 labelled calls: the streamed check holds
    the sorted positions (8 B a call) and its sort's transients; the whole-table one copies five more arrays."""
    def make(check: Callable) -> Callable[[int], tuple[int, Callable[[], object]]]:
        def at(n: int) -> tuple[int, Callable[[], object]]:
            calls = _ring(64, n // 64, ("all_reduce", "all_gather"))
            label = np.zeros(len(calls), dtype=np.int64)
            groups = [Candidate("world", tuple(range(64)))]
            windows = rank_windows(calls)
            return len(calls), lambda: check(calls, label, groups, 0, windows)
        return at
    streamed = _per_added_call(make(disagreements))
    whole = _per_added_call(make(whole_table_disagreements))
    assert streamed < 56, streamed
    assert whole > 64, whole  # the whole-table check (before stream22) fails the bound above
