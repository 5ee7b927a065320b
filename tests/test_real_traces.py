"""Convert the real traces in ../shared/traces and sample_traces/ and check the outputs by meaning."""

from __future__ import annotations

import gzip
import json
import re
import zlib

import chrome_checks
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLES, shared
from tracekit.converters import read_trace

GPU_TRACES = [
    "gpu/kineto_legacy/worker0.1623143089861.pt.trace.json.gz",  # 2021 schema: Operator/Kernel/Runtime, async
    "gpu/hta/trace_diff/v100_test.json.gz",  # async_cpu_to_gpu flows, epoch-us ts
    "gpu/hta/nccl_data.json.gz",  # ac2g flows, NCCL
    "gpu/hta/mi250_minitoy_train_ROCm6_2_kineto.json.gz",  # small ROCm
    "gpu/tracelens/h100/Qwen_Qwen1.5-0.5B-Chat__1016005.json.gz",  # kernels launched before the window
    "gpu/tracelens/mi300/resnet_act_checkpoint.json.gz",  # RCCL kernels without launch
    "gpu/tracelens/b200/eager_trace.json.gz",
    "gpu/tracelens/vllm_cuda_graph/graph_execution.json.gz",  # cudaGraphLaunch
    "gpu/param_dlrm_8ranks/worker3_step_12.1694128201557.pt.trace.json.gz",
]
CPU_TRACES = [
    "cpu/gpt/prof_stack_modules.json.gz",
    "cpu/gpt/gpt.1795342577847977888.pt.trace.json.gz",  # tensorboard handler name
    "cpu/gpt/viz.json.gz",
    "cpu/gpt/viz_log_torch.json.gz",
    "cpu/gpt/viz_both.json",
    "cpu/gpt/prof_both.json",
]
SAMPLE_TRACES = sorted(str(p.relative_to(SAMPLES)) for p in SAMPLES.glob("*/*.json.gz"))


def _raw_events(path) -> list[dict]:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = zlib.decompress(data, wbits=47)
    return json.loads(data)["traceEvents"]


def _check_output(outdir, summary, input_path):
    doc = chrome_checks.load_trace(outdir / summary["trace"]["file"])
    problems = chrome_checks.check_trace(doc)
    assert problems == [], problems[:10]
    assert summary["conserved"], summary
    assert summary["input_events"] == len(_raw_events(input_path))
    events = pq.read_table(outdir / "events.parquet")
    skipped_while_reading = sum(v for k, v in summary["skipped"].items() if not k.startswith("flow_"))
    assert events.num_rows == summary["input_events"] - skipped_while_reading - summary["metadata_events_folded"]
    return doc


@pytest.mark.parametrize("rel", GPU_TRACES + CPU_TRACES)
def test_shared_trace_converts_clean(rel, converted):
    path = shared(rel)
    outdir, summary = converted(path)
    doc = _check_output(outdir, summary, path)
    # Host processes are sorted before device processes.
    info = chrome_checks.summarize(doc)
    assert info["processes"] >= 1


@pytest.mark.parametrize("rel", SAMPLE_TRACES)
def test_sample_trace_converts_clean(rel, converted):
    path = SAMPLES / rel
    outdir, summary = converted(path)
    _check_output(outdir, summary, path)


@pytest.mark.parametrize("rel", [r for r in GPU_TRACES if "vllm" not in r and "mi250" not in r])
def test_every_kernel_is_linked_or_counted(rel, converted):
    """Each device event has a launching op, or is counted under a cause in summary.json."""
    outdir, summary = converted(shared(rel))
    kernels = pd.read_parquet(outdir / "kernels.parquet")
    assert len(kernels) > 0
    linked = (kernels["launcher_row"] >= 0).sum()
    assert linked + sum(summary["unlinked_device_events"].values()) == len(kernels)
    assert linked / len(kernels) > 0.5
    # A linked kernel's op is a cpu op whose name the kernel carries in the trace args.
    ops = pd.read_parquet(outdir / "ops.parquet").set_index("row")
    sample = kernels[kernels["launcher_row"] >= 0].head(50)
    assert sample["launcher_row"].isin(ops.index).all()
    assert (ops.loc[sample["launcher_row"], "name"].to_numpy() == sample["op_name"].to_numpy()).all()


def test_qwen_kernels_launched_before_window_are_counted(converted):
    outdir, summary = converted(shared("gpu/tracelens/h100/Qwen_Qwen1.5-0.5B-Chat__1016005.json.gz"))
    kernels = pd.read_parquet(outdir / "kernels.parquet")
    missing = kernels[kernels["launch_row"] < 0]
    share = missing["dur_ns"].sum() / kernels["dur_ns"].sum()
    assert 0.2 < share < 0.4  # DESIGN.md: ~30% of kernel time has no launch in the window
    assert summary["unlinked_device_events"]["launch_not_in_trace"] == len(missing)


