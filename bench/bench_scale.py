"""Scale benchmark: convert and parallel on 8, 64, 512 synthetic ranks, against orjson.loads of the same files.

Synthetic ranks are copies of the shared rank files (default: gpu/param_dlrm_8ranks) with the rank id rewritten
(distributedInfo.rank = i, world_size = N; file rank-i.json.gz). Every measurement runs in a FRESH child
interpreter (this script with --child); the child times the work alone (imports excluded): CPU seconds
(user + sys of the child and of the worker processes it waited for, from getrusage; the machine is shared, so
wall seconds stretch with the other load, CPU seconds much less) and wall seconds, and reports its own peak RSS
(ru_maxrss, VmHWM); the parent samples the RSS of the child's whole process tree (psutil, every 20 ms) for the
total peak (parent + worker processes). Ratios (x_orjson, per-rank growth) are of CPU seconds. Measurements per N:

* ``orjson``   - gunzip + orjson.loads of every file, one after the other (the JSON floor);
* ``convert``  - ``tracekit convert DIR -o OUT --workers W`` (trace, Parquet dataset, collectives, manifest);
* ``parallel_raw``     - ``tracekit parallel DIR --json`` on the raw files;
* ``parallel_dataset`` - ``tracekit parallel OUT --json`` on the dataset convert wrote.

Separately (--modules), ``tracekit modules`` on a dataset vs on the raw trace for the large shared traces: the
command in a child (its imports before the command excluded) and the whole cold CLI process (median CPU and wall).

Usage::

    .venv/bin/python bench/bench_scale.py [--ranks 8 64 512] [--workers 1] [--json OUT] [--modules]
        [--baseline-ref main]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "traces"
MB = 1_000_000


# ---------------------------------------------------------------------------------------------- child side


def _peaks() -> dict[str, float]:
    import resource

    hwm = None
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024 / MB
    return {"self_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB, "vm_hwm_mb": hwm}


def _cpu_s() -> float:
    """user + sys seconds of this process and of its children that ended (the pool's workers)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def child(mode: str, args: list[str]) -> None:
    import orjson

    from tracekit.cli import main

    if mode == "orjson":
        import orjson

        files = sorted(Path(args[0]).glob("*.json.gz"))
        cpu0, start = _cpu_s(), time.perf_counter()
        for f in files:
            with gzip.open(f, "rb") as fh:
                doc = orjson.loads(fh.read())
            del doc
        wall = time.perf_counter() - start
    else:
        cpu0, start = _cpu_s(), time.perf_counter()
        try:
            main(args, standalone_mode=False)
        except SystemExit as exc:
            if exc.code:
                raise
        wall = time.perf_counter() - start
    print("RESULT " + json.dumps({"wall_s": wall, "cpu_s": _cpu_s() - cpu0, **_peaks()}), file=sys.stderr)


# --------------------------------------------------------------------------------------------- parent side


def _tree_rss(proc) -> int:
    import psutil

    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def measure(mode: str, args: list[str]) -> dict:
    """Run one child; its own numbers plus the sampled peak RSS of its whole process tree."""
    import psutil

    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, *args]
    with open(os.devnull, "w") as null, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=null, stderr=err, cwd=REPO)
        ps, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                peak = max(peak, _tree_rss(ps))
            time.sleep(0.02)
        err.seek(0)
        text = err.read()
    if proc.returncode:
        raise RuntimeError(f"{mode} failed ({proc.returncode}): {text[-2000:]}")
    line = next(line for line in text.splitlines() if line.startswith("RESULT "))
    return {**json.loads(line.removeprefix("RESULT ")), "total_peak_mb": peak / MB,
            "load_avg_1min": os.getloadavg()[0]}  # the machine is shared: say how busy it was


def make_ranks(source: Path, n: int, folder: Path) -> int:
    """n rank files from the source rank files (round robin), rank ids rewritten; returns their gz bytes."""
    import orjson

    files = sorted(source.glob("*.json.gz"))
    if not files:
        raise SystemExit(f"{source}: no *.json.gz rank files (give --source)")
    docs = []
    for f in files:
        with gzip.open(f, "rb") as fh:
            docs.append(orjson.loads(fh.read()))
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for i in range(n):
        doc = docs[i % len(docs)]
        doc["distributedInfo"] = {**doc.get("distributedInfo", {}), "rank": i, "world_size": n}
        doc.pop("traceName", None)
        path = folder / f"rank-{i}.json.gz"
        path.write_bytes(gzip.compress(orjson.dumps(doc), compresslevel=1))
        total += path.stat().st_size
    return total


