"""tracekit compare on real traces: module/op alignment, shapes per side, step breakdown, report, CLI."""

from __future__ import annotations

import json
import math

import chrome_checks
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import shared

from tracekit.cli import main
from tracekit.compare.align import type_score
from tracekit.compare.equiv import equivalence, load_groups
from tracekit.compare.job import compare_paths
from tracekit.compare.lcs import align
from tracekit.compare.ops import align_ops
from tracekit.errors import TraceError
from tracekit.writers.compare_html import render_report

MODELS = ["gaunernst_bert-small-uncased__1016001", "Falconsai_nsfw_image_detection__1016002",
          "Qwen_Qwen1.5-0.5B-Chat__1016005", "facebook_timesformer-base-finetuned-k400__1016002"]
GPT = "cpu/gpt/prof_stack_modules.json.gz"
TP_DDP = "cpu/dist_tp_ddp/rank-0.json.gz"
TP_ALL_REDUCES = {"_c10d_functional::all_reduce", "c10d::allreduce_"}

_cache: dict[tuple[str, str], object] = {}


def compared(base: str, target: str):
    key = (base, target)
    if key not in _cache:
        _cache[key] = compare_paths(shared(base), shared(target))
    return _cache[key]


@pytest.mark.parametrize("model", MODELS)
def test_h100_vs_mi300_modules_match_and_ratios_reported(model):
    cmp = compared(f"gpu/tracelens/h100/{model}.json.gz", f"gpu/tracelens/mi300/{model}.json.gz")
    mods = cmp.modules
    assert len(mods) > 50
    assert cmp.matched_fraction() >= 0.95
    assert cmp.basis == "device"  # both runs have GPU kernels: device time is compared
    matched = mods[mods["status"] == "matched"]
    assert all(type_score(a, b) for a, b in zip(matched["base_type"], matched["target_type"]))
    both = matched[(matched["base_ns"] > 0) & (matched["target_ns"] > 0)]
    assert len(both) >= 0.5 * len(matched)
    assert np.isfinite(both["ratio"]).all()
    assert np.allclose(both["ratio"], both["target_ns"] / both["base_ns"])
    assert np.allclose(mods["delta_ns"], mods["target_ns"].fillna(0) - mods["base_ns"].fillna(0))
    # the root holds every kernel its subtree ran, on both vendors
    root = mods[mods["depth"] == 0].iloc[0]
    assert root["base_device_ns_fwd"] >= matched["base_device_ns_fwd"].max()
    # ops of matched modules align: same op name on both sides (vendors share aten ops)
    ops = cmp.ops[cmp.ops["status"] == "matched"]
    assert len(ops) and (ops["base_op"] == ops["target_op"]).mean() > 0.95
    assert ops["base_kernel_count"].sum() > 0 and ops["target_kernel_count"].sum() > 0


def test_trace_diff_step_breakdown_without_modules():
    cmp = compared("gpu/hta/trace_diff/a100_control.json.gz", "gpu/hta/trace_diff/v100_test.json.gz")
    # no nn.Module events: the record_function annotations (## forward ## ...) stand in for modules
    assert len(cmp.modules) and sum("no nn.Module events" in n for n in cmp.notes) == 2
    assert (cmp.modules["status"] == "matched").any()
    steps = cmp.steps
    assert set(steps["side"]) == {"base", "target"}
    for _side, frame in steps.groupby("side"):
        assert len(frame) >= 1 and (frame["step"] >= 0).all() and (frame["basis"] == "device").all()
    parts = steps["compute_ns"] + steps["exposed_comm_ns"] + steps["idle_ns"]
    assert (parts == steps["dur_ns"]).all()
    assert (steps["compute_ns"] > 0).all() and (steps["idle_ns"] >= 0).all()
    assert (steps["overlapped_comm_ns"] + steps["exposed_comm_ns"] == steps["comm_ns"]).all()
    assert (steps["comm_ns"] > 0).any()  # these runs have NCCL kernels
    # ops are compared inside the record_function "modules" and outside them
    assert (cmp.ops["status"] == "matched").sum() > 100
    assert cmp.ops["module_path"].notna().any() and cmp.ops["module_path"].isna().any()


