"""Module params, shapes and FLOPs against what torch itself says, on models recorded here.

`tests/oracle_record.py` records small models (grouped, dilated, transposed and first-layer convolutions;
LSTM and GRU with oneDNN on and off) with torch.profiler and writes torch's own answers: parameters from
`module.parameters()`, shapes from forward hooks, FLOPs from FlopCounterMode. tracekit must give the same
number or say unknown (NaN); a different number is the failure this file exists to catch.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from conftest import ROOT
from oracle_check import _json, mismatches

from tracekit.convert import convert


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    out = tmp_path_factory.mktemp("oracle")
    subprocess.run([sys.executable, str(ROOT / "tests" / "oracle_record.py"), str(out)], check=True,
                   capture_output=True, timeout=600)
    truth = json.loads((out / "truth.json").read_text())
    tables = {}
    for name in truth:
        convert([out / f"{name}.json"], out / name)
        tables[name] = pd.read_parquet(out / name / "modules.parquet").set_index("module_path")
    return truth, tables


@pytest.mark.parametrize("name", ["convzoo", "recurrent_onednn", "recurrent_plain", "layers", "fastpath",
                                  "gpt2_conv1d", "fp8", "own_weights", "experts_bmm",
                                  "attention_bmm"])
def test_every_module_matches_torch_or_says_unknown(recorded, name):
    truth, tables = recorded
    modules = tables[name]
    if name == "fastpath":  # forward hooks turn the fused path off: torch's run also saw the layers' children
        assert {"FastPath_0/MultiheadAttention_0", "FastPath_0/TransformerEncoderLayer_0"} <= set(modules.index)
        assert set(modules.index) <= set(truth[name])
    else:
        assert sorted(modules.index) == sorted(truth[name])
    wrong = mismatches(truth[name], modules)
    assert wrong == []


def test_parameters_in_a_modules_own_matmul_make_its_count_a_lower_bound(recorded):
    """`x @ self.weight` and an einsum with `self.proj` use parameters no layer op names: the trace cannot tell them
    from activations, so the module counts its LayerNorm only and says the count is a lower bound (naming the op
    and shapes); the LayerNorm itself and the layers of models without such products carry no such note."""
    truth, tables = recorded
    modules = tables["own_weights"]
    root, norm = modules.loc["OwnWeights_0"], modules.loc["OwnWeights_0/LayerNorm_0"]
    assert norm["params"] == truth["own_weights"]["OwnWeights_0/LayerNorm_0"]["params"] == 64
    assert pd.isna(norm["params_from"])
    assert root["params"] == 64 < truth["own_weights"]["OwnWeights_0"]["params"]
    said = root["params_from"]
    assert "a lower bound" in said and "aten::matmul on [3, 5, 32] and [32, 16]" in said
    assert "aten::einsum on [3, 5, 16] and [16, 32]" in said
    for name in ("convzoo", "layers", "recurrent_plain", "attention_bmm"):
        assert not tables[name]["params_from"].fillna("").str.contains("lower bound").any(), name


def test_batched_expert_weights_make_the_count_a_lower_bound_and_attention_bmm_does_not(recorded):
    """`torch.bmm(x, self.w_in)` with 3-d expert weights: the module counts its LayerNorm only and says the count is
    a lower bound, naming both products; a self-attention whose own code runs bmm on q k^T and attn v (activations
    that span the sequence) counts every parameter, exactly, with no such note."""
    truth, tables = recorded
    experts = tables["experts_bmm"].loc["Experts_0"]
    assert experts["params"] == 64 < truth["experts_bmm"]["Experts_0"]["params"] == 64 + 2 * 4 * 32 * 48
    said = experts["params_from"]
    assert "a lower bound" in said and "aten::bmm on [4, 6, 32] and [4, 32, 48]" in said
    assert "aten::bmm on [4, 6, 48] and [4, 48, 32]" in said
    attention = tables["attention_bmm"].loc["BmmAttention_0"]
    assert attention["params"] == truth["attention_bmm"]["BmmAttention_0"]["params"] == 32 * 96 + 96 + 32 * 32 + 32
    assert pd.isna(attention["params_from"])


def test_convolutions_are_counted_not_left_unknown(recorded):
    """Every convolution here has its stride/padding recorded: forward and backward FLOPs are known, the
    first layer's backward is its weight gradient only (one forward's worth), the others two."""
    truth, tables = recorded
    modules = tables["convzoo"]
    convs = modules[modules["module_type"].isin(["Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d"])]
    assert len(convs) == 5 and convs["flops_fwd"].notna().all() and convs["flops_bwd"].notna().all()
    assert (convs["flops_fwd"] > 0).all()
    first = modules.loc["ConvZoo_0/Conv2d_0"]
    assert first["flops_bwd"] == first["flops_fwd"]
    depthwise = modules.loc["ConvZoo_0/Conv2d_1"]
    assert depthwise["flops_bwd"] == 2 * depthwise["flops_fwd"]
    up = modules.loc["ConvZoo_0/ConvTranspose2d_0"]
    assert _json(up["output_shapes"]) == truth["convzoo"]["ConvZoo_0/ConvTranspose2d_0"]["out"]


@pytest.mark.parametrize("name", ["recurrent_onednn", "recurrent_plain"])
def test_recurrent_layers_count_their_weights(recorded, name):
    """LSTM/GRU weights are one tensor-list input: counted (not 0), forward FLOPs as torch counts the
    matmuls; the fused oneDNN backward does not say what it computed, so its FLOPs are unknown."""
    truth, tables = recorded
    modules = tables[name]
    for path in ("Recurrent_0/LSTM_0", "Recurrent_0/GRU_0"):
        assert modules.loc[path, "params"] == truth[name][path]["params"] > 0
        assert modules.loc[path, "flops_fwd"] == truth[name][path]["flops_fwd"] > 0
    root = modules.loc["Recurrent_0"]
    assert root["params"] == truth[name]["Recurrent_0"]["params"]
    if name == "recurrent_onednn":
        assert pd.isna(modules.loc["Recurrent_0/LSTM_0", "flops_bwd"]) and pd.isna(root["flops_bwd"])
    else:  # run as matmuls: the gradient matmuls are counted, 2x forward less the h0 gradients not needed
        for path in ("Recurrent_0/LSTM_0", "Recurrent_0/GRU_0"):
            fwd, bwd = modules.loc[path, "flops_fwd"], modules.loc[path, "flops_bwd"]
            assert 1.9 * fwd < bwd < 2 * fwd


def test_pools_bilinear_and_fused_attention(recorded):
    """ceil_mode and dilation change a pool's size; bilinear and the fused eval-mode attention layers take
    their weights as plain inputs, not data."""
    truth, tables = recorded
    layers = tables["layers"]
    for path in ("Layers_0/MaxPool2d_0", "Layers_0/AvgPool2d_0"):
        assert _json(layers.loc[path, "output_shapes"]) == truth["layers"][path]["out"]
    bilinear = layers.loc["Layers_0/Bilinear_0"]
    assert bilinear["params"] == 8 * 8 * 3 + 3 and _json(bilinear["input_shapes"]) == [[2, 8], [2, 8]]
    fast = tables["fastpath"]
    for path in ("FastPath_0/MultiheadAttention_0", "FastPath_0/TransformerEncoderLayer_0"):
        assert fast.loc[path, "params"] == truth["fastpath"][path]["params"] > 0


def test_backward_goes_to_the_op_that_made_the_autograd_node(recorded):
    """Upsample and pixel shuffle run on the input (no gradient) and record the sequence number the 1x1 conv's
    autograd node then takes: the conv's backward is the conv's, not the upsample's."""
    _, tables = recorded
    layers = tables["layers"]
    conv, up = layers.loc["Layers_0/Conv2d_0"], layers.loc["Layers_0/Upsample_0"]
    assert conv["flops_bwd"] == conv["flops_fwd"] > 0  # weight gradient only: its input needs none
    assert up["flops_bwd"] == 0 and up["backward_ns"] == 0


