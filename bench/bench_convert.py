"""Benchmark `tracekit convert` against the JSON-parsing floor on the large shared traces.

For every trace and every measurement a FRESH child interpreter is started (this same script with
``--child``), so each peak RSS belongs to one measurement only. Inside the child, wall time is taken
with ``time.perf_counter`` around the work alone (interpreter start and imports excluded) and the
peak RSS comes from ``resource.getrusage(RUSAGE_SELF).ru_maxrss``.

Measurements per trace:

* ``baseline``      - child that only imports the modules (gzip, json, orjson, tracekit.convert);
* ``orjson``        - ``orjson.loads`` of the decompressed bytes (decompression done before timing);
* ``json``          - ``json.loads`` of the same bytes;
* ``convert``       - ``tracekit.convert.convert([path], tmpdir)`` end to end (read .gz, decompress,
  process, write chrome trace + Parquet + summary.json into a temp dir);
* ``convert_noparquet`` - the same with ``parquet=False``.

Every child imports the same module set, so ``peak - baseline`` is what the work itself adds.

Note on ru_maxrss: Linux carries the pre-exec high-water mark of the spawning process into the
child's ``ru_maxrss`` (exec_mmap -> setmax_mm_hiwater_rss), so the parent deliberately stays small
(it never loads a trace). The child also records ``VmHWM`` from /proc/self/status (the high-water
mark of its own address space only) as a cross-check.

Usage::

    .venv/bin/python bench/bench_convert.py [--traces PATH ...] [--repeat N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TRACES = [
    "../shared/traces/gpu/hta/mtia_rank_0_large.json.gz",
    "../shared/traces/gpu/hta/v100_large.json.gz",
]
MODES = ["baseline", "orjson", "json", "convert", "convert_noparquet"]
TIME_TARGET = 3.0  # tracekit convert within 3x of orjson.loads
RSS_TARGET = 3.0  # peak RSS under 3x the raw (decompressed) trace size
MB = 1_000_000  # decimal megabytes, as in "87 MB raw"


# --------------------------------------------------------------------------------------------------
# child side


def _vm_hwm_kb() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _read_raw(path: str) -> bytes:
    import gzip

    with open(path, "rb") as fh:
        data = fh.read()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def run_child(mode: str, trace: str, result_path: str) -> None:
    """Do one measurement in this (fresh) process and write its result as JSON to RESULT_PATH."""
    import gzip  # noqa: F401  (all modes import the same set, so baseline RSS is comparable)
    import json as stdjson
    import resource

    import orjson

    from tracekit.convert import convert

    out: dict = {"mode": mode, "trace": trace}
    if mode == "baseline":
        out["seconds"] = 0.0
    elif mode in ("orjson", "json"):
        raw = _read_raw(trace)
        loads = orjson.loads if mode == "orjson" else stdjson.loads
        t0 = time.perf_counter()
        doc = loads(raw)
        out["seconds"] = time.perf_counter() - t0
        out["raw_bytes"] = len(raw)
        events = doc.get("traceEvents", []) if isinstance(doc, dict) else doc
        out["events"] = len(events)
    elif mode in ("convert", "convert_noparquet"):
        tmp = tempfile.mkdtemp(prefix="tracekit-bench-")
        try:
            outdir = os.path.join(tmp, "out")
            t0 = time.perf_counter()
            summary = convert([trace], outdir, parquet=(mode == "convert"))
            out["seconds"] = time.perf_counter() - t0
            out["events"] = summary.get("input_events")
            out["written_events"] = summary.get("written_events")
            out["conserved"] = summary.get("conserved")
            out["output_bytes"] = sum(p.stat().st_size for p in Path(outdir).rglob("*") if p.is_file())
        finally:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    # Linux reports ru_maxrss in KiB.
    out["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out["vmhwm_kb"] = _vm_hwm_kb()
    Path(result_path).write_text(stdjson.dumps(out))


# --------------------------------------------------------------------------------------------------
# parent side


def spawn(mode: str, trace: Path) -> dict:
    fd, result = tempfile.mkstemp(prefix="tracekit-bench-", suffix=".json")
    os.close(fd)
    try:
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            mode,
            "--trace",
            str(trace),
            "--result",
            result,
        ]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"child {mode} on {trace} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        return json.loads(Path(result).read_text())
    finally:
        os.unlink(result)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def bench_trace(trace: Path, repeat: int, log) -> dict:
    samples: dict[str, list[dict]] = {m: [] for m in MODES}
    # Round-robin over the modes so that background noise spreads over all of them.
    for r in range(repeat):
        for mode in MODES:
            res = spawn(mode, trace)
            samples[mode].append(res)
            log(
                f"  [{trace.name}] run {r + 1}/{repeat} {mode:<18} {res['seconds']:8.3f} s  "
                f"peak {res['maxrss_kb'] / 1024:7.1f} MB"
            )
    raw_bytes = samples["orjson"][0]["raw_bytes"]
    events = samples["orjson"][0]["events"]
    base_rss = _median([s["maxrss_kb"] * 1024 for s in samples["baseline"]])
    rows = {}
    for mode in MODES:
        secs = [s["seconds"] for s in samples[mode]]
        rss = [s["maxrss_kb"] * 1024 for s in samples[mode]]
        hwm = [s["vmhwm_kb"] * 1024 for s in samples[mode] if s.get("vmhwm_kb") is not None]
        peak = _median(rss)
        rows[mode] = {
            "seconds_median": _median(secs),
            "seconds_min": min(secs),
            "seconds_max": max(secs),
            "seconds_all": secs,
            "peak_rss_mb": peak / MB,
            "peak_rss_mb_all": [x / MB for x in rss],
            "vmhwm_mb": _median(hwm) / MB if hwm else None,
            "added_rss_mb": (peak - base_rss) / MB,
            "peak_rss_over_raw": peak / raw_bytes,
            "added_rss_over_raw": (peak - base_rss) / raw_bytes,
        }
        extra = samples[mode][0]
        for key in ("events", "written_events", "conserved", "output_bytes"):
            if key in extra and mode.startswith("convert"):
                rows[mode][key] = extra[key]
    floor = rows["orjson"]["seconds_median"]
    for mode in MODES:
        rows[mode]["over_orjson"] = rows[mode]["seconds_median"] / floor if mode != "baseline" else None
        # min/min is steadier than median/median on a shared, noisy machine; printed alongside.
        rows[mode]["over_orjson_min"] = (
            rows[mode]["seconds_min"] / rows["orjson"]["seconds_min"] if mode != "baseline" else None
        )
    targets = {}
    for mode in ("convert", "convert_noparquet"):
        targets[mode] = {
            "time_within_3x_orjson": rows[mode]["over_orjson"] <= TIME_TARGET,
            "peak_rss_under_3x_raw": rows[mode]["peak_rss_over_raw"] < RSS_TARGET,
            "added_rss_under_3x_raw": rows[mode]["added_rss_over_raw"] < RSS_TARGET,
        }
    return {
        "trace": str(trace),
        "gz_bytes": trace.stat().st_size,
        "raw_bytes": raw_bytes,
        "raw_mb": raw_bytes / MB,
        "events": events,
        "repeat": repeat,
        "baseline_rss_mb": base_rss / MB,
        "measurements": rows,
        "targets": targets,
    }


LABELS = {
    "baseline": "imports only (baseline)",
    "orjson": "orjson.loads (floor)",
    "json": "json.loads",
    "convert": "tracekit convert",
    "convert_noparquet": "tracekit convert parquet=False",
}


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def render(result: dict) -> None:
    title = (
        f"{Path(result['trace']).name}: raw {result['raw_mb']:.1f} MB "
        f"(gz {result['gz_bytes'] / MB:.1f} MB), {result['events']:,} events, "
        f"median of {result['repeat']}"
    )
    headers = [
        "measurement",
        "median s",
        "min s",
        "x orjson",
        "x orjson (min)",
        "peak RSS MB",
        "peak/raw",
        "added MB",
        "added/raw",
    ]
    body = []
    for mode in MODES:
        m = result["measurements"][mode]
        body.append(
            [
                LABELS[mode],
                "-" if mode == "baseline" else f"{m['seconds_median']:.3f}",
                "-" if mode == "baseline" else f"{m['seconds_min']:.3f}",
                "-" if m["over_orjson"] is None else f"{m['over_orjson']:.2f}x",
                "-" if m["over_orjson_min"] is None else f"{m['over_orjson_min']:.2f}x",
                f"{m['peak_rss_mb']:.0f}",
                f"{m['peak_rss_over_raw']:.2f}x",
                "-" if mode == "baseline" else f"{m['added_rss_mb']:.0f}",
                "-" if mode == "baseline" else f"{m['added_rss_over_raw']:.2f}x",
            ]
        )
    target_lines = []
    for mode, t in result["targets"].items():
        m = result["measurements"][mode]
        target_lines.append(
            f"{LABELS[mode]}: time {m['over_orjson']:.2f}x orjson (min/min {m['over_orjson_min']:.2f}x; "
            f"target <= {TIME_TARGET:g}x) "
            f"{_verdict(t['time_within_3x_orjson'])}; peak RSS {m['peak_rss_over_raw']:.2f}x raw "
            f"(target < {RSS_TARGET:g}x) {_verdict(t['peak_rss_under_3x_raw'])}; added RSS "
            f"{m['added_rss_over_raw']:.2f}x raw {_verdict(t['added_rss_under_3x_raw'])}"
        )
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text fallback
        print(title)
        widths = [max(len(str(r[i])) for r in [headers, *body]) for i in range(len(headers))]
        for r in [headers, *body]:
            print("  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
        for line in target_lines:
            print("  " + line)
        print()
        return
    table = Table(title=title, title_justify="left")
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i == 0 else "right")
    for r in body:
        table.add_row(*r)
    console = Console() if sys.stdout.isatty() else Console(width=160)
    console.print(table)
    for line in target_lines:
        style = "green" if "FAIL" not in line else "red"
        console.print(f"  {line}", style=style, highlight=False)
    console.print()


def environment() -> dict:
    env = {"python": sys.version.split()[0], "platform": platform.platform(), "nproc": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as fh:
            env["cpu"] = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), None)
    except OSError:
        env["cpu"] = None
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True)
        env["git_rev"] = rev.stdout.strip() or None
        env["git_dirty"] = [ln[3:] for ln in dirty.stdout.splitlines() if ln.strip()]
    except OSError:
        env["git_rev"] = None
    from importlib.metadata import PackageNotFoundError, version

    for pkg in ("tracekit", "orjson", "msgspec", "pyarrow", "pandas", "numpy"):
        try:
            env[pkg] = version(pkg)
        except PackageNotFoundError:
            env[pkg] = None
    return env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--traces", nargs="+", default=None, help="trace files (default: the two large HTA traces)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is reported")
    ap.add_argument("--json", dest="json_out", default=None, help="write the results as JSON here")
    ap.add_argument("--quiet", action="store_true", help="do not log every child run")
    ap.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--trace", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        run_child(args.child, args.trace, args.result)
        return 0

    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    traces = [Path(t) if Path(t).is_absolute() else (Path.cwd() / t) for t in (args.traces or [])]
    if not args.traces:
        traces = [(REPO / t).resolve() for t in DEFAULT_TRACES]
    missing = [str(t) for t in traces if not t.is_file()]
    if missing:
        ap.error(f"trace(s) not found: {', '.join(missing)}")

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    env = environment()
    log(f"python {env['python']}, {env['nproc']} cpus, {env['cpu']}; repeat={args.repeat}")
    results = []
    t0 = time.perf_counter()
    for trace in traces:
        results.append(bench_trace(trace, args.repeat, log))
    log(f"total bench time {time.perf_counter() - t0:.1f} s\n")
    end_env = environment()
    env["git_rev_end"], env["git_dirty_end"] = end_env.get("git_rev"), end_env.get("git_dirty")
    if (env["git_rev_end"], env["git_dirty_end"]) != (env.get("git_rev"), env.get("git_dirty")):
        log(
            f"WARNING: the working tree changed during the run ({env.get('git_rev')} -> {env['git_rev_end']}); "
            "measurements may mix code versions"
        )
    for res in results:
        render(res)
    if args.json_out:
        payload = {
            "environment": env,
            "targets": {"time_x_orjson": TIME_TARGET, "peak_rss_x_raw": RSS_TARGET},
            "results": results,
        }
        Path(args.json_out).write_text(json.dumps(payload, indent=2))
        log(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