def run_scale(ranks: list[int], workers: int, source: Path, work: Path, raw_up_to: int | None = None,
              partial: Path | None = None, convert_only: bool = False) -> list[dict]:
    rows = []
    for n in ranks:
        folder, out = work / f"ranks{n}", work / f"out{n}"
        gz = make_ranks(source, n, folder)
        row = {"ranks": n, "input_gz_mb": gz / MB, "workers": workers}
        row["orjson"] = measure("orjson", [str(folder)])
        pool = ["--workers", str(workers)] if workers else []  # 0: the default (what a user gets)
        row["convert"] = measure("convert", ["convert", str(folder), "-o", str(out), *pool])
        if not convert_only and (raw_up_to is None or n <= raw_up_to):
            row["parallel_raw"] = measure("parallel", ["parallel", str(folder), "--json", *pool])
        if not convert_only:
            row["parallel_dataset"] = measure("parallel", ["parallel", str(out), "--json"])
        for key in [k for k in ("convert", "parallel_raw", "parallel_dataset") if k in row]:
            row[key]["x_orjson"] = row[key]["cpu_s"] / row["orjson"]["cpu_s"]
            row[key]["cpu_s_per_rank"] = row[key]["cpu_s"] / n
            row[key]["wall_x_orjson"] = row[key]["wall_s"] / row["orjson"]["wall_s"]
        rows.append(row)
        print(_line(row), flush=True)
        if partial:  # each finished row is kept even if a later, larger one is stopped
            partial.write_text(json.dumps({"scale": rows}, indent=1))
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
    return rows


def _line(row: dict) -> str:
    c, o = row["convert"], row["orjson"]
    pd_ = row.get("parallel_dataset", {"cpu_s": float("nan"), "x_orjson": float("nan"), "self_peak_mb": float("nan")})
    pr = row.get("parallel_raw", {"cpu_s": float("nan"), "x_orjson": float("nan")})
    return (f"{row['ranks']:>5} ranks (CPU s): orjson {o['cpu_s']:.2f} | convert {c['cpu_s']:.2f} "
            f"({c['x_orjson']:.1f}x, {c['cpu_s_per_rank'] * 1000:.0f} ms/rank, wall {c['wall_s']:.2f} s vs orjson "
            f"{o['wall_s']:.2f} s: {c['wall_x_orjson']:.1f}x, parent peak {c['self_peak_mb']:.0f} MB, "
            f"total peak {c['total_peak_mb']:.0f} MB) | parallel raw {pr['cpu_s']:.2f} ({pr['x_orjson']:.1f}x), "
            f"dataset {pd_['cpu_s']:.2f} ({pd_['x_orjson']:.1f}x, parent peak {pd_['self_peak_mb']:.0f} MB)")


def growth(rows: list[dict]) -> dict:
    """Time per rank of each row against the smallest row, normalised by orjson per rank of the same run (the
    issue's target: within 1.5x from 8 to 512 ranks), and the parent peak per rank above the smallest row."""
    if not rows:
        return {"lines": []}
    first, out, lines = rows[0], {}, []
    for row in rows[1:]:
        key = f"{first['ranks']}->{row['ranks']}"
        entry = {}
        for stage in ("convert", "parallel_raw", "parallel_dataset"):
            if stage in row and stage in first:
                entry[stage] = row[stage]["x_orjson"] / first[stage]["x_orjson"]
        entry["convert_parent_peak_mb_per_rank"] = ((row["convert"]["self_peak_mb"] - first["convert"]["self_peak_mb"])
                                                    / (row["ranks"] - first["ranks"]))
        out[key] = entry
        lines.append(f"time per rank {key}, normalised by orjson: " + ", ".join(
            f"{k} {v:.2f}x" for k, v in entry.items() if not k.endswith("per_rank")) +
            f"; convert parent peak {entry['convert_parent_peak_mb_per_rank']:+.3f} MB per rank")
    out["lines"] = lines
    return out


CLI = "import sys\nfrom tracekit.cli import main\nsys.argv[0] = 'tracekit'\nsys.exit(main())\n"


def cold_cli(args: list[str], tree: Path = REPO) -> dict:
    """The whole `tracekit ARGS` process as a user starts it (interpreter start, imports, work, exit): CPU seconds
    (user + sys from wait4, with the workers it waited for) and wall seconds. `tree`: the folder whose tracekit
    package runs (this checkout, or a baseline's extracted copy), byte-compiled beforehand (compile_tree)."""
    start = time.perf_counter()
    with open(os.devnull, "w") as null:
        proc = subprocess.Popen([sys.executable, "-P", "-c", CLI, *args], stdout=null, stderr=null, cwd=REPO,
                                env={**os.environ, "PYTHONPATH": str(tree)})
        _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"tracekit {' '.join(args)} failed ({proc.returncode})")
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "wall_s": wall, "peak_mb": usage.ru_maxrss * 1024 / MB}


