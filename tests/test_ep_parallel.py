"""Expert parallelism on a real recording: sample_traces/dist_ep_dp (record_dist.py --cases ep_dp).

4 gloo ranks, a 2 x 2 mesh (dp, ep), a top-1 mixture-of-experts layer whose tokens go to the expert's rank and
back with `all_to_all_single` of UNEVEN split sizes, then gradients all-reduced over dp (expert) and over ep and
dp (router, norm). run_log.json holds, per rank, every collective the recorder issued with its group dimension.
"""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest
from conftest import SAMPLES

from tracekit.convert import convert
from tracekit.group_members import collectives_table

FOLDER = SAMPLES / "dist_ep_dp"


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("ep_dp")
    with pytest.warns(UserWarning, match="run_log.json: not a trace"):
        convert([FOLDER], out)
    log = json.loads((FOLDER / "run_log.json").read_text())
    return out, collectives_table(out / "collectives.parquet").to_pandas(), log


def _with_truth(coll: pd.DataFrame, log: dict) -> pd.DataFrame:
    """Each call's recorded dimension: a rank's calls of one collective, in trace order, are its issue order."""
    coll = coll.assign(truth=None)
    for entry in log["ranks"]:
        for kind in {c[0] for c in entry["calls"]}:
            want = [c[1].upper() for c in entry["calls"] if c[0] == kind]
            mine = coll[(coll["rank"] == entry["rank"]) & (coll["collective"] == kind)].sort_values("call_row")
            assert len(mine) == len(want), (entry["rank"], kind, len(mine), len(want))
            coll.loc[mine.index, "truth"] = want
    return coll


def test_every_recorded_collective_is_found(converted):
    _, coll, log = converted
    for entry in log["ranks"]:
        mine = coll[coll["rank"] == entry["rank"]]
        assert Counter(mine["collective"]) == Counter(c[0] for c in entry["calls"])
    assert set(coll.loc[coll["collective"] == "all_to_all", "name"]) == {"c10d::alltoall_base_"}


def test_groups_are_right_or_say_they_cannot_tell(converted):
    """A confident wrong group is the worst answer: each call has its recorded dimension, or none with a reason."""
    _, coll, log = converted
    coll = _with_truth(coll, log)
    labelled = coll[coll["parallel_dim"].notna()]
    assert (labelled["parallel_dim"] == labelled["truth"]).all(), \
        labelled.loc[labelled["parallel_dim"] != labelled["truth"], ["rank", "collective", "parallel_dim", "truth"]]
    unlabelled = coll[coll["parallel_dim"].isna()]
    assert unlabelled["group_from"].str.match(r"^(undecided|unknown)").all()
    groups = {tuple(r) for r in coll.loc[coll["group"].notna(), "group_ranks"]}
    assert groups <= {(0, 2), (1, 3), (0, 1), (2, 3)}


def test_mesh_groups_are_named_ep_and_dp(converted):
    from click.testing import CliRunner

    from tracekit.cli import main

    out, _, log = converted
    result = CliRunner().invoke(main, ["parallel", str(out), "--json"])
    assert result.exit_code == 0, result.output
    groups = {(g["desc"], tuple(g["ranks"])): g for g in json.loads(result.stdout)["groups"]}
    mesh = log["ranks"][0]["groups"]
    assert groups[("mesh_ep", tuple(mesh["ep"]))]["parallel_dim"] == "EP"
    assert groups[("mesh_dp", tuple(mesh["dp"]))]["parallel_dim"] == "DP"
    assert not any(g["dim_inferred"] for g in groups.values())  # stated by the trace's pg_config


def test_all_to_all_sits_in_the_moe_layer_forward_and_backward(converted):
    _, coll, log = converted
    a2a = coll[coll["collective"] == "all_to_all"]
    assert len(a2a) == sum(c[0] == "all_to_all" for e in log["ranks"] for c in e["calls"])
    assert (a2a["module_path"] == "MoE_0").all(), a2a["module_path"].value_counts(dropna=False)
    # the expert's all-reduces come after backward, outside any module
    assert coll.loc[coll["collective"] == "all_reduce", "module_path"].isna().all()


def test_every_call_is_decided_here(converted):
    """gloo runs each group's work on the group's own worker threads, and every rank's calls have counterparts:
    enough evidence for every call of this run (the all_to_all work is linked by the input it sends)."""
    out, coll, log = converted
    coll = _with_truth(coll, log)
    assert (coll["parallel_dim"] == coll["truth"]).all(), coll["group_from"].value_counts()
    assert coll["group_from"].str.startswith("inferred").all()
    left_out = json.loads((out / "summary.json").read_text())["collectives"].get("left_out", {})
    assert left_out.get("gloo annotation without a calling op", 0) == 0, left_out


def test_all_to_all_bytes_are_what_the_rank_sends(converted):
    """Uneven splits: the input (sent) and output (received) differ; bytes are the sent ones, per call, as
    the recorder logged them (the token counts exchanged first are int64, the tokens float32)."""
    _, coll, log = converted
    coll = _with_truth(coll, log)
    for entry in log["ranks"]:
        sent = [c[2] for c in entry["calls"] if c[0] == "all_to_all"]
        mine = coll[(coll["rank"] == entry["rank"]) & (coll["collective"] == "all_to_all")].sort_values("call_row")
        want = [n * (8 if n == 2 else 4) for n in sent]
        assert mine["bytes"].tolist() == want, (entry["rank"], mine["bytes"].tolist(), want)
        assert mine["bytes_from"].str.contains("what this rank sends").all()
    a2a = coll[(coll["collective"] == "all_to_all") & (coll["bytes"] > 64)]
    assert a2a.groupby("rank")["bytes"].apply(frozenset).nunique() > 1  # routing differs per rank
