"""`tracekit report DATASET` gives the page of the raw traces, and compare takes a side of several ranks.

The report page is compared byte for byte with the page made from the raw traces (the same inputs, the same
command): on a CPU trace with modules, a GPU trace with kernels, a multi-rank job (the parallel section) and with
--base (the comparison section). compare of a folder of rank files or of a multi-rank dataset crashed ("tracekit
bug": duplicate module paths of several ranks); it now compares the first rank and says so.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import SAMPLES, shared
from test_bad_input import cli

import tracekit
from tracekit.convert import convert

GPT = SAMPLES / "gpt" / "prof.json.gz"
GPT_CUDA = SAMPLES / "gpt" / "prof_cuda.json.gz"
PP_DP = SAMPLES / "dist_pp_dp"  # 4 ranks, pipeline + data parallel
BERT = "gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz"


@pytest.fixture(scope="module")
def dataset_of(tmp_path_factory):
    cache: dict[str, Path] = {}

    def get(path: Path) -> Path:
        if str(path) not in cache:
            out = tmp_path_factory.mktemp("ds") / path.name.split(".")[0]
            convert([path], out)
            cache[str(path)] = out
        return cache[str(path)]

    return get


def _page(tmp: Path, name: str, *args: object) -> str:
    out = tmp / f"{name}.html"
    result = cli("report", *args, "-o", out)
    assert result.exit_code == 0, result.output
    return out.read_text()


@pytest.mark.parametrize("case", ["cpu_modules", "gpu_kernels", "ranks", "base"])
def test_report_of_a_dataset_is_the_page_of_its_traces(tmp_path: Path, dataset_of, case: str) -> None:
    trace, extra = {"cpu_modules": (GPT, []), "gpu_kernels": (shared(BERT), []), "ranks": (PP_DP, []),
                    "base": (GPT, ["--base", GPT_CUDA])}[case]
    raw = _page(tmp_path, "raw", trace, *extra)
    from_dataset = _page(tmp_path, "dataset", dataset_of(trace), *extra)
    assert from_dataset == raw
    # what the page shows, by meaning: the sections the case must have
    assert "id='overview'" in raw
    if case == "cpu_modules":
        assert "CausalSelfAttention" in raw and "29 modules" in raw
    if case == "gpu_kernels":
        assert re.search(r"\d+ modules", raw) and "H100" in raw
    if case == "ranks":  # gloo on CPU: the overview says why its communication differs from Parallel's
        assert "+ 3 ranks" in raw and "Pipeline" in raw and "counts as idle / waiting here" in raw
    if case == "cpu_modules":
        assert "counts as idle / waiting here" not in raw  # no collectives: no note
    if case == "base":
        assert "prof_cuda.json.gz" in raw


def test_report_of_a_dataset_needs_no_raw_trace(tmp_path: Path) -> None:
    """The dataset is enough: its input moved away, the page is still made (with a warning that it is gone)."""
    copy = tmp_path / "prof.json.gz"
    shutil.copy(GPT, copy)
    convert([copy], tmp_path / "ds")
    copy.unlink()
    result = cli("report", tmp_path / "ds", "-o", tmp_path / "page.html")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("is gone") == 1  # warned once (the bar's step count reads the manifest unchecked)
    page = (tmp_path / "page.html").read_text()
    assert "CausalSelfAttention" in page and "<title>tracekit report: " in page
    assert page == _page(tmp_path, "raw", GPT).replace(str(GPT), str(copy)).replace("gpt/prof.json.gz",
                                                                                    f"{tmp_path.name}/prof.json.gz")


def _rank0_file(folder: Path) -> Path:
    return sorted(folder.glob("rank-0.json*"))[0]


@pytest.mark.parametrize("side", ["folder", "dataset"])
def test_compare_of_several_ranks_compares_the_first(tmp_path: Path, dataset_of, side: str) -> None:
    """A side of several ranks is compared by its first rank: the same module and op tables as that rank's file
    alone, and a note naming the rank; before, the ranks' module paths collided (exit 1, "tracekit bug")."""
    several = PP_DP if side == "folder" else dataset_of(PP_DP)
    alone = tracekit.compare(_rank0_file(PP_DP), GPT)
    got = tracekit.compare(several, GPT)
    assert len(got.modules) == len(alone.modules) > 0 and got.modules.equals(alone.modules)
    assert got.ops.equals(alone.ops)
    assert [n for n in got.notes if "ranks given" in n] == [
        f"base: 4 ranks given: compared rank 0 ({_rank0_file(PP_DP)}) only; give one rank's trace to compare another"]
    result = cli("compare", several, GPT, "-o", tmp_path / "cmp")
    assert result.exit_code == 0, result.output
    assert "ranks given: compared rank 0" in result.output
