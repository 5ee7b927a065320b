"""Small traces: start-up, convert/info of bert-small against HTA's and TraceLens's loaders, and compare and
merge of small traces against orjson.loads of their inputs, in one interleaved run.

    .venv/bin/python bench/small_pairs.py --before 60b1f8e --repeat 5 [--json bench/results_small.json]
    .venv/bin/python bench/small_pairs.py --pairs-only --before main --repeat 5   # compare/merge rows only

For each compare/merge pair it also prints the split the team's target is read against: `parse` = CPU of
`orjson.loads` of both inputs' decompressed bytes (timed inside the child around the loads only), `imports` =
a fresh process importing exactly the modules a probe run of the command ended with (sys.modules at exit, in
load order), `command` = the command's process, `work` = command - imports, and work as a multiple of parse
(target: under 2x).

`--before REV` runs every tracekit row a second time with tracekit as of git revision REV (its tracekit/ and
converters/ unpacked into the work folder and put first on PYTHONPATH), so a change is timed against its
baseline in the same run. Both trees are byte-compiled first, as an installed package is: with
PYTHONDONTWRITEBYTECODE set and no __pycache__, every run would compile tracekit's sources again (~0.06 s CPU).
The "import floor" rows are what no tracekit command can do without: pandas with pyarrow (pandas 3 imports it where
it is installed) and pyarrow.parquet; pandas without pyarrow is what HTA's and TraceLens's venvs import (neither
installs pyarrow). HTA (`TraceAnalysis(trace_dir=...)`) and TraceLens (`TreePerfAnalyzer.from_file`) run from
their own venvs (bench/.venv-hta, bench/.venv-tracelens; see BENCHMARKS.md) when they exist. CPU s = user + sys
of the child; medians over --repeat rounds; peak RSS is the largest of the rounds.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep import HTA, ORJSON, PY, REPO, SHARED, run

H100 = SHARED / "gpu/tracelens/h100"
MI300 = SHARED / "gpu/tracelens/mi300"
BERT = H100 / "gaunernst_bert-small-uncased__1016001.json.gz"
PAIRS = {
    "compare bert-small vs Falconsai (H100)": [BERT, H100 / "Falconsai_nsfw_image_detection__1016002.json.gz"],
    "compare bert-small H100 vs MI300": [BERT, MI300 / "gaunernst_bert-small-uncased__1016001.json.gz"],
    "compare Qwen1.5-0.5B H100 vs MI300": [H100 / "Qwen_Qwen1.5-0.5B-Chat__1016005.json.gz",
                                           MI300 / "Qwen_Qwen1.5-0.5B-Chat__1016005.json.gz"],
}
MERGED = [SHARED / "cpu/gpt/viz_both.json", SHARED / "cpu/gpt/prof_both.json"]
IMPORTS = {  # what each command imports before it reads anything (the modules its run imports)
    "compare": "import tracekit.cli, tracekit.compare.job, tracekit.compare.ops, tracekit.writers.compare_html, "
               "tracekit.writers.compare_text, tracekit.dataset.load",
    "merge": "import tracekit.cli, tracekit.merge",
    "info": "import tracekit.cli, tracekit.dataset.load, tracekit.info, tracekit.pipeline",
    "convert": "import tracekit.cli, tracekit.convert",
}
CLI = "import sys\nfrom tracekit.cli import main\nsys.argv[0] = 'tracekit'\nsys.exit(main())\n"
PROBE = ("import atexit, json, sys\nlisted = sys.argv.pop(1)\n"
         "atexit.register(lambda: open(listed, 'w').write(json.dumps(list(sys.modules))))\n" + CLI)
IMPORT_LISTED = ("import importlib, json, sys\nfailed = []\nfor name in json.load(open(sys.argv[1])):\n"
                 "    if name in sys.modules or name == '__main__':\n        continue\n    try:\n"
                 "        importlib.import_module(name)\n    except Exception:\n        failed.append(name)\n"
                 "if failed:\n    print('not importable alone:', failed, file=sys.stderr)\n")
WORK_IN_PROCESS = (IMPORT_LISTED.replace("sys.argv[1]", "sys.argv.pop(1)") +
                   "import time\nfrom tracekit.cli import main\nsys.argv[0] = 'tracekit'\nt0 = time.process_time()\n"
                   "try:\n    main()\nexcept SystemExit:\n    pass\n"
                   "print(time.process_time() - t0, file=sys.__stderr__)\n")
PARSE_ONLY = ("import gzip, orjson, sys, time\nraws = []\nfor path in sys.argv[1:]:\n"
              "    raw = open(path, 'rb').read()\n"
              "    raws.append(gzip.decompress(raw) if raw[:2] == b'\\x1f\\x8b' else raw)\n"
              "t0 = time.process_time()\nfor raw in raws:\n    orjson.loads(raw)\nprint(time.process_time() - t0)\n")
TRACELENS = "import sys\nfrom TraceLens import TreePerfAnalyzer\nTreePerfAnalyzer.from_file(sys.argv[1])\n"


def unpack(rev: str, dest: Path) -> Path:
    """tracekit/ and converters/ of git revision `rev` in `dest`, laid out as installed (converters inside)."""
    dest.mkdir(parents=True)
    tar = subprocess.run(["git", "archive", rev, "tracekit", "converters"], cwd=REPO, check=True,
                         capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=tar, check=True)
    shutil.rmtree(dest / "tracekit" / "converters", ignore_errors=True)
    (dest / "converters").rename(dest / "tracekit" / "converters")
    return dest


def check_before(before: Path) -> None:
    """The before rows must load tracekit (and its converters) from `before`, not from the installed tree."""
    code = "import tracekit, tracekit.converters; print(tracekit.__file__, tracekit.converters.__file__)"
    out = subprocess.run([PY, "-P", "-c", code], env={**os.environ, "PYTHONPATH": str(before)}, cwd=REPO,
                         check=True, capture_output=True, text=True).stdout.split()
    if not all(Path(f).resolve().is_relative_to(before.resolve()) for f in out):
        raise SystemExit(f"--before tree not used: {out}")


def compile_tree(root: Path) -> None:
    subprocess.run([PY, "-m", "compileall", "-q", str(root)], check=True, capture_output=True)


class Runner:
    """Commands of the tracekit under test (`now`, the installed tree) and of `before` (PYTHONPATH tree)."""

    def __init__(self, before: Path | None):
        self.before = before

    def env(self, which: str) -> dict[str, str] | None:
        if which == "now":
            return None
        return {**os.environ, "PYTHONPATH": str(self.before)}

    def versions(self) -> list[str]:
        return ["before", "now"] if self.before else ["now"]


def commands(work: Path, runner: Runner, hta_python: str | None, tracelens_python: str | None,
             direct: Direct | None = None) -> dict[str, tuple[list[str], dict | None]]:
    cmds: dict[str, tuple[list[str], dict | None]] = {"python start-up": ([PY, "-c", "pass"], None),
                                                      "import pandas": ([PY, "-c", "import pandas"], None)}
    # the imports no tracekit command can do without (pandas 3 imports pyarrow where it is installed; Parquet needs
    # pyarrow.parquet), with OpenBLAS's threads off as the CLI sets them; and pandas without pyarrow, as the HTA and
    # TraceLens venvs have it (neither installs pyarrow)
    blas = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    cmds["import floor: pandas + pyarrow.parquet"] = ([PY, "-c", "import pandas, pyarrow.parquet"], blas)
    cmds["import floor: pandas without pyarrow"] = (
        [PY, "-c", "import sys\nsys.modules['pyarrow'] = None\nimport pandas"], blas)
    if tracelens_python:
        cmds["import pandas: TraceLens's venv"] = ([tracelens_python, "-c", "import pandas"], None)
    for version in runner.versions():
        env = runner.env(version)
        cmds[f"tracekit --help: {version}"] = ([PY, "-P", "-c", CLI, "--help"], env)
        for command, code in IMPORTS.items():
            cmds[f"{command}'s imports only: {version}"] = ([PY, "-P", "-c", code], env)
    cmds["bert-small H100 (1.1 MB): orjson.loads"] = ([PY, "-c", ORJSON, str(BERT)], None)
    for version in runner.versions():
        env = runner.env(version)
        cmds[f"bert-small H100 (1.1 MB): tracekit convert: {version}"] = (
            [PY, "-P", "-c", CLI, "convert", str(BERT), "-o", str(work / "out/convert")], env)
        cmds[f"bert-small H100 (1.1 MB): tracekit info --json: {version}"] = (
            [PY, "-P", "-c", CLI, "info", "--json", str(BERT)], env)
    if tracelens_python:
        cmds["bert-small H100 (1.1 MB): TraceLens TreePerfAnalyzer.from_file"] = (
            [tracelens_python, "-c", TRACELENS, str(BERT)], None)
    if hta_python:
        hta_dir = work / "hta-bert"
        hta_dir.mkdir(exist_ok=True)
        (hta_dir / BERT.name).symlink_to(BERT)
        cmds["bert-small H100 (1.1 MB): HTA TraceAnalysis"] = ([hta_python, "-c", HTA, str(hta_dir)], None)
    cmds.update(pair_commands(work, runner, direct))
    return cmds


MERGE_LABEL = "merge gpt viz_both + prof_both"


def pair_args(work: Path) -> dict[str, tuple[list[Path], list[str]]]:
    """Each compare/merge pair: (its inputs, the command's arguments)."""
    out = {label: (paths, ["compare", *map(str, paths), "-o", str(work / "out/cmp")]) for label, paths in PAIRS.items()}
    out[MERGE_LABEL] = (MERGED, ["merge", *map(str, MERGED), "-o", str(work / "out/m.json")])
    return out


Direct = dict[tuple[str, str], tuple[Path, list[str], dict | None]]


def pair_commands(work: Path, runner: Runner, direct: Direct | None = None
                  ) -> dict[str, tuple[list[str], dict | None]]:
    """Per pair: orjson.loads of both (a process), and per version the command and its imports only (the
    modules a probe run of the command ended with, imported by a fresh process). `direct` receives, per
    (pair, version), what work_cpu needs."""
    cmds: dict[str, tuple[list[str], dict | None]] = {}
    for label, (paths, args) in pair_args(work).items():
        cmds[f"{label}: orjson.loads of both"] = ([PY, "-c", ORJSON, *map(str, paths)], None)
        for version in runner.versions():
            env = runner.env(version)
            listed = probe(work, label, version, args, env)
            if direct is not None:
                direct[(label, version)] = (listed, args, env)
            cmds[f"{label}: {version}"] = ([PY, "-P", "-c", CLI, *args], env)
            cmds[f"{label}: imports only: {version}"] = ([PY, "-P", "-c", IMPORT_LISTED, str(listed)], env)
    return cmds


def probe(work: Path, label: str, version: str, args: list[str], env: dict | None) -> Path:
    """Run the command once, keeping the names in sys.modules at its exit (in load order)."""
    listed = work / f"modules-{abs(hash((label, version)))}.json"
    shutil.rmtree(work / "out", ignore_errors=True)
    (work / "out").mkdir()
    done = subprocess.run([PY, "-P", "-c", PROBE, str(listed), *args], env=env, cwd=REPO, capture_output=True)
    if done.returncode or not listed.exists():
        raise SystemExit(f"{label}: probe run failed: {done.stderr.decode()[-2000:]}")
    return listed


def work_cpu(listed: Path, args: list[str], env: dict | None) -> float:
    """CPU s of the command run in a process that imported its listed modules first (the work, measured
    directly rather than as the difference of two noisy processes)."""
    done = subprocess.run([PY, "-P", "-c", WORK_IN_PROCESS, str(listed), *args], env=env, cwd=REPO,
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"in-process work run failed: {done.stderr[-2000:]}")
    return float(done.stderr.strip().splitlines()[-1])


def parse_cpu(paths: list[Path]) -> float:
    """CPU s of orjson.loads of the inputs' decompressed bytes, timed inside the child around the loads."""
    done = subprocess.run([PY, "-c", PARSE_ONLY, *map(str, paths)], cwd=REPO, check=True, capture_output=True,
                          text=True)
    return float(done.stdout.strip())


def split_report(results: dict[str, list[dict]], parse: dict[str, list[float]],
                 worked: dict[tuple[str, str], list[float]], versions: list[str]) -> str:
    """Per pair and version: parse, imports only, command, work = command - imports, work / parse, and the
    work measured in one process after the imports (and its multiple of parse)."""
    lines = ["| pair | version | orjson parse CPU s (both) | imports only CPU s | command CPU s | work CPU s | "
             "work × parse | work in-process CPU s | in-process × parse |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, runs in parse.items():
        floor = statistics.median(runs)
        for version in versions:
            cmd = statistics.median(r["cpu"] for r in results[f"{label}: {version}"])
            imports = statistics.median(r["cpu"] for r in results[f"{label}: imports only: {version}"])
            work = cmd - imports
            direct = statistics.median(worked[(label, version)])
            lines.append(f"| {label} | {version} | {floor:.3f} | {imports:.3f} | {cmd:.3f} | {work:.3f} | "
                         f"{work / floor:.1f}× | {direct:.3f} | {direct / floor:.1f}× |")
    return "\n".join(lines)


def run_env(cmd: list[str], env: dict | None) -> dict:
    if env is None:
        return run(cmd)
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return run(cmd)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default=None, help="git revision whose tracekit is the baseline")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--hta-python", default=str(REPO / "bench/.venv-hta/bin/python"))
    ap.add_argument("--tracelens-python", default=str(REPO / "bench/.venv-tracelens/bin/python"))
    ap.add_argument("--json", default=None, help="also write the medians here")
    ap.add_argument("--pairs-only", action="store_true", help="only the compare/merge pairs (no convert, info, "
                    "HTA, TraceLens rows)")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tracekit-small-"))
    before = unpack(args.before, work / "before") if args.before else None
    for root in [REPO / "tracekit", REPO / "converters"] + ([before] if before else []):
        compile_tree(root)
    if before:
        check_before(before)
    hta = args.hta_python if Path(args.hta_python).exists() else None
    tracelens = args.tracelens_python if Path(args.tracelens_python).exists() else None
    runner = Runner(before)
    direct: Direct = {}
    cmds = (pair_commands(work, runner, direct) if args.pairs_only
            else commands(work, runner, hta, tracelens, direct))
    results: dict[str, list[dict]] = {k: [] for k in cmds}
    parse: dict[str, list[float]] = {label: [] for label in pair_args(work)}
    worked: dict[tuple[str, str], list[float]] = {key: [] for key in direct}
    for _ in range(args.repeat):
        for label, (paths, _args) in pair_args(work).items():
            parse[label].append(parse_cpu(paths))
        for key, (listed, cli_args, env) in direct.items():
            shutil.rmtree(work / "out", ignore_errors=True)
            (work / "out").mkdir()
            worked[key].append(work_cpu(listed, cli_args, env))
        for label, (cmd, env) in cmds.items():
            shutil.rmtree(work / "out", ignore_errors=True)
            (work / "out").mkdir()
            result = run_env(cmd, env)
            if result["rc"]:
                raise SystemExit(f"{label}: exit code {result['rc']}: {' '.join(cmd)}")
            results[label].append(result)
            print(f"  {label}: {result}", file=sys.stderr, flush=True)
    print(report(results))
    print()
    print(split_report(results, parse, worked, runner.versions()))
    if args.json:
        medians = {label: {m: statistics.median(r[m] for r in runs) for m in ("cpu", "wall", "rss_mb")}
                   for label, runs in results.items()}
        Path(args.json).write_text(json.dumps({"repeat": args.repeat, "before": args.before, "rows": medians,
                                               "parse_cpu": {k: statistics.median(v) for k, v in parse.items()},
                                               "work_in_process_cpu": {f"{k[0]}: {k[1]}": statistics.median(v)
                                                                       for k, v in worked.items()}},
                                              indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


def report(results: dict[str, list[dict]]) -> str:
    """Markdown table; × orjson is CPU s over the CPU s of the group's orjson.loads row."""
    lines = ["| command | CPU s | wall s | × orjson (CPU) | peak RSS MB |", "|---|---:|---:|---:|---:|"]
    floor = {}
    for label, runs in results.items():
        cpu, wall = (statistics.median(r[m] for r in runs) for m in ("cpu", "wall"))
        rss = max(r["rss_mb"] for r in runs)
        group = label.split(": ")[0]
        if label.endswith(("orjson.loads", "orjson.loads of both")):
            floor[group] = cpu
        ratio = f"{cpu / floor[group]:.1f}×" if group in floor else ""
        lines.append(f"| {label} | {cpu:.2f} | {wall:.2f} | {ratio} | {rss:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
