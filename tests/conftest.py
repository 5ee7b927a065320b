"""Shared fixtures: paths to the real traces and a cache of conversions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "traces"
SAMPLES = ROOT / "sample_traces"


def shared(rel: str) -> Path:
    path = SHARED / rel
    if not path.exists():
        pytest.fail(f"shared trace missing: {path} (tests need ../shared/traces beside the repo)")
    return path


def rank_set_paths(rel: str) -> list[Path]:
    """The input files of a multi-rank set: `sample_traces/...` in this repo, else shared (an npu folder's
    rank folders each)."""
    from tracekit.inputs import expand_inputs

    if rel.startswith("sample_traces/"):
        return expand_inputs([str(ROOT / rel)])
    path = shared(rel)
    if rel.startswith("npu/"):
        return expand_inputs([str(p) for p in sorted(path.iterdir())])
    return expand_inputs([str(path)])


_COMPARED: dict[tuple[str, str], object] = {}


def compared_pair(base: str | Path, target: str | Path):
    """`compare_paths` of two inputs (shared-relative names, or paths), computed once per test session."""
    from tracekit.compare.job import compare_paths

    key = (str(base), str(target))
    if key not in _COMPARED:
        _COMPARED[key] = compare_paths(*(p if isinstance(p, Path) else shared(p) for p in (base, target)))
    return _COMPARED[key]


def processed_trace(rel: str):
    """`pipeline.process` of one shared trace (the first trace file of a folder), as rank tables are made."""
    from tracekit.converters import read_trace

    from tracekit.inputs import with_name_rank
    from tracekit.pipeline import process

    path = shared(rel)
    if path.is_dir():
        path = sorted(path.glob("*.json*"))[0]
    table = with_name_rank(read_trace(path), path)
    table.events["source_index"] = 0
    return process(table)


@pytest.fixture(scope="session")
def converted(tmp_path_factory):
    """convert(path) -> (outdir, summary), each input converted once per session."""
    from tracekit.convert import convert

    cache: dict[str, tuple[Path, dict]] = {}

    def run(path: Path, **kwargs) -> tuple[Path, dict]:
        key = str(path) + json.dumps(kwargs, sort_keys=True)
        if key not in cache:
            out = tmp_path_factory.mktemp(path.name.split(".")[0])
            summary = convert([path], out, **kwargs)
            cache[key] = (out, summary)
        return cache[key]

    return run


@pytest.fixture(scope="module")
def rank_calls(tmp_path_factory):
    """rel -> (per-rank results with their call frames, distributedInfo as the parent gives it) of a rank set,
    converted once per test module."""
    from tracekit.parallel.groups import group_evidence
    from tracekit.ranks import job_list, run_ranks

    cache = {}

    def get(rel: str):
        if rel not in cache:
            tmp = tmp_path_factory.mktemp("rank_calls")
            results = run_ranks(job_list(rank_set_paths(rel), tmp, parquet=False, chrome=False, splits=False), 1)
            cache[rel] = results, group_evidence([r.distributed for r in results])
        return cache[rel]
    return get


def inference_peak(narrow, distributed):
    """(Python memory at group inference's peak above its start, in bytes; the labelled calls): label_calls run
    once to warm imports and caches, then again under tracemalloc."""
    import gc
    import tracemalloc

    from tracekit.parallel.collectives import label_calls

    label_calls(narrow, distributed)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        labelled = label_calls(narrow, distributed)
        return tracemalloc.get_traced_memory()[1] - before, labelled
    finally:
        tracemalloc.stop()
