"""What the module table cannot count, found per event: compute with no FLOP rule, and compiled or graphed regions.

A module's FLOPs are the sum of its ops that have a rule (tracekit.modules.opflops). An op that computes matrix
products, convolutions or attention but has no rule (a library's fused attention such as
`vllm::unified_attention_with_output` or `flash_attn::_flash_attn_forward`, an inductor matmul template
`triton_tem_*`), or an op with no rule that launched such kernels (`vllm::moe_forward`; a replayed CUDA graph) would
add nothing: the module's FLOPs would be a confident undercount. Such ops make their modules' FLOPs unknown, and the
note names them. A torch.compile graph or a CUDA graph takes the weights as plain inputs and runs its modules
without their own spans, so the parameters of a module whose forward runs one are unknown too.
"""

from __future__ import annotations

import functools
import re
from collections import Counter

import numpy as np
import pandas as pd

from tracekit.ancestry import marked_above


class Names:
    """An event table's names as codes into its distinct names, so that a test on names runs once per distinct
    name (a categorical column's own codes; other columns are factorized once)."""

    def __init__(self, column) -> None:
        cat = getattr(column, "array", column)
        if hasattr(cat, "codes") and hasattr(cat, "categories"):
            self.codes = np.asarray(cat.codes)  # its own small int type: no int64 copy of every row
            self.distinct = np.asarray(cat.categories, dtype=object)
        else:
            self.codes, distinct = pd.factorize(np.asarray(column, dtype=object))
            self.distinct = np.asarray(distinct, dtype=object)

    def where(self, rows: np.ndarray, test) -> np.ndarray:
        """The rows whose name passes `test` (a missing name never does)."""
        codes = self.codes[rows]
        wanted = np.unique(codes[codes >= 0])
        passed = np.zeros(len(self.distinct) + 1, dtype=bool)  # the last slot: code -1
        passed[wanted] = [bool(test(str(self.distinct[c]))) for c in wanted.tolist()]
        return rows[passed[codes]]


# words of an op's name (after its namespace) that say it computes a matrix product, convolution or attention
_COMPUTE_WORDS = frozenset(("mm", "bmm", "addmm", "addbmm", "baddbmm", "matmul", "gemm", "gemv", "einsum", "linear",
                            "lstm", "gru", "rnn", "dot", "vdot", "mv", "addmv", "attention", "attn", "conv",
                            "convolution", "conv1d", "conv2d", "conv3d"))
_BACKWARD_NODE = re.compile(r"(^autograd::|Backward\d*$)")  # autograd nodes wrap the ops that compute
_COMPILED_PREFIXES = ("Torch-Compiled Region", "CompiledFunction", "cudaGraphLaunch", "hipGraphLaunch")
# words of device kernel names that run matrix products, convolutions or attention (cuBLAS nvjet/gemm, CUTLASS,
# rocBLAS/Tensile Cijk, cuDNN convolutions, Ascend MatMul/Conv2D/FlashAttention, flash/fused attention, inductor
# templates), tested on the lower-cased name; `conv` not as in `convert` (vLLM's `_typeConvert`), cuDNN's dgrad/wgrad
# in lower case only (Ascend's `AdaptiveAvgPool3dGrad` is not one), Hopper/Blackwell `sm90_*`/`sm100_*` by prefix
_MATH_WORDS = ("gemm", "gemv", "bmm", "matmul", "nvjet", "xmma", "wgmma", "cutlass", "winograd", "fmha", "flash",
               "attention", "attn", "triton_tem")
_CONV = re.compile(r"conv(?!ert)")
_SM_PREFIX = re.compile(r"sm\d+_")
COMPILED_NOTE = ("unknown: its forward runs a torch.compile graph or replays a CUDA graph, which takes the weights "
                 "as plain inputs and hides the modules inside it")


@functools.lru_cache(maxsize=1024)
def math_kernel(name: str) -> bool:
    """Whether a device kernel's name says it multiplies matrices, convolves or attends (plain substring tests:
    kernel names are C++ signatures of kilobytes)."""
    low = name.replace("fbgemm", "").lower()
    return (any(word in low for word in _MATH_WORDS) or ("conv" in low and bool(_CONV.search(low)))
            or "dgrad" in name or "wgrad" in name or name.startswith("Cijk_") or bool(_SM_PREFIX.match(name)))


