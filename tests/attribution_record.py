"""Record the project's sample models with the ground truth of which module ran each op written into the trace.

Run as a script (tests start it in a subprocess, so the test process never imports torch):
    python tests/attribution_record.py OUT_DIR [cpu|cuda] [MODELS]
`sample_traces/record.py`'s gpt and cnn train for 4 steps under torch.profiler (2 recorded; record_shapes,
with_stack, with_modules; CUDA activity on cuda). Hooks on every module open a `record_function` range around
its forward (`truth::fwd::PATH`) and, with full backward pre-hooks and hooks, around its backward
(`truth::bwd::PATH`), PATH in tracekit's `Class_N` naming (N counts instances of the class in order of first call).
The ops and kernels inside the innermost range are that module's: what tracekit must find without the ranges.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn as nn
from torch.autograd.profiler import record_function

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sample_traces"))
import record  # sample_traces/record.py: the sample models

PREFIX = "truth::"


def annotate(model: nn.Module) -> list:
    """Forward and backward hooks that open and close one truth range per module call."""
    index: dict[int, str] = {}
    count: dict[str, int] = {}
    path_of: dict[int, str] = {}
    stack: list[str] = []
    open_ranges: dict[tuple[str, int], list] = {}

    def enter(key: tuple[str, int], name: str) -> None:
        rf = record_function(name)
        rf.__enter__()
        open_ranges.setdefault(key, []).append(rf)

    def leave(key: tuple[str, int]) -> None:
        ranges = open_ranges.get(key)
        if ranges:
            ranges.pop().__exit__(None, None, None)

    def pre(module: nn.Module, args: tuple) -> None:
        cls = type(module).__name__
        if id(module) not in index:
            index[id(module)] = f"{cls}_{count.get(cls, 0)}"
            count[cls] = count.get(cls, 0) + 1
        stack.append(index[id(module)])
        path_of[id(module)] = "/".join(stack)
        enter(("fwd", id(module)), f"{PREFIX}fwd::{path_of[id(module)]}")

    def post(module: nn.Module, args: tuple, out: object) -> None:
        leave(("fwd", id(module)))
        stack.pop()

    def bpre(module: nn.Module, grad_output: tuple) -> None:
        enter(("bwd", id(module)), f"{PREFIX}bwd::{path_of[id(module)]}")

    def bpost(module: nn.Module, grad_input: tuple, grad_output: tuple) -> None:
        leave(("bwd", id(module)))

    handles = []
    for m in model.modules():
        handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post),
                    m.register_full_backward_pre_hook(bpre), m.register_full_backward_hook(bpost)]
    return handles


def main(out: Path, device: str, names: list[str]) -> None:
    from torch.profiler import ProfilerActivity, profile, schedule

    record.DEVICE = device
    out.mkdir(parents=True, exist_ok=True)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    for name in names:
        model, _, train_step = record.build(name)
        annotate(model)
        path = out / f"{name}_truth.json"
        with profile(activities=activities, schedule=schedule(wait=1, warmup=1, active=2),
                     on_trace_ready=lambda p, path=path: p.export_chrome_trace(str(path)), record_shapes=True,
                     with_modules=True, with_stack=True) as prof:
            for _ in range(4):
                train_step()
                prof.step()
        if device == "cuda":
            torch.cuda.synchronize()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "cpu",
         (sys.argv[3] if len(sys.argv) > 3 else "gpt,cnn").split(","))
