"""Run `tracekit convert` once under cProfile and print the top functions.

Usage::

    .venv/bin/python bench/profile_convert.py [TRACE] [--top 25] [--no-parquet] [--save OUT.prof]

TRACE defaults to ../shared/traces/gpu/hta/mtia_rank_0_large.json.gz (relative to the repo root).
Prints the top functions by cumulative time and by total (own) time. Save the raw stats with
--save and browse them with e.g. ``python -m pstats OUT.prof`` or snakeviz.
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Profile tracekit convert with cProfile.")
    ap.add_argument("trace", nargs="?", default=str(DEFAULT_TRACE), help="trace file to convert")
    ap.add_argument("--top", type=int, default=25, help="how many functions to list per ordering")
    ap.add_argument("--no-parquet", action="store_true", help="convert with parquet=False")
    ap.add_argument("--save", default=None, help="also dump the raw pstats to this file")
    args = ap.parse_args(argv)

    trace = Path(args.trace).resolve()
    if not trace.is_file():
        ap.error(f"trace not found: {trace}")

    from tracekit.convert import convert  # imported outside the profile

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
