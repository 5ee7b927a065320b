"""Module input/output shapes are right or explicitly unknown, never a parameter's shape or a guess.

The audit runs over real traces: in a chain of sibling modules (forward order, one parent), the output
of module k is the input of module k+1 wherever both are known. The only exceptions are listed by
(module type, next module type) with the reason the model's code gives.
"""

from __future__ import annotations

import json
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest
from conftest import SAMPLES, shared

from tracekit.modules.opshapes import (
    OpArgs,
    created_shape,
    decode_op_args,
    input_tensors,
    module_output,
    output_shape,
)
from tracekit.modules.table import module_table
from tracekit.pipeline import process, read_inputs
from tracekit.tree import track_codes

# (type of module k, type of module k+1): the next sibling does not take module k's output
NOT_A_CHAIN = {
    ("Embedding", "Qwen2RotaryEmbedding"): "rotary embedding reads its inv_freq buffer and position ids",
    ("Qwen2RotaryEmbedding", "Qwen2DecoderLayer"): "cos/sin go to attention; the layer takes hidden states",
    ("SiLU", "Linear"): "gated MLP: up_proj takes the MLP input, not act(gate_proj(x))",
    ("Embedding", "Embedding"): "token, position (and type) embeddings each take their own ids",
    ("Embedding", "Block"): "the block takes token + position embeddings, added outside the modules",
    ("AdaptiveAvgPool2d", "Sequential"): "torch.flatten between avgpool and classifier",
    ("AdaptiveAvgPool2d", "Linear"): "torch.flatten between avgpool and fc (ResNet)",
    ("BatchNorm2d", "Sequential"): "ResNet downsample takes the block input (residual branch)",
    ("ViTPatchEmbeddings", "Dropout"): "the CLS token is concatenated before dropout (196 -> 197 tokens)",
    ("QKVParallelLinear", "YaRNScalingRotaryEmbedding"): "vLLM rotary takes positions, then q and k",
    ("QKVParallelLinear", "Attention"): "vLLM splits qkv [T, 640] into q [T, 512], k, v before attention",
    ("Linear", "FusedMoE"): "the router's logits go in beside the hidden states, which come first",
}

TRACES = {
    "qwen_h100": ("shared", "gpu/tracelens/h100/Qwen_Qwen1.5-0.5B-Chat__1016005.json.gz"),
    "qwen_mi300": ("shared", "gpu/tracelens/mi300/Qwen_Qwen1.5-0.5B-Chat__1016005.json.gz"),
    "bert_h100": ("shared", "gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz"),
    "vit_h100": ("shared", "gpu/tracelens/h100/Falconsai_nsfw_image_detection__1016002.json.gz"),
    "resnet_mi300": ("shared", "gpu/tracelens/mi300/resnet_act_checkpoint.json.gz"),
    "gptoss_b200": ("shared", "gpu/tracelens/b200/eager_trace.json.gz"),
    "gpt_cpu": ("shared", "cpu/gpt/prof_stack_modules.json.gz"),
    "alexnet_npu": ("shared", "npu/msinsight_alexnet_dp/text/level1/rank0_ascend_pt"),
    "alexnet_cpu": ("sample", "alexnet/cpu_rank0.json.gz"),
    "alexnet_cuda": ("sample", "alexnet/cuda_rank0.json.gz"),
    "gpt_sample": ("sample", "gpt/prof.json.gz"),
    "cnn_sample": ("sample", "cnn/prof.json.gz"),
}


@pytest.fixture(scope="session")
def modules_of(converted):
    """modules_of(name) -> modules.parquet of that trace (converted once per session)."""
    def run(name: str) -> pd.DataFrame:
        where, rel = TRACES[name]
        path = shared(rel) if where == "shared" else SAMPLES / rel
        out, _ = converted(path)
        return pd.read_parquet(out / "modules.parquet")
    return run


def _shape(value) -> list | None:
    return json.loads(value)[0] if isinstance(value, str) else None


