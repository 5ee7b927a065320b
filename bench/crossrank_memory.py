"""The cross-rank collectives stage's memory alone, on call partitions of N synthetic ranks.

Usage::

    .venv/bin/python bench/crossrank_memory.py [--ranks 64 512 4096] [--source DIR] [--tracemalloc] [--phases]
        [--no-inference] [--repeat 1 250 2000] [--json FILE]

The source set's ranks (default ../shared/traces/gpu/param_dlrm_8ranks) are converted once into call partitions
(as `tracekit convert` writes them to `.calls/`); rank i of N is a copy of source rank i mod S (the partitions
hold no rank column: the folder names it), and distributedInfo says world_size N, as bench/bench_scale.py's
synthetic ranks do. Then, per N, a FRESH interpreter imports tracekit, runs
`crossrank.write_collectives_from_parts` and reports the stage's peak RSS above its start (VmHWM reset at the
start through /proc/self/clear_refs), its end RSS, with --tracemalloc the Python heap's peak above the start, and
with --phases the peak of each step (label: narrow table + group inference; spill: finished ranks; write:
collectives.parquet), so that the writer's per-row-group growth is told apart from the state per call. With
--no-inference, group inference is replaced by a stub that decides nothing (every call undecided, one shared
reason; the outputs differ): what the label step costs without the inference, i.e. the most that any cheaper
inference (streamed or not) could save. With --repeat K, each rank's calls are its source rank's calls K times,
shifted in time by the source set's span each time (the same calls, K times as many per rank): the stage per call
at a fixed number of ranks, where the default (K = 1) grows calls and ranks together.
RSS is not stretched by the other load on a shared machine; CPU seconds (also reported) are.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "traces"
MB = 1_000_000


def _status() -> dict[str, float]:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) * 1024 / MB
    return out


def source_parts(source: Path, folder: Path) -> list[Path]:
    """The call partitions of the source set's ranks, in input order (rank files converted in-process)."""
    from tracekit.inputs import expand_inputs
    from tracekit.parallel.scratch import list_parts
    from tracekit.ranks import job_list, run_ranks

    paths = expand_inputs([str(source)])
    stage = folder / "stage"
    stage.mkdir(parents=True, exist_ok=True)
    run_ranks(job_list(paths, stage, parquet=False, chrome=False, calls=str(folder / "calls"), splits=False), 1)
    return [path for _index, _rank, path in list_parts(folder / "calls")]