@functools.lru_cache(maxsize=4096)
def compute_like(name: str) -> bool:
    """Whether an op's name says it does matrix, convolution or attention arithmetic (rule or not)."""
    if _BACKWARD_NODE.search(name):
        return False
    short = name.rpartition("::")[2]
    if short.startswith("_thnn_fused_"):  # the recurrent cells' gate arithmetic; their matmuls are separate ops
        return False
    if short.startswith("triton_"):  # inductor kernels: only templates (`triton_tem_`) run matmuls/convolutions
        return short.startswith("triton_tem")
    return any(word in _COMPUTE_WORDS for word in short.lower().split("_"))


def uncounted_ops(parent: np.ndarray, names: Names, host_ops: np.ndarray, has_rule: np.ndarray) -> np.ndarray:
    """Rows of compute-like host ops that no FLOP rule counts: outside every op with a rule, with no op with a rule
    inside them (`einsum` runs a counted `bmm`), outermost of their kind."""
    rows = names.where(np.flatnonzero(host_ops & ~has_rule), compute_like)
    rows = rows[marked_above(parent, rows, has_rule, include_self=False) < 0]
    candidate = np.zeros(len(parent), dtype=bool)
    candidate[rows] = True
    outer = np.zeros(len(parent), dtype=bool)
    outer[rows[marked_above(parent, rows, candidate, include_self=False) < 0]] = True
    if outer.any():
        holder = marked_above(parent, np.flatnonzero(has_rule), outer, include_self=False)
        outer[holder[holder >= 0]] = False
    return outer


def math_kernel_launchers(parent: np.ndarray, names: Names, kernels: np.ndarray, launcher: np.ndarray,
                          launch: np.ndarray, has_rule: np.ndarray, uncounted: np.ndarray) -> np.ndarray:
    """Host ops that launched a matrix, convolution or attention kernel with no op with a FLOP rule around them,
    and that no uncounted compute op holds already (`vllm::moe_forward` runs its experts' bmm kernels); where no op
    is around the launch (a CUDA graph replayed in a module's forward), the runtime call itself."""
    rows = names.where(np.flatnonzero(kernels & ((launcher >= 0) | (launch >= 0))), math_kernel)
    mask = np.zeros(len(parent), dtype=bool)
    if not len(rows):
        return mask
    ops = np.unique(np.where(launcher[rows] >= 0, launcher[rows], launch[rows]))
    ops = ops[marked_above(parent, ops, has_rule | uncounted) < 0]
    mask[ops] = True
    return mask


def compiled_regions(names: Names, host_ops: np.ndarray) -> np.ndarray:
    """Host events that run a torch.compile graph (`Torch-Compiled Region: i/j`, `CompiledFunction`) or replay a
    CUDA/HIP graph (`cudaGraphLaunch`); `host_ops` marks the ops and runtime calls to look at."""
    mask = np.zeros(len(host_ops), dtype=bool)
    mask[names.where(np.flatnonzero(host_ops), lambda n: n.startswith(_COMPILED_PREFIXES))] = True
    return mask


def names_below(src: np.ndarray, paths: np.ndarray, names: np.ndarray, rows: np.ndarray
                ) -> dict[tuple[int, str], Counter]:
    """Per (source, module path): the names of the given rows in that module or below it, with their counts."""
    found: dict[tuple[int, str], Counter] = {}
    pairs = Counter(zip(src[rows].tolist(), paths[rows].tolist(), names[rows].tolist()))
    for (s, path, name), n in pairs.items():
        if path is None:
            continue
        parts = str(path).split("/")
        for depth in range(1, len(parts) + 1):
            found.setdefault((int(s), "/".join(parts[:depth])), Counter())[name] += n
    return found


def uncounted_note(names: Counter, calls: int) -> str:
    """The `flops_from` text of a module whose FLOPs an op without a rule leaves unknown."""
    listed = ", ".join(f"{name} ({count / max(calls, 1):g} per call)" for name, count in names.most_common(3))
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return f"unknown: no FLOP rule for {listed}{more}"
