"""Synthetic traces of hostile shapes, to check that every stage stays near-linear in the events.

Usage::

    .venv/bin/python bench/shapes.py SHAPE N OUT.json      # write one trace
    .venv/bin/python bench/shapes.py --list                # the shapes

Shapes (N is the number of events, or of `/` for the slash-heavy name):

- identical: N copies of one cpu op (same name, track, start and duration): they all nest, so
  the call tree is one chain N deep.
- deep: N cpu ops nested strictly inside each other (depth N), each launching a kernel.
- deep_modules: N `nn.Module` spans nested inside each other, one kernel launched in the innermost.
- slash_name: one `nn.Module` span whose name holds N `/`, with 1,000 ops and kernels under it.
- staircase: N cpu ops on one track, each starting inside the previous one and ending after it
  (partial overlaps: every op needs its own display lane).
- flat: N sibling cpu ops each launching a kernel (the plain linear shape, for reference).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

PID, TID, GPU_PID, STREAM = 1, 1, 0, 7


def _op(name: str, ts: int, dur: int, cat: str = "cpu_op") -> dict:
    return {"ph": "X", "cat": cat, "name": name, "pid": PID, "tid": TID, "ts": ts, "dur": dur}


def _launch(ts: int, corr: int) -> Iterator[dict]:
    yield {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": PID, "tid": TID,
           "ts": ts, "dur": 1, "args": {"correlation": corr}}
    yield {"ph": "X", "cat": "kernel", "name": "void gemm_kernel<float>()", "pid": GPU_PID, "tid": STREAM,
           "ts": ts + 5, "dur": 1, "args": {"correlation": corr, "device": 0, "stream": STREAM}}


def identical(n: int) -> Iterator[dict]:
    for _ in range(n):
        yield _op("aten::add", 1000, 10)


def deep(n: int) -> Iterator[dict]:
    depth = n // 3
    for i in range(depth):
        yield _op(f"aten::op{i % 7}", 1000 + 10 * i, 10 * (2 * depth - 2 * i) + 8)
    for i in range(depth):
        yield from _launch(1000 + 10 * depth + 3 * i, i + 1)


def deep_modules(n: int) -> Iterator[dict]:
    for i in range(n):
        yield _op(f"nn.Module: Linear_{i}", 1000 + 10 * i, 10 * (2 * n - 2 * i) + 8, cat="python_function")
    yield _op("aten::mm", 1000 + 10 * n, 4)
    yield from _launch(1000 + 10 * n + 1, 1)


def slash_name(n: int) -> Iterator[dict]:
    name = "nn.Module: " + "/".join(f"m{i}" for i in range(n + 1))
    ops = 1000
    yield _op(name, 1000, 20 * ops + 10, cat="python_function")
    for i in range(ops):
        yield _op("aten::mm", 1001 + 20 * i, 10)
        yield from _launch(1002 + 20 * i, i + 1)


def staircase(n: int) -> Iterator[dict]:
    for i in range(n):
        yield _op("aten::add", 1000 + i, n)


def flat(n: int) -> Iterator[dict]:
    for i in range(n // 3):
        yield _op("aten::mm", 1000 + 20 * i, 10)
        yield from _launch(1001 + 20 * i, i + 1)


SHAPES: dict[str, Callable[[int], Iterator[dict]]] = {
    "identical": identical, "deep": deep, "deep_modules": deep_modules, "slash_name": slash_name,
    "staircase": staircase, "flat": flat,
}


def write(shape: str, n: int, out: Path) -> int:
    """Write the trace; returns the number of events."""
    count = 0
    with open(out, "w") as fh:
        fh.write('{"traceEvents": [\n')
        for ev in SHAPES[shape](n):
            fh.write(("" if count == 0 else ",\n") + json.dumps(ev))
            count += 1
        fh.write("\n]}\n")
    return count


def main(argv: list[str]) -> int:
    if argv[:1] == ["--list"] or len(argv) != 3:
        print("\n".join(SHAPES))
        return 0 if argv[:1] == ["--list"] else 2
    shape, n, out = argv[0], int(argv[1]), Path(argv[2])
    print(f"{out}: {write(shape, n, out)} events")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
