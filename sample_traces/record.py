#!/usr/bin/env python3
"""Record small, real CPU traces of two tiny models doing training steps.

For each model (``gpt``, ``cnn``) this writes into ``<out>/<model>/``:

* ``prof.json.gz``      torch.profiler (CPU, record_shapes, with_modules, with_stack,
                        profile_memory), schedule(wait=1, warmup=1, active=2) over
                        4 steps -> contains ``ProfilerStep#2`` and ``ProfilerStep#3``.
* ``viz.json.gz``       VizTracer (default options) around 2 training steps
                        (after one untraced warm-up step).
* ``viz_both.json.gz``  VizTracer around 2 training steps, with ...
* ``prof_both.json.gz`` ... torch.profiler (CPU, record_shapes, no stack/modules)
                        started inside the VizTracer session and stopped before it;
                        each step wrapped in ``record_function("tk_step_<i>")``.

``alexnet`` mirrors the shared Ascend NPU run (``npu/msinsight_alexnet_dp``): torchvision's
AlexNet written out by hand, batch 32 of 3x224x224 float32, SGD, an ``nn.CrossEntropyLoss``
module, DistributedDataParallel, and that run's profiler options (record_shapes, profile_memory,
with_stack, with_modules). It writes ``<out>/alexnet/<device>_rank<R>.json.gz`` (kind ``ddp``):
on the CPU with gloo over 2 processes and schedule(wait=1, warmup=1, active=1); on CUDA with
NCCL and the NPU run's schedule(skip_first=40, warmup=10, active=1).

``--device cuda`` records the same models on a GPU (CPU + CUDA activities); file names then
carry ``_cuda`` (``prof_cuda.json.gz``, ``viz_both_cuda.json.gz``, ...).

Each recording runs in its own fresh subprocess, so torch.profiler's
``with_stack`` hook and VizTracer's hook (which share one profiling hook on
Python 3.11) can never be active at the same time, and every recording starts
from the same seed.

Only torch, viztracer and the standard library are used.

Usage:
    .venv/bin/python sample_traces/record.py [--out DIR] [--models gpt,cnn,alexnet] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ("gpt", "cnn", "alexnet")
DEFAULT_MODELS = ("gpt", "cnn")
KINDS = ("prof", "viz", "both")
DEVICE = "cpu"  # set by --device; recordings run in subprocesses that get it on the command line


# --------------------------------------------------------------------------- models

def _suffix() -> str:
    return "" if DEVICE == "cpu" else f"_{DEVICE}"


def alexnet_module():
    """torchvision.models.AlexNet, written out (same modules, names and shapes)."""
    import torch
    import torch.nn as nn

    class AlexNet(nn.Module):
        def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(64, 192, kernel_size=5, padding=2),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(192, 384, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(384, 256, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(256, 256, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2),
            )
            self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
            self.classifier = nn.Sequential(
                nn.Dropout(p=dropout),
                nn.Linear(256 * 6 * 6, 4096),
                nn.ReLU(inplace=True),
                nn.Dropout(p=dropout),
                nn.Linear(4096, 4096),
                nn.ReLU(inplace=True),
                nn.Linear(4096, num_classes),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.features(x)
            x = self.avgpool(x)
            x = torch.flatten(x, 1)
            return self.classifier(x)

    return AlexNet()


def build(model_name: str):
    """Return (model, optimizer, step_fn) with step_fn() doing one training step."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.manual_seed(0)
    torch.set_num_threads(1)
    dev = torch.device(DEVICE)

    if model_name == "gpt":
        vocab, d_model, n_head, seq, batch, n_layer = 256, 64, 4, 32, 4, 2

        class CausalSelfAttention(nn.Module):
            def __init__(self, d: int, h: int, t: int):
                super().__init__()
                self.h = h
                self.q = nn.Linear(d, d)
                self.k = nn.Linear(d, d)
                self.v = nn.Linear(d, d)
                self.proj = nn.Linear(d, d)
                self.register_buffer("mask", torch.tril(torch.ones(t, t, dtype=torch.bool)))

            def forward(self, x):
                b, t, d = x.shape
                hd = d // self.h
                q = self.q(x).view(b, t, self.h, hd).transpose(1, 2)
                k = self.k(x).view(b, t, self.h, hd).transpose(1, 2)
                v = self.v(x).view(b, t, self.h, hd).transpose(1, 2)
                att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
                att = att.masked_fill(~self.mask[:t, :t], float("-inf"))
                att = F.softmax(att, dim=-1)
                y = (att @ v).transpose(1, 2).contiguous().view(b, t, d)
                return self.proj(y)

        class MLP(nn.Module):
            def __init__(self, d: int):
                super().__init__()
                self.up = nn.Linear(d, 4 * d)
                self.act = nn.GELU()
                self.down = nn.Linear(4 * d, d)

            def forward(self, x):
                return self.down(self.act(self.up(x)))

        class Block(nn.Module):
            def __init__(self, d: int, h: int, t: int):
                super().__init__()
                self.ln1 = nn.LayerNorm(d)
                self.attn = CausalSelfAttention(d, h, t)
                self.ln2 = nn.LayerNorm(d)
                self.mlp = MLP(d)

            def forward(self, x):
                x = x + self.attn(self.ln1(x))
                x = x + self.mlp(self.ln2(x))
                return x

        class GPT(nn.Module):
            def __init__(self):
                super().__init__()
                self.tok_emb = nn.Embedding(vocab, d_model)
                self.pos_emb = nn.Embedding(seq, d_model)
                self.blocks = nn.ModuleList([Block(d_model, n_head, seq) for _ in range(n_layer)])
                self.ln_f = nn.LayerNorm(d_model)
                self.lm_head = nn.Linear(d_model, vocab)

            def forward(self, idx):
                t = idx.shape[1]
                pos = torch.arange(t, device=idx.device)
                x = self.tok_emb(idx) + self.pos_emb(pos)
                for blk in self.blocks:
                    x = blk(x)
                return self.lm_head(self.ln_f(x))

        model = GPT().to(dev)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        data = torch.randint(0, vocab, (batch, seq + 1)).to(dev)
        x, y = data[:, :-1].contiguous(), data[:, 1:].contiguous()

        def loss_fn(out):
            return F.cross_entropy(out.view(-1, vocab), y.view(-1))

    elif model_name == "cnn":
        model = nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(32, 10),
        ).to(dev)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = torch.randn(4, 3, 32, 32).to(dev)
        y = torch.randint(0, 10, (4,)).to(dev)

        def loss_fn(out):
            return F.cross_entropy(out, y)

    else:
        raise ValueError(f"unknown model {model_name!r}")

    model.train()

    def train_step():
        opt.zero_grad(set_to_none=True)
        out = model(x)
        loss = loss_fn(out)
        loss.backward()
        opt.step()
        return loss

    return model, opt, train_step