def test_gpt_vs_tp_ddp_modules_line_up():
    cmp = compared(GPT, TP_DDP)
    mods = cmp.modules
    assert cmp.basis == "host"
    base_paths = set(compared(GPT, TP_DDP).base.modules["module_path"])
    matched = mods[mods["status"] == "matched"]
    assert set(matched["base_path"]) == base_paths  # every module of the 1-process run has its TP/DDP twin
    extra = mods[mods["status"] != "matched"]
    assert (extra["status"] == "target_only").all() and (extra["how"] == "wrapper").all()
    assert set(extra["target_type"]) == {"DistributedDataParallel"}
    assert (matched["base_type"] == matched["target_type"]).all()
    # the data-parallel batch halves on the target
    root = matched[matched["base_type"] == "GPT"].iloc[0]
    base_in, target_in = json.loads(root["base_input_shapes"]), json.loads(root["target_input_shapes"])
    assert target_in[0][0] * 2 == base_in[0][0]


def _linears_by_parent(mods: pd.DataFrame, parent_type: str) -> list[list[pd.Series]]:
    parents = mods[(mods["status"] == "matched") & (mods["module_type"] == parent_type)]
    out = []
    for path in parents["base_path"]:
        kids = mods[(mods["module_type"] == "Linear") & (mods["base_path"].str.rpartition("/")[0] == path)]
        out.append([row for _, row in kids.iterrows()])
    return out


