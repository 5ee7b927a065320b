"""What an op's recorded inputs say: parameter count and output shape (from `Input Dims`).

Rules are keyed by aten op name. Parameters are the weight/bias inputs of the ops that own them
(linear, conv, norms, embedding, and the weight lists of recurrent layers). FLOPs are in `opflops`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from tracekit.converters.args_bytes import take_args


class _OpArgs(msgspec.Struct, gc=False):
    dims: list[Any] | str | None = msgspec.field(default=None, name="Input Dims")
    types: list[Any] | str | None = msgspec.field(default=None, name="Input type")
    concrete: list[Any] | str | None = msgspec.field(default=None, name="Concrete Inputs")


@dataclass(frozen=True)
class OpArgs:
    """Decoded inputs of one op."""

    dims: list[Any]
    types: list[Any]
    concrete: list[Any]

    def shape(self, i: int) -> list[int] | None:
        """Shape of input i if it is a tensor (a list of ints), else None."""
        if i < len(self.dims) and _is_shape(self.dims[i]):
            return list(self.dims[i])
        return None

    def tensor_inputs(self, skip: tuple[int, ...] = ()) -> list[tuple[list[int], str]]:
        """(shape, dtype) of the tensor inputs not in `skip` (scalars and lists left out)."""
        out = []
        for i, dims in enumerate(self.dims):
            if i in skip or not _is_shape(dims) or not dims:
                continue
            dtype = self.types[i] if i < len(self.types) else ""
            out.append((list(dims), str(dtype)))
        return out

    def shape_list(self, i: int) -> list[list[int]] | None:
        """Shapes of input i if it is a non-empty tensor list (`[[192, 32], [192, 48], [192]]`), else None."""
        value = self.dims[i] if i < len(self.dims) else None
        if isinstance(value, list) and value and all(isinstance(v, list) and _is_shape(v) for v in value):
            return [list(v) for v in value]
        return None

    def bools(self, i: int) -> list[bool] | None:
        """A concrete bool or bool-list input as recorded (`True`, `[False, True, True]`), else None."""
        value = self.concrete[i] if i < len(self.concrete) else None
        if isinstance(value, bool):
            return [value]
        if isinstance(value, list):
            return value if value and all(isinstance(v, bool) for v in value) else None
        if not isinstance(value, str) or not value.strip():
            return None
        words = [w.strip().lower() for w in value.strip().removeprefix("[").removesuffix("]").split(",")]
        return [w == "true" for w in words] if all(w in ("true", "false") for w in words) else None

    def ints(self, i: int) -> list[int] | None:
        """A concrete int-list input such as `[2, 2]` (stride, padding...)."""
        if i >= len(self.concrete):
            return None
        value = self.concrete[i]
        try:
            parsed = msgspec.json.decode(value) if isinstance(value, str) and value else value
        except msgspec.DecodeError:
            return None
        if isinstance(parsed, int):
            return [parsed]
        if isinstance(parsed, list) and all(isinstance(v, int) for v in parsed):
            return parsed
        return None


def _is_shape(value: Any) -> bool:
    """A list of ints (a plain loop: ~3x faster than all() over a generator, and called per recorded input)."""
    if not isinstance(value, list):
        return False
    for v in value:  # noqa: SIM110 (all() over a generator is the slow form this replaces)
        if not isinstance(v, int):
            return False
    return True


def decode_op_args(args: pa.LargeBinaryArray, rows: np.ndarray) -> dict[int, OpArgs]:
    """Decode Input Dims / Input type / Concrete Inputs of `rows`."""
    out: dict[int, OpArgs] = {}
    if not len(rows):
        return out
    decoder = msgspec.json.Decoder(_OpArgs)
    for row, raw in zip(rows.tolist(), take_args(args, rows).to_pylist()):
        try:
            parsed = decoder.decode(raw) if raw else _OpArgs()
        except (msgspec.ValidationError, msgspec.DecodeError):
            parsed = _OpArgs()
        out[row] = OpArgs(_listed(parsed.dims, shapes=True), _listed(parsed.types), _listed(parsed.concrete))
    return out


def _listed(value: Any, shapes: bool = False) -> list[Any]:
    """A recorded input list; torch_npu writes them as `a;\\r\\nb` strings (shapes as `32,3,224,224`)."""
    if value is None:
        return []
    if not isinstance(value, str):
        return value
    items = [item.strip() for item in value.split(";")]
    if items and items[-1] == "" and value.rstrip().endswith(";"):
        items.pop()
    if not shapes:
        return items
    parsed: list[Any] = []
    for item in items:
        try:
            parsed.append([int(v) for v in item.split(",")] if item else [])
        except ValueError:
            parsed.append(item)
    return parsed


# positions of parameter inputs (weights, biases) per op
PARAM_INPUTS: dict[str, tuple[int, ...]] = {
    "aten::linear": (1, 2), "aten::conv1d": (1, 2), "aten::conv2d": (1, 2), "aten::conv3d": (1, 2),
    "aten::conv_transpose1d": (1, 2), "aten::conv_transpose2d": (1, 2), "aten::conv_transpose3d": (1, 2),
    "aten::layer_norm": (2, 3), "aten::group_norm": (2, 3), "aten::batch_norm": (1, 2),
    "aten::instance_norm": (1, 2), "aten::embedding": (0,), "aten::rms_norm": (2,),
    "aten::embedding_bag": (0,), "aten::prelu": (1,), "aten::bilinear": (2, 3),
    # fused inference paths of nn.MultiheadAttention and nn.TransformerEncoderLayer (eval, no grad)
    "aten::_native_multi_head_attention": (5, 6, 7, 8),
    "aten::_transformer_encoder_layer_fwd": (3, 4, 5, 6, 10, 11, 12, 13, 14, 15, 16, 17),
    "_C::rms_norm": (2,), "_C::fused_add_rms_norm": (2,),  # vLLM: (out|input, input|residual, weight, eps)
}
# inputs that are state but not parameters (running stats)
BUFFER_INPUTS: dict[str, tuple[int, ...]] = {"aten::batch_norm": (3, 4), "aten::instance_norm": (3, 4)}
# inputs that are the buffer an op writes its result into (vLLM custom ops take `out` first)
OUT_INPUTS: dict[str, tuple[int, ...]] = {
    "_C::static_scaled_fp8_quant": (0,), "_C::dynamic_scaled_fp8_quant": (0,), "_C::rms_norm": (0,),
    "_C::silu_and_mul": (0,), "_C::gelu_and_mul": (0,),
    "aten::copy_": (0,),  # `static.copy_(x)`: a module that first copies its input into a buffer (a CUDA graph's)
}
# unary ops (and norms) whose output has the shape of their first input
_SAME_SHAPE = (
    "aten::layer_norm", "aten::group_norm", "aten::batch_norm", "aten::rms_norm", "aten::gelu", "aten::relu",
    "aten::silu", "aten::dropout", "aten::softmax", "aten::log_softmax", "aten::tanh", "aten::sigmoid",
    "aten::hardtanh", "aten::instance_norm", "aten::feature_dropout", "aten::native_layer_norm",
    "aten::neg", "aten::exp", "aten::rsqrt", "aten::sqrt", "aten::abs", "aten::erf", "aten::cos", "aten::sin",
    "aten::gelu_", "aten::hardswish", "aten::leaky_relu", "aten::elu", "aten::mish",
)
# elementwise ops over several tensors: the output has the broadcast shape of all tensor inputs
# (`weight * x` in an RMSNorm is [B, S, H], not the weight's [H])
_BROADCAST = (
    "aten::add", "aten::sub", "aten::mul", "aten::div", "aten::rsub", "aten::pow", "aten::where",
    "aten::maximum", "aten::minimum", "aten::masked_fill", "aten::remainder", "aten::floor_divide",
    "aten::eq", "aten::ne", "aten::lt", "aten::le", "aten::gt", "aten::ge", "aten::addcmul", "aten::addcdiv",
    "aten::logical_and", "aten::logical_or", "aten::lerp",
)


# recurrent layers take their weights as one tensor list: lstm(input, hx, params, ...) or, packed,
# lstm(data, batch_sizes, hx, params, ...); gru/rnn take hx as a tensor
PARAM_LISTS = ("aten::lstm", "aten::gru", "aten::rnn_tanh", "aten::rnn_relu")


def rnn_weights(op: OpArgs) -> list[list[int]] | None:
    """Shapes of a recurrent layer's weights and biases: the last tensor list of its first four inputs
    (lstm's hx is a list [h, c] too; its weights come after it)."""
    lists = [found for i in range(min(4, len(op.dims))) if (found := op.shape_list(i)) is not None]
    return lists[-1] if lists else None


# `addmm(bias, x, weight)` with a 1-d bias and a 2-d weight, called outside any `linear`: a linear layer written
# out by hand (HF GPT-2's Conv1D: `torch.addmm(self.bias, x.view(-1, nx), self.weight)`); its weight and bias are
# counted as parameters, marked inferred (`params_from`)
LINEAR_ADDMM = "aten::addmm"
LINEAR_ADDMM_NOTE = ("inferred: aten::addmm with a 1-d bias and a 2-d weight in its own code (a hand-written linear "
                     "layer such as HF GPT-2's Conv1D) counted as weight and bias")


def linear_addmm(name: str, op: OpArgs) -> bool:
    """Whether an op is `addmm(bias, x, weight)` with a 1-d bias that fits the weight's columns."""
    if name != LINEAR_ADDMM:
        return False
    bias, weight = op.shape(0), op.shape(2)
    return bool(bias) and len(bias) == 1 and bool(weight) and len(weight) == 2 and bias[0] == weight[1]


def _param_inputs(name: str, op: OpArgs) -> tuple[int, ...]:
    if name == LINEAR_ADDMM:
        return (0, 2) if linear_addmm(name, op) else ()
    return PARAM_INPUTS.get(name, ())


def param_count(name: str, op: OpArgs) -> int:
    """Elements of the parameter inputs of one op (0 for ops that own none)."""
    if name in PARAM_LISTS:
        return sum(math.prod(shape) for shape in rnn_weights(op) or [])
    total = 0
    for i in _param_inputs(name, op):
        shape = op.shape(i)
        if shape:
            total += math.prod(shape)
    return total


def input_tensors(name: str, op: OpArgs) -> list[tuple[list[int], str]]:
    """(shape, dtype) of the data inputs of one op: parameters, buffers and `out` tensors left out."""
    skip = _param_inputs(name, op) + BUFFER_INPUTS.get(name, ()) + OUT_INPUTS.get(name, ())
    return op.tensor_inputs(skip)


_FACTORIES = ("aten::empty", "aten::zeros", "aten::ones", "aten::full", "aten::empty_strided", "aten::rand",
              "aten::randn", "aten::new_empty", "aten::new_zeros")
_LIKE_FACTORIES = ("aten::empty_like", "aten::zeros_like", "aten::ones_like", "aten::full_like", "aten::rand_like",
                   "aten::randn_like")


def created_shape(name: str, op: OpArgs) -> list[int] | None:
    """Shape of the tensor a factory op (`empty`, `zeros_like`...) creates; None for other ops."""
    if name in _LIKE_FACTORIES:
        return op.shape(0)
    if name in _FACTORIES:
        return op.ints(1 if name.startswith("aten::new_") else 0)
    return None


def output_shape(name: str, op: OpArgs) -> list[int] | None:
    """Output shape of one op where its inputs determine it."""
    a, b = op.shape(0), op.shape(1)
    if name == "aten::linear" and a and b:
        return [*a[:-1], b[0]]
    if name == "aten::embedding" and a and b is not None:
        return [*b, a[1]]
    if name in ("aten::mm", "aten::matmul", "aten::bmm") and a and b:
        return _matmul_shape(a, b)
    if name in ("aten::addmm", "aten::baddbmm"):
        m1, m2 = op.shape(1), op.shape(2)
        return _matmul_shape(m1, m2) if m1 and m2 else None
    if name in CONV_NAMES:
        return conv_output(name, op)
    if name in ("aten::max_pool2d", "aten::avg_pool2d") and a:
        return _pool_output(name, op, a)
    if name in ("aten::adaptive_avg_pool2d", "aten::adaptive_max_pool2d") and a:
        size = op.ints(1)
        return a[:-2] + size if size else None
    if name in ("aten::view", "aten::reshape") and a:
        return _reshape(a, op.ints(1))
    if name in ("aten::flatten",) and a:
        start, end = (op.ints(1) or [0])[0], (op.ints(2) or [-1])[0]
        start, end = start % len(a), end % len(a)
        return [*a[:start], math.prod(a[start:end + 1]), *a[end + 1:]]
    if name in _SAME_SHAPE and a is not None:
        return a
    if name in _BROADCAST:
        return _broadcast([shape for shape, _ in op.tensor_inputs()] or ([a] if a is not None else []))
    if _is_inplace(name) and a is not None:
        return a  # an in-place op returns its first input (`self`)
    if a is not None:
        return _layout_shape(name, a, op)
    return None


_SAME_LAYOUT = ("aten::contiguous", "aten::clone", "aten::to", "aten::_to_copy", "aten::detach", "aten::dropout_",
                "aten::alias", "aten::type_as", "aten::float", "aten::half", "aten::bfloat16")


def _layout_shape(name: str, a: list[int], op: OpArgs) -> list[int] | None:
    """Ops that only move or copy data: transpose, permute, t, (un)squeeze, contiguous, clone, to."""
    if name in _SAME_LAYOUT:
        return a
    if name == "aten::t" and len(a) <= 2:
        return a[::-1]
    if name == "aten::transpose":
        d0, d1 = op.ints(1), op.ints(2)
        if d0 and d1 and a and -len(a) <= d0[0] < len(a) and -len(a) <= d1[0] < len(a):
            out = list(a)
            out[d0[0]], out[d1[0]] = a[d1[0]], a[d0[0]]
            return out
    if name == "aten::permute":
        dims = op.ints(1)
        if dims and len(dims) == len(a):
            return [a[d] for d in dims]
    if name in ("aten::slice", "aten::select", "aten::squeeze", "aten::expand"):
        return _index_shape(name, a, op)
    if name == "aten::unsqueeze":
        d = op.ints(1)
        if d and -len(a) - 1 <= d[0] <= len(a):
            pos = d[0] % (len(a) + 1)
            return [*a[:pos], 1, *a[pos:]]
    return None


def _index_shape(name: str, a: list[int], op: OpArgs) -> list[int] | None:
    """slice(self, dim, start, end, step), select(self, dim, index), squeeze(self, dim), expand(self, size)."""
    if name == "aten::expand":
        size = op.ints(1)
        if not size or len(size) < len(a):
            return None
        lead = len(size) - len(a)
        return [*size[:lead], *(a[i] if v == -1 else v for i, v in enumerate(size[lead:]))]
    dim = op.ints(1)
    if not dim or len(dim) != 1 or not -len(a) <= dim[0] < len(a):
        return None  # squeeze() without dims, or no recorded dim
    d = dim[0] % len(a)
    if name == "aten::select":
        return [*a[:d], *a[d + 1:]]
    if name == "aten::squeeze":
        return [*a[:d], *a[d + 1:]] if a[d] == 1 else list(a)
    start, end, step = op.ints(2), op.ints(3), op.ints(4)
    if not (start and end and step) or step[0] <= 0:
        return None
    return [*a[:d], len(range(*slice(start[0], end[0], step[0]).indices(a[d]))), *a[d + 1:]]


# in-place ops that fill or copy into a tensor (a cache, a buffer, a parameter being initialised): their
# result is the tensor written into, not evidently what the module returns
_WRITE_INTO = ("aten::copy_", "aten::fill_", "aten::zero_", "aten::index_copy_", "aten::index_put_",
               "aten::normal_", "aten::uniform_", "aten::masked_scatter_", "aten::scatter_", "aten::set_",
               "aten::resize_", "aten::as_strided_", "aten::detach_", "aten::requires_grad_")


def module_output(name: str, op: OpArgs, param_shapes: list[list[int]]) -> tuple[list[int] | None, str]:
    """Output shape of a module from its last top-level op `name`, and where it comes from.

    None (with the reason) where the last op's result is not evidently the module's output: no shape rule,
    an op that writes into a tensor in place (`copy_` into a cache), or an in-place op on a tensor shaped
    like one of the module's parameters (a weight update, not an activation).
    """
    if name in _WRITE_INTO:
        return None, f"unknown: its last op {name} writes into a tensor in place (cache/buffer?), not evidently" \
                     " the output"
    shape = output_shape(name, op)
    if shape is None and not op.concrete and ("conv" in name or "pool" in name):
        return None, f"unknown: its last op {name} has no recorded stride/padding/size (Concrete Inputs)"
    if shape is None:
        return None, f"unknown: no shape rule for its last op {name}"
    if _is_inplace(name):
        if shape in param_shapes:
            return None, f"unknown: its last op {name} is in place on a tensor shaped like a parameter {shape}"
        return shape, f"last op {name} (in place: its first input)"
    return shape, f"last op {name}"


def param_shapes(name: str, op: OpArgs) -> list[list[int]]:
    """Shapes of the parameter inputs of one op."""
    if name in PARAM_LISTS:
        return rnn_weights(op) or []
    return [shape for i in _param_inputs(name, op) if (shape := op.shape(i))]


def _is_inplace(name: str) -> bool:
    """`aten::add_`, `aten::relu_`...: ops that write into their first input and return it."""
    return name.endswith("_") and not name.endswith("__") and name.startswith("aten::")


def _broadcast(shapes: list[list[int]]) -> list[int] | None:
    """Broadcast shape of `shapes` (None when they do not broadcast or none is given)."""
    if not shapes:
        return None
    try:
        return list(np.broadcast_shapes(*(tuple(s) for s in shapes)))
    except ValueError:
        return None


def _matmul_shape(a: list[int], b: list[int]) -> list[int] | None:
    if len(a) == 1 and len(b) == 1:
        return []
    a2 = [1, *a] if len(a) == 1 else a
    b2 = [*b, 1] if len(b) == 1 else b
    batch = np.broadcast_shapes(tuple(a2[:-2]), tuple(b2[:-2])) if len(a2) > 2 or len(b2) > 2 else ()
    shape = [*list(batch), a2[-2], b2[-1]]
    if len(a) == 1:
        shape.pop(-2)
    if len(b) == 1:
        shape.pop(-1)
    return shape


def matmul_flops(a: list[int] | None, b: list[int] | None) -> int | None:
    if not a or not b:
        return None
    try:
        out = _matmul_shape(a, b)
    except ValueError:
        return None
    if out is None:
        return None
    return 2 * math.prod(out) * a[-1]


CONV_NAMES = ("aten::conv1d", "aten::conv2d", "aten::conv3d", "aten::convolution", "aten::_convolution",
               "aten::conv_transpose1d", "aten::conv_transpose2d", "aten::conv_transpose3d")


def conv_transposed(name: str, op: OpArgs) -> bool | None:
    """Whether a convolution op is transposed; None where `convolution`'s flag was not recorded."""
    if name.startswith("aten::conv_transpose"):
        return True
    if name in ("aten::convolution", "aten::_convolution"):
        flag = op.bools(6)
        return flag[0] if flag else None
    return False


def conv_output(name: str, op: OpArgs) -> list[int] | None:
    """Output shape of a convolution from its input, weight and recorded stride/padding/dilation.

    Arguments by position: conv{1,2,3}d(x, w, b, stride, padding, dilation, groups);
    convolution(x, w, b, stride, padding, dilation, transposed, output_padding, groups);
    conv_transpose{1,2,3}d(x, w, b, stride, padding, output_padding, groups, dilation). The input may be
    unbatched (one dimension fewer than the weight).
    """
    x, w = op.shape(0), op.shape(1)
    if not x or not w or len(w) < 3 or len(x) not in (len(w) - 1, len(w)) or not op.concrete:
        return None  # without the recorded stride/padding (torch_npu, old Kineto) the size is not known
    transposed = conv_transposed(name, op)
    if any(_not_ints(op, i) for i in range(3, 9)):
        return None  # `padding="same"` and other forms the size rules below do not cover
    spatial = len(w) - 2
    stride, padding = _expand(op.ints(3), spatial, 1), _expand(op.ints(4), spatial, 0)
    if name.startswith("aten::conv_transpose"):
        out_pad, groups, dilation = _expand(op.ints(5), spatial, 0), op.ints(6), _expand(op.ints(7), spatial, 1)
    else:
        dilation = _expand(op.ints(5), spatial, 1)
        out_pad = _expand(op.ints(7), spatial, 0) if transposed else [0] * spatial
        groups = op.ints(8) if transposed else [1]
    if transposed is None or stride is None or padding is None or dilation is None or out_pad is None \
            or not groups or len(groups) != 1:
        return None
    size = x[-spatial:]
    if transposed:
        channels = w[1] * groups[0]
        sizes = [(size[i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (w[2 + i] - 1) + out_pad[i] + 1
                 for i in range(spatial)]
    else:
        channels = w[0]
        sizes = [(size[i] + 2 * padding[i] - dilation[i] * (w[2 + i] - 1) - 1) // stride[i] + 1 for i in range(spatial)]
    return [*x[:len(x) - spatial - 1], channels, *sizes]


def _not_ints(op: OpArgs, i: int) -> bool:
    """Whether concrete input i was recorded as something other than ints or a bool (a string, a float)."""
    value = op.concrete[i] if i < len(op.concrete) else ""
    return value not in ("", None) and op.ints(i) is None and op.bools(i) is None


def _pool_output(name: str, op: OpArgs, x: list[int]) -> list[int] | None:
    """max_pool2d(x, kernel, stride, padding, dilation, ceil_mode) and
    avg_pool2d(x, kernel, stride, padding, ceil_mode, ...): the size as torch computes it."""
    if not op.concrete:
        return None  # stride/padding not recorded: defaults would be a guess
    kernel = op.ints(1)
    if not kernel:
        return None
    spatial = len(kernel) if len(kernel) > 1 else 2
    kernel = _expand(kernel, spatial, 1)
    stride = _expand(op.ints(2) or kernel, spatial, 1)
    padding = _expand(op.ints(3), spatial, 0)
    is_max = name == "aten::max_pool2d"
    dilation = _expand(op.ints(4), spatial, 1) if is_max else [1] * spatial
    ceil = op.bools(5 if is_max else 4)
    if ceil is None and _not_ints(op, 5 if is_max else 4):
        return None
    ceil_mode = bool(ceil and ceil[0])
    if stride is None or padding is None or kernel is None or dilation is None or len(x) < spatial:
        return None
    sizes = []
    for i in range(spatial):
        size = x[len(x) - spatial + i]
        span = size + 2 * padding[i] - dilation[i] * (kernel[i] - 1) - 1
        out = (span + (stride[i] - 1 if ceil_mode else 0)) // stride[i] + 1
        if ceil_mode and (out - 1) * stride[i] >= size + padding[i]:
            out -= 1  # the last window must start inside the input or its left padding
        sizes.append(out)
    return x[:-spatial] + sizes


def _expand(values: list[int] | None, n: int, default: int) -> list[int] | None:
    if values is None:
        return [default] * n
    if len(values) == 1:
        return values * n
    return values if len(values) == n else None


def _reshape(shape: list[int], target: list[int] | None) -> list[int] | None:
    if not target:
        return None
    if -1 in target:
        known = math.prod(v for v in target if v != -1)
        if known == 0:
            return None
        target = [math.prod(shape) // known if v == -1 else v for v in target]
    return target