def test_legacy_schema_links_through_async_flows_and_correlation(converted):
    path = shared("gpu/kineto_legacy/worker0.1623143089861.pt.trace.json.gz")
    outdir, summary = converted(path)
    kernels = pd.read_parquet(outdir / "kernels.parquet")
    assert (kernels["launcher_row"] >= 0).all()
    assert set(kernels["kind"]) == {"kernel", "memcpy", "memset"}
    raw = _raw_events(path)
    n_async_starts = sum(1 for e in raw if e.get("cat") == "async" and e["ph"] == "s")
    assert summary["launch_flows_redrawn"] >= n_async_starts
    assert summary["trace"]["flows"] == len(kernels)
    steps = pd.read_parquet(outdir / "steps.parquet")
    assert len(steps) == sum(1 for e in raw if str(e.get("name", "")).startswith("ProfilerStep#"))


def test_timestamps_are_exact_integer_ns():
    """ts_ns = baseTimeNanoseconds + the ts digits as written, with no float rounding."""
    path = shared("cpu/gpt/prof_stack_modules.json.gz")
    text = gzip.decompress(path.read_bytes()).decode()
    base = int(re.search(r'"baseTimeNanoseconds":\s*(\d+)', text).group(1))
    # M events keep no row (folded into names); the ts of every other event is checked
    written = [m.group(1) for m in re.finditer(r'"ph":\s*"[^M]"[^{}]*?"ts":\s*([0-9.]+)', text)][:2000]
    expected = set()
    for value in written:
        whole, _, frac = value.partition(".")
        expected.add(base + int(whole) * 1000 + int((frac + "000")[:3]))
    table = read_trace(path)
    got = set(table.events["ts_ns"].tolist())
    assert expected <= got


def test_viztracer_base_time_and_kinds(converted):
    path = shared("cpu/gpt/viz.json.gz")
    table = read_trace(path)
    src = table.sources[0]
    assert src.format == "viztracer"
    meta = json.loads(gzip.decompress(path.read_bytes()))["viztracer_metadata"]
    assert src.base_ns == meta["baseTimeNanoseconds"]
    kinds = table.events["kind"].value_counts()
    assert kinds["python"] > 4000
    assert "file_info" in src.top


def test_log_torch_viztracer_keeps_torch_events():
    table = read_trace(shared("cpu/gpt/viz_log_torch.json.gz"))
    kinds = table.events["kind"].value_counts()
    assert table.sources[0].format == "viztracer"
    assert kinds["cpu_op"] == 9402
    assert kinds["python"] == 5002


def test_sample_gpt_ops_have_shapes_and_steps(converted):
    outdir, _ = converted(SAMPLES / "gpt" / "prof.json.gz")
    ops = pd.read_parquet(outdir / "ops.parquet")
    linear = ops[ops["name"] == "aten::linear"]
    assert len(linear) > 0
    dims = json.loads(linear.iloc[0]["input_dims"])
    assert len(dims) == 3 and len(dims[1]) == 2  # input, weight [out, in], bias
    assert dims[0][-1] == dims[1][1]
    steps = pd.read_parquet(outdir / "steps.parquet")
    assert sorted(steps["step"].tolist()) == [2, 3]
    assert set(ops["step"]) >= {2, 3}
    events = pd.read_parquet(outdir / "events.parquet")
    # Calls nest: every parent row starts no later and ends no earlier than its child.
    child = events[events["parent"] >= 0]
    parent = events.loc[child["parent"]]
    assert (parent["ts_ns"].to_numpy() <= child["ts_ns"].to_numpy()).all()
    assert (parent["depth"].to_numpy() + 1 == child["depth"].to_numpy()).all()


def test_kernel_args_carry_launching_op_and_shapes(converted):
    outdir, _ = converted(shared("gpu/tracelens/h100/Qwen_Qwen1.5-0.5B-Chat__1016005.json.gz"))
    doc = chrome_checks.load_trace(outdir / "trace.json")
    kernels = [e for e in doc["traceEvents"] if e.get("cat") == "kernel"]
    kernel_table = pd.read_parquet(outdir / "kernels.parquet")
    linked = kernel_table[(kernel_table["kind"] == "kernel") & (kernel_table["launcher_row"] >= 0)]
    with_op = [e for e in kernels if "launcher op" in e["args"]]
    assert len(with_op) == len(linked) > 0
    mm = [e for e in with_op if e["args"]["launcher op"] in ("aten::mm", "aten::addmm", "aten::linear")]
    assert mm and all(any(len(d) == 2 for d in e["args"]["launcher Input Dims"]) for e in mm)
    assert all("correlation" in e["args"] for e in with_op)  # original args kept