def chain_breaks(modules: pd.DataFrame) -> list[tuple[str, str, list, list]]:
    """(module k, module k+1, output of k, input of k+1) where siblings disagree and no exception applies."""
    breaks = []
    for _, siblings in modules.groupby(["source_index", modules["parent_path"].fillna("")], sort=False):
        rows = siblings.to_dict("records")  # modules.parquet is in first-call order
        for a, b in pairwise(rows):
            out, nxt = _shape(a["output_shapes"]), _shape(b["input_shapes"])
            if out is None or nxt is None or out == nxt:
                continue
            if (a["module_type"], b["module_type"]) not in NOT_A_CHAIN:
                breaks.append((a["module_path"], b["module_path"], out, nxt))
    return breaks


@pytest.mark.parametrize("name", sorted(TRACES))
def test_sibling_chains_agree_on_real_traces(modules_of, name):
    modules = modules_of(name)
    assert modules["output_shapes"].notna().sum() > 0
    assert chain_breaks(modules) == []


@pytest.mark.parametrize("name", sorted(TRACES))
def test_every_unknown_output_says_why(modules_of, name):
    modules = modules_of(name)
    unknown = modules[modules["output_shapes"].isna()]
    assert unknown["output_from"].str.match(r"^(unknown: |no ops recorded)").all()
    known = modules[modules["output_shapes"].notna()]
    assert known["output_from"].str.startswith("last op aten::").all()


@pytest.mark.parametrize("name", ["qwen_h100", "qwen_mi300"])
def test_qwen_rmsnorm_output_is_the_activation_not_the_weight(modules_of, name):
    """`self.weight * hidden.to(dtype)` ends Qwen2RMSNorm: the result broadcasts to [B, S, 1024]."""
    modules = modules_of(name)
    norms = modules[modules["module_type"] == "Qwen2RMSNorm"]
    assert len(norms) == 49  # 2 per decoder layer x 24 + the final norm
    assert {row for row in norms["output_shapes"]} == {"[[16, 559, 1024]]"}
    assert (norms["output_from"] == "last op aten::mul").all()
    assert {row for row in norms["input_shapes"]} == {"[[16, 559, 1024]]"}
    root = modules[modules["depth"] == 0]
    assert root["module_type"].tolist() == ["Qwen2Model"]
    assert _shape(root["output_shapes"].iloc[0]) == [16, 559, 1024]
    # no module's output is a bare parameter shape ([1024] or [1024, 1024])
    assert not modules["output_shapes"].isin(["[[1024]]", "[[1024, 1024]]"]).any()


ALEXNET = {  # torchvision AlexNet on a [32, 3, 224, 224] batch
    "Conv2d_0": [32, 64, 55, 55], "MaxPool2d_0": [32, 64, 27, 27], "Conv2d_1": [32, 192, 27, 27],
    "MaxPool2d_1": [32, 192, 13, 13], "Conv2d_2": [32, 384, 13, 13], "Conv2d_3": [32, 256, 13, 13],
    "Conv2d_4": [32, 256, 13, 13], "MaxPool2d_2": [32, 256, 6, 6], "AdaptiveAvgPool2d_0": [32, 256, 6, 6],
    "Linear_0": [32, 4096], "Linear_1": [32, 4096], "Linear_2": [32, 1000], "AlexNet_0": [32, 1000],
}


@pytest.mark.parametrize("name", ["alexnet_cpu", "alexnet_cuda"])
def test_alexnet_layer_shapes_exact(modules_of, name):
    modules = modules_of(name)
    outputs = {p.rpartition("/")[2]: _shape(s) for p, s in zip(modules["module_path"], modules["output_shapes"])}
    assert {k: outputs[k] for k in ALEXNET} == ALEXNET
    inputs = {p.rpartition("/")[2]: _shape(s) for p, s in zip(modules["module_path"], modules["input_shapes"])}
    assert inputs["Conv2d_0"] == [32, 3, 224, 224] and inputs["Linear_0"] == [32, 9216]
    assert modules.loc[modules["module_type"] == "ReLU", "output_from"].str.contains("in place").all()


