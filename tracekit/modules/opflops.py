"""FLOPs of one op from its recorded inputs (a multiply-add counts 2), or None where they are not known.

Rules: matmul-like ops (fp8 `_scaled_mm` and int8 `_int_mm` too), matrix-vector and dot products,
convolutions (transposed too), recurrent layers (lstm, gru, rnn) and scaled
dot-product attention, forward and backward. `convolution_backward` counts only the gradients its
recorded `output_mask` asks for (the first layer of a network computes no input gradient); without the
mask, and for fused recurrent backward ops, the count is unknown rather than a guess.
"""

from __future__ import annotations

import math

from tracekit.modules.opshapes import CONV_NAMES, OpArgs, conv_output, conv_transposed, matmul_flops, rnn_weights
from tracekit.modules.opshapes import PARAM_LISTS as RNN_OPS

# fused recurrent backward ops (mkldnn_rnn_layer_backward, _cudnn_rnn_backward, miopen_rnn_backward) are in
# the pattern with no rule: what they compute (which gradients, which layers) is not in their inputs, so they
# make their modules' backward FLOPs unknown
# the names `flops` has a rule for (a regex alternation, for the module table's op filter)
FLOP_OP_PATTERN = (
    r"^aten::(linear|mm|matmul|bmm|addmm|_addmm_activation|baddbmm|addbmm|mv|addmv|dot|vdot|_int_mm|_scaled_mm|conv[123]d|conv_transpose[123]d|convolution|_convolution"
    r"|convolution_backward|lstm|gru|rnn_tanh|rnn_relu|mkldnn_rnn_layer_backward|_cudnn_rnn_backward"
    r"|miopen_rnn_backward|.*scaled_dot_product.*|_flash_attention.*|_efficient_attention.*)$"
)


def flops(name: str, op: OpArgs) -> int | None:
    """Floating-point operations of one op (None: no rule for it, or its inputs do not tell)."""
    if name == "aten::linear":
        x, w = op.shape(0), op.shape(1)
        return 2 * math.prod(x[:-1]) * x[-1] * w[0] if x and w and len(w) == 2 else None
    if name in ("aten::mm", "aten::matmul", "aten::bmm", "aten::mv", "aten::dot", "aten::vdot", "aten::_int_mm",
                "aten::_scaled_mm"):  # _scaled_mm: fp8 (self, mat2, scale_a, scale_b, ...)
        return matmul_flops(op.shape(0), op.shape(1))
    if name in ("aten::addmm", "aten::_addmm_activation", "aten::baddbmm", "aten::addbmm", "aten::addmv"):
        return matmul_flops(op.shape(1), op.shape(2))
    if name in CONV_NAMES:
        return _conv_flops(name, op)
    if name == "aten::convolution_backward":
        return conv_backward_flops(op)
    if name in RNN_OPS:
        return _rnn_flops(op)
    if "scaled_dot_product" in name or name.startswith("aten::_flash_attention") or \
            name.startswith("aten::_efficient_attention"):
        q, k, v = op.shape(0), op.shape(1), op.shape(2)
        if not (q and k and v) or len(q) < 2:
            return None
        forward = 2 * math.prod(q[:-1]) * k[-2] * (q[-1] + v[-1])
        return int(forward * 2.5) if "backward" in name else forward
    return None


def _conv_macs(x: list[int], w: list[int], out: list[int] | None, transposed: bool) -> int | None:
    """Multiply-adds of a convolution: each output element (each input element, transposed) meets the
    weights of its group once, `prod(w[1:])` of them (groups are in the weight's shape)."""
    if len(w) < 3 or len(x) not in (len(w) - 1, len(w)):
        return None
    if transposed:
        return math.prod(x) * math.prod(w[1:])
    return math.prod(out) * math.prod(w[1:]) if out else None


def _conv_flops(name: str, op: OpArgs) -> int | None:
    x, w = op.shape(0), op.shape(1)
    transposed = conv_transposed(name, op)
    if not x or not w or transposed is None:
        return None
    macs = _conv_macs(x, w, None if transposed else conv_output(name, op), transposed)
    return 2 * macs if macs is not None else None


def conv_backward_flops(op: OpArgs, mask: tuple[bool, bool] | None = None) -> int | None:
    """convolution_backward(grad_output, input, weight, bias_sizes, stride, padding, dilation, transposed,
    output_padding, groups, output_mask): the input and the weight gradient each cost one forward. `mask`
    (input gradient, weight gradient) stands in for an output_mask that was not recorded; then whether the conv
    is transposed is read from the shapes where they decide it (or where both readings count the same)."""
    grad, x, w = op.shape(0), op.shape(1), op.shape(2)
    recorded = op.bools(10)
    grads = (recorded[0], recorded[1]) if recorded and len(recorded) >= 2 else mask
    if not (grad and x and w) or grads is None:
        return None
    flag = op.bools(7)
    readings = [flag[0]] if flag else [t for t in (False, True) if _fits(grad, x, w, t)]
    counts = {_conv_macs(x, w, grad, t) for t in readings}
    if len(counts) != 1 or None in counts:
        return None
    return 2 * counts.pop() * (int(grads[0]) + int(grads[1]))


def _fits(grad: list[int], x: list[int], w: list[int], transposed: bool) -> bool:
    """Whether the channel counts fit a (transposed) convolution: out = w[0], or in = w[0] when transposed."""
    if not (len(grad) == len(x) == len(w) >= 3):  # batched only: channels at index 1
        return False
    return x[1] == w[0] if transposed else grad[1] == w[0]


def _rnn_flops(op: OpArgs) -> int | None:
    """lstm/gru/rnn (input, hx, params, ...) or packed (data, batch_sizes, hx, params, ...): every 2-d weight
    (input, hidden and projection matrices of each layer and direction) multiplies one vector per step."""
    x, params = op.shape(0), rnn_weights(op)
    if not x or len(x) < 2 or not params:
        return None
    matrices = [p for p in params if len(p) == 2]
    if not matrices:
        return None
    return 2 * math.prod(x[:-1]) * sum(math.prod(p) for p in matrices)