def test_tracks_named_and_hosts_before_devices(converted):
    outdir, _ = converted(shared("gpu/hta/nccl_data.json.gz"))
    doc = chrome_checks.load_trace(outdir / "trace.json")
    names = {e["pid"]: e["args"]["name"] for e in doc["traceEvents"] if e.get("name") == "process_name"}
    order = {e["pid"]: e["args"]["sort_index"] for e in doc["traceEvents"] if e.get("name") == "process_sort_index"}
    by_order = [names[p] for p in sorted(order, key=order.get)]
    assert "pid" in by_order[0]  # host process first
    assert any(n.startswith("rank 0 · GPU") for n in by_order)
    first_gpu = next(i for i, n in enumerate(by_order) if "GPU" in n)
    assert all("GPU" not in n for n in by_order[:first_gpu])


def test_partial_overlaps_go_to_named_overlap_tracks(converted):
    """gloo send/recv annotations end at wait() and partly overlap their ops: they move to an overlap lane."""
    outdir, summary = converted(shared("cpu/dist_cp_tp/rank-0.json.gz"), parquet=False)
    assert summary["trace"]["overlap_lanes_events"] > 0
    doc = chrome_checks.load_trace(outdir / "trace.json")
    assert chrome_checks.check_trace(doc) == []
    thread_names = [e["args"]["name"] for e in doc["traceEvents"] if e.get("name") == "thread_name"]
    assert any("(overlap 1)" in n for n in thread_names)


def test_info_cli_reports_the_trace():
    from click.testing import CliRunner

    from tracekit.cli import main

    result = CliRunner().invoke(main, ["info", str(shared("gpu/hta/nccl_data.json.gz"))])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "format: torch" in out
    assert "A100" in out or "GPU" in out
    assert "steps: [4, 5, 6]" in out
    assert "top kernels by time" in out and "top ops by time" in out
    result = CliRunner().invoke(main, ["info", "--json", str(SAMPLES / "gpt" / "prof.json.gz")])
    facts = json.loads(result.output)
    assert facts["steps"] == [2, 3]
    assert facts["has_modules"] is True
    assert facts["counts_by_kind"]["cpu_op"] > 100


def test_info_says_when_modules_are_missing():
    from click.testing import CliRunner

    from tracekit.cli import main

    result = CliRunner().invoke(main, ["info", str(shared("cpu/gpt/prof_both.json"))])
    assert result.exit_code == 0, result.output
    assert "no nn.Module events" in result.output


def test_convert_cli_gzip_output(tmp_path):
    from click.testing import CliRunner

    from tracekit.cli import main

    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["convert", str(SAMPLES / "cnn" / "prof.json.gz"), "-o", str(out), "--gzip"])
    assert result.exit_code == 0, result.output
    assert (out / "trace.json.gz").read_bytes()[:2] == b"\x1f\x8b"
    doc = chrome_checks.load_trace(out / "trace.json.gz")
    assert chrome_checks.check_trace(doc) == []
    summary = json.loads((out / "summary.json").read_text())
    assert summary["conserved"]
    assert not list(tmp_path.glob(".out.tmp-*"))


def test_info_reports_device_events_that_start_before_their_launch(converted):
    """Ascend AlexNet: some device tasks start before the host call that launched them (clock skew in the
    source): info counts them and says by how much; the count is that of the converted table, on the raw
    trace and on its dataset alike, and a trace without skew reports none."""
    import pyarrow.parquet as pq

    from tracekit.dataset import open_dataset
    from tracekit.dataset.load import INFO_COLUMNS
    from tracekit.info import quick_info, trace_info
    from tracekit.pipeline import read_inputs

    npu = shared("npu/msinsight_alexnet_dp/text/level1/rank0_ascend_pt")
    facts = quick_info(read_inputs([npu], keep_args=False))
    out, _ = converted(npu)
    ev = pq.read_table(out / "events.parquet", columns=["kind", "ts_ns", "launch"]).to_pandas()
    dev = ev[ev.kind.isin(["kernel", "memcpy", "memset"]) & (ev.launch >= 0)]
    gap = ev.ts_ns.to_numpy()[dev.launch.to_numpy()] - dev.ts_ns.to_numpy()
    assert facts["device_before_launch"] == {"events": int((gap > 0).sum()), "of": len(dev), "max_ns": int(gap.max())}
    assert facts["device_before_launch"]["events"] > 0
    on_dataset = trace_info(open_dataset(out).processed(INFO_COLUMNS))
    assert on_dataset["device_before_launch"] == facts["device_before_launch"]
    bert = shared("gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz")
    assert quick_info(read_inputs([bert], keep_args=False))["device_before_launch"] == {}
