"""Ascend torch_npu input on the real folders in ../shared/traces/npu, checked by meaning."""

from __future__ import annotations

import json
import warnings

import msgspec
import numpy as np
import pytest
from conftest import SHARED, shared
from tracekit.converters import read_trace

from tracekit.errors import TraceError
from tracekit.pipeline import process, read_inputs
from tracekit.table import strings
from tracekit.timeconv import us_to_ns

NPU = SHARED / "npu"


def _outputs() -> list[str]:
    """Every rank output with a timeline (trace_view.json or profiler .db), or kernel_details.csv only."""
    found = set()
    for pattern in ("**/trace_view.json", "**/ascend_pytorch_profiler_*.db", "**/*_ascend_pt", "**/test_rank_*"):
        for path in NPU.glob(pattern):
            if path.name == "trace_view.json" and path.parent.name != "ASCEND_PROFILER_OUTPUT":
                found.add(path)  # a bare trace_view.json (mstt)
            elif path.is_dir() and (path / "ASCEND_PROFILER_OUTPUT").is_dir():
                out = path / "ASCEND_PROFILER_OUTPUT"
                if any(out.glob("trace_view.json")) or any(out.glob("ascend_pytorch_profiler_*.db")) \
                        or any(out.glob("kernel_details.csv")):
                    found.add(path)
    return sorted(str(p.relative_to(SHARED)) for p in found)


OUTPUTS = _outputs()