def _median(values: list[float]) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def compile_tree(tree: Path) -> None:
    """Byte-compile a tree's tracekit package, as an installed package is (with PYTHONDONTWRITEBYTECODE set and no
    __pycache__, every cold run would compile the sources again: ~0.03-0.06 s of CPU)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "tracekit")], check=True,
                   capture_output=True)


def baseline_tree(ref: str, work: Path) -> Path:
    """The tracekit package of git REF, extracted under `work` and byte-compiled."""
    tree = work / "baseline"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", ref, "tracekit"], cwd=REPO, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    compile_tree(tree)
    return tree


def _cold_python(code: str) -> dict:
    """CPU and wall seconds of `python -c CODE` (this venv's interpreter), a fresh process."""
    start = time.perf_counter()
    with open(os.devnull, "w") as null:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=null, stderr=null)
        _pid, _status, usage = os.wait4(proc.pid, 0)
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "wall_s": time.perf_counter() - start}


def run_help(cold_repeat: int, baseline: Path | None) -> dict:
    """`tracekit --help` as a cold process (median of `cold_repeat`), this checkout and `baseline` alternating, and
    the bare interpreter (`python -c pass`) in the same rounds."""
    runs: dict[str, list[dict]] = {"help": [], "baseline_help": [], "python": []}
    for _ in range(cold_repeat):
        runs["help"].append(cold_cli(["--help"]))
        if baseline:
            runs["baseline_help"].append(cold_cli(["--help"], baseline))
        runs["python"].append(_cold_python("pass"))
    medians = {k: {m: _median([r[m] for r in v]) for m in ("cpu_s", "wall_s")} for k, v in runs.items() if v}
    print("tracekit --help cold CPU median: " + ", ".join(f"{k} {v['cpu_s']:.3f} s" for k, v in medians.items()),
          flush=True)
    return {"cold": medians, "cold_runs": runs, "baseline": str(baseline) if baseline else None}


