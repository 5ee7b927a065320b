"""Module params, shapes and FLOPs on real CUDA recordings, against what torch itself said on the same GPU.

`sample_traces/oracle_cuda/` was recorded on an NVIDIA H200 by `tests/oracle_record.py OUT cuda` (see
sample_traces/README.md): the CPU oracle's models run on the GPU (cuDNN convolutions and recurrent layers, the fused
eval-mode attention path), two causal attention blocks (fp32: the memory-efficient kernels; bf16 autocast: flash
attention) whose per-module backward FLOPs FlopCounterMode counted, one of them through torch.compile, and an MLP
compiled with autotuning (Triton matmul templates) and one replayed from a CUDA graph; and tiny random-weight
Hugging Face GPT-2 (Conv1D layers, tied LM head) and Llama (RMSNorm, rotary, grouped-query attention) models.
`truth.json` holds torch's answers. tracekit must give the same number or say unknown.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import ROOT
from oracle_check import _json, mismatches

from tracekit.convert import convert

RECORDED = ROOT / "sample_traces" / "oracle_cuda"
TRUTH = json.loads((RECORDED / "truth.json").read_text())
EAGER = ["convzoo", "recurrent_cudnn", "recurrent_plain", "layers", "fastpath", "attention", "attention_bf16",
         "hf_gpt2", "hf_llama"]


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    out = tmp_path_factory.mktemp("oracle_cuda")
    found = {}
    for name in [*EAGER, "attention_compiled", "mlp_autotuned", "mlp_graphed"]:
        convert([RECORDED / f"{name}.json.gz"], out / name)
        found[name] = (pd.read_parquet(out / name / "modules.parquet").set_index("module_path"),
                       pd.read_parquet(out / name / "events.parquet"))
    return found


def test_recorded_on_a_gpu():
    assert TRUTH["_recorded_with"]["device"].startswith("NVIDIA")
    assert "+cu" in TRUTH["_recorded_with"]["torch"]


@pytest.mark.parametrize("name", EAGER)
def test_every_module_matches_torch_or_says_unknown(tables, name):
    modules, events = tables[name]
    assert (events["kind"] == "kernel").sum() > 0  # CUDA activity was recorded
    if name == "fastpath":  # forward hooks turn the fused path off: torch's run also saw the layers' children
        assert {"FastPath_0/MultiheadAttention_0", "FastPath_0/TransformerEncoderLayer_0"} <= set(modules.index)
        assert set(modules.index) <= set(TRUTH[name])
    else:
        assert sorted(modules.index) == sorted(TRUTH[name])
    assert mismatches(TRUTH[name], modules) == []


@pytest.mark.parametrize("name", ["attention", "attention_bf16"])
def test_attention_forward_and_backward_flops_per_module(tables, name):
    """scaled_dot_product_attention runs the efficient (fp32) or flash (bf16) kernels: the root's forward and
    backward FLOPs (the attention's among them, 2.5x forward in backward as torch counts its recompute) equal
    FlopCounterMode's, and each kernel is filed under the module that ran it."""
    modules, events = tables[name]
    root = modules.loc["Attention_0"]
    truth = TRUTH[name]["Attention_0"]
    linears = sum(v["flops_fwd"] for p, v in TRUTH[name].items() if v["type"] == "Linear")
    assert truth["flops_fwd"] > linears  # the attention itself is in torch's count
    assert (root["flops_fwd"], root["flops_bwd"]) == (truth["flops_fwd"], truth["flops_bwd"])
    kernels = events[events["kind"] == "kernel"]
    attention = kernels[kernels["name"].str.contains("fmha|flash|attention", case=False, regex=True)]
    assert set(attention["phase"]) == {"forward", "backward"}
    assert set(attention["module_path"]) == {"Attention_0"}  # the functional call in the block's own forward
    gemms = kernels[kernels["name"].str.contains("gemm|cutlass|sm90", case=False, regex=True)]
    assert gemms["module_path"].str.startswith("Attention_0/").any()


def test_cudnn_recurrent_backward_is_unknown_not_zero(tables):
    """cuDNN runs the LSTM/GRU backward as one fused op that does not say what it computed: unknown (NaN)."""
    modules, _ = tables["recurrent_cudnn"]
    for path in ("Recurrent_0/LSTM_0", "Recurrent_0/GRU_0"):
        assert modules.loc[path, "flops_fwd"] == TRUTH["recurrent_cudnn"][path]["flops_fwd"] > 0
        assert pd.isna(modules.loc[path, "flops_bwd"])


def test_fused_eval_attention_counts_its_fused_matmuls(tables):
    """The eval-mode fast path runs the feed-forward's first linear as `aten::_addmm_activation` (matmul + gelu
    in one op): counted, so each layer's FLOPs are its projections, attention and feed-forward."""
    modules, _ = tables["fastpath"]
    b, t, d, ff = 2, 10, 32, 64
    projections = 2 * b * t * d * 3 * d + 2 * b * t * d * d
    attention = 2 * (2 * b * t * t * d)  # q k^T and (softmax) v, over all heads
    assert modules.loc["FastPath_0/MultiheadAttention_0", "flops_fwd"] == projections + attention
    layer = modules.loc["FastPath_0/TransformerEncoderLayer_0", "flops_fwd"]
    assert layer == projections + attention + 2 * (2 * b * t * d * ff)


def test_compiled_module_params_are_unknown_flops_counted_from_the_ops_it_calls(tables):
    """Through torch.compile the module's graph takes the weights as plain inputs and hides its children: params
    are unknown with the reason (not 0); the matmuls and attention it runs through aten ops are still counted,
    and equal the eager model's FLOPs."""
    modules, _ = tables["attention_compiled"]
    truth = TRUTH["attention_compiled"]
    row = modules.loc["OptimizedModule_0/Attention_0"]
    assert pd.isna(row["params"]) and pd.isna(modules.loc["OptimizedModule_0", "params"])
    assert "torch.compile" in row["params_from"]
    eager = truth["Attention_0"]
    assert (row["flops_fwd"], row["flops_bwd"]) == (eager["flops_fwd"], eager["flops_bwd"])
    assert _json(row["input_shapes"]) in (None, truth["Attention_0"]["in"])


def test_autotuned_triton_matmuls_make_flops_unknown(tables):
    """torch.compile(mode="max-autotune") ran the MLP's matmuls as Triton templates (`triton_tem_*`), with no aten
    op: nothing counts them, so the FLOPs are unknown with the kernel named (they were 0), not smaller."""
    modules, events = tables["mlp_autotuned"]
    kernels = events[events["kind"] == "kernel"]
    assert kernels["name"].str.startswith("triton_tem").any()
    row = modules.loc["OptimizedModule_0/Mlp_0"]
    assert pd.isna(row["flops_fwd"]) and "triton_tem" in row["flops_from"]
    assert pd.isna(row["params"]) and "torch.compile" in row["params_from"]


def test_cuda_graph_replay_makes_params_and_flops_unknown(tables):
    """The module replays a captured CUDA graph: its sgemm kernels hang off `cudaGraphLaunch`, no op, and its
    children never run as Python. FLOPs and params are unknown (they were 0), and its kernels are still its own."""
    modules, events = tables["mlp_graphed"]
    row = modules.loc["Graphed_0"]
    assert TRUTH["mlp_graphed"]["Graphed_0"]["flops_fwd"] > 0 and TRUTH["mlp_graphed"]["Graphed_0"]["params"] > 0
    assert pd.isna(row["flops_fwd"]) and "cudaGraphLaunch" in row["flops_from"]
    assert pd.isna(row["params"]) and "CUDA graph" in row["params_from"]
    kernels = events[events["kind"] == "kernel"]
    assert (kernels["module_path"] == "Graphed_0").sum() >= 0.9 * len(kernels)
    # its first op copies the input into the graph's static buffer: the input is the copied tensor, once
    assert mismatches(TRUTH["mlp_graphed"], modules) == [] and _json(row["input_shapes"]) == [[128, 64]]


def test_hf_gpt2_conv1d_params_and_the_tied_head(tables):
    """GPT-2's Conv1D layers run `addmm(bias, x, weight)`: their params are counted (inferred, said so). Its LM head
    is the token embedding (tied): the trace cannot tell, so the root counts it twice and says by how much."""
    modules, _ = tables["hf_gpt2"]
    truth = TRUTH["hf_gpt2"]
    conv = modules[modules["module_type"] == "Conv1D"]
    assert len(conv) == 8 and (conv["params"] == [truth[p]["params"] for p in conv.index]).all()
    assert conv["params_from"].str.startswith("inferred: aten::addmm").all()
    root = modules.loc["Logits_0"]
    tied = 256 * 64
    assert root["params"] - tied == truth["Logits_0"]["params"]
    assert "Embedding_0 and Linear_0 both hold a [256, 64] weight" in root["params_from"]
    assert f"{tied:,} lower" in root["params_from"]
    assert root["flops_fwd"] == truth["Logits_0"]["flops_fwd"] and root["flops_bwd"] == truth["Logits_0"]["flops_bwd"]


def test_hf_llama_rmsnorm_weights_and_rotary_input(tables):
    """Llama's RMSNorm multiplies by its weight with `aten::mul` (no norm op): the weight is counted, inferred and
    said so, and every count equals `module.parameters()`. The rotary embedding's first op indexes its inv_freq
    buffer, never its input: the shape is flagged as maybe a buffer, not given as the input's."""
    modules, _ = tables["hf_llama"]
    truth = TRUTH["hf_llama"]
    norms = modules[modules["module_type"] == "LlamaRMSNorm"]
    assert len(norms) == 5 and (norms["params"] == 64).all()
    assert norms["params_from"].str.startswith("inferred: the 1-d [64] tensor").all()
    assert modules.loc["Logits_0", "params"] == truth["Logits_0"]["params"]
    rotary = modules.loc["Logits_0/LlamaForCausalLM_0/LlamaModel_0/LlamaRotaryEmbedding_0"]
    assert "registered buffer" in rotary["input_from"]
    root = modules.loc["Logits_0"]
    assert root["flops_fwd"] == truth["Logits_0"]["flops_fwd"] and root["flops_bwd"] == truth["Logits_0"]["flops_bwd"]