def test_npu_alexnet_conv_without_stride_is_unknown_not_guessed(modules_of):
    """torch_npu records no Concrete Inputs: conv/pool sizes depend on stride/padding, so they stay unknown
    (the old default stride 1 / padding 0 gave Conv2d_0 [32, 64, 214, 214] instead of [32, 64, 55, 55])."""
    modules = modules_of("alexnet_npu")
    convs = modules[modules["module_type"].isin(["Conv2d", "MaxPool2d"])]
    assert len(convs) == 8 and convs["output_shapes"].isna().all()
    assert convs["output_from"].str.contains("no recorded stride/padding").all()
    linear = modules[modules["module_path"].str.endswith("Sequential_1/Linear_2")]
    assert _shape(linear["output_shapes"].iloc[0]) == [32, 1000]
    relu = modules[modules["module_path"].str.endswith("Sequential_0/ReLU_0")]
    assert _shape(relu["output_shapes"].iloc[0]) == [32, 64, 55, 55]


def test_uncountable_conv_flops_are_unknown_not_zero(modules_of):
    """Without stride/padding a conv's forward FLOPs cannot be counted: the conv and every module above it
    say unknown (NaN), not a smaller sum. Its backward counts the gradients it computed: torch_npu records no
    `output_mask`, so they are read from the kernels it launched (Conv2DBackpropInput/Filter; the first conv
    launches no input gradient) and marked inferred in `flops_from`; they equal the CPU recording's, which
    has the mask. Linear layers (separate `mm` gradients) need no inference."""
    npu, cpu = modules_of("alexnet_npu"), modules_of("alexnet_cpu")
    conv_npu = npu[npu["module_type"] == "Conv2d"]
    assert conv_npu["flops_fwd"].isna().all()
    root = npu[npu["module_path"] == "DistributedDataParallel_0/AlexNet_0"].iloc[0]
    assert pd.isna(root["flops_fwd"])
    linear_npu = npu[npu["module_type"] == "Linear"].set_index("module_path")["flops_fwd"]
    linear_cpu = cpu[cpu["module_type"] == "Linear"].set_index("module_path")["flops_fwd"]
    assert linear_npu.notna().all() and (linear_npu == linear_cpu.reindex(linear_npu.index)).all()
    bwd_npu = npu.set_index("module_path")["flops_bwd"]
    bwd_cpu = cpu.set_index("module_path")["flops_bwd"].reindex(bwd_npu.index)
    assert bwd_npu.notna().all() and (bwd_npu == bwd_cpu).all()
    source = npu.set_index("module_path")["flops_from"]
    assert source[conv_npu["module_path"]].str.startswith("inferred:").all()
    assert source["DistributedDataParallel_0/AlexNet_0"].startswith("inferred: the gradients of 5 ")
    assert source[linear_npu.index].isna().all() and cpu["flops_from"].isna().all()
    # the CPU recording has the mask: the first conv's backward computes the weight gradient only
    first, second = (cpu.set_index("module_path").loc[f"DistributedDataParallel_0/AlexNet_0/Sequential_0/Conv2d_{i}"]
                     for i in (0, 1))
    assert first["flops_bwd"] == first["flops_fwd"] and second["flops_bwd"] == 2 * second["flops_fwd"]


def test_cuda_conv_backward_without_mask_stays_unknown(modules_of, tmp_path, converted):
    """The H100 AlexNet recording with its Concrete Inputs removed: the conv backward masks are gone, and cuDNN
    kernel names do not say which gradients ran (the first conv's weight gradient is a generic cutlass kernel),
    so conv backward FLOPs are unknown, not inferred from names and not 2x forward."""
    import gzip

    doc = json.loads(gzip.decompress((SAMPLES / "alexnet" / "cuda_rank0.json.gz").read_bytes()))
    for event in doc["traceEvents"]:
        event.get("args", {}).pop("Concrete Inputs", None)
    stripped = tmp_path / "alexnet_no_concrete.json"
    stripped.write_text(json.dumps(doc))
    out, _ = converted(stripped)
    modules = pd.read_parquet(out / "modules.parquet").set_index("module_path")
    convs = modules[modules["module_type"] == "Conv2d"]
    assert len(convs) == 5 and convs["flops_bwd"].isna().all() and convs["flops_from"].isna().all()
    with_mask = modules_of("alexnet_cuda").set_index("module_path")
    assert with_mask.loc[convs.index, "flops_bwd"].notna().all()