# --------------------------------------------------------------------------- recorders

def record_prof(model_name: str, out_dir: str) -> list[str]:
    """a. torch.profiler with stacks/modules/memory over a 4-step schedule."""
    from torch.profiler import profile, schedule

    _, _, train_step = build(model_name)
    path = os.path.join(out_dir, f"prof{_suffix()}.json.gz")

    def on_trace_ready(p):
        p.export_chrome_trace(path)  # torch gzips when the name ends in .gz

    with profile(
        activities=_activities(),
        schedule=schedule(wait=1, warmup=1, active=2),
        on_trace_ready=on_trace_ready,
        record_shapes=True,
        with_modules=True,
        with_stack=True,
        profile_memory=True,
    ) as prof:
        for _ in range(4):
            train_step()
            prof.step()
    return [path]


def record_viz(model_name: str, out_dir: str) -> list[str]:
    """b. VizTracer around 2 training steps after one untraced warm-up step."""
    from viztracer import VizTracer

    _, _, train_step = build(model_name)
    train_step()  # warm-up, not traced
    path = os.path.join(out_dir, f"viz{_suffix()}.json.gz")
    tracer = VizTracer(verbose=0, ignore_c_function=False, log_func_args=False)
    tracer.start()
    for _ in range(2):
        train_step()
    tracer.stop()
    tracer.save(path)
    return [path]


def record_both(model_name: str, out_dir: str) -> list[str]:
    """c. VizTracer session with a (stack-less) torch.profiler nested inside it."""
    from torch.profiler import profile, record_function
    from viztracer import VizTracer

    _, _, train_step = build(model_name)
    train_step()  # warm-up, not traced
    viz_path = os.path.join(out_dir, f"viz_both{_suffix()}.json.gz")
    prof_path = os.path.join(out_dir, f"prof_both{_suffix()}.json.gz")

    tracer = VizTracer(verbose=0, ignore_c_function=False, log_func_args=False)
    tracer.start()
    with profile(
        activities=_activities(),
        record_shapes=True,
        with_stack=False,
        with_modules=False,
    ) as prof:
        for i in range(2):
            with record_function(f"tk_step_{i}"):
                train_step()
    # profiler stopped (end of `with`) before VizTracer stops
    tracer.stop()
    tracer.save(viz_path)
    prof.export_chrome_trace(prof_path)
    return [viz_path, prof_path]


def _activities() -> list:
    from torch.profiler import ProfilerActivity

    return [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEVICE == "cuda" else [])


