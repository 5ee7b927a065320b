"""Record small models with torch.profiler and write what torch itself says about each module.

Run as a script (tests start it in a subprocess, so the test process never imports torch):
    python tests/oracle_record.py OUT_DIR [cpu|cuda] [MODEL,...]
On cuda (how `sample_traces/oracle_cuda/` was made) the models run on the GPU with CPU + CUDA activity, the
recurrent layers once through cuDNN and once without it, plus two causal attention blocks (fp32 and bf16
autocast: the efficient and the flash kernels), whose backward FLOPs per module come from FlopCounterMode too.
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
import torch.nn.functional as F
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


class HandLinear(nn.Module):
    """HF GPT-2's Conv1D: a linear layer written out as `addmm(bias, x, weight)` with weight [in, out]."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_in, n_out) * 0.02)
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(*x.shape[:-1], -1)


class Gpt2Mlp(nn.Module):
    """GPT-2's MLP: two Conv1D around a GELU, and a plain matmul of activations (no weights) beside them."""

    def __init__(self, d: int = 32) -> None:
        super().__init__()
        self.c_fc = HandLinear(d, 4 * d)
        self.act = nn.GELU()
        self.c_proj = HandLinear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.c_proj(self.act(self.c_fc(x)))
        eye = torch.eye(x.shape[-1], device=x.device)
        return y + torch.addmm(x[0], x[0], eye)  # a 2-d `self`: not a hand-written linear


class OwnWeights(nn.Module):
    """Parameters used in the module's own code, with no layer module around them: `x @ self.weight` and an einsum
    with a projection (as hand-written attention and MoE code does), after a LayerNorm."""

    def __init__(self, d: int = 32, e: int = 16) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.weight = nn.Parameter(torch.randn(d, e) * 0.1)
        self.proj = nn.Parameter(torch.randn(e, d) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bte,ed->btd", self.norm(x) @ self.weight, self.proj)


class Experts(nn.Module):
    """Mixture-of-experts weights as one 3-d parameter each, run with `torch.bmm` over all experts at once (the tokens,
    (T, d), split into equal groups per expert), after a LayerNorm: no layer op names the expert weights."""

    def __init__(self, d: int = 32, h: int = 48, e: int = 4) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.w_in = nn.Parameter(torch.randn(e, d, h) * 0.1)
        self.w_out = nn.Parameter(torch.randn(e, h, d) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grouped = self.norm(x).view(self.w_in.shape[0], -1, x.shape[-1])
        return torch.bmm(torch.relu(torch.bmm(grouped, self.w_in)), self.w_out)


class BmmAttention(nn.Module):
    """Self-attention with its products written as `torch.bmm` in the module's own code (q k^T, then attn v), as older
    attention code does: those operands are activations, and the module's params are all in its Linear layers."""

    def __init__(self, d: int = 32) -> None:
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        attn = torch.softmax(torch.bmm(q, k.transpose(1, 2)) / q.shape[-1] ** 0.5, dim=-1)
        return self.out(torch.bmm(attn, v))


class Fp8Proj(nn.Module):
    """Inference with an fp8 (e4m3) weight kept as a buffer: `torch._scaled_mm`, as fp8 serving stacks call it."""

    def __init__(self, n_in: int = 64, n_out: int = 128) -> None:
        super().__init__()
        self.register_buffer("weight_t", torch.randn(n_out, n_in).to(torch.float8_e4m3fn).t())
        self.register_buffer("scale", torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = x.to(torch.float8_e4m3fn)
        return torch._scaled_mm(a, self.weight_t, scale_a=self.scale, scale_b=self.scale, out_dtype=torch.bfloat16)


class Attention(nn.Module):
    """A causal self-attention block (fused q/k/v projection, F.scaled_dot_product_attention, output
    projection) and an MLP, each with a residual."""

    def __init__(self, d: int = 64, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(x)


class Mlp(nn.Module):
    """Two linear layers around a GELU."""

    def __init__(self, d: int = 256, hidden: int = 1024) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Graphed(nn.Module):
    """An MLP whose forward replays a CUDA graph captured at its first call (as inference servers do): the
    replayed kernels run with no op around them. `eager` runs the MLP itself (for torch's own answers)."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp = Mlp(64, 256)
        self.eager = True
        self.graph: torch.cuda.CUDAGraph | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.eager:
            return self.mlp(x)
        if self.graph is None:
            self.static_x = x.clone()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self.mlp(self.static_x)
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.static_y = self.mlp(self.static_x)
        self.static_x.copy_(x)
        self.graph.replay()
        return self.static_y.clone()


class Logits(nn.Module):
    """A Hugging Face causal LM returning its logits (a tensor, so that a step can call `.sum().backward()`)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids).logits


def hf_models() -> dict[str, nn.Module]:
    """Tiny random-weight GPT-2 (Conv1D layers) and Llama (RMSNorm, rotary, grouped-query attention) from
    transformers, where it is installed (the GPU machine's image has it)."""
    try:
        from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
    except ImportError:
        return {}
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=256, n_positions=64, n_embd=64, n_layer=2, n_head=4))
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64))
    return {"hf_gpt2": Logits(gpt2), "hf_llama": Logits(llama)}


