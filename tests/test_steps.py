"""Steps on real traces: one steps.parquet row per step with host and device extents; compare detects
steps of different kinds and aligns a run without ProfilerStep by its iterations, or warns."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import SAMPLES, shared

from tracekit.cli import main
from tracekit.compare.iterations import find_iterations
from tracekit.pipeline import process, read_inputs

H100_BERT = "gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz"
V100 = "gpu/hta/trace_diff/v100_test.json.gz"
LOG_TORCH = "cpu/gpt/viz_log_torch.json.gz"


def _raw(path) -> list[dict]:
    return json.loads(gzip.decompress(path.read_bytes()))["traceEvents"]


def test_step_with_a_gpu_annotation_copy_is_one_row_with_its_device_extent(converted):
    path = shared(H100_BERT)
    outdir, _ = converted(path)
    steps = pd.read_parquet(outdir / "steps.parquet")
    raw = [e for e in _raw(path) if str(e.get("name", "")).startswith("ProfilerStep#")]
    assert {e["cat"] for e in raw} == {"user_annotation", "gpu_user_annotation"}
    numbers = {int(e["name"].split("#")[1]) for e in raw}
    assert len(steps) == len(numbers) and steps["step"].is_unique
    for e in raw:
        row = steps[steps["step"] == int(e["name"].split("#")[1])].iloc[0]
        col = "device_dur_ns" if e["cat"] == "gpu_user_annotation" else "dur_ns"
        assert abs(row[col] - round(e["dur"] * 1000)) <= 1
    assert set(steps["device_from"]) == {"gpu_user_annotation"}
    assert (steps["device_start_ns"] > steps["start_ns"]).all()  # the device runs behind the host


def test_step_without_a_copy_takes_its_device_extent_from_its_kernels(converted):
    outdir, _ = converted(shared(V100))
    steps = pd.read_parquet(outdir / "steps.parquet")
    kernels = pd.read_parquet(outdir / "kernels.parquet")
    assert len(steps) == 6 and set(steps["device_from"]) == {"device_events"}
    for row in steps.itertuples():
        mine = kernels[kernels["step"] == row.step]
        assert len(mine) > 0
        assert row.device_start_ns == mine["ts_ns"].min()
        assert row.device_start_ns + row.device_dur_ns == (mine["ts_ns"] + mine["dur_ns"]).max()


def test_cpu_steps_have_no_device_extent(converted):
    outdir, _ = converted(SAMPLES / "gpt" / "prof.json.gz")
    steps = pd.read_parquet(outdir / "steps.parquet")
    assert steps["step"].tolist() == [2, 3] and steps["device_start_ns"].isna().all()
    assert steps["device_from"].isna().all() and (steps["dur_ns"] > 0).all()


def test_iterations_are_the_repeats_of_the_top_level_call():
    table = process(read_inputs([SAMPLES / "cnn" / "prof_both.json.gz"])).table
    found = find_iterations(table)
    assert found is not None and found.name == "tk_step" and len(found.windows) == 2
    spans = table.events[table.events["name"].isin(["tk_step_0", "tk_step_1"])].sort_values("ts_ns")
    assert found.windows["start_ns"].tolist() == spans["ts_ns"].tolist()


def test_compare_aligns_a_run_without_profiler_steps_by_iteration(tmp_path):
    """VizTracer log_torch (no ProfilerStep) against the scheduled profiler run of the same model: once
    split by iteration, the ops outside modules (loss, optimizer) pair up instead of half being base_only."""
    out = tmp_path / "c"
    result = CliRunner().invoke(main, ["compare", str(shared(LOG_TORCH)),
                                       str(next(shared("cpu/gpt").glob("gpt.*.pt.trace.json.gz"))), "-o", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert any("repeats of its top-level call 'train_step" in n for n in summary["notes"])
    steps = pd.read_parquet(out / "compare_steps.parquet")
    assert steps.groupby("side")["step_kind"].agg(set).to_dict() == {"base": {"iteration"},
                                                                    "target": {"profiler_step"}}
    ops = pd.read_parquet(out / "compare_ops.parquet")
    outside = ops[ops["module_path"].isna()]
    assert len(outside) > 600 and (outside["status"] == "matched").all()


def test_compare_warns_when_one_side_has_no_steps(tmp_path):
    """One VizTracer train_step (nothing repeats) against ProfilerSteps: steps of different kinds, said."""
    doc = json.loads(gzip.decompress((SAMPLES / "cnn" / "viz.json.gz").read_bytes()))
    steps = sorted((e for e in doc["traceEvents"] if "train_step" in e.get("name", "")), key=lambda e: e["ts"])
    first = steps[0]
    doc["traceEvents"] = [e for e in doc["traceEvents"] if e.get("ph") == "M"
                          or first["ts"] <= e["ts"] <= first["ts"] + first["dur"]]
    one = tmp_path / "one_step.json"
    one.write_text(json.dumps(doc))
    with pytest.warns(UserWarning, match="steps of different kinds"):
        result = CliRunner().invoke(main, ["compare", str(one), str(SAMPLES / "cnn" / "prof.json.gz"),
                                           "-o", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    notes = json.loads((tmp_path / "c" / "summary.json").read_text())["notes"]
    assert any("steps of different kinds: base has no steps" in n and "2 profiler_step steps" in n for n in notes)


def test_repeated_block_of_inline_loop_calls():
    """A loop body written inline (forward, backward, step at top level) repeats as a block, not one call."""
    from tracekit.compare.iterations import repeated_block

    names = ["setup", "fwd", "fwd", "bwd", "step", "fwd", "fwd", "bwd", "step", "save"]
    assert repeated_block(names, np.ones(len(names))) == (1, 4, 2)
    assert repeated_block(["a", "b", "c"], np.ones(3)) is None


@pytest.mark.parametrize("rel", ["gpt/prof_cuda.json.gz", "cnn/prof_cuda.json.gz", "alexnet/cuda_rank0.json.gz"])
def test_every_host_event_in_a_step_range_has_that_step(converted, rel):
    """Recorded CUDA training steps: Kineto's device copy of ProfilerStep#N starts inside the host range and ends
    before it; the host events after it (backward, optimizer) and the kernels they launch are still in step N."""
    import pyarrow.parquet as pq

    outdir, _ = converted(SAMPLES / rel)
    ev = pq.read_table(outdir / "events.parquet",
                       columns=["kind", "cat", "ts_ns", "dur_ns", "step", "launch", "phase"]).to_pandas()
    host_steps = ev[(ev.kind == "step") & (ev.cat != "gpu_user_annotation")]
    assert len(host_steps) >= 1 and (ev.cat == "gpu_user_annotation").any()
    host = ev[~ev.kind.isin(["kernel", "memcpy", "memset", "flow"]) & (ev.cat != "gpu_user_annotation")]
    for start, dur, number in zip(host_steps.ts_ns, host_steps.dur_ns, host_steps.step):
        inside = host[(host.ts_ns >= start) & (host.ts_ns < start + dur)]
        assert (inside.step == number).all(), inside[inside.step != number].head()
    kernels = ev[(ev.kind == "kernel") & (ev.launch >= 0)]
    assert (kernels.step.to_numpy() == ev.step.to_numpy()[kernels.launch.to_numpy()]).all()
    trained = kernels[kernels.phase.isin(["backward", "optimizer"])]
    assert len(trained) and (trained.step >= 0).all()
