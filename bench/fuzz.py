"""Longer fuzz run for before releases: `python bench/fuzz.py --cases 500 [--seed 1] [--jobs 2]`.

Runs the fixed classes of tests/test_fuzz.py plus N seeded random mutations (truncations, byte flips,
type changes) of the shared traces, each case in its own process, and prints every case that breaks a
promise (exit 0 with `conserved`, or exit 2 naming the file; no traceback; peak RSS under the bound;
nothing left beside the output). Exit status 1 if any case does.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzz_inputs import all_cases
from fuzz_run import problems, run_cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200, help="random mutations on top of the fixed classes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (inputs and outputs)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tracekit-fuzz-"))
    start = time.monotonic()
    try:
        cases = all_cases(work / "in", args.seed, args.cases)
        outs = [work / "runs" / f"case{i}" / "out" for i in range(len(cases))]
        results, baseline = run_cases(cases, outs, jobs=args.jobs)
        failed = 0
        for r in results:
            found = problems(r, baseline)
            if found:
                failed += 1
                last = r.stderr.strip().splitlines()[-1:] or [""]
                print(f"FAIL {r.case.name}: exit {r.rc}, {found}; {last[0][:300]}")
        outcomes = Counter(r.rc for r in results)
        peak = max((r.peak_rss for r in results), default=0)
        print(f"{len(results)} cases (seed {args.seed}) in {time.monotonic() - start:.0f} s: exit 0: {outcomes[0]}, "
              f"exit 2: {outcomes[2]}, other: {sum(v for k, v in outcomes.items() if k not in (0, 2))}; "
              f"{failed} broke a promise; peak RSS {peak >> 20} MB (import baseline {baseline >> 20} MB)")
        return 1 if failed else 0
    finally:
        if args.keep:
            print(f"work folder: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
