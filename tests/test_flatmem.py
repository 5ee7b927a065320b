"""The parent of a multi-rank job keeps no per-rank records: convert spills what each rank sends back
(summary, source record, fingerprint, distributedInfo, deviceProperties) to a file in the stage folder and writes
summary.json, tracekit.json and the trace metadata from it; parallel writes each rank's step split to Parquet
partitions and reads them back. Outputs are those of the in-memory build (real multi-rank traces)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson
import pandas as pd
import pytest
from conftest import SAMPLES, shared

import tracekit.ranks as ranks_mod
from tracekit.convert import convert
from tracekit.dataset.manifest import read_manifest, write_manifest
from tracekit.group_members import collectives_table
from tracekit.inputs import expand_inputs
from tracekit.parallel.pipeline import pipeline_tables
from tracekit.parallel.report import by_rank, stragglers
from tracekit.parallel.splits import SPANS, read_splits, write_split
from tracekit.rankrecords import SPILLED, RankRecords, dump_streamed
from tracekit.ranks import RankJob, analyse_ranks, convert_rank

DLRM = "gpu/param_dlrm_8ranks"
QWEN = "npu/msinsight_qwen3_mindspeed"


def _inputs(rel: str) -> list[Path]:
    path = SAMPLES / rel.removeprefix("sample_traces/") if rel.startswith("sample_traces/") else shared(rel)
    if rel.startswith("npu/"):
        return expand_inputs([str(p) for p in sorted(path.iterdir())])
    return expand_inputs([str(path)])


@pytest.mark.parametrize("obj", [
    {"a": 1, "sources": [], "z": {"k": [1, 2]}},
    {"sources": [{"x": [1, {"y": None}], "s": "é\u0000\n"}, {"x": []}, 3.5, "t"], "after": [[]], "n": float("nan")},
    {"inputs": [{"p": 1}], "b": True, "sources": [{"q": {"r": [{}]}}]},
])
@pytest.mark.parametrize("indent", [1, 2])
def test_streamed_json_is_json_dumps(obj, indent, tmp_path):
    """Lists streamed item by item give the text json.dumps gives for the whole object (empty, nested, odd text)."""
    keys = [k for k in ("inputs", "sources") if k in obj]
    path = tmp_path / "out.json"
    with path.open("w") as fh:
        dump_streamed(fh, obj, indent, {k: (lambda k=k: iter(obj[k])) for k in keys})
    assert path.read_text() == json.dumps(obj, indent=indent)


def test_records_spill_and_come_back_in_order(tmp_path):
    paths = _inputs("sample_traces/dist_pp_dp")
    records = RankRecords(tmp_path / "records.jsonl")
    results = ranks_mod.run_ranks(ranks_mod.job_list(paths, tmp_path, calls=str(tmp_path / "calls"), splits=False),
                                  1, on_done=records.add)
    back = list(records)
    assert [r["index"] for r in back] == list(range(len(paths))) and records.count == len(paths)
    assert [r["rank"] for r in back] == [r.rank for r in results] == [0, 1, 2, 3]
    for rec, result in zip(back, results):
        for name in SPILLED:  # emptied in what the parent keeps, whole in the file
            assert not getattr(result, name)
        assert rec["summary"]["input_events"] > 0 and rec["source"]["thread_names"]
        assert rec["input"]["sha256"] and rec["distributed"]["rank"] == rec["rank"]


@pytest.fixture(scope="module")
def dlrm_convert(tmp_path_factory):
    """convert of the 8 dlrm ranks in-process, with what the parent held when it wrote the trace."""
    seen = {}
    real = ranks_mod.write_traces

    def spy(results, records, *args, **kwargs):
        seen["results"] = list(results)
        seen["records"] = records.path
        seen["spilled"] = list(records)
        return real(results, records, *args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(ranks_mod, "write_traces", spy)
    try:
        out = tmp_path_factory.mktemp("dlrm") / "out"
        summary = convert(_inputs(DLRM), out, workers=1)
    finally:
        mp.undo()
    return out, summary, seen


def test_convert_parent_holds_slim_results_and_uses_the_spill_file(dlrm_convert):
    out, _summary, seen = dlrm_convert
    assert seen["records"].name == ".ranks.jsonl" and len(seen["spilled"]) == 8
    # no RankResult is kept: the ranks come as columns (index, rank, fragment, base ns), one row per input
    assert [(r.index, r.rank) for r in seen["results"]] == [(i, i) for i in range(8)]
    assert all(r.fragment.endswith(f"{r.index:05d}.json") for r in seen["results"])
    assert not any(isinstance(r, ranks_mod.RankResult) for r in seen["results"])
    assert not (out / ".ranks.jsonl").exists()  # scratch removed from the output folder
    assert json.loads((out / "summary.json").read_text())["ranks"] == list(range(8))


def test_summary_and_manifest_written_from_records_equal_the_in_memory_build(dlrm_convert, tmp_path):
    out, summary, seen = dlrm_convert
    text = (out / "summary.json").read_text()
    assert text == json.dumps(summary, indent=2)  # the returned summary (sources whole) is the file, byte for byte
    files = sorted(_inputs(DLRM))
    assert [s["path"] for s in summary["sources"]] == [str(f) for f in files]
    assert [s["rank"] for s in summary["sources"]] == list(range(8))
    assert summary["input_events"] == sum(r["summary"]["input_events"] for r in seen["spilled"]) > 0
    assert summary["conserved"] and summary["collectives"]["rows"] == 64
    raw = json.loads((out / "tracekit.json").read_text())
    assert [s["devices"] for s in raw["sources"]] == [0] * 8 and len(raw["device_lists"]) == 1  # one node's 8 GPUs
    manifest = read_manifest(out)
    assert [s["rank"] for s in manifest["sources"]] == list(range(8))
    assert all(s["thread_names"] and len(s["devices"]) == 8 for s in manifest["sources"])
    assert [i["sha256"] for i in manifest["inputs"]] == [r["input"]["sha256"] for r in seen["spilled"]]
    # the same manifest written from lists held in memory is the same text
    (tmp_path / "events").symlink_to(out / "events")
    for name in ("kernels", "ops", "steps", "modules"):
        (tmp_path / name).symlink_to(out / name)
    for name in ("collectives.parquet", "group_members.parquet"):
        (tmp_path / name).symlink_to(out / name)
    (tmp_path / "modules_json").symlink_to(out / "modules_json")  # the module rows files (side15)
    write_manifest(tmp_path, manifest["inputs"], manifest["sources"], manifest["ranks"], summary["parquet"],
                   manifest["traces"])
    assert (tmp_path / "tracekit.json").read_text() == (out / "tracekit.json").read_text()


def _doc(path: Path) -> dict:
    with gzip.open(path) as fh:
        return orjson.loads(fh.read())


def test_trace_metadata_from_records(dlrm_convert):
    out, _summary, _seen = dlrm_convert
    doc = orjson.loads((out / "trace.json").read_bytes())
    files = sorted(_inputs(DLRM))
    raw = [_doc(f) for f in files]
    assert [r["distributedInfo"] for r in doc["tracekit"]["ranks"]] == [d["distributedInfo"] for d in raw]
    assert [r["path"] for r in doc["tracekit"]["ranks"]] == [str(f) for f in files]
    listed = [p for d in raw for p in d["deviceProperties"]]  # each rank lists its node's 8 GPUs: once each
    assert len(listed) == 64 and doc["deviceProperties"] == [p for i, p in enumerate(listed) if p not in listed[:i]]
    assert [d["id"] for d in doc["deviceProperties"]] == list(range(8))
    assert doc["displayTimeUnit"] == "ms" and doc["tracekit"]["note"].startswith("ts are microseconds")


def test_trace_metadata_of_a_chosen_subset(tmp_path):
    summary = convert(_inputs(DLRM), tmp_path / "out", workers=1, trace_ranks=[1, 6])
    doc = orjson.loads((tmp_path / "out" / "trace.json").read_bytes())
    assert [r["rank"] for r in doc["tracekit"]["ranks"]] == [1, 6] == summary["trace"]["ranks"]
    assert doc["deviceProperties"] == _doc(_inputs(DLRM)[1])["deviceProperties"]  # the same node's 8 GPUs, once
    assert len(summary["trace"]["per_rank_traces"]) == 8


def _in_memory_splits(paths: list[Path], tmp_path: Path) -> pd.DataFrame:
    """The step splits as the workers make them, concatenated in memory (what parallel held before)."""
    frames = [convert_rank(RankJob(i, str(p), str(tmp_path), parquet=False, chrome=False)).steps
              for i, p in enumerate(paths)]
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("rel", [DLRM, QWEN, "sample_traces/dist_pp_dp", "sample_traces/dist_ep_dp"])
def test_step_splits_from_parquet_equal_the_in_memory_ones(rel, tmp_path):
    paths = _inputs(rel)
    memory = _in_memory_splits(paths, tmp_path)
    for i, rank in enumerate(memory["rank"].unique()):
        write_split(memory[memory["rank"] == rank].reset_index(drop=True), tmp_path / "splits", int(rank), i)
    whole = read_splits(tmp_path / "splits", spans=True)
    pd.testing.assert_frame_equal(whole, memory)
    assert all(isinstance(v, list) for col in SPANS for v in whole[col])
    narrow = read_splits(tmp_path / "splits")
    assert not set(SPANS) & set(narrow.columns)
    pd.testing.assert_frame_equal(narrow, memory.drop(columns=list(SPANS)))
    pd.testing.assert_frame_equal(by_rank(narrow), by_rank(memory))
    pd.testing.assert_frame_equal(stragglers(narrow), stragglers(memory))
    assert len(by_rank(narrow)) == len(paths)


def test_parallel_reads_the_split_partitions_and_spans_only_for_pipelines(tmp_path, monkeypatch):
    import tracekit.parallel.splits as splits_mod

    calls = []
    real = splits_mod.read_splits

    def spy(folder, spans=False):
        calls.append((len(list(Path(folder).glob("rank=*/part-*.arrow"))), spans))
        return real(folder, spans)

    monkeypatch.setattr(splits_mod, "read_splits", spy)
    for rel, pipeline in ((DLRM, False), ("sample_traces/dist_pp_dp", True)):
        paths = _inputs(rel)
        coll, steps, groups = analyse_ranks(paths, workers=1)
        assert calls[-1] == (len(paths), pipeline)
        memory = _in_memory_splits(paths, tmp_path)
        if not pipeline:
            memory = memory.drop(columns=list(SPANS))
        pd.testing.assert_frame_equal(steps, memory)
        tables = pipeline_tables(coll, steps, groups)
        assert bool(tables) == pipeline
        if pipeline:  # the bubble is drawn from the spans read back
            assert tables["pipeline_bubble"]["compute_ns"].notna().all()


@pytest.mark.parametrize("rel, pipeline", [(DLRM, False), ("sample_traces/dist_pp_dp", True)])
def test_dataset_parallel_keeps_narrow_splits_unless_pipeline(rel, pipeline, tmp_path):
    from tracekit.dataset.load import dataset_of, parallel_of

    paths = _inputs(rel)
    convert(paths, tmp_path / "ds", workers=1)
    coll, steps, groups = parallel_of(dataset_of([tmp_path / "ds"]))
    raw = analyse_ranks(paths, workers=1)[1]
    assert set(SPANS) <= set(steps.columns) if pipeline else not set(SPANS) & set(steps.columns)
    pd.testing.assert_frame_equal(steps, raw)  # the same split as from the raw traces' workers
    assert bool(pipeline_tables(coll, steps, groups)) == pipeline


@pytest.mark.parametrize("rel", [DLRM, QWEN])
def test_collectives_read_row_group_by_row_group_equal_the_whole_read(rel, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    import tracekit.parallel.crossrank as crossrank

    monkeypatch.setattr(crossrank, "BATCH_BYTES", 1)  # one row group per rank
    paths = _inputs(rel)
    results = ranks_mod.run_ranks(ranks_mod.job_list(paths, tmp_path, parquet=False, chrome=False,
                                                     calls=str(tmp_path / "calls"), splits=False), 1)
    crossrank.write_collectives_from_parts(tmp_path / "calls", [r.distributed for r in results], tmp_path / "c.parquet")
    assert pq.ParquetFile(tmp_path / "c.parquet").metadata.num_row_groups == len({r.rank for r in results}) > 1
    whole = crossrank.collectives_frame(collectives_table(tmp_path / "c.parquet"))
    parts = crossrank.read_collectives(tmp_path / "c.parquet")
    pd.testing.assert_frame_equal(parts, whole)
    # one list object per distinct member list, across row groups
    assert parts["group_ranks"].map(id).nunique() == parts["group_ranks"].map(tuple).nunique()


def test_memory_released_every_step(monkeypatch):
    import tracekit.memory as memory

    calls = []
    monkeypatch.setattr(memory, "release_freed_memory", lambda: calls.append(1))
    for count in range(1, 50):
        memory.every(count)
    assert len(calls) == 49 // memory.EVERY
    monkeypatch.undo()
    memory.release_freed_memory()  # really runs here (glibc: malloc_trim), and never raises