@pytest.mark.parametrize("name", ["gpt_cpu", "gpt_sample"])
def test_gpt_block_shapes(modules_of, name):
    modules = modules_of(name)
    blocks = modules[modules["module_type"] == "Block"]
    assert len(blocks) >= 2
    assert (blocks["input_shapes"] == blocks["output_shapes"]).all()  # residual blocks keep [B, T, C]
    token = modules[modules["module_path"].str.endswith("/Embedding_0")].iloc[0]
    assert _shape(token["output_shapes"]) == _shape(blocks["input_shapes"].iloc[0])
    root = modules[modules["depth"] == 0].iloc[0]  # the LM head: [B, T, vocab] from the token ids [B, T]
    assert _shape(root["output_shapes"])[:2] == _shape(root["input_shapes"])


def test_resnet_checkpoint_placeholder_is_not_the_input(modules_of):
    """torch.utils.checkpoint's first op reads a zero-element tensor: the wrapper's input is the activation."""
    modules = modules_of("resnet_mi300")
    wrappers = modules[modules["module_type"] == "CheckpointWrapper"]
    assert len(wrappers) == 4
    assert not wrappers["input_shapes"].str.contains(r"\[0\]").any()
    assert _shape(wrappers["input_shapes"].iloc[0]) == [10, 64, 56, 56]


def _op(dims, types=None, concrete=None) -> OpArgs:
    return OpArgs(dims, types or ["float"] * len(dims), concrete or [])


def test_output_rules_broadcast_and_in_place():
    assert output_shape("aten::mul", _op([[1024], [16, 559, 1024]])) == [16, 559, 1024]
    assert output_shape("aten::add", _op([[4, 1, 8], [3, 1], []])) == [4, 3, 8]
    assert output_shape("aten::add", _op([[2, 3], [4]])) is None  # does not broadcast: no guess
    shape, why = module_output("aten::copy_", _op([[8, 16], [8, 16]]), [])
    assert shape is None and why.startswith("unknown: ") and "in place" in why
    shape, why = module_output("aten::mul_", _op([[64], []]), [[64]])
    assert shape is None and "parameter" in why
    assert module_output("aten::relu_", _op([[2, 64]]), [[64, 3]]) == ([2, 64], "last op aten::relu_ (in place: "
                                                                       "its first input)")
    assert output_shape("aten::conv2d", _op([[1, 3, 8, 8], [4, 3, 3, 3]])) is None  # no stride recorded


def test_vllm_out_buffers_are_not_inputs(modules_of):
    """vLLM's Attention starts with `empty([888, 512])` then `static_scaled_fp8_quant(out, q, scale)`: the
    `out` buffer the module just made is left out, q [888, 512] is the input (its first tensor argument)."""
    modules = modules_of("gptoss_b200")
    attention = modules[modules["module_type"] == "Attention"]
    assert len(attention) == 36 and set(attention["input_shapes"]) == {"[[888, 512]]"}
    # `empty_like(x)` opening a TransformerBlock reads x: that is the block's input
    blocks = modules[modules["module_type"] == "TransformerBlock"]
    assert set(blocks["input_shapes"]) <= {"[[888, 2880]]", "[[888, 2880], [888, 2880]]"}  # (hidden, residual)
    assert blocks["input_shapes"].notna().all()
    assert (blocks["output_from"] == "last op aten::slice").all()
    # fused_add_rms_norm's weight [2880] is a parameter: never an input, counted in params
    norms = modules[modules["module_type"] == "RMSNorm"]
    assert not norms["input_shapes"].str.contains(r"\[2880\]\]").any()
    assert (norms["own_params"] == 2880).all()


