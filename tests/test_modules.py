"""The nn.Module view on real traces: attribution (forward, backward, kernels), module table, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import SAMPLES, shared

from tracekit.cli import main
from tracekit.modules.table import module_table
from tracekit.pipeline import process, read_inputs
from tracekit.table import DEVICE_KINDS, strings

H100 = ["gaunernst_bert-small-uncased__1016001", "Falconsai_nsfw_image_detection__1016002",
        "Qwen_Qwen1.5-0.5B-Chat__1016005", "facebook_timesformer-base-finetuned-k400__1016002"]

_cache: dict[str, tuple] = {}


def processed(rel: str):
    """(events with module columns, module table) of a shared trace, computed once per session."""
    if rel not in _cache:
        result = process(read_inputs([shared(rel)]))
        _cache[rel] = (result.table.events, module_table(result.table, result.modules))
    return _cache[rel]


def test_gpt_module_tree_shape():
    _, modules = processed("cpu/gpt/prof_stack_modules.json.gz")
    assert (modules["depth"] == 0).sum() == 1
    assert (modules["module_type"] == "Block").sum() == 4
    assert (modules["module_type"] == "Linear").sum() == 25
    paths = set(modules["module_path"])
    for path in paths:  # every parent of a module is itself a module of the tree
        parent = path.rpartition("/")[0]
        assert not parent or parent in paths


def test_gpt_linear_4_params_shapes_flops():
    _, modules = processed("cpu/gpt/prof_stack_modules.json.gz")
    row = modules[modules["module_path"].str.endswith("/Linear_4")].iloc[0]
    assert row["module_path"] == "GPT_0/Block_0/MLP_0/Linear_4"
    assert row["params"] == 256 * 1024 + 1024 == 263_168
    assert json.loads(row["input_shapes"]) == [[8, 128, 256]]
    assert json.loads(row["output_shapes"]) == [[8, 128, 1024]]
    assert row["flops_fwd"] == 2 * 8 * 128 * 256 * 1024
    assert row["flops_bwd"] == 2 * row["flops_fwd"]  # grad input + grad weight
    assert row["calls"] == 2 and row["first_call_ns"] > 0 and not math.isnan(row["steady_ns"])
    block = modules[modules["module_path"] == "GPT_0/Block_0"].iloc[0]
    children = modules[modules["parent_path"] == "GPT_0/Block_0"]
    assert block["params"] == children["params"].sum() > 0


def test_gpt_every_linear_op_in_a_linear_module_and_backward_attributed():
    ev, _ = processed("cpu/gpt/prof_stack_modules.json.gz")
    linear = ev[(ev["name"] == "aten::linear") & (ev["phase"] == "forward")]
    assert len(linear) == 50
    assert (linear["module_type"] == "Linear").all()
    ops = ev[(ev["kind"] == "cpu_op") & (ev["phase"] == "backward")]
    assert len(ops) > 1000
    assert ops["dur_ns"][ops["module_path"].notna()].sum() >= 0.95 * ops["dur_ns"].sum()
    # a backward node takes the module of the forward op with the same Sequence number
    node = ops[ops["name"].astype(str).str.startswith("autograd::engine::evaluate_function: AddmmBackward0")].iloc[0]
    fwd = ev[(ev["sequence"] == node["sequence"]) & (ev["phase"] == "forward") & (ev["kind"] == "cpu_op")]
    assert node["module_path"] in set(fwd["module_path"])
    phases = set(ev["phase"].dropna())
    assert {"forward", "backward", "loss", "optimizer"} <= phases
    opt = ev[(ev["phase"] == "optimizer") & (ev["kind"] == "cpu_op")]
    assert len(opt) > 100 and opt["module_path"].isna().all()


def test_viztracer_and_torch_give_the_same_module_paths():
    _, torch_modules = processed("cpu/gpt/prof_stack_modules.json.gz")
    _, viz_modules = processed("cpu/gpt/viz.json.gz")
    assert len(viz_modules) == len(torch_modules) == 53
    assert set(zip(viz_modules["module_path"], viz_modules["module_type"])) == set(
        zip(torch_modules["module_path"], torch_modules["module_type"]))
    assert (viz_modules["calls"] == 2).all()


@pytest.mark.parametrize("model", H100)
def test_h100_kernel_time_attributed(model):
    ev, modules = processed(f"gpu/tracelens/h100/{model}.json.gz")
    kernels = ev[ev["kind"].isin(DEVICE_KINDS)]
    launched = kernels[kernels["launch"] >= 0]
    assert launched["dur_ns"][launched["module_path"].notna()].sum() >= 0.95 * launched["dur_ns"].sum()
    assert (kernels["module_from"].isin(["launch", "gpu_annotation", "step_pattern"]) | kernels["module_path"].isna()
            ).all()
    assert modules["device_ns_fwd"].iloc[0] > 0 and modules["kernel_count"].iloc[0] > 0


def test_qwen_out_of_window_kernels_inferred_from_the_step_pattern():
    ev, _ = processed("gpu/tracelens/h100/Qwen_Qwen1.5-0.5B-Chat__1016005.json.gz")
    kernels = ev[ev["kind"].isin(DEVICE_KINDS)]
    no_launch = kernels[kernels["launch"] < 0]
    assert no_launch["dur_ns"].sum() > 0.2 * kernels["dur_ns"].sum()  # the trace's out-of-window share
    inferred = kernels[kernels["module_from"] == "step_pattern"]
    assert len(inferred) > 0 and (inferred["launch"] < 0).all()
    gemms = inferred[inferred["name"].astype(str).str.contains("gemm")]
    assert len(gemms) > 0 and (gemms["module_type"] == "Linear").all()


def test_resnet_backward_kernels_attributed_with_recompute_loss_and_optimizer():
    ev, modules = processed("gpu/tracelens/mi300/resnet_act_checkpoint.json.gz")
    phase = strings(ev["phase"])
    kernels = ev[ev["kind"].isin(DEVICE_KINDS) & (ev["launcher"] >= 0)]
    by_backward_ops = kernels[phase[kernels["launcher"].to_numpy()] == "backward"]
    assert len(by_backward_ops) > 100
    attributed = by_backward_ops[(by_backward_ops["phase"] == "backward") & by_backward_ops["module_path"].notna()]
    assert attributed["dur_ns"].sum() >= 0.90 * by_backward_ops["dur_ns"].sum()
    recomputed = ev[ev["recompute"] & ev["kind"].isin(DEVICE_KINDS)]
    assert len(recomputed) > 0
    assert recomputed["module_path"].str.contains("CheckpointWrapper").all()
    assert (recomputed["phase"] == "backward").all()
    assert {"loss", "optimizer"} <= set(ev.loc[ev["kind"] == "cpu_op", "phase"].dropna())
    conv = modules[modules["module_type"] == "Conv2d"].iloc[0]
    assert conv["device_ns_bwd"] > 0 and conv["flops_fwd"] > 0 and conv["achieved_tflops"] > 0


def test_first_call_and_steady_state_on_the_tensorboard_trace():
    path = sorted(shared("cpu/gpt").glob("gpt.*.pt.trace.json.gz"))[0]  # tensorboard_trace_handler output
    result = process(read_inputs([path]))
    modules = module_table(result.table, result.modules)
    assert len(modules) == 53
    assert modules["first_call_ns"].gt(0).all() and modules["steady_ns"].notna().all()
    assert (modules["first_call_ns"] != modules["steady_ns"]).mean() > 0.9


def test_trace_without_modules_says_so_and_falls_back_to_record_function():
    result = CliRunner().invoke(main, ["modules", str(shared("gpu/hta/trace_diff/a100_control.json.gz"))])
    assert result.exit_code == 0
    assert "no nn.Module events" in result.stderr and "record_function" in result.stderr
    _, modules = processed("gpu/hta/trace_diff/a100_control.json.gz")
    assert len(modules) > 0 and (modules["module_type"] == "record_function").all()
    forward = modules[modules["module_path"] == "## forward ##"].iloc[0]
    assert forward["calls"] == 6 and forward["device_ns_fwd"] > 0 and forward["params"] > 0
    assert not modules["module_path"].str.startswith("Optimizer.").any()


def test_modules_cli_formats(tmp_path):
    sample = str(SAMPLES / "cnn" / "prof.json.gz")
    runner = CliRunner()
    table = runner.invoke(main, ["modules", sample])
    assert table.exit_code == 0, table.output
    assert "Conv2d_0" in table.output and "Sequential_0" in table.output
    rows = json.loads(runner.invoke(main, ["modules", sample, "--format", "json", "--depth", "0"]).output)
    assert len(rows) == 1 and rows[0]["depth"] == 0
    csv = runner.invoke(main, ["modules", sample, "--format", "csv", "--sort", "params"]).output
    frame = pd.read_csv(pd.io.common.StringIO(csv))
    kids = frame[frame["depth"] == 1]["params"].to_numpy()
    assert list(kids) == sorted(kids, reverse=True)
    out = tmp_path / "modules.html"
    html = runner.invoke(main, ["modules", sample, "--format", "html", "-o", str(out)])
    assert html.exit_code == 0, html.output
    page = out.read_text()
    assert "Conv2d_0" in page and "id='model-data'" in page and page.count("<tr data-id=") == 10
    assert runner.invoke(main, ["modules", sample, "--format", "html"]).exit_code != 0


def test_convert_writes_modules_parquet_and_module_args(converted):
    out, summary = converted(SAMPLES / "cnn" / "prof.json.gz")
    assert summary["conserved"]
    modules = pd.read_parquet(out / "modules.parquet")
    assert summary["parquet"]["modules"] == len(modules) > 0
    ops = pd.read_parquet(out / "ops.parquet")
    conv = ops[ops["name"] == "aten::conv2d"]
    assert len(conv) > 0 and (conv["module_type"] == "Conv2d").all()
    trace = json.loads((out / "trace.json").read_text())
    events = [e for e in trace["traceEvents"] if e.get("cat") == "cpu_op"]
    with_path = [e for e in events if "module_path" in e.get("args", {})]
    assert len(with_path) == int(ops["module_path"].notna().sum())
    assert all(e["args"]["phase"] in ("forward", "backward") for e in with_path)


def test_attribution_columns_are_consistent_on_all_rows():
    ev, _ = processed("gpu/tracelens/mi300/resnet_act_checkpoint.json.gz")
    has_module = ev["module"].to_numpy() >= 0
    assert (ev["module_path"].notna().to_numpy() == has_module).all()
    spans = ev["module"].to_numpy()[has_module]
    assert set(np.unique(ev["kind"].to_numpy()[spans])) <= {"module"}


@pytest.mark.parametrize("rel", ["cpu/gpt/prof_stack_modules.json.gz",
                                 "gpu/tracelens/mi300/resnet_act_checkpoint.json.gz"])
def test_chrome_trace_has_nested_module_tracks_forward_and_backward(converted, rel):
    import chrome_checks

    out, summary = converted(shared(rel))
    doc = chrome_checks.load_trace(out / summary["trace"]["file"])
    assert chrome_checks.check_trace(doc) == []
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in doc["traceEvents"]
             if e.get("ph") == "M" and e.get("name") == "thread_name"}
    tracks = {key for key, name in names.items() if name.startswith("modules · ")}
    assert tracks
    spans = [e for e in doc["traceEvents"] if (e.get("pid"), e.get("tid")) in tracks and e.get("ph") == "X"]
    assert summary["trace"]["module_track_events"] == len(spans)
    forward = [e for e in spans if e["args"]["phase"] == "forward"]
    backward = [e for e in spans if e["args"]["phase"] == "backward"]
    ev, _ = processed(rel)
    assert len(forward) == int(((ev["kind"] == "module") & ~ev["recompute"]).sum())
    assert backward and all(e["name"].endswith("(backward)") for e in backward)
    roots = {e["args"]["module_path"] for e in backward if "/" not in e["args"]["module_path"]}
    assert roots == {p for p in (e["args"]["module_path"] for e in forward) if "/" not in p}


def test_npu_module_view_forward_backward_and_shapes():
    ev, modules = processed("npu/msinsight_alexnet_dp/text/level1/rank0_ascend_pt")
    root = modules[modules["module_type"] == "AlexNet"].iloc[0]
    assert json.loads(root["input_shapes"]) == [[32, 3, 224, 224]]
    assert 61_000_000 < root["params"] < 61_200_000  # torchvision AlexNet: 61.1M parameters
    assert root["device_ns_fwd"] > 0 and root["device_ns_bwd"] > 0
    nodes = ev[ev["name"].astype(str).str.startswith("autograd::engine::evaluate_function: Convolution")]
    assert len(nodes) > 0 and (nodes["module_type"] == "Conv2d").all()
    assert (nodes["module_from"] == "fwdbwd").all()  # torch_npu writes Sequence number -1 on backward nodes


CASES = SAMPLES / "cases"  # recorded by sample_traces/record_merge_cases.py


def _sample_modules(path) -> pd.DataFrame:
    result = process(read_inputs([path]))
    return module_table(result.table, result.modules)


def test_viztracer_names_batchnorm_by_its_runtime_class_like_torch():
    """`_BatchNorm.forward` calls `BatchNorm2d._check_input_dim`: the module is a BatchNorm2d, as torch says."""
    viz = _sample_modules(SAMPLES / "cnn" / "viz.json.gz")
    prof = _sample_modules(SAMPLES / "cnn" / "prof.json.gz")
    bn = viz[viz["module_path"] == "Sequential_0/BatchNorm2d_0"]
    assert len(bn) == 1 and bn["module_type"].iloc[0] == "BatchNorm2d"
    assert bn["type_from"].iloc[0] == "subclass_method"
    assert not viz["module_type"].str.startswith("_").any()
    assert set(zip(viz["module_path"], viz["module_type"])) == set(zip(prof["module_path"], prof["module_type"]))
    assert (prof["type_from"] == "torch").all()
    # a class whose forward is its own (Conv2d) is only known as the defining class, and says so
    assert set(viz.loc[viz["module_type"] == "Conv2d", "type_from"]) == {"defining_class"}


def test_compare_viztracer_against_torch_matches_every_module(tmp_path):
    result = CliRunner().invoke(main, ["compare", str(SAMPLES / "cnn" / "viz.json.gz"),
                                       str(SAMPLES / "cnn" / "prof.json.gz"), "-o", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert summary["modules"]["matched_fraction"] == 1.0
    assert summary["modules"]["by_status"] == {"matched": 10}


def test_unknown_module_span_stays_a_tree_level_with_a_warning():
    """Kineto writes the span of class `Schichtü` as `unknown`; its Linear stays one level below it."""
    with pytest.warns(UserWarning, match="named 'unknown'"):
        prof = _sample_modules(CASES / "names_prof.json.gz")
    row = prof[prof["module_path"] == "Net_0/unknown_0"]
    assert len(row) == 1 and row["type_from"].iloc[0] == "unknown_name" and row["calls"].iloc[0] == 2
    assert "Net_0/unknown_0/Linear_0" in set(prof["module_path"])
    assert prof.loc[prof["module_path"] == "Net_0/unknown_0", "params"].iloc[0] == 16 * 16 + 16


def test_module_name_with_a_slash_keeps_the_tree(tmp_path):
    with pytest.warns(UserWarning, match="'/' in their class name"):
        prof = _sample_modules(CASES / "names_prof.json.gz")
    assert set(prof["module_path"]) == {"Net_0", "Net_0/MultiheadAttention_0", "Net_0/BatchNorm1d_0",
                                        "Net_0/unknown_0", "Net_0/unknown_0/Linear_0", "Net_0/Proj|Out_0"}
    assert prof.loc[prof["module_path"] == "Net_0/Proj|Out_0", "module_type"].iloc[0] == "Proj/Out"
    result = CliRunner().invoke(main, ["modules", str(CASES / "names_prof.json.gz"), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output[result.output.index("["):])
    assert len(rows) == 6 and {r["depth"] for r in rows} == {0, 1, 2}


def test_viztracer_local_classes_and_inherited_forward():
    """`_names_net.<locals>.Net.forward` is a module frame; `Proj/Out` runs Linear.forward, so VizTracer
    only knows it as a Linear (defining_class), while BatchNorm1d is known from its subclass method."""
    viz = _sample_modules(CASES / "names_viz.json.gz")
    types = dict(zip(viz["module_path"], zip(viz["module_type"], viz["type_from"])))
    assert types["Net_0"] == ("Net", "defining_class")
    assert types["Net_0/BatchNorm1d_0"] == ("BatchNorm1d", "subclass_method")
    assert types["Net_0/MultiheadAttention_0"][0] == "MultiheadAttention"
    assert "Net_0/Schicht\u00fc_0/Linear_0" in types and types["Net_0/Linear_1"] == ("Linear", "defining_class")


def test_multihead_attention_output_shape_from_the_op_whose_result_leaves_it():
    """MHA's forward ends in `aten::transpose` (batch_first): its output is the transposed tensor, which is
    what the next op outside the module consumes. Where the last op has no rule, the table says so."""
    with pytest.warns(UserWarning):
        result = process(read_inputs([CASES / "names_prof.json.gz"]))
    modules = module_table(result.table, result.modules)
    mha = modules[modules["module_path"] == "Net_0/MultiheadAttention_0"].iloc[0]
    assert json.loads(mha["output_shapes"]) == [[2, 5, 16]]
    assert mha["output_from"] == "last op aten::transpose"
    ev = result.table.events
    span = ev[ev["name"] == "nn.Module: MultiheadAttention_0"].iloc[0]
    end = span["ts_ns"] + span["dur_ns"]
    after = ev[(ev["kind"] == "cpu_op") & (ev["ts_ns"] >= end) & (ev["tid"] == span["tid"])].sort_values("ts_ns")
    consumer = json.loads(result.table.args[int(after.index[0])].as_py())["Input Dims"][0]
    assert consumer == [2, 5, 16]
    net = modules[modules["module_path"] == "Net_0"].iloc[0]
    assert pd.isna(net["output_shapes"]) and net["output_from"].startswith("unknown: no shape rule")


def test_params_and_flops_unknown_without_op_shapes():
    """A VizTracer trace records no op inputs: params and FLOPs cannot be counted, so they are null/NaN (not 0),
    the text table says why, and backward time (VizTracer records no autograd node) is blank, not 0.000. The
    profiler recording of the same model has them."""
    viz = module_table(*(lambda r: (r.table, r.modules))(process(read_inputs([SAMPLES / "cnn" / "viz.json.gz"]))))
    prof = module_table(*(lambda r: (r.table, r.modules))(process(read_inputs([SAMPLES / "cnn" / "prof.json.gz"]))))
    assert viz["params"].isna().all() and viz["own_params"].isna().all()
    assert viz["flops_fwd"].isna().all() and viz["flops_bwd"].isna().all()
    assert prof["params"].notna().all() and prof.loc[prof["module_type"] == "Conv2d", "params"].gt(0).all()
    assert str(prof["params"].dtype) == "int64"
    result = CliRunner().invoke(main, ["modules", str(SAMPLES / "cnn" / "viz.json.gz")])
    assert result.exit_code == 0, result.output
    assert "records no op input shapes" in result.output
    conv_line = next(line for line in result.output.splitlines() if "Conv2d_0" in line)
    assert "0.000" not in conv_line.split("│")[9]  # the bwd ms cell


def test_first_call_note_when_the_recording_starts_after_step_0(tmp_path):
    """The gpt sample was recorded with schedule(wait=1, warmup=1, active=2): its first step is ProfilerStep#2, so
    a module's "first" call in it is not the program's (warm-up) first call, and the table says so, for the raw
    trace and for its dataset alike. The VizTracer recording has no profiler steps: no such note."""
    prof = SAMPLES / "gpt" / "prof.json.gz"
    assert CliRunner().invoke(main, ["convert", str(prof), "-o", str(tmp_path / "ds")]).exit_code == 0
    for target in (prof, tmp_path / "ds"):
        result = CliRunner().invoke(main, ["modules", str(target), "--depth", "0"])
        assert result.exit_code == 0, result.output
        assert "starts at ProfilerStep#2" in result.output
    viz = CliRunner().invoke(main, ["modules", str(SAMPLES / "gpt" / "viz.json.gz"), "--depth", "0"])
    assert viz.exit_code == 0 and "ProfilerStep#" not in viz.output
    page = tmp_path / "modules.html"  # the HTML tree says it too
    assert CliRunner().invoke(main, ["modules", str(prof), "-o", str(page)]).exit_code == 0
    assert "starts at ProfilerStep#2" in page.read_text()


def test_class_definitions_are_those_that_start_a_line():
    """The embedded sources' `class X(bases):` lines, as the anchored multi-line pattern finds them: not a
    `subclass X(...)` inside a line, nor one that hides the next line's definition."""
    import re

    from tracekit.modules.runtime_class import _line_start_defs

    anchored = re.compile(r"^[ \t]*class[ \t]+(\w+)[ \t]*\(([^)]*)\)[ \t]*:", re.MULTILINE)
    texts = ["x = 1\nclass A(B):\n  pass\n", "a subclass A(\nclass B(C):\n", "  \tclass Q(R, S):",
             "classX(Y):\nclass  Z ( W ) :", "    class Inner(nn.Module, metaclass=M):\n", "no classes here"]
    for text in texts:
        assert _line_start_defs(text) == anchored.findall(text), text
    assert _line_start_defs(texts[1]) == [("B", "C")]