class Options(dict):
    """How a model is run: onednn / cudnn on while recording, autocast dtype (or None), and whether
    FlopCounterMode's backward counts are the truth for every module (no grouped conv: its weight-gradient
    rule ignores groups)."""


def models(device: str = "cpu") -> dict[str, tuple[nn.Module, tuple[torch.Tensor, ...], Options]]:
    """name -> (model, inputs, options)."""
    torch.manual_seed(0)
    ids = torch.randint(0, 100, (3, 7))
    plain = Options(onednn=True, cudnn=True, autocast=None, counter_backward=False)
    chosen = {
        "convzoo": (ConvZoo(), (torch.randn(2, 8, 30), torch.randn(2, 3, 20, 20)), plain),
        "recurrent_onednn": (Recurrent(), (ids,), plain),
        "recurrent_plain": (Recurrent(), (ids,), Options(plain, onednn=False, cudnn=False)),
        "layers": (Layers(), (torch.randn(2, 16, 9, 9),), plain),
        "fastpath": (FastPath().eval(), (torch.randn(2, 10, 32),), plain),
        "gpt2_conv1d": (Gpt2Mlp(), (torch.randn(3, 5, 32),), plain),
        "fp8": (Fp8Proj().eval(), (torch.randn(32, 64),), plain),
        "own_weights": (OwnWeights(), (torch.randn(3, 5, 32),), plain),
        "experts_bmm": (Experts(), (torch.randn(24, 32),), plain),
        "attention_bmm": (BmmAttention(), (torch.randn(2, 10, 32),), plain),
    }
    if device == "cpu":
        return chosen
    chosen["recurrent_cudnn"] = chosen.pop("recurrent_onednn")
    x = torch.randn(4, 128, 64)
    chosen["attention"] = (Attention(), (x,), Options(plain, counter_backward=True))
    chosen["attention_bf16"] = (Attention(), (x,), Options(plain, autocast=torch.bfloat16, counter_backward=True))
    # recorded through torch.compile (truth from the eager model: the same arithmetic)
    chosen["attention_compiled"] = (Attention(), (x,), Options(plain, counter_backward=True, compile=True))
    # inference, compiled with autotuning (Triton matmul templates may win) and replayed from a CUDA graph
    autotuned = Options(plain, compile="max-autotune-no-cudagraphs")
    chosen["mlp_autotuned"] = (Mlp().eval(), (torch.randn(512, 256),), autotuned)
    chosen["mlp_graphed"] = (Graphed().eval(), (torch.randn(128, 64),), Options(plain, graphed=True))
    tokens = torch.randint(0, 256, (2, 16))
    for name, model in hf_models().items():
        chosen[name] = (model, (tokens,), Options(plain, counter_backward="root"))
    return {name: (model.to(device), tuple(t.to(device) for t in inputs), options)
            for name, (model, inputs, options) in chosen.items()}


def running(options: Options, device: str, counting: bool = False):
    """The backend flags and autocast a model runs under (while counting FLOPs: neither oneDNN nor cuDNN, so
    that recurrent layers run as the matmuls FlopCounterMode counts)."""
    from contextlib import ExitStack
    stack = ExitStack()
    stack.enter_context(torch.backends.mkldnn.flags(enabled=options["onednn"] and not counting))
    stack.enter_context(torch.backends.cudnn.flags(enabled=options["cudnn"] and not counting))
    if options["autocast"] is not None:
        stack.enter_context(torch.autocast(device, dtype=options["autocast"]))
    return stack


# FlopCounterMode has no rule for these, though they run matmuls (bilinear: `_trilinear` bmm): not compared
NO_FLOP_TRUTH = ("Layers", "Bilinear", "FastPath", "MultiheadAttention", "TransformerEncoderLayer")


def _shapes(obj: object) -> list[list[int]]:
    if isinstance(obj, torch.Tensor):
        return [list(obj.shape)]
    if isinstance(obj, dict):  # a Hugging Face ModelOutput
        return [s for o in obj.values() for s in _shapes(o)]
    if isinstance(obj, (list, tuple)):
        return [s for o in obj for s in _shapes(o)]
    return []


def _leaf_backward(module: nn.Module, args: tuple, forward: int) -> int:
    grads = 2 * forward if any(isinstance(a, torch.Tensor) and a.requires_grad for a in args) else forward
    return grads if any(p.requires_grad for p in module.parameters()) else 0


