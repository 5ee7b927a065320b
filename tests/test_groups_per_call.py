"""Process group of each collective CALL, on recorded gloo runs where one op on one thread serves two groups
(sample_traces/record_dist.py), on the shared multi-rank traces, and where the evidence cannot decide."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from conftest import SAMPLES, shared

from tracekit.convert import convert
from tracekit.group_members import collectives_table
from tracekit.parallel.call_groups import MATCH_COLUMNS, Candidate, infer_call_groups
from tracekit.parallel.groups import assign_groups, groups_from_ranks, label_dims


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """convert(folder) -> (collectives table, run_log), each folder converted once."""
    cache: dict[str, tuple[pd.DataFrame, dict]] = {}

    def run(folder) -> tuple[pd.DataFrame, dict]:
        key = str(folder)
        if key not in cache:
            out = tmp_path_factory.mktemp(folder.name)
            with pytest.warns(UserWarning, match="run_log.json: not a trace"):
                convert([folder], out)
            log_path = folder / "run_log.json"
            log = json.loads(log_path.read_text()) if log_path.exists() else {}
            cache[key] = (collectives_table(out / "collectives.parquet").to_pandas(), log)
        return cache[key]

    return run


def _truth(coll: pd.DataFrame, log: dict) -> pd.DataFrame:
    """The recorder's group dimension of every call: a rank's calls of one collective, in trace order, are the
    ones it issued, in issue order (one calling thread)."""
    coll = coll.assign(truth=None)
    for entry in log["ranks"]:
        for kind in {c[0] for c in entry["calls"]}:
            want = [c[1].upper() for c in entry["calls"] if c[0] == kind]
            mine = coll[(coll["rank"] == entry["rank"]) & (coll["collective"] == kind)].sort_values("call_row")
            assert len(mine) == len(want), (entry["rank"], kind)
            coll.loc[mine.index, "truth"] = want
    return coll


def _dims(coll: pd.DataFrame, rank: int) -> Counter:
    mine = coll[coll["rank"] == rank]
    return Counter(zip(mine["collective"], mine["parallel_dim"].fillna("?")))


def _assert_agreement(coll: pd.DataFrame) -> None:
    """Every labelled group has, on each of its members, the same sequence of collectives and sizes."""
    labelled = coll[coll["group"].notna()]
    for (name, ranks), part in labelled.groupby([labelled["group"], labelled["group_ranks"].map(tuple)]):
        seqs = {}
        for rank in ranks:
            mine = part[part["rank"] == rank].sort_values("start_ns")
            is_p2p = mine["collective"].isin(["send", "recv"])
            seqs[rank] = list(zip(mine.loc[~is_p2p, "collective"], mine.loc[~is_p2p, "bytes"]))
        assert len({tuple(s) for s in seqs.values()}) == 1, (name, ranks, {r: len(s) for r, s in seqs.items()})


# -- dp x cp: gradients all-reduced over both groups by c10d::allreduce_ on the main thread ------------------


def test_dp_cp_every_call_has_its_recorded_group(recorded):
    coll, log = recorded(SAMPLES / "dist_dp_cp")
    coll = _truth(coll, log)
    assert set(coll["name"]) == {"c10d::allreduce_"} and coll["thread"].groupby(coll["rank"]).nunique().max() == 1
    for entry in log["ranks"]:
        rank = entry["rank"]
        # 8 parameters x 2 traced steps, each all-reduced once over cp and once over dp.
        assert _dims(coll, rank) == Counter({("all_reduce", "CP"): 16, ("all_reduce", "DP"): 16})
        mine = coll[coll["rank"] == rank]
        assert (mine["parallel_dim"] == mine["truth"]).all()
        for dim, ranks in entry["groups"].items():
            rows = mine[mine["truth"] == dim.upper()]
            assert all(list(r) == ranks for r in rows["group_ranks"])
            assert set(rows["group_desc"]) == {f"mesh_{dim}"}
    assert coll["group_from"].str.startswith("inferred").all()
    assert coll["parallel_dim_inferred"].all()
    _assert_agreement(coll)


# -- cp x tp with K/V all-gathered over cp and sequence-parallel all-gather/reduce-scatter over tp -------------


def test_cp_allgather_every_call_has_its_recorded_group(recorded):
    coll, log = recorded(SAMPLES / "dist_cp_allgather")
    coll = _truth(coll, log)
    for entry in log["ranks"]:
        rank = entry["rank"]
        # Per traced step: 2 layers' worth of tp all-gathers (fwd) + reduce-scatters (fwd), mirrored in backward;
        # K and V all-gathered over cp (fwd) and reduce-scattered (bwd); 2 LayerNorms x 2 params all-reduced
        # over tp, all 14 parameter gradients over cp. Two steps traced.
        assert _dims(coll, rank) == Counter({
            ("all_gather", "TP"): 8, ("reduce_scatter", "TP"): 8, ("all_reduce", "TP"): 8,
            ("all_gather", "CP"): 4, ("reduce_scatter", "CP"): 4, ("all_reduce", "CP"): 28})
        mine = coll[coll["rank"] == rank]
        assert (mine["parallel_dim"] == mine["truth"]).all()
        for dim, ranks in entry["groups"].items():
            assert all(list(r) == ranks for r in mine.loc[mine["truth"] == dim.upper(), "group_ranks"])
    # The same op serves both groups with the same sizes: per collective, both dimensions share one size.
    gathers = coll[coll["collective"] == "all_gather"]
    assert gathers.groupby("parallel_dim")["bytes"].agg(set).map(frozenset).nunique() == 1
    assert coll["parallel_dim_inferred"].all()
    _assert_agreement(coll)


def test_gloo_reduce_scatter_and_all_gather_run_on_their_groups_worker_threads(recorded):
    """gloo runs reduce_scatter as an all_reduce of the input; each call is linked to the gloo work that ran it,
    and the calls of one worker thread share one group."""
    coll, _ = recorded(SAMPLES / "dist_cp_allgather")
    assert coll["exec_thread"].notna().all()
    assert (coll["exec_thread"] != coll["thread"]).all()
    assert coll.groupby(["rank", "exec_thread"])["group"].nunique().eq(1).all()


# -- the shared traces still come out right ------------------------------------------------------------------


def test_shared_cp_tp_labels_agree_across_ranks(recorded):
    coll, log = recorded(shared("cpu/dist_cp_tp"))
    by_rank = {r["rank"]: r for r in log["ranks"]}
    for rank in range(4):
        mine = coll[coll["rank"] == rank]
        assert _dims(mine, rank) == Counter({("all_reduce", "CP"): 138, ("all_reduce", "TP"): 48,
                                             ("send", "CP"): 32, ("recv", "CP"): 32})
        cp = mine[mine["parallel_dim"] == "CP"]
        assert all(list(r) == by_rank[rank]["cp_group_ranks"] for r in cp["group_ranks"])
    assert coll["group_from"].str.startswith("inferred").all() and coll["parallel_dim_inferred"].all()
    _assert_agreement(coll)


def test_stated_groups_stay_authoritative_and_not_inferred(converted):
    out, _ = converted(shared("gpu/tracelens/b200/eager_trace.json.gz"))
    coll = collectives_table(out / "collectives.parquet").to_pandas()
    stated = coll[coll["group_from"] == "event args"]
    assert len(stated) > 0
    described = stated["group_desc"].fillna("").str.contains("mesh_|_GROUP|default_pg", regex=True)
    assert not stated.loc[described, "parallel_dim_inferred"].any()
    assert stated.loc[~described & stated["parallel_dim"].notna(), "parallel_dim_inferred"].all()


# -- where the evidence cannot decide ---------------------------------------------------------------------------


def _lockstep_calls(recorded) -> tuple[pd.DataFrame, dict]:
    """The recorded dp x cp calls with every rank's i-th call given the same interval and no execution thread
    distinct from the calling one: each call then overlaps a same-size call on every rank."""
    coll, _ = recorded(SAMPLES / "dist_dp_cp")
    calls = coll.sort_values(["rank", "call_row"]).reset_index(drop=True)
    calls = calls.assign(group=None, group_desc=None, group_ranks=None, group_from=None)
    position = calls.groupby("rank").cumcount()
    calls["start_ns"] = 1_000_000 + position * 10_000
    calls["dur_ns"] = 5_000
    calls["exec_thread"] = calls["thread"]
    dist = [{"rank": r, "world_size": 4, "pg_config": [
        {"pg_name": "1", "pg_desc": "mesh_dp", "ranks": [0, 2] if r % 2 == 0 else [1, 3]},
        {"pg_name": "2", "pg_desc": "mesh_cp", "ranks": [0, 1] if r < 2 else [2, 3]}]} for r in range(4)]
    return calls, groups_from_ranks(dist, calls)


def test_undecided_when_timing_and_threads_cannot_tell_groups_apart(recorded):
    calls, groups = _lockstep_calls(recorded)
    out = label_dims(assign_groups(calls, groups), groups)
    assert out["group"].isna().all() and out["parallel_dim"].isna().all()
    assert out["group_from"].str.startswith("undecided:").all()
    for rank, cands in zip(out["rank"], out["group_candidates"]):
        labels = set(cands)
        dp = "1 [0, 2]" if rank % 2 == 0 else "1 [1, 3]"
        cp = "2 [0, 1]" if rank < 2 else "2 [2, 3]"
        assert {dp, cp} <= labels


def test_no_execution_in_the_trace_means_unknown(recorded):
    calls, groups = _lockstep_calls(recorded)
    calls["exec_row"] = -1
    cands = [Candidate(g.name, g.ranks) for g in groups.values()]
    found = infer_call_groups(calls, np.arange(len(calls)), cands)
    assert (found["group"] == -1).all()
    assert found["group_from"].str.contains("only the call's enqueue").all()


def test_pure_function_matches_on_the_call_table_alone(recorded):
    """infer_call_groups needs only MATCH_COLUMNS of every rank (what a Parquet reader can feed it)."""
    coll, log = recorded(SAMPLES / "dist_dp_cp")
    truth = _truth(coll, log)
    groups = groups_from_ranks([{"rank": r["rank"], "world_size": 4, "pg_config": [
        {"pg_name": d, "pg_desc": f"mesh_{d}", "ranks": ranks} for d, ranks in r["groups"].items()]}
        for r in log["ranks"]], coll.iloc[:0])
    cands = [Candidate(g.name, g.ranks) for g in groups.values()]
    table = coll[list(MATCH_COLUMNS)]
    found = infer_call_groups(table, np.arange(len(table)), cands)
    named = [cands[g].name.upper() if g >= 0 else None for g in found["group"]]
    assert named == truth["truth"].tolist()


@pytest.mark.parametrize("folder", ["dist_dp_cp", "dist_cp_allgather"])
@pytest.mark.parametrize("cut", [1, 2, 3])
def test_windows_cut_at_the_edges_never_give_a_wrong_group(recorded, folder, cut):
    """Rank 0's window misses its first `cut` calls and rank 3's its last one, so some calls lose their
    counterpart: those may stay undecided (saying why), but no call gets another group than the recorded one."""
    coll, log = recorded(SAMPLES / folder)
    coll = _truth(coll, log).sort_values(["rank", "start_ns"])
    drop = list(coll[coll["rank"] == 0].index[:cut]) + list(coll[coll["rank"] == 3].index[-1:])
    calls = coll.drop(index=drop).assign(group=None, group_desc=None, group_ranks=None, group_from=None)
    dist = [{"rank": e["rank"], "world_size": 4, "pg_config": [
        {"pg_name": d, "pg_desc": f"mesh_{d}", "ranks": ranks} for d, ranks in e["groups"].items()]}
        for e in log["ranks"]]
    groups = groups_from_ranks(dist, calls.iloc[:0])
    out = label_dims(assign_groups(calls, groups), groups)
    labelled = out[out["parallel_dim"].notna()]
    assert (labelled["parallel_dim"] == labelled["truth"]).all()
    assert len(labelled) >= len(out) // 4
    assert out.loc[out["group"].isna(), "group_from"].str.match(r"(undecided|unknown): ").all()
    _assert_agreement(out[out["group"].notna()])


def test_one_rank_alone(tmp_path):
    """Without the other ranks: a rank in one multi-rank group (alexnet DDP, default_pg only) takes it, marked
    inferred; a rank in three groups (dp x cp mesh) leaves every call's group empty and says why."""
    convert([SAMPLES / "alexnet" / "cpu_rank0.json.gz"], tmp_path / "ddp")
    ddp = collectives_table(tmp_path / "ddp" / "collectives.parquet").to_pandas()
    assert len(ddp) > 0 and set(ddp["group_desc"]) == {"default_pg"} and set(ddp["parallel_dim"]) == {"world"}
    assert ddp["group_from"].str.startswith("inferred: the only process group").all()
    assert ddp["parallel_dim_inferred"].all()
    convert([SAMPLES / "dist_dp_cp" / "rank-0.json.gz"], tmp_path / "mesh")
    mesh = collectives_table(tmp_path / "mesh" / "collectives.parquet").to_pandas()
    assert len(mesh) == 32 and mesh["group"].isna().all() and mesh["parallel_dim"].isna().all()
    assert mesh["group_from"].str.contains("belongs to 3 groups; give all ranks").all()


def test_async_calls_of_two_groups_in_flight_stay_undecided(recorded):
    """dp x cp with both all-reduces of a parameter in flight at once (async_op=True): gloo's work of the two
    groups waits side by side and may be linked to either call, so no call may carry a group it did not run in;
    the calls say why instead."""
    coll, log = recorded(SAMPLES / "dist_dp_cp_async")
    coll = _truth(coll, log)
    assert coll["exec_link_set"].notna().any()  # several calls were waiting for the same gloo work
    labelled = coll[coll["parallel_dim"].notna()]
    assert (labelled["parallel_dim"] == labelled["truth"]).all()
    undecided = coll[coll["group"].isna()]
    assert len(undecided) > 0 and undecided["group_from"].str.startswith("undecided:").all()
    assert undecided["group_from"].str.contains("cannot be told apart").any()
    _assert_agreement(coll)
