"""Per-stage wall time of one `tracekit convert`, finer than the progress steps.

Usage::

    .venv/bin/python bench/stages.py TRACE [--no-parquet] [--json OUT]

Wraps the stage functions that convert calls (read, call tree, links, steps, modules, chrome
writer, Parquet writers, collectives) with timers, runs convert once, and prints seconds per stage
(wall, process CPU, the stage's own thread CPU) and per million input events; with --rss the peak RSS
while each stage ran. Used to find super-linear stages: run it at several sizes and compare
the per-event figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

STAGES = {
    "tracekit.pipeline": ["read_trace", "build_call_tree", "link_launches", "assign_steps", "attribute_modules"],
    "tracekit.convert": ["write_chrome_trace", "write_parquet_tables", "write_module_table", "collective_calls",
                         "build_collectives", "write_collectives"],
}


class RssPeaks:
    """Samples this process's RSS every few ms; `peak[stage]` is the largest seen while a stage ran."""

    def __init__(self) -> None:
        import threading

        self.peak: dict[str, float] = defaultdict(float)
        self.current = "imports"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @staticmethod
    def rss_mb() -> float:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * 4096 / 1e6

    def _run(self) -> None:
        while not self.stop.wait(0.005):
            self.peak[self.current] = max(self.peak[self.current], self.rss_mb())


def instrument(rss: RssPeaks | None = None) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Replace each stage function by a timed wrapper; returns the dicts the wall, process CPU and thread CPU
    times go into.

    CPU time (user + system of this process) is the steadier figure on a machine shared with other
    jobs: contention stretches wall time, not the work done. Process CPU of a stage also counts what other
    threads did meanwhile (convert writes the Parquet tables in a second thread beside the chrome writer);
    thread CPU is the stage's own work.
    """
    import importlib

    spent: dict[str, float] = defaultdict(float)
    cpu: dict[str, float] = defaultdict(float)
    own: dict[str, float] = defaultdict(float)
    for module_name, names in STAGES.items():
        module = importlib.import_module(module_name)
        for name in names:
            inner = getattr(module, name)

            def timed(*args, _inner=inner, _name=name, **kwargs):
                t0, c0, o0 = time.perf_counter(), time.process_time(), time.thread_time()
                outer = rss.current if rss else None
                if rss:
                    rss.current = _name
                try:
                    return _inner(*args, **kwargs)
                finally:
                    if rss:
                        rss.current = outer
                    spent[_name] += time.perf_counter() - t0
                    cpu[_name] += time.process_time() - c0
                    own[_name] += time.thread_time() - o0

            setattr(module, name, timed)
    return spent, cpu, own


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("--no-parquet", action="store_true")
    ap.add_argument("--json", default=None, help="append one JSON line with the timings to this file")
    ap.add_argument("--rss", action="store_true", help="also the peak RSS of each stage (sampled every 5 ms)")
    args = ap.parse_args(argv)
    # What the CLI runs with (tracekit/cli/__init__.py), read when pyarrow loads; a value set outside is kept.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    from tracekit.convert import convert

    rss = RssPeaks() if args.rss else None
    if rss:
        rss.peak["imports"] = rss.rss_mb()
        rss.current = "other"
    spent, cpu, own = instrument(rss)
    tmp = tempfile.mkdtemp(prefix="tracekit-stages-")
    try:
        t0, c0, m0, k0 = time.perf_counter(), time.process_time(), time.thread_time(), _children_cpu()
        summary = convert([args.trace], Path(tmp) / "out", parquet=not args.no_parquet)
        total, total_cpu = time.perf_counter() - t0, time.process_time() - c0
        main_cpu, child_cpu = time.thread_time() - m0, _children_cpu() - k0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    events = summary["input_events"]
    spent["other"], cpu["other"] = total - sum(spent.values()), total_cpu - sum(cpu.values())
    spent["total"], cpu["total"] = total, total_cpu
    print(f"{args.trace}: {events} events, {Path(args.trace).stat().st_size / 1e6:.0f} MB")
    print(f"{'stage':<22} {'wall s':>9} {'cpu s':>9} {'cpu us/event':>13} {'thread cpu s':>13}")
    for name, secs in spent.items():
        print(f"{name:<22} {secs:9.3f} {cpu[name]:9.3f} {cpu[name] / max(events, 1) * 1e6:13.3f} "
              f"{own[name] if name in own else float('nan'):13.3f}")
    # The decode child and the Parquet thread run beside the main thread: on an idle machine with two
    # cores the wall time is about the main thread's CPU (its waits for the others aside).
    print(f"CPU s: main thread {main_cpu:.3f}, all threads {total_cpu:.3f}, decode child {child_cpu:.3f}, "
          f"total {total_cpu + child_cpu:.3f}")
    peaks = {}
    if rss:
        rss.stop.set()
        peaks = dict(rss.peak)
        print("peak RSS MB by stage (while it ran; 'imports' is the baseline before convert):")
        for name, mb in peaks.items():
            print(f"  {name:<22} {mb:9.0f}")
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(json.dumps({"trace": args.trace, "bytes": Path(args.trace).stat().st_size, "events": events,
                                 "wall": dict(spent), "cpu": dict(cpu), "thread_cpu": dict(own), "rss_mb": peaks,
                                 "main_thread_cpu": main_cpu, "child_cpu": child_cpu}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
