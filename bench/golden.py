"""Check that a code change keeps `tracekit convert` output identical on real traces.

Usage::

    .venv/bin/python bench/golden.py save OUTDIR [TRACE ...]     # convert with the current code
    .venv/bin/python bench/golden.py compare OUTDIR [TRACE ...]  # convert again, compare with OUTDIR

Without TRACE it takes every .json/.json.gz under ../shared/traces/gpu and ../shared/traces/cpu
plus sample_traces/. It compares trace.json byte for byte, summary.json as JSON, and every Parquet
table by schema and content (arrow `Table.equals`). Not a test: a manual tool for refactors.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "traces"


def default_traces() -> list[Path]:
    found = []
    for root in (SHARED / "gpu", SHARED / "cpu", REPO / "sample_traces"):
        found += [p for p in sorted(root.rglob("*")) if p.name.endswith((".json", ".json.gz"))
                  and p.name != "run_log.json"]
    return found


def label(path: Path) -> str:
    rel = path.resolve()
    for root in (SHARED, REPO):
        try:
            rel = path.resolve().relative_to(root.resolve())
            break
        except ValueError:
            continue
    return str(rel).replace("/", "__")


def convert_one(path: Path, out: Path) -> str:
    from tracekit.convert import convert
    from tracekit.errors import TraceError

    try:
        convert([path], out)
        return "ok"
    except TraceError as exc:
        out.mkdir(parents=True, exist_ok=True)
        (out / "error.txt").write_text(str(exc))
        return "error"


def same(ref: Path, new: Path) -> list[str]:
    problems = []
    names = sorted(p.name for p in ref.iterdir())
    if names != sorted(p.name for p in new.iterdir()):
        return [f"files differ: {names} vs {sorted(p.name for p in new.iterdir())}"]
    for name in names:
        a, b = ref / name, new / name
        if a.is_dir():  # a table partitioned by rank (rank=N/part-I.parquet), per-rank traces
            problems += [f"{name}/{p}" for p in same(a, b)]
        elif name.endswith(".parquet"):
            ta, tb = pq.read_table(a), pq.read_table(b)
            if not ta.schema.equals(tb.schema, check_metadata=True):  # the pandas metadata (dtypes) too
                problems.append(f"{name}: schema {ta.schema} vs {tb.schema}")
            elif not ta.equals(tb):
                cols = [c for c in ta.column_names if not ta[c].equals(tb[c])]
                problems.append(f"{name}: columns differ: {cols}")
        elif name == "summary.json":  # the same but for the worker pids (another process each run)
            sa, sb = json.loads(a.read_text()), json.loads(b.read_text())
            for s in (sa, sb):
                s.get("workers", {}).pop("pids", None)
            if sa != sb:
                problems.append("summary.json differs")
            elif json.dumps(json.loads(b.read_text()), indent=2) != b.read_text():
                problems.append("summary.json is not written as json.dumps(indent=2) was")
        elif a.read_bytes() != b.read_bytes():
            problems.append(f"{name} differs")
    return problems


def main(argv: list[str]) -> int:
    mode, outdir, *traces = argv
    paths = [Path(t) for t in traces] or default_traces()
    outdir = Path(outdir)
    bad = 0
    for path in paths:
        key = label(path)
        t0 = time.perf_counter()
        if mode == "save":
            target = outdir / key
            shutil.rmtree(target, ignore_errors=True)
            state = convert_one(path, target)
            print(f"{key}: {state} {time.perf_counter() - t0:.2f}s", flush=True)
            continue
        tmp = Path(tempfile.mkdtemp(prefix="golden-"))
        try:
            state = convert_one(path, tmp / "out")
            problems = same(outdir / key, tmp / "out")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        bad += bool(problems)
        print(f"{key}: {state} {time.perf_counter() - t0:.2f}s {problems or 'SAME'}", flush=True)
    print("ALL SAME" if not bad else f"{bad} DIFFER")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
