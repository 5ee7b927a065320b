"""Check that a change keeps `tracekit compare` and `tracekit merge` outputs identical on real pairs.

    .venv/bin/python bench/small_golden.py save OUTDIR [--pythonpath TREE]   # run the commands, keep outputs
    .venv/bin/python bench/small_golden.py compare OUTDIR                     # run again, compare with OUTDIR

compare runs with --trace (so trace.json too); merge with --parquet. Parquet tables are compared by content
(arrow `Table.equals`), summary.json as JSON, report.html, trace.json and merged.json byte for byte, and the
terminal output line by line (the output folder's name replaced). Not a test: a manual tool for refactors.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "traces"
SAMPLES = REPO / "sample_traces"
H100, MI300 = "gpu/tracelens/h100", "gpu/tracelens/mi300"
BERT, FALCON, QWEN = ("gaunernst_bert-small-uncased__1016001", "Falconsai_nsfw_image_detection__1016002",
                      "Qwen_Qwen1.5-0.5B-Chat__1016005")
NPU = SHARED / "npu/msinsight_alexnet_dp/text/level1/rank0_ascend_pt"
COMPARE = {
    "bert_vs_falcon_h100": [SHARED / f"{H100}/{BERT}.json.gz", SHARED / f"{H100}/{FALCON}.json.gz"],
    "bert_h100_vs_mi300": [SHARED / f"{H100}/{BERT}.json.gz", SHARED / f"{MI300}/{BERT}.json.gz"],
    "qwen_h100_vs_mi300": [SHARED / f"{H100}/{QWEN}.json.gz", SHARED / f"{MI300}/{QWEN}.json.gz"],
    "a100_vs_v100": [SHARED / "gpu/hta/trace_diff/a100_control.json.gz",
                     SHARED / "gpu/hta/trace_diff/v100_test.json.gz"],
    "gpt_vs_tp_ddp": [SHARED / "cpu/gpt/prof_stack_modules.json.gz", SHARED / "cpu/dist_tp_ddp/rank-0.json.gz"],
    "npu_vs_alexnet_cuda": [NPU, SAMPLES / "alexnet/cuda_rank0.json.gz"],
    "npu_vs_gpt": [NPU, SHARED / "cpu/gpt/prof_stack_modules.json.gz"],
    "gpt_viz_vs_prof": [SHARED / "cpu/gpt/viz.json.gz", SHARED / "cpu/gpt/prof_stack_modules.json.gz"],
}
MERGE = {
    "gpt_viz_prof_both": [SHARED / "cpu/gpt/viz_both.json", SHARED / "cpu/gpt/prof_both.json"],
    "log_torch_twice": [SHARED / "cpu/gpt/viz_log_torch.json.gz", SHARED / "cpu/gpt/viz_log_torch.json.gz"],
    "log_torch_prof_both_offset": [SHARED / "cpu/gpt/viz_log_torch.json.gz", SHARED / "cpu/gpt/prof_both.json",
                                   "--offset", "0=0"],
}
CLI = "import sys\nfrom tracekit.cli import main\nsys.argv[0] = 'tracekit'\nsys.exit(main())\n"


def run_cli(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-P", "-c", CLI, *args], env=env, cwd=REPO, capture_output=True,
                          text=True)
    return done.returncode, done.stdout


def produce(out: Path, pythonpath: str | None) -> None:
    """Run every pair into out/<name>/ (the command's files plus stdout.txt and rc.txt)."""
    env = {**os.environ, "COLUMNS": "200"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    for name, inputs in COMPARE.items():
        dest = out / f"compare_{name}"
        rc, text = run_cli(["compare", *map(str, inputs), "-o", str(dest), "--trace"], env)
        _keep(dest, rc, text)
        print(f"compare {name}: rc {rc}", flush=True)
    for name, inputs in MERGE.items():
        dest = out / f"merge_{name}"
        dest.mkdir(parents=True, exist_ok=True)
        rc, text = run_cli(["merge", *map(str, inputs), "-o", str(dest / "merged.json"), "--parquet",
                            str(dest / "pq")], env)
        _keep(dest, rc, text)
        print(f"merge {name}: rc {rc}", flush=True)


def _keep(dest: Path, rc: int, text: str) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "rc.txt").write_text(str(rc))
    (dest / "stdout.txt").write_text(text.replace(str(dest), "<OUT>"))


def differences(ref: Path, new: Path) -> list[str]:
    found = []
    ref_files = sorted(p.relative_to(ref) for p in ref.rglob("*") if p.is_file())
    new_files = sorted(p.relative_to(new) for p in new.rglob("*") if p.is_file())
    if ref_files != new_files:
        found.append(f"{ref.name}: files differ: {sorted(set(ref_files) ^ set(new_files))}")
    for rel in ref_files:
        a, b = ref / rel, new / rel
        if not b.exists():
            continue
        if rel.suffix == ".parquet":
            ta, tb = pq.read_table(a), pq.read_table(b)
            if not ta.equals(tb):
                found.append(f"{ref.name}/{rel}: table differs ({ta.num_rows} vs {tb.num_rows} rows)")
        elif rel.name == "summary.json":
            ja, jb = _norm(json.loads(a.read_text()), ref, new), json.loads(b.read_text())
            if ja != jb:
                found.append(f"{ref.name}/{rel}: summary differs")
        elif a.read_bytes() != b.read_bytes():
            found.append(f"{ref.name}/{rel}: bytes differ")
    return found


def _norm(doc, ref: Path, new: Path):
    return json.loads(json.dumps(doc).replace(str(ref), str(new)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["save", "compare"])
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--pythonpath", default=None, help="tracekit tree to put first on PYTHONPATH")
    args = ap.parse_args(argv)
    if args.mode == "save":
        shutil.rmtree(args.outdir, ignore_errors=True)
        produce(args.outdir, args.pythonpath)
        return 0
    work = Path(tempfile.mkdtemp(prefix="tracekit-small-golden-"))
    try:
        produce(work, args.pythonpath)
        problems = []
        for ref in sorted(p for p in args.outdir.iterdir() if p.is_dir()):
            problems += differences(ref, work / ref.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(problems) or "identical")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
