"""Pipeline parallelism on a real torch recording: sample_traces/dist_pp_dp (record_dist.py --cases pp_dp).

4 gloo ranks on CPU, a 2 x 2 mesh (dp, pp): stage 0 (`Stage0`) sends each of 4 micro-batches' activations to
stage 1 (`Stage1`) with dist.send and receives their gradients with dist.recv (GPipe order), then each stage
all-reduces its gradients over dp. run_log.json holds every call each rank issued, with its dimension.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter

import pandas as pd
import pytest
from conftest import SAMPLES

from tracekit.inputs import expand_inputs
from tracekit.parallel.pipeline import pipeline_tables
from tracekit.ranks import analyse_ranks

FOLDER = SAMPLES / "dist_pp_dp"


@pytest.fixture(scope="module")
def analysed():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        coll, steps, groups = analyse_ranks(expand_inputs([FOLDER]), workers=1)
    log = json.loads((FOLDER / "run_log.json").read_text())
    return coll, pipeline_tables(coll, steps, groups), log


def test_calls_and_groups_right_or_undecided(analysed):
    coll, _, log = analysed
    for entry in log["ranks"]:
        mine = coll[coll["rank"] == entry["rank"]]
        assert Counter(mine["collective"]) == Counter(c[0] for c in entry["calls"])
        for kind in ("send", "recv", "all_reduce"):
            want = [c[1].upper() for c in entry["calls"] if c[0] == kind]
            got = mine[mine["collective"] == kind].sort_values("call_row")["parallel_dim"].tolist()
            assert all(g == w or pd.isna(g) for g, w in zip(got, want)), (entry["rank"], kind, got)
    # DP all-reduces run on their group's gloo worker threads: all decided
    assert coll.loc[coll["collective"] == "all_reduce", "parallel_dim"].eq("DP").all()
    # ranks 0 and 1 talk over mesh_pp [0, 1], where each has the same index as in the world group [0, 1, 2, 3]:
    # nothing in the trace tells the two groups apart, so the group is left undecided, naming both
    p2p01 = coll[coll["collective"].isin(["send", "recv"]) & coll["rank"].isin([0, 1])]
    undecided = p2p01[p2p01["parallel_dim"].isna()]
    assert undecided["group_from"].str.startswith("undecided").all()
    assert all(set(c) == {"0 [0, 1, 2, 3]", "3 [0, 1]"} for c in undecided["group_candidates"])


def test_stages_and_their_layers(analysed):
    _, tables, log = analysed
    stages = tables["pipeline_stages"].set_index("stage")
    mesh = {e["rank"]: e["groups"] for e in log["ranks"]}
    assert stages.loc[0, "ranks"] == [0, 2] and stages.loc[1, "ranks"] == [1, 3]
    assert all(mesh[r]["pp"].index(r) == s for s in (0, 1) for r in stages.loc[s, "ranks"])
    # CPU-only ranks: the layers come from the modules of their cpu ops
    assert stages.loc[0, "layers"].split(", ")[0] == "Stage0_0" and "Stage1" not in stages.loc[0, "layers"]
    assert stages.loc[1, "layers"].split(", ")[0] == "Stage1_0" and "Stage0" not in stages.loc[1, "layers"]


def test_every_transfer_between_stages_is_counted(analysed):
    """Undecided groups or not, every send/recv goes to the one rank of the other stage in the rank's PP group:
    the pipeline tables count them all, and say how many had an undecided group."""
    _, tables, log = analysed
    p2p = tables["pipeline_p2p"]
    for entry in log["ranks"]:
        peer = next(r for r in entry["groups"]["pp"] if r != entry["rank"])
        mine = p2p[p2p["rank"] == entry["rank"]].set_index("collective")
        for kind in ("send", "recv"):
            sizes = [c[2] for c in entry["calls"] if c[0] == kind]
            assert mine.loc[kind, "calls"] == len(sizes) and mine.loc[kind, "peer_rank"] == peer
            assert mine.loc[kind, "bytes"] == 4 * sum(sizes)
    assert p2p.loc[p2p["rank"].isin([2, 3]), "group_undecided"].eq(0).all()
    first = p2p[p2p["rank"].isin([0, 1])]
    assert (first["group_undecided"] == first["calls"]).all()


def test_bubble_on_every_rank(analysed):
    _, tables, _ = analysed
    bubble = tables["pipeline_bubble"]
    assert set(bubble["rank"]) == {0, 1, 2, 3} and (bubble["note"] == "").all()
    assert (bubble["bubble_start_ns"] + bubble["bubble_end_ns"] > 0).all()
    assert (bubble["bubble_start_ns"] + bubble["bubble_end_ns"] <= bubble["window_ns"] - bubble["compute_ns"]).all()
    assert (bubble["compute_ns"] > 0).all()