def test_tp_column_parallel_weights_halve_their_output_size():
    mods = compared(GPT, TP_DDP).modules
    attention = _linears_by_parent(mods, "CausalSelfAttention")
    mlp = _linears_by_parent(mods, "MLP")
    assert len(attention) == len(mlp) == 4
    for linears, colwise in ((attention, 3), (mlp, 1)):  # q/k/v and fc1 colwise; proj and fc2 rowwise
        for group in linears:
            assert len(group) == colwise + 1
            for i, row in enumerate(group):
                base_w, target_w = json.loads(row["base_weight_shape"]), json.loads(row["target_weight_shape"])
                if i < colwise:
                    assert target_w == [base_w[0] // 2, base_w[1]]
                else:
                    assert target_w == [base_w[0], base_w[1] // 2]
                assert row["shapes_differ"]


def test_tp_all_reduces_are_target_only_ops_in_attention_and_mlp():
    cmp = compared(GPT, TP_DDP)
    ops = cmp.ops
    assert not ops["base_op"].isin(TP_ALL_REDUCES).any()
    added = ops[(ops["status"] == "target_only") & ops["target_op"].isin(TP_ALL_REDUCES)]
    in_blocks = added[added["module_path"].fillna("").str.contains(r"/(?:CausalSelfAttention|MLP)_\d+(?:/|$)")]
    assert set(in_blocks["phase"]) == {"forward", "backward"}
    for parent_type in ("CausalSelfAttention", "MLP"):
        assert in_blocks["module_path"].str.contains(f"/{parent_type}_").any()
    assert (in_blocks["collective"]).all() and (in_blocks["target_ns"] > 0).all()
    # matched linear ops show the recorded (global, DTensor) shapes and the local weight shard
    lin = ops[(ops["status"] == "matched") & (ops["base_op"] == "aten::linear")]
    linear_modules = cmp.modules[(cmp.modules["status"] == "matched") & (cmp.modules["module_type"] == "Linear")]
    assert len(lin) == len(linear_modules)  # one aligned aten::linear per Linear module (folded over calls)
    assert (lin["base_count"] == lin["base_calls"]).all()
    sharded = lin[lin["module_path"].str.contains("/Block_")]
    assert sharded["target_local_shapes"].notna().all() and lin["base_local_shapes"].isna().all()


def test_report_html_has_module_table_and_charts(tmp_path):
    cmp = compared(f"gpu/tracelens/h100/{MODELS[0]}.json.gz", f"gpu/tracelens/mi300/{MODELS[0]}.json.gz")
    page = render_report(cmp, top=10)
    assert "<table id='modules' " in page and "<canvas id='module-chart'" in page and "<table id='steps' " in page
    assert page.count("<tr class=") >= len(cmp.modules)
    for path in cmp.modules["module_path"].head(20):
        assert path in page
    assert "http://" not in page and "https://" not in page and "<script src" not in page
    empty = render_report(compared("gpu/hta/trace_diff/a100_control.json.gz", "gpu/hta/trace_diff/v100_test.json.gz"))
    assert "no nn.Module events" in empty and "record_function" in empty and "<table id='steps' " in empty


def test_cli_writes_tables_report_and_side_by_side_trace(tmp_path):
    base, target = shared(f"gpu/tracelens/h100/{MODELS[0]}.json.gz"), shared(f"gpu/tracelens/mi300/{MODELS[0]}.json.gz")
    out = tmp_path / "cmp"
    result = CliRunner().invoke(main, ["compare", str(base), str(target), "-o", str(out), "--trace", "--top", "5"])
    assert result.exit_code == 0, result.output
    assert "top 5 modules" in result.output and "step breakdown" in result.output
    modules = pd.read_parquet(out / "compare_modules.parquet")
    ops = pd.read_parquet(out / "compare_ops.parquet")
    assert {"base_ns", "target_ns", "ratio", "delta_ns", "base_device_ns_fwd", "target_device_ns_bwd",
            "base_kernels", "target_input_shapes"} <= set(modules.columns)
    assert {"module_path", "op", "base_shapes", "target_shapes", "base_kernel_count", "status"} <= set(ops.columns)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["modules"]["matched_fraction"] >= 0.95
    assert "<table id='modules' " in (out / "report.html").read_text()
    doc = chrome_checks.load_trace(out / "trace.json")
    assert chrome_checks.check_trace(doc) == []
    names = {e["pid"]: e["args"]["name"] for e in doc["traceEvents"] if e.get("name") == "process_name"}
    assert any(n.startswith("base ") for n in names.values()) and any(n.startswith("target ") for n in names.values())
    steps = [e for e in doc["traceEvents"] if e.get("ph") == "X" and str(e.get("name", "")).startswith("ProfilerStep#")
             and e.get("cat") != "gpu_user_annotation"]
    starts = {names[e["pid"]].split(" ")[0]: e["ts"] for e in steps}
    assert set(starts) == {"base", "target"} and math.isclose(starts["base"], starts["target"], abs_tol=1e-3)


def test_cli_error_leaves_no_output(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("this is not a trace")
    out = tmp_path / "cmp"
    result = CliRunner().invoke(main, ["compare", str(bad), str(shared(GPT)), "-o", str(out)])
    assert result.exit_code == 2 and "error:" in result.output
    assert not out.exists()


def test_equivalence_map_pairs_vendor_ops(tmp_path):
    def seq(names):
        return pd.DataFrame({"name": names, "shapes": ["[[1]]"] * len(names)})

    gpu = seq(["aten::linear", "aten::_scaled_dot_product_flash_attention", "aten::linear"])
    npu = seq(["aten::linear", "npu::npu_format_cast", "npu::npu_fusion_attention", "aten::linear"])
    pairs = align_ops(gpu, npu, equivalence())
    assert pairs == [(0, 0), (None, 1), (1, 2), (2, 3)]  # the format cast is target-only
    assert (1, 2) not in align_ops(gpu, npu, {})  # without the map the attention ops stay apart
    custom = tmp_path / "equiv.json"
    custom.write_text(json.dumps({"my_cast": ["npu::npu_format_cast", "aten::_to_copy"]}))
    canon = equivalence(load_groups(custom))
    assert canon["aten::_to_copy"] == canon["npu::npu_format_cast"] == "my_cast"
    assert canon["npu::npu_fusion_attention"] == "attention"  # the defaults stay
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"x": "not a list"}))
    with pytest.raises(TraceError):
        load_groups(bad)


def test_lcs_alignment_keeps_every_item_in_order():
    a, b = list("abcxdef"), list("abdyef")
    pairs = align(a, b, lambda x, y: 2 if x == y else 0)
    assert [i for i, _ in pairs if i is not None] == list(range(len(a)))
    assert [j for _, j in pairs if j is not None] == list(range(len(b)))
    assert sum(1 for i, j in pairs if i is not None and j is not None) == 5
    assert type_score("CPCausalSelfAttention", "CausalSelfAttention") == 1 and type_score("Linear", "Conv2d") == 0
