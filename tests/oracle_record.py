"""Record small models with torch.profiler and write what torch itself says about each module.

Run as a script (tests start it in a subprocess, so the test process never imports torch):
    python tests/oracle_record.py OUT_DIR
For each model it writes OUT_DIR/<model>.json (a Kineto trace of 2 profiled training steps) and
OUT_DIR/truth.json: per module path (tracekit's `Class_N` naming: N counts instances of the class in
order of first call) its parameter count (`module.parameters()`), input and output tensor shapes (forward
hooks), forward FLOPs (torch's FlopCounterMode; recurrent layers with oneDNN off, so that they run as
matmuls it counts) and, for leaf modules, backward FLOPs: 2x forward per gradient torch computes (the
weight's, and the input's where the input requires grad).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode


class ConvZoo(nn.Module):
    """1-d, grouped + dilated + strided, depthwise and transposed convolutions (the first taking the model input),
    and an instance norm."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(8, 16, 5, stride=2, padding=1)
        self.c2 = nn.Conv2d(3, 12, 3, stride=2, padding=2, dilation=2, groups=3)
        self.dw = nn.Conv2d(12, 12, 3, padding=1, groups=12)
        self.up = nn.ConvTranspose2d(12, 6, 4, stride=2, padding=1, output_padding=1, groups=2)
        self.up1 = nn.ConvTranspose1d(16, 4, 3, stride=3)
        self.norm = nn.InstanceNorm2d(6, affine=True)  # runs batch_norm inside, on weights repeated per sample
        self.fc = nn.Linear(6, 2)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        a = self.up1(self.c1(x1)).mean()
        y = self.norm(self.up(self.dw(self.c2(x2))))
        return self.fc(y.mean((2, 3))) + a


class Recurrent(nn.Module):
    """A 2-layer bidirectional LSTM on embeddings, then a GRU on time-major input."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(100, 32)
        self.lstm = nn.LSTM(32, 24, num_layers=2, batch_first=True, bidirectional=True)
        self.gru = nn.GRU(48, 16)
        self.head = nn.Linear(16, 5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(self.emb(ids))
        z, _ = self.gru(y.transpose(0, 1))
        return self.head(z[-1])


class Layers(nn.Module):
    """Pools with ceil_mode and dilation, a bilinear layer, and a 1x1 conv after ops on the model input that need
    no gradient (they share the conv's autograd sequence number)."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.shuffle = nn.PixelShuffle(2)
        self.conv = nn.Conv2d(4, 8, 1)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1, dilation=2, ceil_mode=True)
        self.avgpool = nn.AvgPool2d(2, stride=2, ceil_mode=True)
        self.bilinear = nn.Bilinear(8, 8, 3)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        y = self.avgpool(self.maxpool(self.conv(self.shuffle(self.up(img)))))
        v = y.mean((2, 3))
        return self.bilinear(v, v)