def test_hand_written_linear_params_are_counted_and_marked_inferred(recorded):
    """HF GPT-2's Conv1D runs `addmm(bias, x, weight)` on its own parameters: counted as weight and bias (they
    were 0) and marked inferred; an addmm with a 2-d `self` in the parent's code is not taken for one."""
    truth, tables = recorded
    modules = tables["gpt2_conv1d"]
    for path in ("Gpt2Mlp_0/HandLinear_0", "Gpt2Mlp_0/HandLinear_1", "Gpt2Mlp_0"):
        assert modules.loc[path, "params"] == truth["gpt2_conv1d"][path]["params"] > 0
        assert modules.loc[path, "params_from"].startswith("inferred: aten::addmm")
    assert modules.loc["Gpt2Mlp_0", "own_params"] == 0
    assert pd.isna(modules.loc["Gpt2Mlp_0/GELU_0", "params_from"])


def test_fp8_scaled_mm_is_counted(recorded):
    """fp8 inference runs `aten::_scaled_mm`: counted as its matmul, as FlopCounterMode counts it (was 0)."""
    truth, tables = recorded
    row = tables["fp8"].loc["Fp8Proj_0"]
    assert row["flops_fwd"] == truth["fp8"]["Fp8Proj_0"]["flops_fwd"] == 2 * 32 * 64 * 128
