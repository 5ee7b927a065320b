"""The dataset: convert writes a manifest; info, modules, compare and parallel read it (same answers as the raw
traces, fewer columns); staleness; per-rank traces when the merged one would be too large for Perfetto UI."""

from __future__ import annotations

import json
import os
import shutil
import warnings

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import SAMPLES, shared

from tracekit.cli import main
from tracekit.dataset import Dataset, read_manifest
from tracekit.dataset.load import INFO_COLUMNS, STEP_TIME_COLUMNS
from tracekit.dataset.manifest import FORMAT_VERSION, MANIFEST
from tracekit.errors import TraceWarning

DLRM = "gpu/param_dlrm_8ranks"


def _run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_manifest_of_a_multi_rank_dataset(converted):
    out, summary = converted(shared(DLRM))
    manifest = read_manifest(out)
    assert manifest["format_version"] == FORMAT_VERSION and manifest["tracekit_version"]
    files = sorted(shared(DLRM).glob("*.json.gz"))
    assert [r["path"] for r in manifest["inputs"]] == [str(f.resolve()) for f in files]
    assert [r["size"] for r in manifest["inputs"]] == [f.stat().st_size for f in files]
    assert all(len(r["sha256"]) == 64 for r in manifest["inputs"])
    assert manifest["ranks"] == list(range(8)) == summary["ranks"]
    events = manifest["tables"]["events"]
    assert events["layout"] == "partitioned by rank" and events["rows"] == summary["parquet"]["events"]
    names = [c["name"] for c in events["columns"]]
    assert {"rank", "ts_ns", "dur_ns", "name", "kind", "parent", "args"} <= set(names)
    assert manifest["tables"]["collectives"]["layout"] == "file"
    # each source knows its rank and its file: the dataset needs no trace to describe itself
    assert [s["rank"] for s in manifest["sources"]] == list(range(8))
    assert [os.path.basename(s["path"]) for s in manifest["sources"]] == [f.name for f in files]


def test_manifest_of_a_single_trace(converted):
    out, summary = converted(SAMPLES / "cnn" / "prof.json.gz")
    manifest = read_manifest(out)
    assert manifest["tables"]["events"] == {**manifest["tables"]["events"], "layout": "file", "path": "events.parquet"}
    assert manifest["tables"]["events"]["rows"] == summary["parquet"]["events"]
    assert manifest["traces"] == ["trace.json"]
    ds = Dataset(out)
    assert ds.sources[0].format == "torch" and ds.sources[0].process_names  # names of the chrome processes


@pytest.mark.parametrize("command", [["info", "--json"], ["modules", "--format", "csv"], ["parallel", "--json"]])
@pytest.mark.parametrize("rel", [DLRM, "cpu/dist_tp_ddp"])
def test_commands_on_a_dataset_say_what_they_say_on_the_traces(converted, command, rel):
    out, _ = converted(shared(rel))
    on_dataset, on_raw = _run(*command, out), _run(*command, shared(rel))
    assert on_dataset.exit_code == on_raw.exit_code == 0, on_dataset.output
    assert on_dataset.stdout == on_raw.stdout
    assert len(on_dataset.stdout) > 1000  # a real answer, not two empty ones


def test_info_and_modules_on_a_recorded_sample_dataset(converted):
    src = SAMPLES / "gpt" / "prof.json.gz"
    out, _ = converted(src)
    for command in (["info", "--json"], ["modules", "--format", "json"]):
        assert _run(*command, out).stdout == _run(*command, src).stdout
    facts = json.loads(_run("info", "--json", out).stdout)
    assert facts["has_modules"] and facts["counts_by_kind"]["cpu_op"] > 100


def test_compare_on_datasets_gives_the_tables_of_the_traces(converted, tmp_path):
    base, target = shared("cpu/gpt/prof_stack_modules.json.gz"), SAMPLES / "gpt" / "prof.json.gz"
    a, b = converted(base)[0], converted(target)[0]
    assert _run("compare", a, b, "-o", tmp_path / "ds").exit_code == 0
    assert _run("compare", base, target, "-o", tmp_path / "raw").exit_code == 0
    for name in ("compare_modules", "compare_ops", "compare_steps"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "ds" / f"{name}.parquet"),
                                      pd.read_parquet(tmp_path / "raw" / f"{name}.parquet"))
    assert (pd.read_parquet(tmp_path / "ds" / "compare_modules.parquet")["status"] == "matched").sum() > 10


def test_commands_read_only_the_columns_they_need(converted):
    out, _ = converted(shared(DLRM))
    ds = Dataset(out)
    info = ds.processed(INFO_COLUMNS)
    assert set(info.table.events.columns) == set(INFO_COLUMNS)
    assert len(info.table.args) == len(info.table.events) and info.table.args.nbytes < 9 * (len(info.table.args) + 1)
    assert set(ds.processed(STEP_TIME_COLUMNS).table.events.columns) == set(STEP_TIME_COLUMNS)
    one = ds.read("kernels", ["name", "dur_ns"], ranks=[3])
    assert list(one.columns) == ["name", "dur_ns"] and len(one) == len(ds.read("kernels", ranks=[3]))
    assert len(one) == int((ds.read("kernels", ["rank"])["rank"] == 3).sum()) > 0


def test_dataset_events_shift_row_references_across_ranks(converted):
    out, _ = converted(shared(DLRM))
    ev = Dataset(out).events(["rank", "parent", "source_index"])
    parents = ev["parent"].to_numpy()
    has = parents >= 0
    # every parent is a row of the same rank (as when the ranks are read together from the traces)
    assert (ev["rank"].to_numpy()[parents[has]] == ev["rank"].to_numpy()[has]).all()
    assert sorted(ev["source_index"].unique()) == list(range(8))


