"""Run `tracekit convert` once under cProfile and print the top functions.

Usage::

    .venv/bin/python bench/profile_convert.py [TRACE] [--top 25] [--no-parquet] [--save OUT.prof]

TRACE defaults to ../shared/traces/gpu/hta/mtia_rank_0_large.json.gz (relative to the repo root).
Prints the top functions by cumulative time and by total (own) time. Save the raw stats with
--save and browse them with e.g. ``python -m pstats OUT.prof`` or snakeviz.

With --stages it instead runs convert once WITHOUT the profiler and prints, for each progress step
of convert (reading, call tree/links, chrome trace, parquet + summary), the wall time, the process
VmRSS when the step began and the step's own peak (VmHWM is reset at each step through
/proc/self/clear_refs): a cheap view of which stage sets the peak RSS.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TRACE = REPO / "../shared/traces/gpu/hta/mtia_rank_0_large.json.gz"


def _mem_mb() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MB (10^6 bytes); zeros where /proc is unavailable."""
    vals = {"VmRSS:": 0.0, "VmHWM:": 0.0}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                key = line.split(":", 1)[0] + ":"
                if key in vals:
                    vals[key] = int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return vals["VmRSS:"], vals["VmHWM:"]


def _reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux: write 5 to /proc/self/clear_refs); ignored elsewhere."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def stages(convert, trace: Path, parquet: bool) -> int:
    marks: list[tuple[str, float, float, float]] = []

    def mark(msg: str) -> None:
        marks.append((msg, time.perf_counter(), *_mem_mb()))
        _reset_peak()

    tmp = tempfile.mkdtemp(prefix="tracekit-prof-")
    try:
        mark("start")
        convert([trace], Path(tmp) / "out", parquet=parquet, progress=mark)
        mark("done")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"trace: {trace}  (parquet={parquet})")
    print(f"{'stage (from this mark to the next)':<48} {'seconds':>8} {'RSS MB at start':>16} {'stage peak MB':>14}")
    for (msg, t, rss, _), nxt in zip(marks, [*marks[1:], None]):
        secs = f"{nxt[1] - t:8.3f}" if nxt else f"{'':8}"
        label = "final" if nxt is None else msg
        if label.startswith("reading "):
            label = "reading " + Path(label[len("reading ") :]).name
        label = label[:48]
        # VmHWM is reset at every mark, so the next mark's VmHWM is this stage's own peak.
        peak = f"{nxt[3]:14.0f}" if nxt else f"{'':14}"
        print(f"{label:<48} {secs} {rss:16.0f} {peak}")
    print(f"total {marks[-1][1] - marks[0][1]:.3f} s; peak RSS {max(m[3] for m in marks):.0f} MB")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Profile tracekit convert with cProfile.")
    ap.add_argument("trace", nargs="?", default=str(DEFAULT_TRACE), help="trace file to convert")
    ap.add_argument("--top", type=int, default=25, help="how many functions to list per ordering")
    ap.add_argument("--no-parquet", action="store_true", help="convert with parquet=False")
    ap.add_argument("--save", default=None, help="also dump the raw pstats to this file")
    ap.add_argument("--stages", action="store_true", help="per-stage wall time and RSS instead of cProfile")
    args = ap.parse_args(argv)

    trace = Path(args.trace).resolve()
    if not trace.is_file():
        ap.error(f"trace not found: {trace}")

    from tracekit.convert import convert  # imported outside the profile

    if args.stages:
        return stages(convert, trace, parquet=not args.no_parquet)

    tmp = tempfile.mkdtemp(prefix="tracekit-prof-")
    prof = cProfile.Profile()
    try:
        t0 = time.perf_counter()
        prof.enable()
        summary = convert([trace], Path(tmp) / "out", parquet=not args.no_parquet)
        prof.disable()
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"trace: {trace}")
    print(
        f"input events: {summary.get('input_events')}, written: {summary.get('written_events')}, "
        f"wall (under the profiler): {wall:.2f} s\n"
    )
    if args.save:
        prof.dump_stats(args.save)
        print(f"raw stats saved to {args.save}\n")
    stats = pstats.Stats(prof, stream=sys.stdout)
    stats.strip_dirs()
    print(f"==== top {args.top} by cumulative time ====")
    stats.sort_stats(pstats.SortKey.CUMULATIVE).print_stats(args.top)
    print(f"==== top {args.top} by total (own) time ====")
    stats.sort_stats(pstats.SortKey.TIME).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
