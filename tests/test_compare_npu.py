"""Same-model compare: the shared Ascend NPU AlexNet (DDP) against the AlexNet recorded with torch on CPU
(gloo) and CUDA (NCCL) by sample_traces/record.py."""

from __future__ import annotations

import json
import warnings

import pytest
from conftest import SAMPLES, shared

from tracekit.compare.job import compare_paths
from tracekit.compare.ops import one_sided
from tracekit.compare.table import basis_of

NPU = "npu/msinsight_alexnet_dp"
ALEXNET_MODULES = 26  # DDP wrapper, AlexNet, 2 Sequentials, 5 conv, 7 relu, 3 pool, avgpool, 2 dropout, 3 linear, loss
LAYERS = ["Conv2d_0", "Conv2d_1", "Conv2d_2", "Conv2d_3", "Conv2d_4", "Linear_0", "Linear_1", "Linear_2"]


def _compare(npu: str, other: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compare_paths(shared(npu), SAMPLES / "alexnet" / other)


@pytest.fixture(scope="module")
def npu_vs_cpu():
    return _compare(f"{NPU}/text/level1/rank0_ascend_pt", "cpu_rank0.json.gz")


@pytest.fixture(scope="module")
def npu_vs_gpu():
    return _compare(f"{NPU}/text/level1/rank0_ascend_pt", "cuda_rank0.json.gz")


def _module_checks(cmp) -> None:
    mods = cmp.modules
    assert len(mods) == ALEXNET_MODULES and (mods["status"] == "matched").all()
    assert cmp.matched_fraction() == 1.0
    paths = set(mods["module_path"])
    assert "DistributedDataParallel_0" in paths and "DistributedDataParallel_0/AlexNet_0" in paths
    for layer in LAYERS:
        seq = "Sequential_0" if layer.startswith("Conv") else "Sequential_1"
        row = mods[mods["module_path"] == f"DistributedDataParallel_0/AlexNet_0/{seq}/{layer}"]
        assert len(row) == 1
        # the same layer: same input shape and weight shape and parameter count on both sides
        r = row.iloc[0]
        assert r["base_input_shapes"] == r["target_input_shapes"]
        assert r["base_weight_shape"] == r["target_weight_shape"] and r["base_weight_shape"]
        assert r["base_params"] == r["target_params"] > 0
        assert not r["shapes_differ"]


def test_npu_vs_cpu_aligns_every_module_and_labels_device_and_host_times(npu_vs_cpu):
    cmp = npu_vs_cpu
    _module_checks(cmp)
    # the NPU side is timed by its kernels, the CPU side by host wall time, and the outputs say so
    assert cmp.basis == "base device / target host"
    assert basis_of(cmp.basis, "base") == "device" and basis_of(cmp.basis, "target") == "host"
    assert any("DEVICE time" in n and "base" in n for n in cmp.notes)
    assert any("HOST time" in n and "target" in n for n in cmp.notes)
    steps = cmp.steps.set_index("side")["basis"]
    assert steps["base"] == "device" and steps["target"] == "host"
    mods = cmp.modules
    layer = mods[mods["module_path"].str.endswith("Conv2d_1")].iloc[0]
    assert layer["base_ns"] == layer["base_device_ns_fwd"] + layer["base_device_ns_bwd"] > 0
    assert layer["target_ns"] == layer["target_host_fwd_ns"] + layer["target_host_bwd_ns"] > 0


def test_npu_vs_cpu_op_coverage(npu_vs_cpu):
    ops = npu_vs_cpu.ops
    in_modules = ops[ops["module_path"].notna() & (ops["module_path"] != "DistributedDataParallel_0")]
    matched = in_modules[in_modules["status"] == "matched"]
    # every op inside AlexNet's layers finds its partner, except dropout's backward: torch_npu has its own
    # autograd node, the CPU implements dropout as a multiply (MulBackward0)
    unmatched = in_modules[in_modules["status"] != "matched"]
    assert set(unmatched["base_op"].dropna()) <= {"autograd::engine::evaluate_function: NpuDropoutBackward0"}
    assert set(unmatched["target_op"].dropna()) <= {"autograd::engine::evaluate_function: MulBackward0"}
    assert len(matched) / len(in_modules) > 0.9
    # matched ops saw the same shapes once torch_npu's `a;b` strings are read as lists (allreduce: the NPU
    # records its TensorList without shapes)
    same = matched
    assert same["shapes_equal"].all() and len(same) > 60
    # the DDP gradient all-reduces align (c10d::allreduce_ on both) under the DDP wrapper (gradient hooks: not
    # the layers' own backward)
    ar = ops[(ops["op"] == "all_reduce") & (ops["status"] == "matched")]
    assert len(ar) == 4 and (ar["base_kernel_names"].str.startswith("hcom_allReduce")).all()
    assert (ar["module_path"] == "DistributedDataParallel_0").all() and (ar["phase"] == "backward").all()
    # the ops found on one side only are listed per side
    alone = one_sided(ops)
    assert {"base", "target"} == set(alone["side"])
    assert "aten::_foreach_add_" in set(alone[alone["side"] == "base"]["op"])  # NPU SGD runs foreach kernels


def test_npu_format_casts_are_counted_per_module(npu_vs_cpu):
    mods = npu_vs_cpu.modules
    convs = mods[mods["module_type"] == "Conv2d"]
    # every NPU convolution converts NCHW to the fractal NC1HWC0 layout and back (TransData kernels)
    assert (convs["base_format_cast_ns"] > 0).all()
    assert (convs["target_format_cast_ns"].fillna(0) == 0).all()  # the CPU run launches no kernels
    ops = npu_vs_cpu.ops
    conv_fwd = ops[(ops["base_op"] == "aten::conv2d") & (ops["status"] == "matched")]
    assert len(conv_fwd) == 5
    assert (conv_fwd["base_cast_count"] >= 1).all() and (conv_fwd["base_cast_ns"] < conv_fwd["base_device_ns"]).all()
    assert conv_fwd["base_kernel_names"].str.contains("TransData").all()


def test_npu_vs_gpu_compares_device_times_and_maps_npu_autograd_nodes(npu_vs_gpu):
    cmp = npu_vs_gpu
    _module_checks(cmp)
    assert cmp.basis == "device"
    ops = cmp.ops
    in_modules = ops[ops["module_path"].notna() & (ops["module_path"] != "DistributedDataParallel_0")]
    # NpuDropoutBackward0 and NativeDropoutBackward0 are one op through the equivalence map
    drop = in_modules[in_modules["op"] == "dropout_backward"]
    assert len(drop) == 2 and (drop["status"] == "matched").all()
    assert set(drop["base_op"]) == {"autograd::engine::evaluate_function: NpuDropoutBackward0"}
    assert (in_modules["status"] == "matched").all()
    layers = cmp.modules[cmp.modules["module_type"].isin(["Conv2d", "Linear"])]
    assert (layers["base_ns"] > 0).all() and (layers["target_ns"] > 0).all()
    # the NPU rank (world of 8) spends most of its backward in DDP's all-reduces (waiting for the other ranks),
    # the one-GPU run has no collective kernel at all. Those are the DDP wrapper's (gradient hooks), not the
    # layer that completed the bucket: Linear_2 compares compute with compute
    mods = cmp.modules.set_index("module_path")
    lin2 = mods.loc["DistributedDataParallel_0/AlexNet_0/Sequential_1/Linear_2"]
    assert lin2["base_comm_ns"] == 0 and lin2["target_comm_ns"] == 0
    ddp = mods.loc["DistributedDataParallel_0"]
    assert ddp["base_comm_ns"] > 0.5 * ddp["base_ns"] and ddp["target_comm_ns"] == 0
    # layout conversions on both vendors: TransData on the NPU, cuDNN nchwToNhwc on the GPU; parents add them up
    convs = mods[mods["module_type"] == "Conv2d"]
    assert (convs["base_format_cast_ns"] > 0).all() and (convs["target_format_cast_ns"] > 0).all()
    seq0 = mods.loc["DistributedDataParallel_0/AlexNet_0/Sequential_0"]
    assert seq0["base_format_cast_ns"] >= convs["base_format_cast_ns"].sum()


@pytest.mark.parametrize("npu", [f"{NPU}/text/level2/rank1_ascend_pt", f"{NPU}/db/level1/rank0_ascend_pt"])
def test_other_npu_exports_align_the_same(npu):
    cmp = _compare(npu, "cpu_rank1.json.gz")
    _module_checks(cmp)
    assert cmp.basis == "base device / target host"


def test_compare_cli_summary_lists_one_sided_ops(tmp_path):
    from click.testing import CliRunner

    from tracekit.cli import main

    out = tmp_path / "cmp"
    result = CliRunner().invoke(main, ["compare", str(shared(f"{NPU}/text/level1/rank0_ascend_pt")),
                                       str(SAMPLES / "alexnet" / "cuda_rank0.json.gz"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["modules"]["matched_fraction"] == 1.0 and summary["basis"] == "device"
    assert summary["ops"]["one_side_only"] and {"side", "op", "occurrences"} <= set(summary["ops"]["one_side_only"][0])
    assert "ops on one side only" in result.output


def test_compare_page_shows_comm_and_format_cast_per_module(npu_vs_gpu):
    """The page's module table carries the comm and format-cast columns, with the same values as the table."""
    import re

    from tracekit.report.fmt import ms
    from tracekit.writers.compare_html import render_report

    page = render_report(npu_vs_gpu, top=10)
    table = page[page.index("<table id='modules' "):]
    table = table[:table.index("</table>")]
    head = re.findall(r"<th[^>]*>(.*?)</th>", table[:table.index("</thead>")])
    head = [re.sub(r"<[^>]+>", "", h) for h in head]
    assert "comm ms b/t" in head and "format cast ms b/t" in head
    mods = npu_vs_gpu.modules.set_index("module_path")
    lin2 = mods.loc["DistributedDataParallel_0/AlexNet_0/Sequential_1/Linear_2"]
    row = next(r for r in re.findall(r"<tr[^>]*>.*?</tr>", table, re.S)
               if "title='DistributedDataParallel_0/AlexNet_0/Sequential_1/Linear_2'" in r)
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    assert cells[head.index("comm ms b/t")] == f"{ms(lin2['base_comm_ns'])} / {ms(lin2['target_comm_ns'])}"
    conv0 = mods.loc["DistributedDataParallel_0/AlexNet_0/Sequential_0/Conv2d_0"]
    row = next(r for r in re.findall(r"<tr[^>]*>.*?</tr>", table, re.S)
               if "title='DistributedDataParallel_0/AlexNet_0/Sequential_0/Conv2d_0'" in r)
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    cast = f"{ms(conv0['base_format_cast_ns'])} / {ms(conv0['target_format_cast_ns'])}"
    assert cells[head.index("format cast ms b/t")] == cast and float(cast.split(" / ")[0]) > 0