def truth(model: nn.Module, inputs: tuple, options: Options, device: str) -> dict[str, dict]:
    """Per tracekit module path: type, params, in/out shapes, forward FLOPs, leaf backward FLOPs."""
    fq_of = {id(m): name for name, m in model.named_modules()}
    index: dict[int, str] = {}
    count: dict[str, int] = {}
    stack: list[str] = []
    rows: dict[str, dict] = {}

    def pre(module: nn.Module, args: tuple, kwargs: dict) -> None:
        args = (*args, *kwargs.values())  # Hugging Face layers take their data as keyword arguments
        cls = type(module).__name__
        if id(module) not in index:
            index[id(module)] = f"{cls}_{count.get(cls, 0)}"
            count[cls] = count.get(cls, 0) + 1
        stack.append(index[id(module)])
        rows.setdefault("/".join(stack), {"type": cls, "fq": fq_of[id(module)], "in": _shapes(args),
                                          "params": sum(p.numel() for p in module.parameters()),
                                          "leaf": not list(module.children()), "args": args})

    def post(module: nn.Module, args: tuple, kwargs: dict, out: object) -> None:
        rows["/".join(stack)].setdefault("out", _shapes(out))
        stack.pop()

    hooks = [h for m in model.modules() for h in (m.register_forward_pre_hook(pre, with_kwargs=True),
                                                   m.register_forward_hook(post, with_kwargs=True))]
    with torch.set_grad_enabled(model.training), running(options, device):
        model(*inputs)
    for h in hooks:
        h.remove()
    with running(options, device, counting=True), FlopCounterMode(display=False) as counter, \
            torch.set_grad_enabled(model.training):
        model(*inputs)
    per_module = counter.get_flop_counts()
    with_backward = {}
    if options["counter_backward"]:
        with running(options, device, counting=True), FlopCounterMode(display=False) as counter:
            model(*inputs).sum().backward()
        with_backward = counter.get_flop_counts()
        model.zero_grad(set_to_none=True)
    root = type(model).__name__
    for row in rows.values():
        key = root if row["fq"] == "" else f"{root}.{row['fq']}"
        row["flops_fwd"] = None if row["type"] in NO_FLOP_TRUTH else int(sum(per_module.get(key, {}).values()))
        args = row.pop("args")
        if with_backward and row["flops_fwd"] is not None:
            # FlopCounterMode files some backward ops under the wrong module of a Hugging Face model (its module
            # tracker in backward): there the root's total is the truth, not the split
            if options["counter_backward"] == "root" and row["fq"]:
                continue
            row["flops_bwd"] = int(sum(with_backward.get(key, {}).values())) - row["flops_fwd"]
            continue
        # recurrent layers: their h0 needs no gradient, so not one forward per gradient
        if row["flops_fwd"] is not None and row["leaf"] and row["type"] not in ("LSTM", "GRU", "RNN"):
            row["flops_bwd"] = _leaf_backward(next(m for m in model.modules() if fq_of[id(m)] == row["fq"]),
                                              args, row["flops_fwd"])
    return rows


def record(model: nn.Module, inputs: tuple, options: Options, device: str, path: Path) -> None:
    from torch.profiler import ProfilerActivity, profile, schedule
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    compile_mode = options.get("compile")
    run = torch.compile(model, mode=None if compile_mode is True else compile_mode) if compile_mode else model
    if options.get("graphed"):
        model.eager = False

    def step() -> None:
        if not model.training:
            with torch.no_grad():
                run(*inputs)
            return
        model.zero_grad(set_to_none=True)
        run(*inputs).sum().backward()

    with running(options, device), profile(
            activities=activities, schedule=schedule(wait=1, warmup=1, active=2),
            on_trace_ready=lambda p: p.export_chrome_trace(str(path)), record_shapes=True, with_modules=True,
            with_stack=True) as prof:
        for _ in range(4):
            step()
            prof.step()


def main(out: Path, device: str = "cpu") -> None:
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    truths: dict[str, dict] = {}
    only = set(sys.argv[3].split(",")) if len(sys.argv) > 3 else None
    for name, (model, inputs, options) in models(device).items():
        if only and name not in only:
            continue
        try:
            truths[name] = truth(model, inputs, options, device)
            record(model, inputs, options, device, out / f"{name}.json")
        except Exception as exc:  # torch.compile needs a working compiler toolchain: say so, record the rest
            truths[name] = {"_failed": f"{type(exc).__name__}: {exc}"[:2000]}
    if device != "cpu":
        truths["_recorded_with"] = {"torch": torch.__version__, "device": torch.cuda.get_device_name(),
                                    "python": sys.version.split()[0]}
    (out / "truth.json").write_text(json.dumps(truths, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "cpu")
