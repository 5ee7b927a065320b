"""Every command on every real input shape: files, folders of rank files, Ascend folders, and the dataset of each.

    .venv/bin/python bench/command_sweep.py [--quick] [--jobs N] [--keep DIR]

Real inputs (../shared/traces and sample_traces: small and medium files, rank folders, Ascend text and .db exports at
every level, a level folder of two ranks, the server CSVs, the older mstt format) are each converted into a dataset,
and then info, info --json, modules (table, csv), parallel, report, compare against a fixed trace in both
directions and against itself, and sql (datasets) run on the raw input and on its dataset, each in its own
process. A run must exit 0, or 2 with one `error:` line; a traceback or the last-resort "tracekit bug" line is a
broken promise. The fuzz suites damage inputs; this one finds what no single-file case reaches (the compare of a
folder of ranks found this way crashed on duplicate module paths).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "traces"
RUN = [sys.executable, "-c", "from tracekit.cli import main; main()"]
OTHER = REPO / "sample_traces" / "gpt" / "prof.json.gz"  # the fixed other side of compare

INPUTS = [
    "sample_traces/gpt/prof.json.gz", "sample_traces/gpt/viz.json.gz", "sample_traces/gpt/prof_cuda.json.gz",
    "sample_traces/cnn/prof.json.gz", "sample_traces/alexnet/cpu_rank0.json.gz",
    "sample_traces/dist_pp_dp", "sample_traces/dist_ep_dp", "sample_traces/dist_dp_cp",
    "sample_traces/dist_cp_allgather",
    "cpu/gpt/prof_stack_modules.json.gz", "cpu/gpt/viz_log_torch.json.gz", "cpu/gpt/viz_both.json",
    "cpu/dist_tp_ddp", "cpu/dist_cp_tp",
    "gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz",
    "gpu/tracelens/mi300/gaunernst_bert-small-uncased__1016001.json.gz",
    "gpu/tracelens/mi300/resnet_act_checkpoint.json.gz", "gpu/tracelens/b200/eager_trace.json.gz",
    "gpu/hta/nccl_data.json.gz", "gpu/hta/trace_diff/v100_test.json.gz",
    "gpu/hta/mi250_minitoy_train_ROCm6_2_kineto.json.gz", "gpu/param_dlrm_8ranks", "gpu/kineto_legacy",
    "npu/msinsight_alexnet_dp/text/level0", "npu/msinsight_alexnet_dp/text/level1/rank0_ascend_pt",
    "npu/msinsight_alexnet_dp/text/level2", "npu/msinsight_alexnet_dp/db/level1",
    "npu/msinsight_alexnet_dp/db/level0/rank1_ascend_pt", "npu/msinsight_qwen3_mindspeed", "npu/msinsight_server",
    "npu/mstt",
]
QUICK = [*INPUTS[:3], "sample_traces/dist_pp_dp", "cpu/dist_tp_ddp", "npu/msinsight_alexnet_dp/text/level1"]


def _path(rel: str) -> Path:
    return REPO / rel if rel.startswith("sample_traces/") else SHARED / rel


def _commands(target: Path, dataset: bool, out: Path) -> list[list[str]]:
    t = str(target)
    runs = [["info", t], ["info", t, "--json"], ["modules", t], ["modules", t, "--format", "csv"],
            ["parallel", t], ["report", t, "-o", str(out / "page.html")],
            ["compare", t, str(OTHER), "-o", str(out / "cmp1")], ["compare", str(OTHER), t, "-o", str(out / "cmp2")],
            ["compare", t, t, "-o", str(out / "cmp3")]]
    if dataset:
        runs.append(["sql", t, "SELECT kind, count(*) n FROM events GROUP BY ALL ORDER BY n DESC"])
    return runs


def _run(args: list[str]) -> tuple[list[str], int, str]:
    proc = subprocess.run(RUN + args, capture_output=True, text=True, timeout=900)
    return args, proc.returncode, proc.stderr


def _broken(code: int, stderr: str) -> str | None:
    if "Traceback" in stderr or "tracekit bug" in stderr:
        return "traceback or tracekit bug"
    if code == 2:
        errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
        return None if len(errors) == 1 else f"exit 2 with {len(errors)} error lines"
    return None if code == 0 else f"exit {code}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="six inputs only")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temporary one)")
    opts = parser.parse_args()
    work = opts.keep or Path(tempfile.mkdtemp(prefix="command-sweep-"))
    work.mkdir(parents=True, exist_ok=True)
    runs: list[list[str]] = []
    for i, rel in enumerate(QUICK if opts.quick else INPUTS):
        source = _path(rel)
        if not source.exists():
            print(f"missing: {source}", file=sys.stderr)
            continue
        dataset = work / f"ds{i}"
        args, code, stderr = _run(["convert", str(source), "-o", str(dataset), "--force"])
        problem = _broken(code, stderr)
        if problem:
            print(f"BROKEN {problem}: tracekit {' '.join(args)}\n{stderr[-2000:]}")
        for target, is_dataset in ((source, False), (dataset, code == 0)):
            if target == dataset and code != 0:
                continue
            out = work / f"out{i}{'d' if is_dataset else 'r'}"
            out.mkdir(exist_ok=True)
            runs += _commands(target, is_dataset, out)
    broken = 0
    with ThreadPoolExecutor(opts.jobs) as pool:
        for args, code, stderr in pool.map(_run, runs):
            problem = _broken(code, stderr)
            if problem:
                broken += 1
                print(f"BROKEN {problem}: tracekit {' '.join(args)}\n{stderr[-2000:]}")
    print(f"{len(runs)} runs on {len(QUICK if opts.quick else INPUTS)} inputs and their datasets: {broken} broke a "
          "promise")
    if opts.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if broken else 0


if __name__ == "__main__":
    os.environ.setdefault("TRACEKIT_DECODE_PROCESSES", "1")
    sys.exit(main())
