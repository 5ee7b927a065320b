"""Op-name equivalences: ops that do the same job under different names on different vendors.

A map from each name to its canonical name. The built-in groups cover attention and norm
variants and what torch_npu calls differently (`npu::npu_*` ops, NPU autograd nodes such as
`NpuDropoutBackward0`, HCCL collectives); a JSON (or YAML, when PyYAML is installed) file extends or overrides them:
`{"attention": ["aten::_scaled_dot_product_flash_attention", "npu::npu_fusion_attention"]}`
(canonical name -> names) or `[["aten::gelu", "npu::npu_gelu"], ...]` (first name is canonical).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tracekit.errors import TraceError

DEFAULT_GROUPS: dict[str, list[str]] = {
    "attention": [
        "aten::scaled_dot_product_attention", "aten::_scaled_dot_product_flash_attention",
        "aten::_scaled_dot_product_efficient_attention", "aten::_scaled_dot_product_cudnn_attention",
        "aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_flash_attention_forward",
        "aten::_efficient_attention_forward", "npu::npu_fusion_attention", "npu::npu_prompt_flash_attention",
        "npu::npu_incre_flash_attention",
    ],
    "attention_backward": [
        "aten::_scaled_dot_product_flash_attention_backward", "aten::_scaled_dot_product_efficient_attention_backward",
        "aten::_scaled_dot_product_cudnn_attention_backward", "aten::_flash_attention_backward",
        "aten::_efficient_attention_backward", "npu::npu_fusion_attention_grad",
    ],
    "rms_norm": ["aten::rms_norm", "aten::_fused_rms_norm", "npu::npu_rms_norm"],
    "layer_norm": ["aten::layer_norm", "aten::native_layer_norm"],
    "gelu": ["aten::gelu", "npu::npu_gelu", "npu::fast_gelu"],
    "silu": ["aten::silu", "npu::npu_silu"],
    "swiglu": ["npu::npu_swiglu"],
    "rotary": ["npu::npu_rotary_mul", "aten::_fused_rope"],
    "all_reduce": ["_c10d_functional::all_reduce", "c10d::allreduce_", "c10d_functional::all_reduce",
                   "hccl:all_reduce", "nccl:all_reduce", "gloo:all_reduce", "HcclAllreduce"],
    "all_gather": ["_c10d_functional::all_gather_into_tensor", "c10d::_allgather_base_", "c10d::allgather_",
                   "HcclAllgather"],
    "reduce_scatter": ["_c10d_functional::reduce_scatter_tensor", "c10d::_reduce_scatter_base_",
                       "c10d::reduce_scatter_", "HcclReduceScatter"],
    "broadcast": ["c10d::broadcast_", "HcclBroadcast"],
    # torch_npu ops and autograd nodes named differently from their CUDA/CPU counterparts
    "dropout": ["aten::dropout", "aten::native_dropout", "npu::npu_dropout", "npu::_npu_dropout",
                "aten::_npu_dropout", "npu::npu_dropout_with_add_softmax"],
    "dropout_backward": ["autograd::engine::evaluate_function: NativeDropoutBackward0",
                         "autograd::engine::evaluate_function: NpuDropoutBackward0",
                         "autograd::engine::evaluate_function: NpuDropoutWithAddSoftmaxBackward0"],
    "convolution": ["aten::convolution", "aten::_convolution", "npu::npu_convolution", "aten::npu_convolution"],
    "linear": ["aten::linear", "npu::npu_linear"],
    "softmax_cross_entropy": ["aten::cross_entropy_loss", "npu::npu_softmax_cross_entropy_with_logits"],
    "add_rms_norm": ["npu::npu_add_rms_norm"],
    "moe_gating_top_k": ["npu::npu_moe_gating_top_k_softmax"],
    "format_cast": ["npu::npu_format_cast", "npu::npu_format_cast_", "aten::npu_format_cast",
                    "npu::_npu_format_cast"],
}

# Device kernels that only change a tensor's memory layout (NCHW <-> the NPU's fractal NC1HWC0/FRACTAL_Z,
# cuDNN's NCHW <-> NHWC): time a port adds or removes without doing the op's math.
FORMAT_CAST_KERNEL = re.compile(r"(?i)transdata|trans_|formatcast|format_cast|nchwtonhwc|nhwctonchw")
MEMSET_KERNEL = re.compile(r"(?i)memset")


def is_format_cast(kernel_name: str) -> bool:
    """A layout-conversion kernel (TransData, trans_TransData_0, aclnnX_TransDataSpecial_TransData, cuDNN
    nchwToNhwcKernel)."""
    return bool(FORMAT_CAST_KERNEL.search(kernel_name))


def equivalence(groups: dict[str, list[str]] | None = None) -> dict[str, str]:
    """name -> canonical name, from the default groups updated with `groups`."""
    merged = {k: list(v) for k, v in DEFAULT_GROUPS.items()}
    merged.update(groups or {})
    return {name: canonical for canonical, names in merged.items() for name in names}


def load_groups(path: str | Path) -> dict[str, list[str]]:
    """Read an equivalence file (JSON, or YAML with PyYAML installed)."""
    text = Path(path).read_text()
    if str(path).endswith((".yaml", ".yml")):
        try:
            import yaml  # type: ignore[import-untyped]  # core dependency (pyyaml)
        except ImportError as exc:
            raise TraceError(path, "YAML equivalence files need PyYAML (pip install pyyaml); or use JSON") from exc
        data = yaml.safe_load(text)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TraceError(path, f"not valid JSON: {exc}") from exc
    if isinstance(data, list) and all(isinstance(g, list) and g and all(isinstance(n, str) for n in g) for g in data):
        return {g[0]: list(g) for g in data}
    if isinstance(data, dict) and all(isinstance(v, list) and all(isinstance(n, str) for n in v)
                                      for v in data.values()):
        return {str(k): list(v) for k, v in data.items()}
    raise TraceError(path, "expected {canonical: [op names]} or [[op names], ...]")
