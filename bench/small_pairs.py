"""compare and merge of small traces, against orjson.loads of their inputs, in one interleaved run.

`--before REV` also runs compare with tracekit/compare/table.py as of git revision REV (loaded in
place of today's module), so a change to the compare tables is timed against its baseline in the
same run. CPU s = user + sys of the child; medians over --repeat rounds.

    .venv/bin/python bench/small_pairs.py --before c9f68dd --repeat 5
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep import ORJSON, PY, REPO, SHARED, TRACEKIT, run

OLD_TABLE = ("import importlib.util, sys\n"
             "spec = importlib.util.spec_from_file_location('tracekit.compare.table', sys.argv[1])\n"
             "mod = importlib.util.module_from_spec(spec)\nsys.modules['tracekit.compare.table'] = mod\n"
             "spec.loader.exec_module(mod)\nfrom tracekit.cli import main\n"
             "sys.argv = ['tracekit'] + sys.argv[2:]\nsys.exit(main())\n")
H100 = SHARED / "gpu/tracelens/h100"
PAIRS = {
    "compare bert-small vs Falconsai (H100)": [H100 / "gaunernst_bert-small-uncased__1016001.json.gz",
                                               H100 / "Falconsai_nsfw_image_detection__1016002.json.gz"],
    "compare bert-small H100 vs MI300": [H100 / "gaunernst_bert-small-uncased__1016001.json.gz",
                                         SHARED / "gpu/tracelens/mi300/gaunernst_bert-small-uncased__1016001.json.gz"],
    "compare Qwen1.5-0.5B H100 vs MI300": [H100 / "Qwen_Qwen1.5-0.5B-Chat__1016005.json.gz",
                                           SHARED / "gpu/tracelens/mi300/Qwen_Qwen1.5-0.5B-Chat__1016005.json.gz"],
}
IMPORTS = ("import tracekit.cli.compare, tracekit.compare.job, tracekit.writers.compare_html, "
           "tracekit.writers.compare_text")
MERGED = [SHARED / "cpu/gpt/viz_both.json", SHARED / "cpu/gpt/prof_both.json"]


def commands(work: Path, old_table: Path | None) -> dict[str, list[str]]:
    cmds: dict[str, list[str]] = {"python start-up": [PY, "-c", "pass"], "compare's imports only": [PY, "-c", IMPORTS]}
    for label, paths in PAIRS.items():
        both = [str(p) for p in paths]
        cmds[f"{label}: orjson.loads of both"] = [PY, "-c", ORJSON, *both]
        if old_table:
            cmds[f"{label}: before"] = [PY, "-c", OLD_TABLE, str(old_table), "compare", *both, "-o", str(work / "old")]
        cmds[f"{label}: now"] = [TRACEKIT, "compare", *both, "-o", str(work / "new")]
    merged = [str(p) for p in MERGED]
    cmds["merge gpt viz_both + prof_both: orjson.loads of both"] = [PY, "-c", ORJSON, *merged]
    cmds["merge gpt viz_both + prof_both: now"] = [TRACEKIT, "merge", *merged, "-o", str(work / "m.json")]
    return cmds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default=None, help="git revision whose tracekit/compare/table.py is the baseline")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tracekit-pairs-"))
    old_table = None
    if args.before:
        old_table = work / "old_table.py"
        old_table.write_bytes(subprocess.run(["git", "show", f"{args.before}:tracekit/compare/table.py"], cwd=REPO,
                                             check=True, capture_output=True).stdout)
    cmds = commands(work, old_table)
    results: dict[str, list[dict]] = {k: [] for k in cmds}
    for _ in range(args.repeat):
        for label, cmd in cmds.items():
            for out in ("old", "new"):
                shutil.rmtree(work / out, ignore_errors=True)
            result = run(cmd)
            if result["rc"]:
                raise SystemExit(f"{label}: exit code {result['rc']}: {' '.join(cmd)}")
            results[label].append(result)
    print("| command | CPU s | wall s | × orjson (CPU) | peak RSS MB |\n|---|---:|---:|---:|---:|")
    floor = 1.0
    for label, runs in results.items():
        cpu, wall = (statistics.median(r[m] for r in runs) for m in ("cpu", "wall"))
        rss = max(r["rss_mb"] for r in runs)
        if label.endswith("orjson.loads of both"):
            floor = cpu
        ratio = "" if not label.startswith(("compare ", "merge ")) else f"{cpu / floor:.1f}×"
        print(f"| {label} | {cpu:.2f} | {wall:.2f} | {ratio} | {rss:.0f} |")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
