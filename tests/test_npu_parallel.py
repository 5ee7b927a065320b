"""HCCL collectives and process groups of the shared Ascend runs: AlexNet DDP (2 of 8 ranks; text and db
exports) and Qwen3-0.6B on MindSpeed, TP1 PP2 DP2 (ranks 0/2 with kernel_details, 1/3 communication only)."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
from conftest import shared

from tracekit.group_members import collectives_table
from tracekit.ranks import analyse_ranks

ALEX = "npu/msinsight_alexnet_dp"
QWEN = "npu/msinsight_qwen3_mindspeed"
ALEXNET_PARAMS = 61_100_840
COLUMNS = {"rank", "step", "collective", "group", "group_desc", "group_ranks", "group_from", "parallel_dim",
           "parallel_dim_inferred", "peer", "dtype", "bytes", "bytes_from", "start_ns", "dur_ns", "algbw", "busbw",
           "exposed_ns", "call_ns", "module_path", "call_row", "exec_row"}


def _analyse(paths):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return analyse_ranks([shared(p) for p in paths], workers=1)


@pytest.fixture(scope="module")
def qwen():
    return _analyse([f"{QWEN}/rank_{r}_ascend_pt" for r in range(4)])


@pytest.mark.parametrize("form", ["text", "db"])
def test_alexnet_ddp_allreduces_are_hccl_rows_with_bytes_group_and_module(form):
    coll, _steps, _groups = _analyse([f"{ALEX}/{form}/level1/rank{r}_ascend_pt" for r in (0, 1)])
    assert set(coll.columns) >= COLUMNS
    assert len(coll) == 8 and set(coll["collective"]) == {"all_reduce"}
    for rank, rows in coll.groupby("rank"):
        # DDP's 4 buckets carry every gradient once: 4 bytes x AlexNet's parameters, from count x FP32
        assert rows["bytes"].sum() == 4 * ALEXNET_PARAMS
        assert set(rows["bytes_from"]) == {"count x data_type of the HCCL op"} and set(rows["dtype"]) == {"FP32"}
        # one row per host call (c10d::allreduce_), timed by its HCCL op on the device
        assert set(rows["name"]) == {"c10d::allreduce_"} and (rows["exec_row"] != rows["call_row"]).all()
        assert (rows["dur_ns"] > rows["call_ns"]).all()
        assert set(rows["group_rank"]) == {rank}
    # one HCCL group of 8 (communication_matrix / task info) at global ranks 0 and 1: inferred default group
    assert coll["group"].nunique() == 1 and set(coll["group_size"]) == {8}
    assert all(list(r) == list(range(8)) for r in coll["group_ranks"])
    assert set(coll["parallel_dim"]) == {"world"} and coll["parallel_dim_inferred"].all()
    assert coll["group_from"].str.startswith("inferred:").all()
    assert (coll["busbw"] > 0).all() and (coll["busbw"] > coll["algbw"]).all()  # all-reduce factor 2(n-1)/n
    assert ((coll["exposed_ns"] >= 0) & (coll["exposed_ns"] <= coll["dur_ns"])).all()
    # each bucket is launched in the backward of the layer whose gradients complete it
    assert coll["module_path"].str.startswith("DistributedDataParallel_0/AlexNet_0/").all()
    assert {p.rsplit("/", 1)[-1] for p in coll["module_path"]} == {"Conv2d_0", "Linear_0", "Linear_1", "Linear_2"}


def test_qwen3_hccl_rows_take_groups_and_dimensions_from_parallel_group_info(qwen):
    coll, _steps, groups = qwen
    assert sorted(coll["rank"].unique()) == [0, 1, 2, 3]
    # ranks 1 and 3 exported communication.json only: their ops are there, their exposed time is unknown
    assert coll[coll["rank"].isin([1, 3])]["exposed_ns"].isna().all()
    assert coll[coll["rank"].isin([0, 2])]["exposed_ns"].notna().all()
    assert coll["group_ranks"].notna().all() and coll["parallel_dim"].notna().all()
    assert coll["group_from"].str.startswith("inferred: HCCL group").all()
    dims = coll.groupby("collective")["parallel_dim"].agg(set).to_dict()
    assert dims["send_recv"] == {"PP"}  # pipeline stage boundaries
    assert dims["reduce_scatter"] == {"DP"}  # distributed optimizer gradient sync
    p2p = coll[coll["collective"] == "send_recv"]
    assert {tuple(r) for r in p2p["group_ranks"]} == {(0, 2), (1, 3)}
    # the peer is group-local: the other stage of the 2-rank pipeline group
    assert (p2p["peer"] == 1 - p2p["group_rank"]).all()
    dp = coll[coll["parallel_dim"] == "DP"]
    assert {tuple(r) for r in dp["group_ranks"]} == {(0, 1), (2, 3)}
    world = coll[coll["parallel_dim"] == "world"]
    assert {tuple(r) for r in world["group_ranks"]} == {(0, 1, 2, 3)} and world["rank"].nunique() == 4
    # groups of one member (tp with TP=1) are TP
    assert set(coll[coll["group_size"] == 1]["parallel_dim"]) == {"TP"}
    # the process groups table lists parallel_group_info's groups with their dimensions
    table = pd.DataFrame(groups)
    pp = table[table["desc"].str.startswith("pp ")]
    assert {tuple(r) for r in pp["ranks"]} == {(0, 2), (1, 3)} and set(pp["parallel_dim"]) == {"PP"}
    # the stage-1 ranks (2, 3) block in their first p2p op until stage 0 sends its first activations
    first = p2p.sort_values("start_ns").groupby("rank").head(1).set_index("rank")
    assert (first.loc[[2, 3], "dur_ns"] > 50_000_000).all()
    assert (first.loc[[0, 1], "dur_ns"] < 5_000_000).all()


def test_convert_writes_hccl_rows_to_collectives_parquet(tmp_path):
    from tracekit.ranks import convert_ranks

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = convert_ranks([shared(f"{QWEN}/rank_{r}_ascend_pt") for r in range(4)], tmp_path / "out", workers=1)
    frame = collectives_table(tmp_path / "out" / "collectives.parquet").to_pandas()
    assert summary["collectives"]["rows"] == len(frame) > 50
    assert set(frame["parallel_dim"].dropna()) >= {"PP", "DP", "world"}
    assert {"group_size", "hccl_wait_ns", "hccl_transit_bytes"} <= set(frame.columns)
    assert summary["conserved"]


@pytest.mark.parametrize(("text", "message"), [
    ('{"step13": {"p2p": {"hcom_send__1_0_1@7": {"Communication Time Info": {"Start Timestamp(us)": "soon"}}}}}',
     r"step13/p2p/hcom_send__1_0_1@7/Start Timestamp\(us\): not a number"),
    ('{"step13": {"p2p": [1, 2]}}', "step13/p2p is not an object of ops"),
    ('{"step13": {"p2p": {"hcom_send__1_0_1@7": {"Communication Ti', "unreadable JSON"),
])
def test_bad_communication_json_is_a_clear_error(tmp_path, text, message):
    import re
    import shutil

    from click.testing import CliRunner

    from tracekit.cli import main

    rank = tmp_path / "rank_1_ascend_pt"
    shutil.copytree(shared(f"{QWEN}/rank_1_ascend_pt"), rank)
    comm = rank / "ASCEND_PROFILER_OUTPUT" / "communication.json"
    comm.chmod(0o644)
    comm.write_text(text)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["convert", str(rank), "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert str(comm) in result.output and re.search(message, result.output)
    assert "Traceback" not in result.output and not out.exists()


def test_parallel_cli_lists_the_inferred_hccl_group():
    import json

    from click.testing import CliRunner

    from tracekit.cli import main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = CliRunner().invoke(main, ["parallel", *[str(shared(f"{ALEX}/text/level1/rank{r}_ascend_pt"))
                                                          for r in (0, 1)], "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    tables = json.loads(result.output[result.output.index("{"):])
    (group,) = tables["groups"]
    assert group["ranks"] == list(range(8)) and group["parallel_dim"] == "world" and group["dim_inferred"]
    assert group["from"].startswith("HCCL ops: inferred")
    (row,) = tables["by_group"]
    assert row["calls"] == 8 and row["bytes"] == 2 * 4 * ALEXNET_PARAMS and row["inferred"]