def _copy_and_convert(tmp_path):
    src = tmp_path / "in" / "rank-0.json.gz"
    src.parent.mkdir()
    shutil.copyfile(SAMPLES / "cnn" / "prof.json.gz", src)
    out = tmp_path / "ds"
    assert _run("convert", src, "-o", out).exit_code == 0
    return src, out


def test_a_touched_input_is_not_stale_a_changed_one_is(tmp_path):
    src, out = _copy_and_convert(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TraceWarning)  # no warning at all on a fresh dataset
        assert _run("info", out).exit_code == 0
        os.utime(src, ns=(1, 1))  # same bytes, new mtime: the hash decides, and it is the same
        assert [s.state for s in Dataset(out).staleness()] == ["unchanged"]
        assert _run("info", out).exit_code == 0
    data = bytearray(src.read_bytes())
    data[-20] ^= 0xFF  # same size, other content
    src.write_bytes(bytes(data))
    os.utime(src, ns=(2, 2))
    state = Dataset(out).staleness()[0]
    assert state.state == "changed" and "SHA-256" in state.why
    with pytest.warns(TraceWarning, match=f"stale dataset: input {src.resolve()} changed since it was converted"):
        assert _run("info", out).exit_code == 0
    src.write_bytes(b"[]")
    assert "size" in Dataset(out).staleness()[0].why


def test_a_missing_input_is_said(tmp_path):
    src, out = _copy_and_convert(tmp_path)
    src.unlink()
    with pytest.warns(TraceWarning, match="is gone; cannot check that the dataset is current"):
        result = _run("modules", out, "--format", "csv")
    assert result.exit_code == 0 and "module_path" in result.stdout


def test_bad_datasets_are_clear_errors(tmp_path, converted):
    out, _ = converted(SAMPLES / "cnn" / "prof.json.gz")
    result = _run("info", out, SAMPLES / "cnn" / "prof.json.gz")
    assert result.exit_code == 2 and "give it as the only input" in result.stderr
    result = _run("convert", out, "-o", tmp_path / "again")
    assert result.exit_code == 2 and "is a tracekit dataset" in result.stderr and not (tmp_path / "again").exists()
    newer = tmp_path / "newer"
    shutil.copytree(out, newer)
    manifest = json.loads((newer / MANIFEST).read_text())
    (newer / MANIFEST).write_text(json.dumps({**manifest, "format_version": FORMAT_VERSION + 1}))
    result = _run("info", newer)
    assert result.exit_code == 2 and "newer than this tracekit reads" in result.stderr
    (newer / MANIFEST).write_text("{not json")
    result = _run("modules", newer)
    assert result.exit_code == 2 and "damaged dataset manifest" in result.stderr and "Traceback" not in result.output


def test_large_jobs_write_per_rank_traces_and_a_merged_subset(tmp_path, converted):
    out = tmp_path / "out"
    result = _run("convert", shared(DLRM), "-o", out, "--workers", "2", "--max-trace-gb", "0.0005")
    assert result.exit_code == 0, result.output
    assert "one trace per rank" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trace"]["per_rank_traces"] == [f"traces/rank-{r}.json" for r in range(8)]
    merged = json.loads((out / "trace.json").read_text())
    ranks = [r["rank"] for r in merged["tracekit"]["ranks"]]
    assert ranks == summary["trace"]["ranks"] and 1 <= len(ranks) < 8
    assert os.path.getsize(out / "trace.json") <= 0.0005 * 2**30 or len(ranks) == 1
    per_rank = [json.loads((out / p).read_text()) for p in summary["trace"]["per_rank_traces"]]
    whole = json.loads((converted(shared(DLRM))[0] / "trace.json").read_text())["traceEvents"]
    assert sum(len(t["traceEvents"]) for t in per_rank) == len(whole)  # every event is in one rank's trace
    assert all({e["pid"] for e in t["traceEvents"]} for t in per_rank)
    # a chosen subset, on one clock
    sub = tmp_path / "sub"
    assert _run("convert", shared(DLRM), "-o", sub, "--workers", "1", "--ranks", "0-1,6").exit_code == 0
    merged = json.loads((sub / "trace.json").read_text())
    assert [r["rank"] for r in merged["tracekit"]["ranks"]] == [0, 1, 6]
    assert "baseTimeNanoseconds" in merged and len({e["pid"] for e in merged["traceEvents"]}) >= 3
    assert read_manifest(sub)["traces"] == ["trace.json", *[f"traces/rank-{r}.json" for r in range(8)]]
    bad = _run("convert", shared(DLRM), "-o", tmp_path / "bad", "--ranks", "7-3")
    assert bad.exit_code == 2 and not (tmp_path / "bad").exists()


def test_npu_profiler_folder_dataset(converted):
    src = shared("npu/msinsight_alexnet_dp/text/level1/rank0_ascend_pt")
    out, _ = converted(src)
    record = read_manifest(out)["inputs"][0]
    assert record["path"] == str(src.resolve())
    assert record["size"] == sum(f.stat().st_size for f in src.rglob("*") if f.is_file())
    for command in (["info", "--json"], ["modules", "--format", "csv"]):
        on_dataset = _run(*command, out)
        assert on_dataset.exit_code == 0 and on_dataset.stdout == _run(*command, src).stdout
    assert json.loads(_run("info", "--json", out).stdout)["sources"][0]["format"] == "npu"
