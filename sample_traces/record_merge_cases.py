#!/usr/bin/env python3
"""Record small, real CPU traces of the cases that `tracekit merge` must refuse, and of module names
that torch and VizTracer spell differently.

Writes into ``<out>/cases/`` (default ``sample_traces/cases/``):

* ``after_prof.json.gz`` + ``after_viz.json.gz``: NOT one run. torch.profiler (record_shapes) records
  2 training steps of a small ``Net`` (Linear, ReLU, Linear); about 20 ms after the profiler has
  stopped, VizTracer records 1 more step. The time ranges do not overlap.
* ``hook_viz.json.gz`` + ``hook_prof.json.gz``: VizTracer is started, then torch.profiler with
  ``with_stack=True, with_modules=True`` inside it. On Python 3.11 both use one per-thread profiling
  hook: the profiler displaces VizTracer, whose file ends where the profiler started, with the frames
  that were open then left as `B` events without `E`.
* ``names_prof.json.gz`` + ``names_viz.json.gz``: a model with ``nn.MultiheadAttention`` (no output
  shape rule for its last op), ``nn.BatchNorm1d`` (forward defined by ``_BatchNorm``), a module class
  with a non-ASCII name (Kineto writes it as ``unknown``) and one whose class name holds a ``/``.
  The profiler has record_shapes + with_modules + with_stack; VizTracer has the defaults of record.py.

Each recording runs in its own fresh subprocess (hooks and RNG state isolated).

Usage:
    .venv/bin/python sample_traces/record_merge_cases.py [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = ("after", "hook", "names_prof", "names_viz")


def _small_net():
    import torch
    import torch.nn as nn

    torch.manual_seed(0)
    torch.set_num_threads(1)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(32, 64)
            self.act = nn.ReLU()
            self.fc2 = nn.Linear(64, 10)

        def forward(self, x):
            return self.fc2(self.act(self.fc1(x)))

    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(8, 32), torch.randint(0, 10, (8,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    return step


def _names_net():
    import torch
    import torch.nn as nn

    torch.manual_seed(0)
    torch.set_num_threads(1)

    class Schichtü(nn.Module):  # a non-ASCII class name: Kineto writes the span as `unknown`
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(16, 16)

        def forward(self, x):
            return self.lin(x).relu()

    Umlaut = Schichtü
    Slashed = type("Proj/Out", (nn.Linear,), {})  # a class name with a '/' (inherits Linear.forward)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
            self.norm = nn.BatchNorm1d(16)
            self.mid = Umlaut()
            self.out = Slashed(16, 4)

        def forward(self, x):
            y, _ = self.attn(x, x, x, need_weights=False)
            y = self.norm(y.transpose(1, 2)).transpose(1, 2)
            return self.out(self.mid(y)).mean()

    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(2, 5, 16)

    def step():
        opt.zero_grad(set_to_none=True)
        model(x).backward()
        opt.step()

    return step


def _prof(**extra):
    from torch.profiler import ProfilerActivity, profile

    return profile(activities=[ProfilerActivity.CPU], record_shapes=True, **extra)


def _viz():
    from viztracer import VizTracer

    return VizTracer(verbose=0, ignore_c_function=False, log_func_args=False)


def record_after(out: str) -> None:
    """Profiler window first; VizTracer starts ~20 ms after it stopped."""
    step = _small_net()
    step()
    with _prof() as prof:
        for _ in range(2):
            step()
    time.sleep(0.02)
    tracer = _viz()
    tracer.start()
    step()
    tracer.stop()
    tracer.save(os.path.join(out, "after_viz.json.gz"))
    prof.export_chrome_trace(os.path.join(out, "after_prof.json.gz"))


def record_hook(out: str) -> None:
    """VizTracer first, then a with_stack/with_modules profiler inside it: the profiler takes the hook."""
    step = _small_net()
    step()
    tracer = _viz()
    tracer.start()
    step()
    with _prof(with_stack=True, with_modules=True) as prof:
        for _ in range(2):
            step()
    tracer.stop()
    tracer.save(os.path.join(out, "hook_viz.json.gz"))
    prof.export_chrome_trace(os.path.join(out, "hook_prof.json.gz"))


def record_names_prof(out: str) -> None:
    step = _names_net()
    step()
    with _prof(with_stack=True, with_modules=True) as prof:
        for _ in range(2):
            step()
    prof.export_chrome_trace(os.path.join(out, "names_prof.json.gz"))


def record_names_viz(out: str) -> None:
    step = _names_net()
    step()
    tracer = _viz()
    tracer.start()
    for _ in range(2):
        step()
    tracer.stop()
    tracer.save(os.path.join(out, "names_viz.json.gz"))


RECORDERS = {"after": record_after, "hook": record_hook, "names_prof": record_names_prof,
             "names_viz": record_names_viz}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=HERE, help="folder that gets cases/ (default: %(default)s)")
    ap.add_argument("--_one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    out = os.path.join(os.path.abspath(args.out), "cases")
    os.makedirs(out, exist_ok=True)
    if args._one:
        RECORDERS[args._one](out)
        return 0
    for case in CASES:
        subprocess.run([sys.executable, os.path.abspath(__file__), "--out", os.path.abspath(args.out),
                        "--_one", case], check=True)
    for name in sorted(os.listdir(out)):
        print(f"{os.path.join(out, name)}  {os.path.getsize(os.path.join(out, name)) / 1024:.1f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
