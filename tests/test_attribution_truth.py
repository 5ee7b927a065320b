"""Which module each op and kernel belongs to, forward and backward, against ground truth written into the trace.

`tests/attribution_record.py` trains the sample models (gpt, cnn) with hooks that open a `record_function` range
around every module's forward and (full backward hooks) its backward. tracekit attributes from the module events
alone; every op and kernel inside a truth range must get that range's module and phase. On CUDA: the H200
recordings in `sample_traces/attribution_cuda/` (the two samples and a tiny Hugging Face Llama); on CPU: recorded
here by the test.
"""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from attribution_check import truth_calls, truth_table, without_hook
from conftest import ROOT

from tracekit.convert import convert

CUDA = ROOT / "sample_traces" / "attribution_cuda"
# modules whose input needs no gradient: full backward hooks never fire for them, so their backward has no truth
NO_BACKWARD_TRUTH = ("GPT_0", "GPT_0/Embedding_0", "GPT_0/Embedding_1", "Sequential_0/Conv2d_0",
                     "LlamaForCausalLM_0", "LlamaForCausalLM_0/LlamaModel_0/Embedding_0")


def _checked(trace, out) -> pd.DataFrame:
    convert([trace], out)
    events = pd.read_parquet(out / "events.parquet")
    rows = truth_table(events)
    return without_hook(rows[~rows["hook_op"]], events)


@pytest.fixture(scope="module")
def cpu_recording(tmp_path_factory):
    out = tmp_path_factory.mktemp("attribution_cpu")
    subprocess.run([sys.executable, str(ROOT / "tests" / "attribution_record.py"), str(out), "cpu"], check=True,
                   capture_output=True, timeout=600)
    return out


def _assert_agrees(rows: pd.DataFrame, kernels_expected: bool, phases=("forward", "backward")) -> None:
    truth = rows[rows["true_path"].notna()]
    wrong = truth[(truth["module_path"] != truth["true_path"]) | (truth["phase"] != truth["true_phase"])]
    assert wrong.empty, wrong.head(10).to_string()
    assert set(truth["true_phase"]) == set(phases)
    # what has no truth range: optimizer, loss and step bookkeeping, and the backward of modules without a hook
    rest = rows[rows["true_path"].isna()]
    assert set(rest.loc[rest["module_path"].isna(), "phase"]) <= {"optimizer", "loss", "other", "backward"}
    held = rest[rest["module_path"].notna()]
    assert (held["phase"] == "backward").all() and held["module_path"].isin(NO_BACKWARD_TRUTH).all(), \
        held.groupby(["name", "module_path"]).size()
    kernels = rows[rows["kind"] == "kernel"]
    if kernels_expected:
        in_model = kernels[kernels["phase"].isin(["forward", "backward"])]
        assert len(in_model) and in_model["true_path"].notna().mean() > 0.8


@pytest.mark.parametrize("name", ["gpt", "cnn", "hf_llama"])
def test_cuda_kernels_and_ops_land_in_the_module_that_ran_them(name, tmp_path):
    rows = _checked(CUDA / f"{name}_truth.json.gz", tmp_path / name)
    assert (rows["kind"] == "kernel").sum() > 50
    _assert_agrees(rows, kernels_expected=True)


@pytest.mark.parametrize("name", ["gpt", "cnn"])
def test_cpu_ops_land_in_the_module_that_ran_them(name, cpu_recording, tmp_path):
    rows = _checked(cpu_recording / f"{name}_truth.json", tmp_path / name)
    _assert_agrees(rows, kernels_expected=False)
    assert (rows["true_path"].notna() & (rows["true_phase"] == "backward")).sum() > 50


def test_cuda_generate_every_decode_step_lands_in_its_module_and_calls_count(tmp_path):
    """HF Llama `generate` (greedy, 6 new tokens, twice): prefill and one-token decode steps with a KV cache under
    no_grad. Every op and kernel inside a module's forward range is filed under it, and each module's `calls`
    equals the number of times its forward ran (12: two generations of 6 steps)."""
    out = tmp_path / "generate"
    rows = _checked(CUDA / "hf_llama_generate_truth.json.gz", out)
    _assert_agrees(rows, kernels_expected=True, phases=("forward",))
    modules = pd.read_parquet(out / "modules.parquet").set_index("module_path")
    calls = truth_calls(pd.read_parquet(out / "events.parquet"))
    assert len(modules) == len(calls) > 30
    assert (modules["calls"] == calls.reindex(modules.index)).all() and (modules["calls"] == 12).all()
    # the first call is the prefill (16 tokens), the last a decode step (1 token): both are shown
    layer = modules.loc["LlamaForCausalLM_0/LlamaModel_0/LlamaDecoderLayer_0"]
    assert (layer["input_shapes"], layer["last_input_shapes"]) == ("[[2, 16, 64]]", "[[2, 1, 64]]")


def test_training_steps_keep_one_input_shape(tmp_path):
    """Training repeats the same shapes every step: no module shows a different last-call input."""
    out = tmp_path / "gpt"
    convert([CUDA / "gpt_truth.json.gz"], out)
    modules = pd.read_parquet(out / "modules.parquet")
    assert modules["input_shapes"].notna().sum() > 10 and modules["last_input_shapes"].isna().all()
