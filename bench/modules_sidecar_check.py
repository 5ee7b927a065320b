"""Check by hand that `tracekit modules` gives the same bytes on a raw trace, on its dataset through the module
rows file (modules.json) and on the same dataset through the Parquet path (the rows file taken away).

Usage::

    .venv/bin/python bench/modules_sidecar_check.py [INPUT ...]   # one input set per argument (a,b for several)

    .venv/bin/python bench/modules_sidecar_check.py --golden REF NEW   # bench/golden.py save outputs

Without INPUT it takes the sets the side15 task lists (gpt and cnn samples, alexnet, the oracle and attribution
CUDA traces, v100_large, mtia_rank_0_large, owlv2, the dist_* sets, param_dlrm_8ranks, an Ascend folder). Not a
test: the large traces take minutes. Prints one line per set and exits 1 on any difference.

With --golden: compares two folders of `bench/golden.py save` outputs (REF from a tracekit before the rows file,
NEW from this one) as golden.py does, after taking the rows files (modules.json, modules_json/) and the manifest's
`module_rows` entry out of NEW: every other output of convert must be unchanged.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from click.testing import CliRunner

from tracekit.cli import main as cli

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "traces"
OPTIONS = (["--format", "table"], ["--format", "csv"], ["--format", "json"], ["--depth", "2", "--sort", "total"],
           ["--depth", "1", "--sort", "device", "--format", "csv"], ["--sort", "flops", "--format", "json"],
           ["--sort", "params", "--format", "csv"], ["--sort", "backward", "--format", "table"])


def default_sets() -> list[list[Path]]:
    sets = [[p] for folder in ("gpt", "cnn", "oracle_cuda", "attribution_cuda")
            for p in sorted((REPO / "sample_traces" / folder).glob("*.json.gz"))]
    sets += [[REPO / "sample_traces/alexnet/cuda_rank0.json.gz"],
             sorted((REPO / "sample_traces/alexnet").glob("cpu_rank*.json.gz"))]
    sets += [sorted(d.glob("rank-*.json.gz")) for d in sorted((REPO / "sample_traces").glob("dist_*"))]
    sets += [[SHARED / "gpu/hta/v100_large.json.gz"], [SHARED / "gpu/hta/mtia_rank_0_large.json.gz"],
             [SHARED / "gpu/tracelens/h100/google_owlv2-large-patch14-ensemble__1016001.json.gz"],
             [SHARED / "gpu/param_dlrm_8ranks"], [SHARED / "npu/msinsight_alexnet_dp/text/level1/rank0_ascend_pt"]]
    return [s for s in sets if s]


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def without_rows_file(ds: Path, to: Path) -> Path:
    """A copy of the dataset as an older tracekit wrote it: no module rows file, no manifest entry."""
    shutil.copytree(ds, to)
    manifest = json.loads((to / "tracekit.json").read_text())
    manifest.pop("module_rows", None)
    (to / "tracekit.json").write_text(json.dumps(manifest))
    (to / "modules.json").unlink(missing_ok=True)
    shutil.rmtree(to / "modules_json", ignore_errors=True)
    return to


def check(inputs: list[Path], work: Path) -> list[str]:
    ds = work / "ds"
    code, _out, err = run("convert", *inputs, "-o", ds)
    if code:
        return [f"convert failed: {err.strip()}"]
    old = without_rows_file(ds, work / "old")
    title = "modules of " + ", ".join(p.name for p in inputs)
    problems = []
    has_rows_file = "module_rows" in json.loads((ds / "tracekit.json").read_text())
    for options in [*OPTIONS, *(["-o", work / f"x.{f}"] for f in ("txt", "csv", "json"))]:
        got = []
        for source in ([*inputs], [ds], [old]):
            code, out, err = run("modules", *source, *options)
            if "-o" in options:
                written = Path(options[1])
                out = written.read_text() if written.exists() else "(no file)"
                written.unlink(missing_ok=True)
            label = ", ".join(map(str, source))
            got.append((code, out.replace(f"modules of {source[0].name}", title) if source[0] in (ds, old) else out,
                        err.replace(label, "INPUT")))
        if not got[0] == got[1] == got[2]:
            problems.append(f"differs with {' '.join(map(str, options))}")
    return problems + ([] if has_rows_file else ["no module_rows in the manifest"])


def compare_golden(ref: Path, new: Path) -> int:
    """bench/golden.py's comparison of every converted input, the rows files and their manifest entry set aside."""
    sys.path.insert(0, str(REPO / "bench"))
    from golden import same

    bad = 0
    for ref_out in sorted(p for p in ref.iterdir() if p.is_dir()):
        new_out = new / ref_out.name
        with tempfile.TemporaryDirectory(prefix="tracekit-side15-") as tmp:
            stripped = Path(tmp) / "out"
            shutil.copytree(new_out, stripped)
            had_rows = (stripped / "modules.json").exists() or (stripped / "modules_json").is_dir()
            problems = []
            if (stripped / "tracekit.json").exists():
                manifests = [json.loads((d / "tracekit.json").read_text()) for d in (ref_out, stripped)]
                entry = manifests[1].pop("module_rows", None)
                if had_rows != (entry is not None):
                    problems.append("rows file and manifest entry disagree")
                if manifests[0] != manifests[1]:
                    problems.append("tracekit.json differs beyond module_rows")
                shutil.copy(ref_out / "tracekit.json", stripped / "tracekit.json")
            (stripped / "modules.json").unlink(missing_ok=True)
            shutil.rmtree(stripped / "modules_json", ignore_errors=True)
            problems += same(ref_out, stripped)
        print(f"{ref_out.name}: {problems or 'SAME'}" + (" (rows file set aside)" if had_rows else ""), flush=True)
        bad += bool(problems)
    print("ALL SAME" if not bad else f"{bad} DIFFER")
    return 1 if bad else 0


def main() -> None:
    if sys.argv[1:2] == ["--golden"]:
        sys.exit(compare_golden(Path(sys.argv[2]), Path(sys.argv[3])))
    sets = [[Path(p) for p in a.split(",")] for a in sys.argv[1:]] or default_sets()
    bad = 0
    for inputs in sets:
        with tempfile.TemporaryDirectory(prefix="tracekit-side15-") as tmp:
            problems = check(inputs, Path(tmp))
        name = ", ".join(p.name for p in inputs[:2]) + (f" (+{len(inputs) - 2})" if len(inputs) > 2 else "")
        print(f"{'DIFF' if problems else 'same'}  {name}" + (": " + "; ".join(problems) if problems else ""),
              flush=True)
        bad += bool(problems)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
