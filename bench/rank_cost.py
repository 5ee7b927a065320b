"""CPU milliseconds per rank of the per-rank convert work (`tracekit.ranks.convert_rank`), warm and in-process,
per stage, against `orjson.loads` of the same (decompressed) files; old and new code alternated.

Each measurement runs in a fresh child interpreter with the code of one tree first on sys.path (run it from
outside the repo so that the tree given decides what is imported). The child converts every rank once to
warm up (lazy imports, caches), then `--passes` times more, timing each stage with `time.process_time`
(process CPU: every thread). It also times a warm in-process `tracekit convert DIR` of all ranks (the
parent's cross-rank part included; one worker, in-process).

Usage::

    .venv/bin/python bench/rank_cost.py RANK_DIR --tree new=. --tree old=/path/to/old/checkout \\
        [--rounds 3] [--passes 3] [--json OUT] [--profile OUT.prof]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = (
    ("tracekit.converters", "read_trace"),
    ("tracekit.inputs", "with_name_rank"),
    ("tracekit.pipeline", "process"),
    ("tracekit.writers.chrome", "write_chrome_trace"),
    ("tracekit.writers.parquet", "events_frame"),
    ("tracekit.writers.parquet", "kernels_frame"),
    ("tracekit.writers.parquet", "ops_frame"),
    ("tracekit.steps", "step_table"),
    ("tracekit.modules.table", "module_table"),  # (a tree before cost17; since, the two below)
    ("tracekit.modules.table", "module_columns"),
    ("tracekit.writers.direct_arrow", "columns_to_arrow"),
    ("tracekit.ranks", "_write_partition"),
    ("tracekit.parallel.collectives", "collective_calls"),
    ("tracekit.convert", "build_summary"),
    ("tracekit.dataset.manifest", "fingerprint"),
    ("tracekit.dataset.manifest", "source_record"),
    ("tracekit.parallel.crossrank", "write_part"),
)


def _patch(spent: dict[str, float], extra: list[str]) -> None:
    """Wrap each stage function (module attribute) in a CPU timer; nested stages count in both. `extra`:
    more `module:name` or `module:Class.method` to time (patched where they are looked up)."""
    import importlib

    more = [tuple(e.split(":", 1)) for e in extra]
    for module, name in [*STAGES, *more]:
        try:
            owner = importlib.import_module(module)
        except ModuleNotFoundError:  # a stage the tree measured does not have
            continue
        *outer, name = name.split(".")
        for part in outer:
            owner = getattr(owner, part)
        if not hasattr(owner, name):
            continue
        inner = getattr(owner, name)
        key = f"{module.rsplit('.', 1)[-1]}:{'.'.join([*outer, name])}" if (module, name) not in STAGES else name

        def timed(*args, __inner=inner, __key=key, **kwargs):
            t0 = time.process_time()
            try:
                return __inner(*args, **kwargs)
            finally:
                spent[__key] = spent.get(__key, 0.0) + time.process_time() - t0

        setattr(owner, name, timed)


def use_tree_converters(tree: Path) -> None:
    """Import `tracekit.converters` from `tree`'s converters/ folder. The package is installed from the top-level
    converters/ folder (pyproject's package-dir), so PYTHONPATH=TREE switches tracekit but not its readers: without
    this an editable install's finder gives every tree this checkout's readers."""
    import importlib.util

    import tracekit

    folder = tree / "converters"
    if not (folder / "__init__.py").is_file() or "tracekit.converters" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location("tracekit.converters", folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["tracekit.converters"] = module
    tracekit.converters = module
    spec.loader.exec_module(module)


def child(folder: Path, passes: int, profile: str | None, extra: list[str]) -> dict:
    import orjson

    from tracekit.convert import convert
    from tracekit.ranks import RankJob, convert_rank

    files = sorted(folder.glob("*.json.gz"), key=lambda p: p.name)
    raw = [gzip.decompress(f.read_bytes()) for f in files]
    work = Path(tempfile.mkdtemp(prefix="rank-cost-"))
    jobs = [RankJob(i, str(f), str(work / "stage"), slot=i, calls=str(work / "calls"), splits=False)
            for i, f in enumerate(files)]
    for job in jobs:  # warm-up
        convert_rank(job)
    spent: dict[str, float] = {}
    _patch(spent, extra)
    orjson_s, ranks_s = 0.0, 0.0
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile(time.process_time)
    for _ in range(passes):
        for data in raw:
            t0 = time.process_time()
            orjson.loads(data)
            orjson_s += time.process_time() - t0
        if profiler:
            profiler.enable()
        t0 = time.process_time()
        for job in jobs:
            convert_rank(job)
        ranks_s += time.process_time() - t0
        if profiler:
            profiler.disable()
    if profiler:
        profiler.dump_stats(profile)
    count = passes * len(jobs)
    for _, name in STAGES:  # untimed during the whole convert below
        spent.setdefault(name, 0.0)
    stage_ms = {k: v * 1000 / count for k, v in spent.items()}
    out = work / "out"
    convert([folder], out, workers=1)  # warm the whole path
    whole = []
    for _ in range(passes):
        import shutil

        shutil.rmtree(out, ignore_errors=True)
        t0 = time.process_time()
        convert([folder], out, workers=1)
        whole.append((time.process_time() - t0) * 1000 / len(jobs))
    import tracekit

    return {"ranks": len(jobs), "orjson_ms": orjson_s * 1000 / count, "convert_rank_ms": ranks_s * 1000 / count,
            "code": {"tracekit": str(Path(tracekit.__file__).parent),
                     "converters": str(Path(tracekit.converters.__file__).parent)},
            "stages_ms": stage_ms, "whole_convert_ms_per_rank": min(whole)}


def run_child(tree: str, folder: Path, passes: int, profile: str | None, extra: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve()), "RANK_COST_TREE": str(Path(tree).resolve())}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(folder), "--passes", str(passes)]
    if profile:
        cmd += ["--profile", profile]
    for e in extra:
        cmd += ["--extra", e]
    done = subprocess.run(cmd, env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{tree}: child failed:\n{done.stderr[-3000:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tree", action="append", default=[], help="LABEL=PATH of a checkout (repeatable)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--profile", default=None, help="cProfile (CPU time) of the timed passes, to this file")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--extra", action="append", default=[], help="more functions to time: module:name")
    opts = ap.parse_args()
    if opts.child:
        if os.environ.get("RANK_COST_TREE"):
            use_tree_converters(Path(os.environ["RANK_COST_TREE"]))
        print("RESULT " + json.dumps(child(opts.folder, opts.passes, opts.profile, opts.extra)))
        return
    trees = dict(t.split("=", 1) for t in opts.tree) or {"here": str(Path(__file__).resolve().parent.parent)}
    runs: dict[str, list[dict]] = {label: [] for label in trees}
    for r in range(opts.rounds):
        for label, tree in trees.items():
            res = run_child(tree, opts.folder.resolve(), opts.passes, opts.profile, opts.extra)
            runs[label].append(res)
            if r == 0:
                print(f"{label}: tracekit from {res['code']['tracekit']}, its readers from {res['code']['converters']}")
            print(f"round {r} {label}: convert_rank {res['convert_rank_ms']:.1f} ms/rank, whole convert "
                  f"{res['whole_convert_ms_per_rank']:.1f} ms/rank, orjson {res['orjson_ms']:.2f} ms/rank "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
    print(f"\n{'stage (ms/rank, best round)':34}" + "".join(f"{label:>10}" for label in trees))
    keys = ["orjson_ms", "convert_rank_ms", "whole_convert_ms_per_rank"]
    for key in keys:
        print(f"{key:34}" + "".join(f"{min(r[key] for r in runs[label]):10.2f}" for label in trees))
    stages = list(dict.fromkeys(s for label in trees for r in runs[label] for s in r["stages_ms"]))
    for stage in stages:
        print(f"  {stage:32}" + "".join(f"{min(r['stages_ms'].get(stage, 0) for r in runs[label]):10.2f}"
                                        for label in trees))
    if opts.json:
        opts.json.write_text(json.dumps({"folder": str(opts.folder), "trees": trees, "runs": runs,
                                         "load_avg_1min": os.getloadavg()[0]}, indent=1))


if __name__ == "__main__":
    main()
