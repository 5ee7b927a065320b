"""Size sweep: every command as a whole process, against orjson.loads and HTA's loader in the same run.

Usage::

    .venv/bin/python bench/sweep.py [--sizes 50 500 1000] [--repeat 1] [--hta-python bench/.venv-hta/bin/python]
                                    [--hta-max-mb 600] [--json bench/results_sweep.json] [--work /tmp/tracekit-sweep]

For each size, bench/scale.py makes a synthetic trace of that many MB from v100_large (ids kept
unique). Each measurement is one fresh child process, interpreter start-up and imports included (what
a user waits for): wall seconds, CPU seconds (user + system of the child, steadier than wall on a
shared machine) and peak RSS (ru_maxrss from wait4, the child alone). Measurements run round-robin
`--repeat` times; the table shows the median. Small real traces (bert-small H100, owlv2 H100) and
compare/merge of small traces are measured too. Ratios are to `orjson.loads` of the same file, read
from disk in the same kind of child (`python -c pass` gives the interpreter start-up alone).

HTA (HolisticTraceAnalysis, `TraceAnalysis(trace_dir=...)`) runs from its own venv (see
BENCHMARKS.md); it is skipped above --hta-max-mb because its pandas frame of a 1 GB trace needs more
memory than this shared machine should give one process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "traces"
PY = sys.executable
TRACEKIT = str(Path(PY).parent / "tracekit")
SMALL = {
    "bert-small (H100, 1 MB)": SHARED / "gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz",
    "owlv2 (H100, 56 MB)": SHARED / "gpu/tracelens/h100/google_owlv2-large-patch14-ensemble__1016001.json.gz",
}
ORJSON = ("import gzip, orjson, sys\nfor path in sys.argv[1:]:\n    raw = open(path, 'rb').read()\n"
          "    orjson.loads(gzip.decompress(raw) if raw[:2] == b'\\x1f\\x8b' else raw)")
HTA = ("import logging, sys; logging.disable(logging.CRITICAL); from hta.trace_analysis import TraceAnalysis; "
       "TraceAnalysis(trace_dir=sys.argv[1])")


def run(cmd: list[str]) -> dict:
    """One child: wall s, CPU s (user + sys), peak RSS MB, exit code."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss * 1024 / 1e6,
            "rc": proc.returncode}


def commands(trace: Path, work: Path, hta_python: str | None, hta_dir: Path | None) -> dict[str, list[str]]:
    out = work / "out"
    cmds = {
        "python start-up": [PY, "-c", "pass"],
        "orjson.loads": [PY, "-c", ORJSON, str(trace)],
        "tracekit convert": [TRACEKIT, "convert", str(trace), "-o", str(out / "convert")],
        "tracekit convert --no-parquet": [TRACEKIT, "convert", str(trace), "-o", str(out / "np"), "--no-parquet"],
        "tracekit info": [TRACEKIT, "info", "--json", str(trace)],
        "tracekit modules": [TRACEKIT, "modules", "--format", "csv", str(trace), "-o", str(out / "m.csv")],
    }
    if hta_python and hta_dir:
        cmds["HTA TraceAnalysis"] = [hta_python, "-c", HTA, str(hta_dir)]
    return cmds


