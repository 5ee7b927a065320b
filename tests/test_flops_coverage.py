"""FLOPs and params the module table cannot count are unknown with the reason, never a smaller number.

Real traces: the TraceLens B200 vLLM GPT-OSS trace (fused attention and MoE custom ops, whose experts run bmm
kernels), the HTA V100 DLRM trace (its over-arch compiled and replayed as a CUDA graph: sgemm kernels with no aten
op), and the H200 torch.compile recording of `sample_traces/oracle_cuda`.
"""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import ROOT, processed_trace, shared

from tracekit.modules.coverage import compute_like
from tracekit.modules.table import module_table
from tracekit.writers.modules_text import render_table


def _modules(rel: str) -> pd.DataFrame:
    processed = processed_trace(rel)
    return module_table(processed.table, processed.modules).set_index("module_path")


@pytest.fixture(scope="module")
def vllm():
    return _modules("gpu/tracelens/b200/eager_trace.json.gz")


@pytest.mark.parametrize("name", ["aten::_scaled_mm", "vllm::unified_attention_with_output", "aten::einsum",
                                  "mkldnn::_linear_pointwise", "flash_attn::_flash_attn_forward", "aten::dot",
                                  "triton_tem_fused_addmm_0", "aten::cudnn_convolution"])
def test_compute_ops_are_recognised(name):
    assert compute_like(name)


@pytest.mark.parametrize("name", ["fbgemm::permute_sparse_features", "symm_mem::multimem_all_reduce_",
                                  "autograd::engine::evaluate_function: MmBackward0", "CudnnConvolutionBackward",
                                  "aten::_thnn_fused_lstm_cell_backward", "triton_poi_fused_add_addmm_view_1",
                                  "aten::add", "_C::fused_add_rms_norm", "aten::clamp_min"])
def test_other_ops_are_not(name):
    assert not compute_like(name)


def test_custom_attention_and_moe_make_flops_unknown(vllm):
    """Each decoder layer runs `vllm::unified_attention_with_output` (no rule) and `vllm::moe_forward`, whose
    experts run bmm kernels that no aten op with a rule launched: the layer's, attention's and MoE's FLOPs are
    unknown and say why; the linear projections beside them keep their counted FLOPs."""
    layer = "GptOssForCausalLM_0/TransformerBlock_0"
    for path, op in ((f"{layer}/OAIAttention_0/Attention_0", "vllm::unified_attention_with_output"),
                     (f"{layer}/MLPBlock_0/FusedMoE_0", "vllm::moe_forward"), (layer, "vllm::moe_forward"),
                     ("GptOssForCausalLM_0", "vllm::unified_attention_with_output")):
        assert pd.isna(vllm.loc[path, "flops_fwd"]), path
        assert op in vllm.loc[path, "flops_from"] and vllm.loc[path, "flops_from"].startswith("unknown"), path
    qkv = vllm.loc[f"{layer}/OAIAttention_0/QKVParallelLinear_0"]
    assert qkv["flops_fwd"] > 0 and pd.isna(qkv["flops_from"])
    assert vllm["flops_fwd"].notna().sum() > 100  # the rest is still counted


def test_compiled_cuda_graph_gemms_make_flops_unknown():
    """The DLRM over-arch runs as a compiled CUDA graph: `CompiledFunction` launches volta_sgemm kernels with
    no aten::mm around them. Its module's FLOPs were 0 (nothing counted); now unknown, and its params too."""
    modules = _modules("gpu/hta/trace_diff/v100_test.json.gz")
    arch = modules.loc["## forward ##/## forward:over_arch ##"]
    assert pd.isna(arch["flops_fwd"]) and "CompiledFunction" in arch["flops_from"]
    assert pd.isna(arch["params"]) and "torch.compile" in arch["params_from"]
    control = _modules("gpu/hta/trace_diff/a100_control.json.gz")  # the same model, not compiled
    assert control.loc["## forward ##/## forward:over_arch ##", "flops_fwd"] > 0
    assert control["params_from"].isna().all()


def test_text_table_says_why_blank(vllm, capsys):
    from rich.console import Console
    view = vllm.reset_index().assign(share=float("nan"))
    render_table(view, Console(width=400), "vllm")
    caption = capsys.readouterr().out
    assert "no FLOP rule" in caption and "vllm::moe_forward" in caption
    assert "torch.compile graph" in caption  # the embedding runs a compiled region


def test_every_shared_gpu_trace_with_math_kernels_counts_or_says_unknown():
    """No module of the shared H100 traces (plain eager HF models) is marked unknown: every matmul kernel there
    is launched by an op with a rule, so the safeguard costs them nothing."""
    for trace in sorted(shared("gpu/tracelens/h100").glob("*.json*")):
        modules = _modules(str(trace.relative_to(shared("."))))
        notes = modules["flops_from"].dropna()
        assert not notes.str.startswith("unknown").any(), trace.name
        assert modules["flops_fwd"].notna().all(), trace.name


def test_oracle_recording_is_present():
    assert (ROOT / "sample_traces" / "oracle_cuda" / "attention_compiled.json.gz").exists()


def test_report_tree_marks_unknown_and_inferred_cells(vllm):
    """The HTML module tree shows '?' where FLOPs or params are unknown and '*' where inferred, with the note
    as the cell's tooltip."""
    from tracekit.report.tree_table import tree_table

    view = vllm.reset_index().assign(share=float("nan"))
    page = tree_table(view)
    assert "title='unknown: no FLOP rule for vllm::moe_forward" in page
    assert ">?</td>" in page and "inferred or unsure, " in page
    assert "title='unknown: its forward runs a torch.compile graph" in page


@pytest.mark.parametrize("climb", [1, 3, 64])
@pytest.mark.parametrize("include_self", [True, False])
def test_marked_above_equals_the_whole_table_walk(include_self, climb):
    """The per-row climb (with its fallback past `climb` steps) gives nearest_marked's answer, and leaves the
    asked rows as they were; on the owlv2 call tree (depth up to ~30) with ops that have a FLOP rule marked."""
    import numpy as np

    from tracekit.ancestry import marked_above, nearest_marked
    from tracekit.table import column, matches

    events = processed_trace("gpu/tracelens/h100/google_owlv2-large-patch14-ensemble__1016001.json.gz").table.events
    parent = column(events, "parent")
    mark = matches(column(events, "name"), r"^aten::(linear|addmm|mm|bmm)$")
    rows = np.random.default_rng(0).choice(len(parent), 5000, replace=False)
    asked = rows.copy()
    expected = nearest_marked(parent, mark, include_self=include_self)[rows]
    assert (marked_above(parent, rows, mark, include_self=include_self, climb=climb) == expected).all()
    assert (rows == asked).all() and (expected >= 0).any()
