"""Where a one-worker multi-rank convert's parent memory goes: RSS and peak RSS at the stage boundaries.

Usage::

    .venv/bin/python bench/parent_stages.py RANKS_DIR [--out OUT] [--json FILE] [--tracemalloc] [--workers N]

Runs `tracekit.convert.convert` of every rank file in RANKS_DIR with one worker (in-process, as
`bench/bench_scale.py --workers 1` does through the CLI; --workers 0: the default pool, the parent then only
gathers what workers send back) and, around each parent stage, reads VmRSS and the peak
since the stage began (VmHWM, reset at the stage's start by writing 5 to /proc/self/clear_refs). Stages: the rank
loop (with RSS every 64 ranks), the merged trace, group inference and the rest of the cross-rank stage (narrow
table, labelling, finishing and writing collectives.parquet), the summary and the manifest. With --tracemalloc,
the Python heap's peak per cross-rank stage too (slower: not for timings). Memory only: no CPU figures here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")  # as the CLI sets it
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
MB = 1_000_000


def _status() -> dict[str, float]:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) * 1024 / MB
    return out


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


class Stages:
    """Records (stage, RSS before, RSS after, peak within, Python peak within) rows; nested stages allowed (an
    inner stage's reset of the peak first folds the peak so far into every open stage)."""

    def __init__(self, trace_python: bool):
        self.rows: list[dict[str, Any]] = []
        self.trace_python = trace_python
        self.open: list[float] = []  # the peak so far of each open stage, outermost first

    def _reset(self) -> None:
        hwm = _status()["VmHWM"]
        self.open = [max(p, hwm) for p in self.open]
        _reset_peak()

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        import tracemalloc

        def run(*args: Any, **kwargs: Any) -> Any:
            before = _status()["VmRSS"]
            self._reset()
            self.open.append(0.0)
            if self.trace_python:
                py0 = tracemalloc.get_traced_memory()[0]
                tracemalloc.reset_peak()
            t0 = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                now = _status()
                peak = max(self.open.pop(), now["VmHWM"])
                self.open = [max(p, peak) for p in self.open]
                row = {"stage": name, "depth": len(self.open), "rss_before_mb": before, "rss_after_mb": now["VmRSS"],
                       "peak_mb": peak, "cpu_s": time.process_time() - t0}
                if self.trace_python:
                    cur, py_peak = tracemalloc.get_traced_memory()
                    row.update(py_before_mb=py0 / MB, py_after_mb=cur / MB, py_peak_mb=py_peak / MB)
                self.rows.append(row)
        return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ranks_dir", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes (default 1: in-process, as --workers 1; 0: the CLI's default)")
    args = parser.parse_args()

    import tracemalloc

    import tracekit.convert  # noqa: F401  (imports first: their pages are the baseline)
    import tracekit.dataset.manifest as manifest
    import tracekit.parallel.crossrank as crossrank
    import tracekit.ranks as ranks
    from tracekit.inputs import expand_inputs

    stages = Stages(args.tracemalloc)
    loop: list[dict[str, float]] = []
    real_every = ranks.every

    in_loop = [False]

    def every(count: int, *rest: int) -> None:
        real_every(count, *rest)
        if in_loop[0] and count % 64 == 0:  # the rank loop's count (splicing the fragments counts again)
            loop.append({"ranks": count, **_status()})

    def rank_loop(*args: Any, **kwargs: Any) -> Any:
        in_loop[0] = True
        try:
            return real_run_ranks(*args, **kwargs)
        finally:
            in_loop[0] = False

    real_run_ranks = ranks.run_ranks
    ranks.every = every
    ranks.run_ranks = stages.wrap("rank loop (workers' results, records)", rank_loop)
    ranks.write_traces = stages.wrap("merged trace", ranks.write_traces)
    ranks.collectives_of = stages.wrap("cross-rank stage (all of it)", ranks.collectives_of)
    manifest.write_manifest = stages.wrap("manifest", manifest.write_manifest)
    ranks.merged_summary = stages.wrap("summary", ranks.merged_summary)
    for name in ("scan_parts", "narrow_calls", "label_calls", "spill_batches", "write_batches"):
        if hasattr(crossrank, name):  # an older tree (a baseline) may not have them all
            setattr(crossrank, name, stages.wrap(f"  {name}", getattr(crossrank, name)))
    if hasattr(crossrank, "label_compact"):
        crossrank.label_compact = stages.wrap("  label_compact", crossrank.label_compact)

    paths = expand_inputs([str(args.ranks_dir)])
    out = args.out or Path(tempfile.mkdtemp(prefix="parent-stages-")) / "out"
    base = _status()
    if args.tracemalloc:
        tracemalloc.start()
    _reset_peak()
    t0 = time.process_time()
    ranks.convert_ranks(paths, out, workers=args.workers or None)
    total = _status()
    result = {"ranks": len(paths), "workers": args.workers, "imports_rss_mb": base["VmRSS"],
              "end_rss_mb": total["VmRSS"], "stages": stages.rows, "loop": loop, "cpu_s": time.process_time() - t0}
    for row in stages.rows:
        print(f"{row['stage']:<42} rss {row['rss_before_mb']:7.1f} -> {row['rss_after_mb']:7.1f} MB, "
              f"peak {row['peak_mb']:7.1f} MB" + (f", python peak {row['py_peak_mb'] - row['py_before_mb']:6.2f} MB "
                                                  f"above its start, {row['py_after_mb'] - row['py_before_mb']:+.2f} "
                                                  "kept" if "py_peak_mb" in row else "")
              + f", {row['cpu_s']:.2f} s")
    for row in loop:
        print(f"  after {row['ranks']:4d} ranks: rss {row['VmRSS']:.1f} MB, loop's peak so far {row['VmHWM']:.1f} MB")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    sys.exit(main())