def ddp_rank(rank: int, world: int, out_dir: str, port: int) -> None:
    """One DDP rank of the AlexNet mirror of the shared NPU run, profiled like it."""
    import torch
    import torch.distributed as dist
    import torch.nn as nn
    from torch.nn.parallel import DistributedDataParallel
    from torch.profiler import profile, schedule

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    backend = "nccl" if DEVICE == "cuda" else "gloo"
    dist.init_process_group(backend, rank=rank, world_size=world)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    dev = torch.device(DEVICE, rank) if DEVICE == "cuda" else torch.device("cpu")
    model = DistributedDataParallel(alexnet_module().to(dev), device_ids=[rank] if DEVICE == "cuda" else None)
    criterion = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator().manual_seed(rank)
    x = torch.randn(32, 3, 224, 224, generator=gen).to(dev)
    y = torch.randint(0, 1000, (32,), generator=gen).to(dev)
    # The NPU run: schedule(skip_first=40, warmup=10, active=1); on the CPU a shorter one of the same shape.
    sched = (dict(skip_first=40, wait=0, warmup=10, active=1, repeat=1) if DEVICE == "cuda"
             else dict(wait=1, warmup=1, active=1, repeat=1))
    steps = sched.get("skip_first", 0) + sched["wait"] + sched["warmup"] + sched["active"]
    path = os.path.join(out_dir, f"{DEVICE}_rank{rank}.json.gz")

    def on_trace_ready(p):
        p.export_chrome_trace(path)

    with profile(activities=_activities(), schedule=schedule(**sched), on_trace_ready=on_trace_ready,
                 record_shapes=True, profile_memory=True, with_stack=True, with_modules=True) as prof:
        for _ in range(steps):
            opt.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            opt.step()
            prof.step()
    dist.destroy_process_group()


def record_ddp(model_name: str, out_dir: str) -> list[str]:
    """d. AlexNet under DDP: 2 gloo processes on the CPU, or one NCCL rank per GPU on CUDA."""
    import socket

    import torch

    world = max(1, torch.cuda.device_count()) if DEVICE == "cuda" else 2
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--device", DEVICE,
                               "--_rank", f"{r},{world},{port}", "--out", out_dir]) for r in range(world)]
    if any(p.wait() != 0 for p in procs):
        raise SystemExit("a DDP rank failed")
    return [os.path.join(out_dir, f"{DEVICE}_rank{r}.json.gz") for r in range(world)]


RECORDERS = {"prof": record_prof, "viz": record_viz, "both": record_both, "ddp": record_ddp}
MODEL_KINDS = {"gpt": KINDS, "cnn": KINDS, "alexnet": ("ddp",)}


# --------------------------------------------------------------------------- driver

def _count_events(path: str) -> int:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        data = json.load(f)
    return len(data["traceEvents"]) if isinstance(data, dict) else len(data)


def _run_one(spec: str, out: str) -> list[str]:
    model_name, kind = spec.split(":")
    out_dir = os.path.join(out, model_name)
    os.makedirs(out_dir, exist_ok=True)
    return RECORDERS[kind](model_name, out_dir)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=HERE, help="output folder (default: %(default)s)")
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated subset of gpt,cnn,alexnet")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the models run")
    ap.add_argument("--kinds", default=None, help="comma-separated subset of prof,viz,both (gpt, cnn)")
    ap.add_argument("--_one", default=None, help=argparse.SUPPRESS)  # internal: MODEL:KIND
    ap.add_argument("--_rank", default=None, help=argparse.SUPPRESS)  # internal: RANK,WORLD,PORT
    args = ap.parse_args(argv)
    out = os.path.abspath(args.out)
    global DEVICE
    DEVICE = args.device

    if args._rank:
        rank, world, port = (int(v) for v in args._rank.split(","))
        ddp_rank(rank, world, out, port)
        return 0
    if args._one:
        _run_one(args._one, out)
        return 0

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in MODELS:
            ap.error(f"unknown model {m!r}; choose from {','.join(MODELS)}")

    kinds = [k.strip() for k in args.kinds.split(",")] if args.kinds else None
    t0 = time.perf_counter()
    written = []
    for m in models:
        for kind in MODEL_KINDS[m]:
            if kinds and m != "alexnet" and kind not in kinds:
                continue
            if kind == "ddp":  # spawns its own rank processes
                written += _run_one(f"{m}:{kind}", out)
                continue
            # fresh interpreter per recording: isolates profiling hooks and RNG state
            subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--out", out, "--device", DEVICE,
                 "--_one", f"{m}:{kind}"],
                check=True,
            )
            names = {"prof": ["prof"], "viz": ["viz"], "both": ["viz_both", "prof_both"]}[kind]
            written += [os.path.join(out, m, f"{n}{_suffix()}.json.gz") for n in names]

    for p in written:
        size = os.path.getsize(p)
        print(f"{os.path.relpath(p):50s} {size / 1024:8.1f} KiB  {_count_events(p):7d} events")
    print(f"done in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
