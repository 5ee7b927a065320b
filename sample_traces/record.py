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

Each recording runs in its own fresh subprocess, so torch.profiler's
``with_stack`` hook and VizTracer's hook (which share one profiling hook on
Python 3.11) can never be active at the same time, and every recording starts
from the same seed.

Only torch, viztracer and the standard library are used.

Usage:
    .venv/bin/python sample_traces/record.py [--out DIR] [--models gpt,cnn]
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
MODELS = ("gpt", "cnn")
KINDS = ("prof", "viz", "both")


# --------------------------------------------------------------------------- models

def build(model_name: str):
    """Return (model, optimizer, step_fn) with step_fn() doing one training step."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.manual_seed(0)
    torch.set_num_threads(1)

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

        model = GPT()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        data = torch.randint(0, vocab, (batch, seq + 1))
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
        )
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = torch.randn(4, 3, 32, 32)
        y = torch.randint(0, 10, (4,))

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
    from torch.profiler import ProfilerActivity, profile, schedule

    _, _, train_step = build(model_name)
    path = os.path.join(out_dir, "prof.json.gz")

    def on_trace_ready(p):
        p.export_chrome_trace(path)  # torch gzips when the name ends in .gz

    with profile(
        activities=[ProfilerActivity.CPU],
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
    path = os.path.join(out_dir, "viz.json.gz")
    tracer = VizTracer(verbose=0, ignore_c_function=False, log_func_args=False)
    tracer.start()
    for _ in range(2):
        train_step()
    tracer.stop()
    tracer.save(path)
    return [path]


def record_both(model_name: str, out_dir: str) -> list[str]:
    """c. VizTracer session with a (stack-less) torch.profiler nested inside it."""
    from torch.profiler import ProfilerActivity, profile, record_function
    from viztracer import VizTracer

    _, _, train_step = build(model_name)
    train_step()  # warm-up, not traced
    viz_path = os.path.join(out_dir, "viz_both.json.gz")
    prof_path = os.path.join(out_dir, "prof_both.json.gz")

    tracer = VizTracer(verbose=0, ignore_c_function=False, log_func_args=False)
    tracer.start()
    with profile(
        activities=[ProfilerActivity.CPU],
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


RECORDERS = {"prof": record_prof, "viz": record_viz, "both": record_both}


# --------------------------------------------------------------------------- driver

def _count_events(path: str) -> int:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        data = json.load(f)
    return len(data["traceEvents"]) if isinstance(data, dict) else len(data)


def _run_one(spec: str, out: str) -> None:
    model_name, kind = spec.split(":")
    out_dir = os.path.join(out, model_name)
    os.makedirs(out_dir, exist_ok=True)
    RECORDERS[kind](model_name, out_dir)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=HERE, help="output folder (default: %(default)s)")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of gpt,cnn")
    ap.add_argument("--_one", default=None, help=argparse.SUPPRESS)  # internal: MODEL:KIND
    args = ap.parse_args(argv)
    out = os.path.abspath(args.out)

    if args._one:
        _run_one(args._one, out)
        return 0

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in MODELS:
            ap.error(f"unknown model {m!r}; choose from {','.join(MODELS)}")

    t0 = time.perf_counter()
    written = []
    for m in models:
        for kind in KINDS:
            # fresh interpreter per recording: isolates profiling hooks and RNG state
            subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--out", out, "--_one", f"{m}:{kind}"],
                check=True,
            )
        for name in ("prof.json.gz", "viz.json.gz", "viz_both.json.gz", "prof_both.json.gz"):
            written.append(os.path.join(out, m, name))

    for p in written:
        size = os.path.getsize(p)
        print(f"{os.path.relpath(p):50s} {size / 1024:8.1f} KiB  {_count_events(p):7d} events")
    print(f"done in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