def synthetic_parts(parts: list[Path], n: int, folder: Path, repeat: int = 1) -> None:
    """rank i's partition: a copy of parts[i mod len(parts)]; with `repeat` K > 1, its calls K times, copy k
    shifted by k x the source set's span (first start to last end, + 1 ms)."""
    from tracekit.parallel.scratch import Part, part_path, write_table

    tables = [Part(p).read() for p in parts] if repeat > 1 else []
    if tables:
        import pyarrow as pa
        import pyarrow.compute as pc

        first = min(pc.min(t["start_ns"]).as_py() for t in tables)
        last = max(pc.max(pc.add(t["start_ns"], t["dur_ns"])).as_py() for t in tables)
        span = last - first + 1_000_000
        grown = []
        for t in tables:
            copies = [t.set_column(t.schema.get_field_index("start_ns"), "start_ns",
                                   pc.add(t["start_ns"], pa.scalar(k * span, pa.int64()))) for k in range(repeat)]
            grown.append(pa.concat_tables(copies).combine_chunks().replace_schema_metadata(t.schema.metadata))
        tables = grown
    for i in range(n):
        target = part_path(folder, i, i, parts[i % len(parts)].suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        if tables:
            write_table(tables[i % len(parts)], target.with_suffix(".arrow"))
        else:
            shutil.copyfile(parts[i % len(parts)], target)


def _phases(crossrank: Any, folder: Path, distributed: list, out: Path, start: float, phases: dict[str, float]) -> int:
    """write_collectives_from_parts step by step (as it runs them), the peak RSS above `start` of each step
    (VmHWM reset at each step's start): labelling (narrow table + group inference), spilling the finished ranks,
    writing collectives.parquet."""
    from tracekit.memory import release_freed_memory

    def step(name: str) -> None:
        phases[name] = _status()["VmHWM"] - start
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")

    registry = crossrank.MemberIds()
    ranks = crossrank.finished_tables(folder, distributed, registry)
    step("label")
    scratch = Path(tempfile.mkdtemp(prefix=".collectives-", dir=out.parent))
    try:
        batches, schemas = crossrank.spill_batches(ranks, scratch, registry)
        del ranks
        release_freed_memory()
        step("spill")
        rows = crossrank.write_batches(batches, schemas, out, no_lists=not len(registry))
        crossrank.write_members(registry, crossrank.members_path(out))
        step("write")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return rows


def _no_inference() -> None:
    """Group inference replaced by a stub that decides nothing (measurement only: outputs differ)."""
    import numpy as np
    import pandas as pd

    import tracekit.parallel.groups as groups

    def undecided(calls: Any, todo: Any, candidates: Any, tolerance_ns: int = 0) -> pd.DataFrame:
        rows = pd.Index(todo)
        why, none = np.empty(len(todo), dtype=object), np.empty(len(todo), dtype=object)
        why.fill("undecided: inference not run (bench stub)")
        none.fill([])
        return pd.DataFrame({"group": np.full(len(todo), -1, dtype=np.int64), "group_from": pd.Series(why, index=rows),
                             "candidates": pd.Series(none, index=rows)}, index=rows)

    groups.infer_call_groups = undecided


def child(folder: Path, n: int, trace_python: bool, by_phase: bool = False, stub: bool = False) -> None:
    import resource
    import time
    import tracemalloc

    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    import tracekit.parallel.crossrank as crossrank
    import tracekit.writers.collectives  # noqa: F401  (imported before the start: its pages are not the stage's)
    from tracekit.memory import release_freed_memory

    if stub:
        _no_inference()
    distributed = [{"backend": "nccl", "rank": 0, "world_size": n}]
    out = folder.parent / f"collectives-{n}.parquet"
    # warm-up on 8 ranks' worth of partitions: imports and first-use caches before the measured run
    warm = folder.parent / "warm"
    if not warm.exists():
        synthetic_parts(sorted(folder.glob("rank=*/part-*"))[:8], 8, warm)
    crossrank.write_collectives_from_parts(warm, [{"world_size": 8}], folder.parent / "warm.parquet")
    release_freed_memory()
    if trace_python:
        tracemalloc.start()
    start = _status()
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    cpu0 = time.process_time()
    phases: dict[str, float] = {}
    if by_phase:
        rows = _phases(crossrank, folder, distributed, out, start["VmRSS"], phases)
    else:
        rows = crossrank.write_collectives_from_parts(folder, distributed, out)
    cpu = time.process_time() - cpu0
    end = _status()
    peak = max([end["VmHWM"] - start["VmRSS"], *phases.values()])
    result = {"ranks": n, "rows": rows, "rss_start_mb": start["VmRSS"], "peak_mb": start["VmRSS"] + peak,
              "peak_above_start_mb": peak, "rss_end_mb": end["VmRSS"], "cpu_s": cpu,
              "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB}
    result.update({f"{name}_peak_above_start_mb": value for name, value in phases.items()})
    if trace_python:
        _cur, peak = tracemalloc.get_traced_memory()
        result["python_peak_mb"] = peak / MB
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, nargs="+", default=[64, 512, 4096])
    parser.add_argument("--source", type=Path, default=SHARED / "gpu" / "param_dlrm_8ranks")
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--phases", action="store_true",
                        help="also the peak of each step: label (narrow table + inference), spill, write")
    parser.add_argument("--no-inference", action="store_true",
                        help="group inference replaced by a stub that decides nothing (what the rest costs)")
    parser.add_argument("--repeat", type=int, nargs="+", default=[1],
                        help="each rank's calls this many times, shifted in time (calls per rank x K)")
    parser.add_argument("--work", type=Path, default=None, help="keep the partitions here (default: a temp dir)")
    parser.add_argument("--child", nargs=2, metavar=("FOLDER", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), int(args.child[1]), args.tracemalloc, args.phases, args.no_inference)
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="crossrank-memory-"))
    try:
        parts = source_parts(args.source, work / "source")
        rows = []
        for n, k in itertools.product(args.ranks, args.repeat):
            folder = work / (f"ranks{n}" if k == 1 else f"ranks{n}x{k}") / "calls"
            if not folder.exists():
                synthetic_parts(parts, n, folder, k)
            cmd = ([sys.executable, __file__, "--child", str(folder), str(n)] + (["--tracemalloc"] * args.tracemalloc)
                   + (["--phases"] * args.phases) + (["--no-inference"] * args.no_inference))
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                raise SystemExit(f"child failed for {n} ranks:\n{proc.stderr[-3000:]}")
            row = json.loads(line.removeprefix("RESULT "))
            row["repeat"] = k
            rows.append(row)
            print(f"{n:6d} ranks{f' x{k}' if k > 1 else ''}, {row['rows']:7d} calls: peak {row['peak_mb']:7.1f} MB "
                  f"(+{row['peak_above_start_mb']:5.1f} above the start {row['rss_start_mb']:.1f}), end "
                  f"{row['rss_end_mb']:.1f} MB" + (f", python peak {row['python_peak_mb']:.2f} MB"
                                                   if "python_peak_mb" in row else "") + f", {row['cpu_s']:.2f} s"
                  + "".join(f", {k.split('_')[0]} +{row[k]:.1f}" for k in row if k.endswith("_peak_above_start_mb")
                            and k != "peak_above_start_mb"), flush=True)
        for a, b in itertools.pairwise(rows):
            calls = b["rows"] - a["rows"]
            per = {k: (b[k] - a[k]) * MB / calls for k in a if k.endswith(("peak_above_start_mb", "python_peak_mb"))}
            text = ", ".join(f"{k} {v:.0f} B a call" for k, v in per.items())
            times = [f" x{r['repeat']}" if r.get("repeat", 1) > 1 else "" for r in (a, b)]
            print(f"  {a['ranks']}{times[0]} -> {b['ranks']}{times[1]} ranks: {text}")
        if args.json:
            args.json.write_text(json.dumps({"rows": rows}, indent=1))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