def _read(rel: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return process(read_inputs([shared(rel)])).table


def _args(table, row: int) -> dict:
    raw = table.args[row].as_py()
    return msgspec.json.decode(raw) if raw else {}


def test_every_npu_output_is_found():
    assert any("/text/" in p for p in OUTPUTS) and any("/db/" in p for p in OUTPUTS)
    assert any("qwen3" in p for p in OUTPUTS) and any("mstt" in p for p in OUTPUTS)


@pytest.mark.parametrize("rel", OUTPUTS)
def test_npu_output_converts_conserved(rel, converted):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, summary = converted(shared(rel))
    assert summary["conserved"], summary
    assert summary["input_events"] > 0
    assert summary["sources"][0]["format"] == "npu"
    assert summary["parquet"]["kernels"] > 0
    json.loads((out / "trace.json").read_text())


@pytest.mark.parametrize("level", ["level1", "level2"])
def test_level12_kernels_get_shapes_from_kernel_details(level):
    table = _read(f"npu/msinsight_alexnet_dp/text/{level}/rank0_ascend_pt")
    ev = table.events
    kernels = np.flatnonzero((ev["kind"] == "kernel").to_numpy())
    joined = table.sources[0].details["kernel_details"]
    assert joined["columns"] == "level1/2" and joined["joined"] > 0
    assert joined["kernels_not_joined"] == 0
    with_shapes = [r for r in kernels.tolist() if "Input Shapes" in _args(table, r)]
    assert len(with_shapes) > 0
    for row in with_shapes:
        a = _args(table, row)
        # one dtype and one format per input
        assert len(a["Input Shapes"]) == len(a["Input Data Types"]) == len(a["Input Formats"])
    # TransData NCHW -> NC1HWC0 makes the 4-d input 5-d, padding C to a multiple of C0.
    trans = [_args(table, r) for r in with_shapes if _args(table, r).get("Type") == "TransData"
             and _args(table, r)["Input Formats"] == ["NCHW"] and _args(table, r)["Output Formats"] == ["NC1HWC0"]]
    assert trans
    for a in trans:
        (n, c, h, w), (n2, c1, h2, w2, c0) = a["Input Shapes"][0], a["Output Shapes"][0]
        assert (n, h, w) == (n2, h2, w2) and c1 * c0 >= c > (c1 - 1) * c0


def test_npu_kernels_link_to_launching_host_op_and_cann_call():
    table = _read("npu/msinsight_alexnet_dp/text/level1/rank0_ascend_pt")
    ev = table.events
    kind = ev["kind"].to_numpy()
    names = strings(ev["name"])
    kernels = np.flatnonzero(kind == "kernel")
    launcher = ev["launcher"].to_numpy()[kernels]
    launch = ev["launch"].to_numpy()[kernels]
    assert (launcher >= 0).all() and (launch >= 0).all()
    assert set(kind[launcher]) <= {"cpu_op", "collective"}
    assert set(kind[launch]) == {"runtime"}
    # the launching op starts before its kernel; an HCCL allreduce is launched by HcclAllreduce
    assert (ev["ts_ns"].to_numpy()[launcher] <= ev["ts_ns"].to_numpy()[kernels]).all()
    hcom = [k for k in kernels.tolist() if names[k].startswith("hcom_allReduce")]
    assert hcom and {names[launcher[kernels.tolist().index(k)]] for k in hcom} == {"HcclAllreduce"}


def test_module_events_present():
    table = _read("npu/msinsight_alexnet_dp/text/level1/rank0_ascend_pt")
    modules = set(strings(table.events["name"])[(table.events["kind"] == "module").to_numpy()])
    assert "nn.Module: Conv2d_0" in modules


def _modules_and_kernel_types(rel: str) -> tuple[set, set]:
    table = _read(rel)
    ev = table.events
    kind = ev["kind"].to_numpy()
    modules = set(strings(ev["name"])[kind == "module"])
    types = {_args(table, r).get("Type") for r in np.flatnonzero(kind == "kernel").tolist()}
    return modules, types


@pytest.mark.parametrize("level", ["level1", "level2"])
def test_db_and_text_exports_give_same_modules_and_kernel_types(level):
    text = _modules_and_kernel_types(f"npu/msinsight_alexnet_dp/text/{level}/rank0_ascend_pt")
    db = _modules_and_kernel_types(f"npu/msinsight_alexnet_dp/db/{level}/rank0_ascend_pt")
    assert text[0] and text[0] == db[0]
    assert None not in text[1] and len(text[1]) > 10
    assert text[1] == db[1]


def test_ts_strings_are_exact_ns():
    ns, ok = us_to_ns(["1700000000123456.789", "1736408883688177.930"], "t", "ts")
    assert ok.all() and ns.tolist() == [1700000000123456789, 1736408883688177930]
    rel = "npu/msinsight_alexnet_dp/text/level1/rank0_ascend_pt"
    raw = json.loads((shared(rel) / "ASCEND_PROFILER_OUTPUT" / "trace_view.json").read_text())
    table = read_trace(shared(rel))
    ev = table.events
    for row in range(0, len(ev), 97):
        ts = raw[int(ev["input_index"].iat[row])].get("ts")
        if isinstance(ts, str):
            whole, _, frac = ts.partition(".")
            assert ev["ts_ns"].iat[row] == int(whole) * 1000 + int((frac + "000")[:3])


def test_async_npu_flow_ids_above_2_53_stay_exact():
    rel = "npu/msinsight_alexnet_dp/text/level1/rank0_ascend_pt"
    table = read_trace(shared(rel))
    ev = table.events
    flows = ev[(ev["cat"] == "async_npu").to_numpy() & (ev["ph"] == "f").to_numpy()]
    ids = [int(i) for i in flows["flow_id"].astype(str)]
    assert max(ids) > 2**53
    # torch_npu numbers each async_npu flow by its device task's start in ns
    assert ids == flows["ts_ns"].tolist()


def test_rank_and_parallel_groups_from_metadata():
    table = read_trace(shared("npu/msinsight_alexnet_dp/text/level1/rank1_ascend_pt"))
    assert table.sources[0].rank == 1 and "profiler_info_1.json" in table.sources[0].rank_from
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qwen = read_trace(shared("npu/msinsight_qwen3_mindspeed/rank_2_ascend_pt"))
    src = qwen.sources[0]
    assert src.rank == 2
    args = src.distributed["distributed_args"]
    assert args["pipeline_model_parallel_size"] * args["data_parallel_size"] * args["tensor_model_parallel_size"] \
        == args["world_size"]
    groups = src.distributed["parallel_group_info"].values()
    pp = [g for g in groups if g["group_name"] == "pp"]
    assert pp and 2 in pp[0]["global_ranks"] and len(pp[0]["global_ranks"]) == args["pipeline_model_parallel_size"]
    assert (qwen.events["kind"] == "kernel").all()


def test_same_output_from_any_path_into_it():
    root = shared("npu/msinsight_alexnet_dp/db/level1/rank0_ascend_pt")
    db = next((root / "ASCEND_PROFILER_OUTPUT").glob("ascend_pytorch_profiler_*.db"))
    counts = {len(read_trace(p)) for p in (root, root / "ASCEND_PROFILER_OUTPUT", db)}
    assert len(counts) == 1
    text = shared("npu/msinsight_alexnet_dp/text/level0/rank0_ascend_pt")
    assert len(read_trace(text)) == len(read_trace(text / "ASCEND_PROFILER_OUTPUT" / "trace_view.json"))


def test_clear_errors_for_bad_npu_inputs(tmp_path):
    with pytest.raises(TraceError, match="not a torch_npu profiler output"):
        read_trace(tmp_path)
    with pytest.raises(TraceError, match="folder of 4 rank outputs"):
        read_trace(shared("npu/msinsight_qwen3_mindspeed"))
    analysis = shared("npu/msinsight_qwen3_mindspeed/rank_0_ascend_pt/ASCEND_PROFILER_OUTPUT/analysis.db")
    with pytest.raises(TraceError, match=r"analysis\.db") as err:
        read_trace(analysis)
    assert str(analysis) in str(err.value)
    bare = tmp_path / "rank_9_ascend_pt"
    (bare / "ASCEND_PROFILER_OUTPUT").mkdir(parents=True)
    (bare / "ASCEND_PROFILER_OUTPUT" / "step_trace_time.csv").write_text("Step,Computing\n")
    (bare / "profiler_info_9.json").write_text('{"rank_id": 9}')
    with pytest.raises(TraceError, match="no events to read") as err:
        read_trace(bare)
    assert "step_trace_time.csv" in str(err.value)
