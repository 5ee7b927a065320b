"""Which gradients a `convolution_backward` computed, from the kernels it launched, where its `output_mask`
was not recorded (torch_npu writes no Concrete Inputs).

Ascend runs the input gradient as a `Conv2DBackpropInput` kernel and the weight gradient as a
`Conv2DBackpropFilter` one (`Conv3D...` likewise): a network's first conv launches no input gradient kernel,
so its backward costs one forward, not two. Without such a kernel the answer stays unknown. cuDNN's names
are not used: its `dgrad`/`wgrad` kernels sit beside generic ones (the first conv of our H100 AlexNet ran its
weight gradient as a cutlass `ImplicitGemmConvolution`), so a missing name would prove nothing; and CUDA
traces record the mask anyway.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tracekit.ancestry import nearest_marked
from tracekit.modules.opflops import conv_backward_flops
from tracekit.modules.opshapes import OpArgs
from tracekit.table import DEVICE_KINDS, column, kind_in

_INPUT_KERNELS = ("BackpropInput",)
_WEIGHT_KERNELS = ("BackpropFilter",)
CONV_BACKWARD = "aten::convolution_backward"


def kernel_grads(ev: pd.DataFrame, names: np.ndarray, op_rows: np.ndarray) -> dict[int, tuple[bool, bool]]:
    """Per row of `op_rows` that launched a gradient kernel: (input gradient, weight gradient) computed."""
    device = np.flatnonzero(kind_in(ev, DEVICE_KINDS))
    launcher = column(ev, "launcher")[device]
    if not len(op_rows) or not (launcher >= 0).any():
        return {}
    is_op = np.zeros(len(ev), dtype=bool)
    is_op[op_rows] = True
    owner = nearest_marked(column(ev, "parent"), is_op)
    device, launcher = device[launcher >= 0], launcher[launcher >= 0]
    op_of = owner[launcher]
    device, op_of = device[op_of >= 0], op_of[op_of >= 0]  # only the kernels of these ops, looked at one by one
    found: dict[int, list[bool]] = {}
    for kernel, op in zip(device.tolist(), op_of.tolist()):
        name = str(names[kernel])
        grads = found.setdefault(op, [False, False])
        grads[0] |= any(k in name for k in _INPUT_KERNELS)
        grads[1] |= any(k in name for k in _WEIGHT_KERNELS)
    return {op: (g[0], g[1]) for op, g in found.items() if g[0] or g[1]}


def fill_from_kernels(ev: pd.DataFrame, names: np.ndarray, rows: np.ndarray, values: np.ndarray,
                      decoded: dict[int, OpArgs]) -> np.ndarray:
    """Count the convolution_backward rows left unknown (NaN in `values`, in place) from their kernels;
    returns which of `rows` were so inferred."""
    inferred = np.zeros(len(rows), dtype=bool)
    todo = np.flatnonzero(np.isnan(values) & (names[rows] == CONV_BACKWARD))
    grads = kernel_grads(ev, names, rows[todo]) if len(todo) else {}
    for i in todo.tolist():
        mask = grads.get(int(rows[i]))
        count = conv_backward_flops(decoded[int(rows[i])], mask) if mask else None
        if count is not None:
            values[i], inferred[i] = count, True
    return inferred
