"""convert and info against orjson.loads on the large real traces: wall and CPU ratios in one run.

Usage::

    .venv/bin/python bench/floor.py [--repeat 3] [--json OUT] [TRACE ...]

Each measurement is one fresh process (interpreter start-up and imports included), run round-robin
`--repeat` times; the median is shown. Wall time shows what running stages side by side on two cores
gains; CPU time (user + sys of the child) is the work done, steadier on a shared machine; the main thread's CPU
(convert: bench/critical.py in-process; info: the CLI itself, with its gunzip-ahead and decode processes beside
it) is the idle two-core wall estimate. Without TRACE: v100_large, mtia_rank_0_large and the owlv2 H100 trace.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep import ORJSON, PY, SHARED, TRACEKIT, _raw_size, run

DEFAULT = [SHARED / "gpu/hta/v100_large.json.gz", SHARED / "gpu/hta/mtia_rank_0_large.json.gz",
           SHARED / "gpu/tracelens/h100/google_owlv2-large-patch14-ensemble__1016001.json.gz"]


CRITICAL = str(Path(__file__).resolve().parent / "critical.py")


def commands(trace: Path, out: Path) -> dict[str, list[str]]:
    return {
        "orjson.loads": [PY, "-c", ORJSON, str(trace)],
        "tracekit convert": [TRACEKIT, "convert", str(trace), "-o", str(out / "convert")],
        "tracekit info": [TRACEKIT, "info", "--json", str(trace), "-o", str(out / "info.json")],
    }


# `tracekit info` in a child that prints its main thread's CPU at exit: with the gunzip-ahead process and the decode
# child beside it, that is the idle two-core wall estimate (critical.py, in-process, cannot start the ahead process)
INFO_MAIN = ("import atexit, sys, time; "
             "atexit.register(lambda: sys.stderr.write(f'MAIN {time.thread_time():.4f}\\n')); "
             "from tracekit.cli import main; sys.argv[0] = 'tracekit'; main()")


def info_main_thread(trace: Path, out: Path) -> dict:
    """Main-thread CPU of the `tracekit info` CLI (interpreter start and imports included), as critical() gives it."""
    cmd = [PY, "-c", INFO_MAIN, "info", "--json", str(trace.resolve()), "-o", str(out / "info-main.json")]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=tempfile.gettempdir())
    said = [line.split()[1] for line in done.stderr.splitlines() if line.startswith("MAIN ")]
    return {"imports_cpu": 0.0, "main_thread_cpu": float(said[-1]), "threads_cpu": float(said[-1]), "child_cpu": 0.0}


def critical(trace: Path, command: str) -> dict:
    """bench/critical.py in a child: imports + main-thread CPU (the idle two-core wall estimate)."""
    done = subprocess.run([PY, CRITICAL, str(trace), command], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("traces", nargs="*", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tracekit-floor-"))
    results = []
    try:
        for trace in args.traces or DEFAULT:
            cmds = commands(trace, work / "out")
            samples: dict[str, list[dict]] = {k: [] for k in cmds}
            for _ in range(args.repeat):
                for name, cmd in cmds.items():
                    shutil.rmtree(work / "out", ignore_errors=True)
                    (work / "out").mkdir()
                    samples[name].append(run(cmd))
            rows = {k: {m: statistics.median(r[m] for r in v) for m in ("wall", "cpu", "rss_mb")} | {
                "rc": max(r["rc"] for r in v)} for k, v in samples.items()}
            for command in ("convert", "info"):
                crit = [critical(trace, command) if command == "convert" else info_main_thread(trace, work)
                        for _ in range(args.repeat)]
                rows[f"tracekit {command}"]["critical"] = {
                    k: statistics.median(c[k] for c in crit) for k in crit[0]}
            raw_mb = _raw_size(trace) / 1e6
            results.append({"trace": str(trace), "raw_mb": raw_mb, "rows": rows})
            floor = rows["orjson.loads"]
            print(f"{trace.name} ({raw_mb:.0f} MB raw)")
            for name, r in rows.items():
                print(f"  {name:<18} wall {r['wall']:6.2f} s ({r['wall'] / floor['wall']:.2f}x)  cpu {r['cpu']:6.2f} s "
                      f"({r['cpu'] / floor['cpu']:.2f}x)  rss {r['rss_mb']:6.0f} MB ({r['rss_mb'] / raw_mb:.2f}x raw)"
                      + ("" if r["rc"] == 0 else f"  EXIT {r['rc']}"), flush=True)
                if "critical" in r:
                    c = r["critical"]
                    path = c["imports_cpu"] + c["main_thread_cpu"]
                    print(f"    main thread (imports + work) {path:6.2f} s CPU ({path / floor['cpu']:.2f}x), "
                          f"other threads {c['threads_cpu'] - c['main_thread_cpu']:.2f} s, "
                          f"decode child {c['child_cpu']:.2f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
