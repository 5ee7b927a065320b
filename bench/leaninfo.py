"""`tracekit info` on raw traces against orjson.loads, with the code before a change as a second baseline.

Usage::

    .venv/bin/python bench/leaninfo.py [--before PYTHONPATH] [--repeat 5] [--json OUT] [TRACE ...]

Each measurement is one fresh process (interpreter start-up and imports included), the commands run
round-robin `--repeat` times, medians shown: wall seconds and CPU seconds (user + sys of the child and its
decode process) and the ratio of each to `orjson.loads` of the same file measured in the same round, and the CPU of
info's main thread alone (its idle two-core wall estimate; orjson's is its CPU). With
`--before`, `tracekit info` also runs with that PYTHONPATH first (a copy of the code before the change, laid
out as an importable `tracekit` package), so both versions meet the same machine load. The load average is
printed before and after: on a shared machine, wall ratios hold only while it stays low; CPU ratios are
steadier. Without TRACE: the small bert-small H100 trace, v100_large, mtia_rank_0_large and the owlv2 H100 trace.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep import ORJSON, PY, SHARED, _raw_size

DEFAULT = [SHARED / "gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz",
           SHARED / "gpu/hta/v100_large.json.gz", SHARED / "gpu/hta/mtia_rank_0_large.json.gz",
           SHARED / "gpu/tracelens/h100/google_owlv2-large-patch14-ensemble__1016001.json.gz"]
# The main thread's CPU is printed at exit: on an idle two-core machine the wall time is about that (the decode child
# and the gunzip-ahead process run beside it), a lower bound that a loaded machine does not stretch.
INFO = ("import atexit, sys, time; atexit.register(lambda: sys.stderr.write(f'MAIN {time.thread_time():.4f}\\n')); "
        "from tracekit.cli import main; sys.argv[0] = 'tracekit'; main()")


def run(cmd: list[str], env: dict[str, str]) -> dict:
    """One child: wall s, CPU s (user + sys, its children included), main-thread CPU s (where it prints it, else
    the CPU), exit code."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tempfile.gettempdir(),
                            env=env)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    _, status, usage = os.wait4(proc.pid, 0)
    cpu = usage.ru_utime + usage.ru_stime
    said = [line.split()[1] for line in err.splitlines() if line.startswith("MAIN ")]
    return {"wall": time.perf_counter() - t0, "cpu": cpu, "main": float(said[-1]) if said else cpu,
            "rc": os.waitstatus_to_exitcode(status)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("traces", nargs="*", type=Path)
    ap.add_argument("--before", default=None, help="PYTHONPATH of the code before the change")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    envs = {"orjson.loads": env, "info": env}
    if args.before:
        envs["info (before)"] = env | {"PYTHONPATH": args.before}
    load_start = os.getloadavg()
    print(f"load average at start: {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}", flush=True)
    results = []
    for trace in args.traces or DEFAULT:
        cmds = {"orjson.loads": [PY, "-c", ORJSON, str(trace)],
                "info": [PY, "-c", INFO, "info", "--json", str(trace)]}
        if args.before:
            cmds["info (before)"] = cmds["info"]
        samples: dict[str, list[dict]] = {k: [] for k in cmds}
        for _ in range(args.repeat):
            for name, cmd in cmds.items():
                samples[name].append(run(cmd, envs[name]))
        rows = {k: {m: statistics.median(r[m] for r in v) for m in ("wall", "cpu", "main")}
                | {"rc": max(r["rc"] for r in v)} for k, v in samples.items()}
        raw_mb = _raw_size(trace) / 1e6
        results.append({"trace": str(trace), "raw_mb": raw_mb, "rows": rows, "load": os.getloadavg()})
        floor = rows["orjson.loads"]
        print(f"{trace.name} ({raw_mb:.1f} MB raw)")
        for name, r in rows.items():
            failed = "" if r["rc"] == 0 else f"  EXIT {r['rc']}"
            print(f"  {name:<14} wall {r['wall']:6.2f} s ({r['wall'] / floor['wall']:.2f}x)  "
                  f"cpu {r['cpu']:6.2f} s ({r['cpu'] / floor['cpu']:.2f}x)  "
                  f"main thread {r['main']:6.2f} s ({r['main'] / floor['cpu']:.2f}x){failed}", flush=True)
    load_end = os.getloadavg()
    print(f"load average at end: {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"load_start": load_start, "load_end": load_end, "results": results},
                                              indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
