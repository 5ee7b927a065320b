"""Peak RSS and CPU of `tracekit convert` / `tracekit info` for two code versions, in the same run.

Usage::

    .venv/bin/python bench/peak_rss.py --code old=/path/to/old/.venv/bin/python \
        --code new=.venv/bin/python [--repeat 2] [--json OUT] TRACE ...

Each measurement is one fresh child process (the venv's `tracekit` script, interpreter start-up and
imports included); CPU is user + sys and peak RSS is ru_maxrss, both from wait4 (the child and the
decode process it forks: ru_maxrss is the larger of the two). The import baseline is a child that
only imports what convert imports (`tracekit.cli` and `tracekit.convert`). Versions and commands run
round-robin, `--repeat` times; the table shows medians, and the peak above the import baseline as a
multiple of the decompressed (raw) size of the trace.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

IMPORTS = "import tracekit.cli, tracekit.convert, tracekit.info"


def raw_size(path: Path) -> int:
    """Decompressed size (streamed: the file is never held whole)."""
    with path.open("rb") as fh:
        if fh.read(2) != b"\x1f\x8b":
            return path.stat().st_size
    total = 0
    with gzip.open(path, "rb") as fh:
        while block := fh.read(1 << 24):
            total += len(block)
    return total


def run(cmd: list[str], env: dict, cwd: Path | None = None) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode(errors="replace")[-300:]
    proc.stderr.close()
    return {"wall": time.perf_counter() - t0, "cpu": usage.ru_utime + usage.ru_stime,
            "rss_mb": usage.ru_maxrss * 1024 / 1e6, "rc": os.waitstatus_to_exitcode(status), "err": err}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("traces", nargs="+")
    ap.add_argument("--code", action="append", required=True, help="LABEL=PYTHON (a venv's python)")
    ap.add_argument("--commands", nargs="+", default=["convert", "info"])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    codes = {label: os.path.abspath(py) for label, py in (c.split("=", 1) for c in args.code)}  # not resolved: a venv
    env = dict(os.environ)
    work = Path(tempfile.mkdtemp(prefix="tracekit-peak-"))
    results = {"codes": codes, "traces": {}}
    try:
        base = {label: [] for label in codes}
        for _ in range(max(args.repeat, 1)):
            for label, py in codes.items():
                # in an empty folder: `python -c` puts the working folder first on sys.path, and a checkout
                # there would be imported instead of the venv's code
                result = run([py, "-c", IMPORTS], env, cwd=work)
                if result["rc"] != 0:
                    raise SystemExit(f"{label}: the import baseline failed: {result['err']}")
                base[label].append(result)
        results["imports"] = {k: {m: statistics.median(r[m] for r in v) for m in ("cpu", "rss_mb")}
                              for k, v in base.items()}
        for trace in map(Path, args.traces):
            raw = raw_size(trace)
            rows: dict[str, list] = {}
            for _ in range(max(args.repeat, 1)):
                for command in args.commands:
                    for label, py in codes.items():
                        cli = [str(Path(py).parent / "tracekit"), command, str(trace)]
                        if command == "convert":
                            cli += ["-o", str(work / f"out-{label}")]
                        result = run(cli, env)
                        if result["rc"] != 0:
                            print(f"{label} {command} {trace.name}: exit {result['rc']}: {result['err']}")
                        rows.setdefault(f"{command}|{label}", []).append(result)
                        shutil.rmtree(work / f"out-{label}", ignore_errors=True)
            table = {}
            for key, runs in rows.items():
                command, label = key.split("|")
                med = {m: statistics.median(r[m] for r in runs) for m in ("wall", "cpu", "rss_mb")}
                above = med["rss_mb"] - results["imports"][label]["rss_mb"]
                med["above_imports_x_raw"] = above * 1e6 / raw
                med["runs"] = [{m: r[m] for m in ("wall", "cpu", "rss_mb")} for r in runs]
                table[key] = med
            results["traces"][str(trace)] = {"raw_bytes": raw, "file_bytes": trace.stat().st_size, "rows": table}
            print(f"\n{trace.name}: raw {raw / 1e6:.0f} MB (file {trace.stat().st_size / 1e6:.0f} MB)")
            print("| command | code | CPU s | peak RSS MB | above imports / raw |")
            for key, med in table.items():
                command, label = key.split("|")
                print(f"| {command} | {label} | {med['cpu']:.2f} | {med['rss_mb']:.0f} | "
                      f"{med['above_imports_x_raw']:.2f}x |")
        print("imports:", {k: round(v["rss_mb"]) for k, v in results["imports"].items()}, "MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