def test_index_and_factory_rules():
    assert output_shape("aten::slice", _op([[1000, 2880], [], [], [], []], concrete=["", "0", "0", "888", "1"])) \
        == [888, 2880]
    assert output_shape("aten::slice", _op([[10, 4]], concrete=["", "1", "0", "9223372036854775807", "2"])) \
        == [10, 2]
    assert output_shape("aten::select", _op([[4, 5, 6]], concrete=["", "1", "0"])) == [4, 6]
    assert output_shape("aten::expand", _op([[1, 64, 1]], concrete=["", "[16, -1, 559]", ""])) == [16, 64, 559]
    assert output_shape("aten::slice", _op([[10, 4]])) is None  # nothing recorded: no guess
    assert created_shape("aten::empty", _op([[], []], concrete=["[888, 512]", "24"])) == [888, 512]
    assert created_shape("aten::empty_like", _op([[3, 4]])) == [3, 4]
    assert created_shape("aten::linear", _op([[3, 4], [5, 4]])) is None


# module types whose output is consumed later than the next few ops (documented per model)
CONSUMED_LATER = {
    "Embedding": "Qwen2Model builds the causal mask and position ids before using the embeddings",
    "Qwen2RotaryEmbedding": "cos/sin are consumed inside attention, after the next RMSNorm",
}
_processed: dict[str, tuple] = {}


def unconsumed_outputs(path, k: int = 3) -> list[tuple[str, str, list]]:
    """(path, type, output) of modules whose known output is no data input of the next k top-level ops
    that follow the module's first call inside its parent (parameters left out of those inputs)."""
    if str(path) not in _processed:
        result = process(read_inputs([path]))
        _processed[str(path)] = (result, module_table(result.table, result.modules))
    result, modules = _processed[str(path)]
    ev = result.table.events
    track, ts = track_codes(ev), ev["ts_ns"].to_numpy()
    end = ts + np.maximum(ev["dur_ns"].to_numpy(), 0)
    names = ev["name"].astype(str).to_numpy()
    spans = ev[(ev["kind"] == "module") & ~ev["recompute"]].sort_values("ts_ns", kind="stable")
    first = spans.groupby(["source_index", "module_path"], sort=False).head(1)
    span_of = {(s, p): i for i, s, p in zip(first.index, first["source_index"], first["module_path"])}
    ops = np.flatnonzero(ev["kind"].to_numpy() == "cpu_op")
    ops = ops[np.lexsort((-end[ops], ts[ops], track[ops]))]
    following: dict[int, list[int]] = {}
    for row in modules.itertuples():
        here = span_of.get((row.source_index, row.module_path))
        parent = span_of.get((row.source_index, row.parent_path))
        if not isinstance(row.output_shapes, str) or here is None or parent is None:
            continue
        seg = ops[np.searchsorted(track[ops], track[here], "left"):np.searchsorted(track[ops], track[here], "right")]
        picked, last_end = [], -1
        for op in seg[np.searchsorted(ts[seg], end[here], "left"):]:
            if ts[op] >= end[parent] or len(picked) >= k:
                break
            if ts[op] >= last_end:  # a top-level op, not one nested in the last picked
                picked.append(int(op))
                last_end = end[op]
        following[row.Index] = picked
    decoded = decode_op_args(result.table.args, np.unique(np.array(
        [o for v in following.values() for o in v], dtype=np.int64)))
    missing = []
    for idx, picked in following.items():
        out = _shape(modules.at[idx, "output_shapes"])
        consumed = [s for o in picked for s, _ in input_tensors(names[o], decoded[o])]
        if consumed and out not in consumed:
            missing.append((modules.at[idx, "module_path"], modules.at[idx, "module_type"], out))
    return missing


@pytest.mark.parametrize("where,rel", [
    ("shared", "gpu/tracelens/h100/Qwen_Qwen1.5-0.5B-Chat__1016005.json.gz"),
    ("shared", "gpu/tracelens/mi300/resnet_act_checkpoint.json.gz"),
    ("shared", "cpu/gpt/prof_stack_modules.json.gz"),
    ("sample", "alexnet/cpu_rank0.json.gz"),
])
def test_known_outputs_are_what_the_next_ops_consume(where, rel):
    """The check that catches a weight shape taken for an output: before the broadcast rule, each of
    Qwen's 49 RMSNorm outputs ([1024]) was no data input of the linear/attention ops right after them."""
    path = shared(rel) if where == "shared" else SAMPLES / rel
    missing = unconsumed_outputs(path)
    assert [m for m in missing if m[1] not in CONSUMED_LATER] == []