def run_modules(traces: list[Path], work: Path, repeat: int, cold_repeat: int = 5,
                baseline: Path | None = None) -> list[dict]:
    """Per trace: `tracekit modules X --format csv` on the raw trace and on its dataset, (1) in a child that times
    the command without the child's own imports (best of `repeat`), (2) as a cold CLI process (median of
    `cold_repeat`, raw and dataset alternating, so both see the same load), plus `python -c "import
    pyarrow.parquet"` and `python -c pass` (the floors) and, with `baseline` (another tree's tracekit package), its
    cold dataset query of the same dataset (a tracekit before the module rows file ignores it) in the same
    rounds."""
    rows = []
    floor_cmd = [sys.executable, "-c", "import pyarrow.parquet"]
    for trace in (t.resolve() for t in traces):
        out = work / f"ds-{trace.name}"
        measure("convert", ["convert", str(trace), "-o", str(out)])
        raw = min((measure("modules", ["modules", str(trace), "--format", "csv"]) for _ in range(repeat)),
                  key=lambda r: r["wall_s"])
        ds = min((measure("modules", ["modules", str(out), "--format", "csv"]) for _ in range(repeat)),
                 key=lambda r: r["wall_s"])
        cold: dict[str, list[dict]] = {"raw": [], "dataset": [], "floor": [], "python": [], "baseline_dataset": [],
                                       "raw_table": [], "dataset_table": []}
        for _ in range(cold_repeat):
            cold["raw"].append(cold_cli(["modules", str(trace), "--format", "csv"]))
            cold["dataset"].append(cold_cli(["modules", str(out), "--format", "csv"]))
            # the default format (the terminal table; piped here, as in a script or `| less`)
            cold["raw_table"].append(cold_cli(["modules", str(trace)]))
            cold["dataset_table"].append(cold_cli(["modules", str(out)]))
            if baseline:
                cold["baseline_dataset"].append(cold_cli(["modules", str(out), "--format", "csv"], baseline))
            cold["python"].append(_cold_python("pass"))
            start = time.perf_counter()
            with open(os.devnull, "w") as null:
                proc = subprocess.Popen(floor_cmd, stdout=null, stderr=null)
                _pid, _status, usage = os.wait4(proc.pid, 0)
            cold["floor"].append({"cpu_s": usage.ru_utime + usage.ru_stime, "wall_s": time.perf_counter() - start})
        medians = {k: {m: _median([r[m] for r in v]) for m in ("cpu_s", "wall_s")} for k, v in cold.items() if v}
        name = str(trace.relative_to(SHARED.resolve())) if trace.is_relative_to(SHARED.resolve()) else trace.name
        row = {"trace": name, "raw": raw, "dataset": ds, "speedup": raw["wall_s"] / ds["wall_s"],
               "cold": medians, "cold_runs": cold,
               "cold_speedup_cpu": medians["raw"]["cpu_s"] / medians["dataset"]["cpu_s"],
               "cold_speedup_wall": medians["raw"]["wall_s"] / medians["dataset"]["wall_s"],
               "cold_speedup_cpu_table": medians["raw_table"]["cpu_s"] / medians["dataset_table"]["cpu_s"],
               "load_avg_1min": os.getloadavg()[0]}
        print(f"modules {row['trace']}: in child raw {raw['wall_s']:.2f} s, dataset {ds['wall_s']:.3f} s "
              f"({row['speedup']:.0f}x; peak {raw['self_peak_mb']:.0f} -> {ds['self_peak_mb']:.0f} MB); cold CLI "
              f"median CPU raw {medians['raw']['cpu_s']:.2f} s, dataset {medians['dataset']['cpu_s']:.3f} s "
              f"({row['cold_speedup_cpu']:.1f}x), wall {medians['raw']['wall_s']:.2f} / "
              f"{medians['dataset']['wall_s']:.3f} s ({row['cold_speedup_wall']:.1f}x); default table format: CPU "
              f"raw {medians['raw_table']['cpu_s']:.2f} s, dataset {medians['dataset_table']['cpu_s']:.3f} s "
              f"({row['cold_speedup_cpu_table']:.1f}x); import pyarrow.parquet "
              f"{medians['floor']['cpu_s']:.3f} s CPU, python -c pass {medians['python']['cpu_s']:.3f} s"
              + (f"; baseline dataset {medians['baseline_dataset']['cpu_s']:.3f} s" if baseline else ""), flush=True)
        rows.append(row)
        shutil.rmtree(out, ignore_errors=True)
    return rows


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, nargs="*", default=[8, 64])
    ap.add_argument("--workers", type=int, default=1,
                    help="Worker processes of convert/parallel (0: not given, the default: the machine's cores, "
                         "in-process below 4 MB of input).")
    ap.add_argument("--source", type=Path, default=SHARED / "gpu" / "param_dlrm_8ranks")
    ap.add_argument("--modules", action="store_true", help="Also time `tracekit modules` dataset vs raw.")
    ap.add_argument("--modules-traces", type=Path, nargs="*",
                    default=[SHARED / "gpu/hta/v100_large.json.gz", SHARED / "gpu/hta/mtia_rank_0_large.json.gz",
                             SHARED / "gpu/tracelens/h100/google_owlv2-large-patch14-ensemble__1016001.json.gz",
                             SHARED / "cpu/gpt/prof_stack_modules.json.gz", REPO / "sample_traces/gpt/prof.json.gz"])
    ap.add_argument("--cold-repeat", type=int, default=5, help="Cold CLI runs per trace and input (median).")
    ap.add_argument("--baseline-ref", default=None,
                    help="With --modules: a git ref (e.g. main) whose tracekit package is timed on the same datasets "
                         "and `--help` in the same rounds (extracted with git archive, run with this venv).")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None, help="Write the results here.")
    ap.add_argument("--raw-up-to", type=int, default=None,
                    help="Run `parallel` on the raw files only up to this many ranks (it repeats convert's per-rank "
                         "work; the dataset row still runs).")
    ap.add_argument("--convert-only", action="store_true", help="Measure orjson and convert only.")
    opts = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tracekit-scale-"))
    try:
        results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                               "affinity": len(os.sched_getaffinity(0))},
                   "source": str(opts.source),
                   "scale": run_scale(opts.ranks, opts.workers, opts.source, work, opts.raw_up_to,
                                      opts.json.with_suffix(".partial.json") if opts.json else None,
                                      opts.convert_only)}
        results["growth"] = growth(results["scale"])
        for line in results["growth"]["lines"]:
            print(line)
        if opts.modules:
            compile_tree(REPO)
            baseline = baseline_tree(opts.baseline_ref, work) if opts.baseline_ref else None
            results["help"] = run_help(opts.cold_repeat, baseline)
            results["modules"] = run_modules(opts.modules_traces, work, opts.repeat, opts.cold_repeat, baseline)
            results["baseline_ref"] = opts.baseline_ref
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if opts.json:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
