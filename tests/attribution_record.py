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


def annotate(model: nn.Module, backward: bool = True) -> list:
    """Forward and backward hooks that open and close one truth range per module call."""
    index: dict[int, str] = {}
    count: dict[str, int] = {}
    path_of: dict[int, str] = {}
    stack: list[str] = []
    # full backward hooks see positional inputs only: a module given its data as keyword arguments (Hugging Face
    # layers) would close its backward range as soon as it opened, so it gets none
    positional: dict[int, bool] = {}
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
        positional[id(module)] = any(isinstance(a, torch.Tensor) and a.requires_grad for a in args)
        enter(("fwd", id(module)), f"{PREFIX}fwd::{path_of[id(module)]}")

    def post(module: nn.Module, args: tuple, out: object) -> None:
        leave(("fwd", id(module)))
        stack.pop()

    def bpre(module: nn.Module, grad_output: tuple) -> None:
        if positional.get(id(module)):
            enter(("bwd", id(module)), f"{PREFIX}bwd::{path_of[id(module)]}")

    def bpost(module: nn.Module, grad_input: tuple, grad_output: tuple) -> None:
        leave(("bwd", id(module)))

    handles = []
    for m in model.modules():
        handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
        if backward:
            handles += [m.register_full_backward_pre_hook(bpre), m.register_full_backward_hook(bpost)]
    return handles


def hf_llama(device: str):
    """A tiny random-weight Hugging Face Llama (transformers, where installed) and one AdamW training step."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=64)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(0, 256, (2, 16), device=device)

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        return loss

    return model, opt, train_step


def hf_llama_generate(device: str):
    """The tiny Llama generating 6 tokens greedily (prefill, then one-token decode steps with a KV cache)."""
    model, opt, _ = hf_llama(device)
    model.eval()
    ids = torch.randint(0, 256, (2, 16), device=device)

    def generate_step():
        with torch.no_grad():
            return model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6,
                                  do_sample=False, pad_token_id=0)

    return model, opt, generate_step


def build(name: str, device: str):
    """(model, optimizer, step) of a sample model, with truth hooks: forward and backward where the model's
    modules allow full backward hooks (Hugging Face ones return ModelOutput/tuples with None: forward only)."""
    makers = {"hf_llama": lambda: hf_llama(device), "hf_llama_generate": lambda: hf_llama_generate(device)}
    make = makers.get(name, lambda: record.build(name))
    model, opt, step = make()
    backward = name != "hf_llama_generate"
    handles = annotate(model, backward=backward)
    try:
        step()
        return model, opt, step, backward
    except RuntimeError:
        for h in handles:
            h.remove()
        model, opt, step = make()
        annotate(model, backward=False)
        return model, opt, step, False


def main(out: Path, device: str, names: list[str]) -> None:
    from torch.profiler import ProfilerActivity, profile, schedule

    record.DEVICE = device
    out.mkdir(parents=True, exist_ok=True)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    for name in names:
        _, _, train_step, backward = build(name, device)
        print(name, "backward truth" if backward else "forward truth only")
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