def measure(label: str, trace: Path, work: Path, repeat: int, hta_python: str | None, with_hta: bool,
            extra: dict[str, list[str]] | None = None, only: list[str] | None = None) -> dict:
    hta_dir = None
    if with_hta and hta_python:
        hta_dir = work / f"hta-{trace.stem}"
        hta_dir.mkdir(exist_ok=True)
        link = hta_dir / trace.name
        if not link.exists():
            link.symlink_to(trace)
    cmds = commands(trace, work, hta_python, hta_dir) | (extra or {})
    if only is not None:
        cmds = {k: v for k, v in cmds.items() if k in only or k in ("python start-up", "orjson.loads")}
    samples: dict[str, list[dict]] = {name: [] for name in cmds}
    for _ in range(repeat):
        for name, cmd in cmds.items():
            shutil.rmtree(work / "out", ignore_errors=True)
            (work / "out").mkdir()
            samples[name].append(run(cmd))
            print(f"  {label} | {name}: {samples[name][-1]}", file=sys.stderr, flush=True)
    raw_bytes = _raw_size(trace)
    result = {"label": label, "trace": str(trace), "raw_mb": raw_bytes / 1e6, "rows": {}}
    for name, runs in samples.items():
        result["rows"][name] = {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu", "rss_mb")}
        result["rows"][name]["rc"] = max(r["rc"] for r in runs)
    return result


def _raw_size(trace: Path) -> int:
    if trace.suffix == ".gz":
        import gzip

        with gzip.open(trace) as fh:
            return sum(len(b) for b in iter(lambda: fh.read(1 << 24), b""))
    return trace.stat().st_size


def table(result: dict) -> str:
    rows = result["rows"]
    floor = rows["orjson.loads"]
    start = rows["python start-up"]
    lines = [f"**{result['label']}**: raw {result['raw_mb']:.0f} MB", "",
             "| command | wall s | CPU s | × orjson (wall) | × orjson (CPU) | peak RSS MB | RSS / raw |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        bad = "" if r["rc"] == 0 else f" (exit {r['rc']})"
        lines.append(f"| {name}{bad} | {r['wall']:.2f} | {r['cpu']:.2f} | {r['wall'] / floor['wall']:.2f}× | "
                     f"{r['cpu'] / floor['cpu']:.2f}× | {r['rss_mb']:.0f} | {r['rss_mb'] / result['raw_mb']:.2f}× |")
    lines.append(f"\n(python start-up alone: {start['wall']:.2f} s wall, {start['rss_mb']:.0f} MB)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=float, nargs="*", default=[50, 500, 1000], help="synthetic sizes in MB")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--hta-python", default=str(REPO / "bench/.venv-hta/bin/python"))
    ap.add_argument("--hta-max-mb", type=float, default=600)
    ap.add_argument("--no-small", action="store_true", help="skip the small real traces and compare/merge")
    ap.add_argument("--json", default=None, help="write the results here (rewritten after each trace)")
    ap.add_argument("--only-large", nargs="*", default=None, metavar="COMMAND",
                    help="at sizes of 1 GB and more, run only these commands (e.g. 'orjson.loads' 'tracekit info')")
    ap.add_argument("--work", default=None, help="folder for the synthetic traces (kept between runs)")
    args = ap.parse_args(argv)
    hta = args.hta_python if Path(args.hta_python).exists() else None
    work = Path(args.work or tempfile.mkdtemp(prefix="tracekit-sweep-"))
    work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(REPO / "bench"))
    from scale import scale

    results = []
    if not args.no_small:
        gpt = SHARED / "cpu/gpt"
        other = SHARED / "gpu/tracelens/h100/Falconsai_nsfw_image_detection__1016002.json.gz"
        both = [str(SMALL["bert-small (H100, 1 MB)"]), str(other)]
        merged = [str(gpt / "viz_both.json"), str(gpt / "prof_both.json")]
        pair = {
            "tracekit compare (bert-small vs Falconsai)": [TRACEKIT, "compare", *both, "-o", str(work / "out/cmp")],
            "orjson.loads of both compare inputs": [PY, "-c", ORJSON, *both],
            "tracekit merge (gpt viz + torch, 8.6 MB)": [TRACEKIT, "merge", *merged, "-o", str(work / "out/m.json")],
            "orjson.loads of both merge inputs": [PY, "-c", ORJSON, *merged],
        }
        for label, trace in SMALL.items():
            results.append(measure(label, trace, work, max(args.repeat, 3), hta, True,
                                   pair if label.startswith("bert") else None))
            _save(args.json, results)
    for size in args.sizes:
        trace = work / f"v100-{size:g}MB.json"
        if not trace.exists():
            scale(SHARED / "gpu/hta/v100_large.json.gz", size, trace)
        results.append(measure(f"v100_large scaled to {size:g} MB", trace, work, args.repeat, hta,
                               size <= args.hta_max_mb, only=args.only_large if size >= 1000 else None))
        _save(args.json, results)
    for result in results:
        print(table(result) + "\n")
    return 0


def _save(path: str | None, results: list[dict]) -> None:
    if path:
        Path(path).write_text(json.dumps({"machine": _machine(), "results": results}, indent=2))


def _machine() -> dict:
    import platform

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    mem = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), "0")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem_gb": round(int(mem) / 1e6, 1),
            "python": platform.python_version(), "commit": commit.strip(), "load_avg_at_end": os.getloadavg()}


if __name__ == "__main__":
    sys.exit(main())