class FastPath(nn.Module):
    """nn.MultiheadAttention and nn.TransformerEncoderLayer in eval under no_grad: their fused kernels
    (`_native_multi_head_attention`, `_transformer_encoder_layer_fwd`) take the weights as separate inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(32)
        self.mha = nn.MultiheadAttention(32, 4, batch_first=True)
        self.enc = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        a, _ = self.mha(x, x, x, need_weights=False)
        return self.enc(a)


def models() -> dict[str, tuple[nn.Module, tuple[torch.Tensor, ...], bool]]:
    """name -> (model, inputs, oneDNN on while recording)."""
    torch.manual_seed(0)
    ids = torch.randint(0, 100, (3, 7))
    return {
        "convzoo": (ConvZoo(), (torch.randn(2, 8, 30), torch.randn(2, 3, 20, 20)), True),
        "recurrent_onednn": (Recurrent(), (ids,), True),
        "recurrent_plain": (Recurrent(), (ids,), False),
        "layers": (Layers(), (torch.randn(2, 16, 9, 9),), True),
        "fastpath": (FastPath().eval(), (torch.randn(2, 10, 32),), True),
    }


# FlopCounterMode has no rule for these, though they run matmuls (bilinear: `_trilinear` bmm): not compared
NO_FLOP_TRUTH = ("Layers", "Bilinear", "FastPath", "MultiheadAttention", "TransformerEncoderLayer")


def _shapes(obj: object) -> list[list[int]]:
    if isinstance(obj, torch.Tensor):
        return [list(obj.shape)]
    if isinstance(obj, (list, tuple)):
        return [s for o in obj for s in _shapes(o)]
    return []


def _leaf_backward(module: nn.Module, args: tuple, forward: int) -> int:
    grads = 2 * forward if any(isinstance(a, torch.Tensor) and a.requires_grad for a in args) else forward
    return grads if any(p.requires_grad for p in module.parameters()) else 0


def truth(model: nn.Module, inputs: tuple) -> dict[str, dict]:
    """Per tracekit module path: type, params, in/out shapes, forward FLOPs, leaf backward FLOPs."""
    fq_of = {id(m): name for name, m in model.named_modules()}
    index: dict[int, str] = {}
    count: dict[str, int] = {}
    stack: list[str] = []
    rows: dict[str, dict] = {}

    def pre(module: nn.Module, args: tuple) -> None:
        cls = type(module).__name__
        if id(module) not in index:
            index[id(module)] = f"{cls}_{count.get(cls, 0)}"
            count[cls] = count.get(cls, 0) + 1
        stack.append(index[id(module)])
        rows.setdefault("/".join(stack), {"type": cls, "fq": fq_of[id(module)], "in": _shapes(args),
                                          "params": sum(p.numel() for p in module.parameters()),
                                          "leaf": not list(module.children()), "args": args})

    def post(module: nn.Module, args: tuple, out: object) -> None:
        rows["/".join(stack)].setdefault("out", _shapes(out))
        stack.pop()

    hooks = [h for m in model.modules() for h in (m.register_forward_pre_hook(pre), m.register_forward_hook(post))]
    with torch.set_grad_enabled(model.training):
        model(*inputs)
    for h in hooks:
        h.remove()
    with torch.backends.mkldnn.flags(enabled=False), FlopCounterMode(display=False) as counter, \
            torch.set_grad_enabled(model.training):
        model(*inputs)
    per_module = counter.get_flop_counts()
    root = type(model).__name__
    for row in rows.values():
        key = root if row["fq"] == "" else f"{root}.{row['fq']}"
        row["flops_fwd"] = None if row["type"] in NO_FLOP_TRUTH else int(sum(per_module.get(key, {}).values()))
        args = row.pop("args")
        # recurrent layers: their h0 needs no gradient, so not one forward per gradient
        if row["flops_fwd"] is not None and row["leaf"] and row["type"] not in ("LSTM", "GRU", "RNN"):
            row["flops_bwd"] = _leaf_backward(next(m for m in model.modules() if fq_of[id(m)] == row["fq"]),
                                              args, row["flops_fwd"])
    return rows


def record(model: nn.Module, inputs: tuple, onednn: bool, path: Path) -> None:
    from torch.profiler import ProfilerActivity, profile, schedule

    def step() -> None:
        if not model.training:
            with torch.no_grad():
                model(*inputs)
            return
        model.zero_grad(set_to_none=True)
        model(*inputs).sum().backward()

    with torch.backends.mkldnn.flags(enabled=onednn), profile(
            activities=[ProfilerActivity.CPU], schedule=schedule(wait=1, warmup=1, active=2),
            on_trace_ready=lambda p: p.export_chrome_trace(str(path)), record_shapes=True, with_modules=True,
            with_stack=True) as prof:
        for _ in range(4):
            step()
            prof.step()


def main(out: Path) -> None:
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    truths = {}
    for name, (model, inputs, onednn) in models().items():
        truths[name] = truth(model, inputs)
        record(model, inputs, onednn, out / f"{name}.json")
    (out / "truth.json").write_text(json.dumps(truths, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
