"""Pipeline parallelism on the four Qwen3-0.6B MindSpeed ranks (TP1 PP2 DP2): stages, send/recv between them,
the DP gradient sync and the bubble, as tables and as the picture of `tracekit parallel --html`."""

from __future__ import annotations

import csv
import re
import warnings
import xml.dom.minidom

import pytest
from click.testing import CliRunner
from conftest import shared

from tracekit.cli import main
from tracekit.parallel.pipeline import pipeline_tables
from tracekit.ranks import analyse_ranks

QWEN = "npu/msinsight_qwen3_mindspeed"
RANKS = [f"{QWEN}/rank_{r}_ascend_pt" for r in range(4)]


@pytest.fixture(scope="module")
def pipeline():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        coll, steps, groups = analyse_ranks([shared(p) for p in RANKS], workers=1)
    return pipeline_tables(coll, steps, groups)


def _step_trace_computing_ns(rank: int) -> float:
    path = shared(f"{QWEN}/rank_{rank}_ascend_pt/ASCEND_PROFILER_OUTPUT/step_trace_time.csv")
    with open(path, newline="") as fh:
        row = next(csv.DictReader(fh))
    return float(row["Computing"]) * 1000


def test_stages_from_parallel_group_info(pipeline):
    stages = pipeline["pipeline_stages"].set_index("stage")
    assert list(stages.index) == [0, 1]
    assert stages.loc[0, "ranks"] == [0, 1] and stages.loc[1, "ranks"] == [2, 3]
    assert stages.loc[0, "ranks_from"] == "process groups (pp)"
    # ranks 1 and 3 exported communication only; the trace has no module events to name the layers
    assert stages.loc[0, "ranks_without_compute_events"] == [1] and stages.loc[1, "ranks_without_compute_events"] == [3]
    assert stages["layers"].str.contains("no module events").all()


def test_bubble_per_stage(pipeline):
    bubble = pipeline["pipeline_bubble"].set_index("rank")
    # compute time per rank equals what the NPU profiler itself reports (step_trace_time.csv, Computing)
    for rank in (0, 2):
        assert abs(bubble.loc[rank, "compute_ns"] - _step_trace_computing_ns(rank)) < 1000
    assert bubble.loc[[1, 3], "compute_ns"].isna().all() and bubble.loc[[1, 3], "note"].str.contains("no compute").all()
    assert bubble["window_ns"].nunique() == 1  # one step window for all ranks
    first, last = bubble.loc[0], bubble.loc[2]
    # stage 1 waits for its first activations (start bubble); stage 0 waits for the last gradients (end bubble)
    assert last["bubble_start_ns"] > 50_000_000 > last["bubble_end_ns"]
    assert first["bubble_end_ns"] > 100_000_000 > first["bubble_start_ns"]
    for r in (first, last):
        assert r["bubble_start_ns"] + r["bubble_end_ns"] <= r["window_ns"] - r["compute_ns"]  # bubble is idle time
        assert 0 < r["bubble_share"] < 1
        assert r["pp_wait_ns"] > 0


def test_send_recv_between_stages_and_dp_sync(pipeline):
    p2p = pipeline["pipeline_p2p"]
    assert set(zip(p2p["rank"], p2p["peer_rank"])) == {(0, 2), (2, 0), (1, 3), (3, 1)}
    assert set(zip(p2p["stage"], p2p["peer_stage"])) == {(0, 1), (1, 0)}
    assert (p2p["calls"] == 3).all() and (p2p["collective"] == "send_recv").all()
    assert (p2p["bytes"] == 2 * 8_388_608).all()  # two 8.4 MB activation/gradient transfers over HCCS
    # stage 0 blocks far longer in its transfers than stage 1 (1F1B: it waits for backward gradients)
    t = p2p.groupby("stage")["time_ns"].min()
    assert t[0] > 2 * t[1]
    dp = pipeline["pipeline_dp_sync"]
    assert set(zip(dp["stage"], dp["ranks"])) >= {(0, "0,1"), (1, "2,3")}
    assert {"reduce_scatter", "all_gather"} <= set(dp[dp["stage"] == 0]["collective"])
    assert (dp["time_ns"] > 0).all()


def test_parallel_cli_prints_and_draws_the_pipeline(tmp_path):
    html = tmp_path / "pp.html"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = CliRunner().invoke(main, ["parallel", *[str(shared(p)) for p in RANKS], "--workers", "1",
                                           "--html", str(html)])
    assert result.exit_code == 0, result.output
    assert "pipeline stages" in result.output and "send/recv between stages" in result.output
    assert "pipeline bubble per stage and step" in result.output and "DP gradient sync per stage" in result.output
    page = html.read_text()
    svg = next(s for s in re.findall(r"<svg.*?</svg>", page, re.S) if "pipeline timeline" in s)
    xml.dom.minidom.parseString(svg)  # well-formed
    for rank, stage in ((0, 0), (1, 0), (2, 1), (3, 1)):
        assert f"stage {stage} · rank {rank}" in svg
    assert svg.count("PP p2p:") >= 12 and "compute:" in svg and "bubble start" in svg


def test_no_pipeline_section_without_pp():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        coll, steps, groups = analyse_ranks(
            [shared(f"npu/msinsight_alexnet_dp/text/level1/rank{r}_ascend_pt") for r in (0, 1)], workers=1)
    assert pipeline_tables(coll, steps, groups) == {}


def test_pipeline_from_a_converted_dataset_equals_the_raw_traces(pipeline, tmp_path):
    from tracekit.dataset.load import dataset_of, parallel_of
    from tracekit.ranks import convert_ranks

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        convert_ranks([shared(p) for p in RANKS], tmp_path / "ds", workers=1)
        coll, steps, groups = parallel_of(dataset_of([tmp_path / "ds"]))
    again = pipeline_tables(coll, steps, groups)["pipeline_bubble"]
    cols = ["rank", "compute_ns", "bubble_start_ns", "bubble_end_ns", "pp_wait_ns"]
    assert again[cols].equals(pipeline["pipeline_bubble"][cols])
