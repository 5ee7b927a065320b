"""Check that a change keeps `tracekit info` output identical (JSON and table, stderr and exit code).

Usage::

    .venv/bin/python bench/info_golden.py save OUTDIR       # run info with the current code
    .venv/bin/python bench/info_golden.py compare OUTDIR    # run again, compare with OUTDIR

Inputs: every trace under ../shared/traces (files, torch_npu folders and .db files) and sample_traces/, plus
the damaged copies that tests/fuzz_inputs.py makes (seed 7: truncations, byte flips, type changes, bad UTF-8,
gzip damage, B/E events, damaged Ascend output), each alone, and a few multi-file inputs. Every input runs in a
fresh process (`tracekit info ...`), so the comparison also covers what the process prints to
stderr (warnings) and its exit code. Not a test: a manual tool for refactors of the info path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "traces"
WORK = Path("/tmp/tracekit_info_golden_inputs")


def inputs() -> list[list[str]]:
    """The argument lists (inputs only) info is run on."""
    sys.path.insert(0, str(REPO / "tests"))
    from fuzz_inputs import all_cases

    found: list[list[str]] = []
    for root in (SHARED, REPO / "sample_traces"):
        for p in sorted(root.rglob("*")):
            if _is_input(p):
                found.append([str(p)])
    found.append([str(SHARED / "cpu/dist_tp_ddp")])
    found.append([str(SHARED / "gpu/param_dlrm_8ranks")])
    found.append([str(REPO / "sample_traces/gpt/viz_both.json.gz"), str(REPO / "sample_traces/gpt/prof_both.json.gz")])
    shutil.rmtree(WORK, ignore_errors=True)
    for case in all_cases(WORK, seed=7, n_random=60):
        argv = case.argv
        if not argv or argv[0] not in ("convert", "info", "modules"):
            continue
        args, skip = [], False
        for a in argv[1:]:
            if skip:
                skip = False
                continue
            if a in ("-o", "--out", "--max-input-bytes"):
                skip = True
                continue
            if a.startswith("-") or "{out}" in a:
                continue
            args.append(a)
        if args and not any("fifo" in a for a in args):
            found.append(args)
    unique, seen = [], set()
    for args in found:
        if tuple(args) not in seen:
            seen.add(tuple(args))
            unique.append(args)
    return unique


def _is_input(p: Path) -> bool:
    """A trace file (not one of torch_npu's side files) or a torch_npu output folder."""
    if p.is_dir():
        return p.name.endswith("_ascend_pt")
    side = ("run_log.json", "profiler_info", "profiler_metadata", "communication")
    return (p.name.endswith((".json", ".json.gz", ".db")) and not any(k in p.name for k in side)
            and "cluster_analysis_output" not in str(p))


def run_one(args: list[str]) -> dict:
    out = {}
    for fmt in ("json", "table"):
        cmd = [sys.executable, "-c", "from tracekit.cli import main; main(prog_name='tracekit')", "info",
               "--format", fmt, "--max-input-bytes", "64M", *args]
        env = {"COLUMNS": "200", "PATH": "/usr/bin"}
        if os.environ.get("PYTHONPATH"):  # e.g. a copy of the code before the change, for `save`
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd="/tmp", env=env)
        out[fmt] = {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}
    return out


def collect() -> dict[str, dict]:
    cases = inputs()
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run_one, cases))
    return {" ".join(a): r for a, r in zip(cases, results)}


def main() -> int:
    mode, outdir = sys.argv[1], Path(sys.argv[2])
    results = collect()
    if mode == "save":
        outdir.mkdir(parents=True, exist_ok=True)
        (outdir / "info_golden.json").write_text(json.dumps(results, indent=1))
        print(f"saved {len(results)} inputs")
        return 0
    ref = json.loads((outdir / "info_golden.json").read_text())
    bad = 0
    for key, want in ref.items():
        got = results.get(key)
        if got != want:
            bad += 1
            print(f"DIFF {key}")
            for fmt in ("json", "table"):
                for part in ("rc", "stdout", "stderr"):
                    if got is None or got[fmt][part] != want[fmt][part]:
                        now = got and got[fmt][part]
                        print(f"  {fmt}.{part}: was {str(want[fmt][part])[:300]!r}\n  now {str(now)[:300]!r}")
    print(f"{len(ref) - bad} of {len(ref)} inputs identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
