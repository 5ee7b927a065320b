"""`tracekit merge` on real traces: alignment verified from the events, offsets recovered when the
clocks disagree, duplicates merged once, clean output, every input event accounted for, clear errors."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

import chrome_checks
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import SAMPLES, shared

from tracekit.cli import main
from tracekit.convert import convert
from tracekit.merge import merge
from tracekit.merge.align import best_offset
from tracekit.merge.match import aten_name

VIZ_BOTH, PROF_BOTH = "cpu/gpt/viz_both.json", "cpu/gpt/prof_both.json"
LOG_TORCH = "cpu/gpt/viz_log_torch.json.gz"
SHIFT_NS = 52 * 86_400 * 10**9
MAX_ERROR_NS = 5_000


def _load(path: Path) -> dict:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = zlib.decompress(data, wbits=47)
    return json.loads(data)


def _entry(summary: dict, name: str) -> dict:
    (entry,) = [f for f in summary["merge"]["files"] if Path(f["path"]).name == name]
    return entry


def _check_clean(summary: dict, trace: Path, inputs: list[Path]) -> dict:
    """The merged trace passes the convert checks and every input event is accounted for."""
    doc = chrome_checks.load_trace(trace)
    assert chrome_checks.check_trace(doc) == []
    assert summary["conserved"], summary
    assert summary["input_events"] == sum(len(_load(p)["traceEvents"]) for p in inputs)
    assert doc["tracekit"]["merge"]["files"] == summary["merge"]["files"]
    return doc


def _dispatched_share(events: pd.DataFrame) -> float:
    """Share of VizTracer torch C calls (whose aten op the trace has) with that op as a child in the merged tree."""
    calls = events[(events["source"] == "viztracer") & (events["kind"] == "python")]
    ops = events[events["kind"] == "cpu_op"]
    wanted = calls["name"].map(aten_name)
    calls, wanted = calls[wanted.isin(set(ops["name"]))], wanted[wanted.isin(set(ops["name"]))]
    children = set(zip(ops["parent"].tolist(), ops["name"].tolist()))
    hits = [(row, op) in children for row, op in zip(calls.index.tolist(), wanted.tolist())]
    assert len(hits) > 50
    return float(np.mean(hits))


@pytest.fixture(scope="module")
def both_merged(tmp_path_factory):
    out = tmp_path_factory.mktemp("both")
    inputs = [shared(VIZ_BOTH), shared(PROF_BOTH)]
    summary = merge(inputs, out / "merged.json", parquet_dir=out / "pq")
    return out, summary, inputs


def test_both_pair_is_verified_nested_and_clean(both_merged):
    out, summary, inputs = both_merged
    viz = _entry(summary, "viz_both.json")
    assert viz["method"].startswith("time bases, verified")
    assert viz["offset_ns"] == 0
    assert viz["pairs"]["dispatch"] > 1000
    assert viz["contained_share"] >= 0.99
    assert viz["residual_p50_ns"] < 5_000
    assert viz["dispatch_nested_share"] >= 0.99
    doc = _check_clean(summary, out / "merged.json", inputs)
    # Python frames and the ops they dispatch share one track, and each op hangs under its C call.
    events = pd.read_parquet(out / "pq" / "events.parquet")
    assert len(events) == summary["input_events"] - sum(summary["skipped"].values()) - summary["metadata_events_folded"]
    assert _dispatched_share(events) >= 0.99
    track = {(e["pid"], e["tid"]) for e in doc["traceEvents"] if e.get("cat") == "FEE"}
    assert track and track <= {(e["pid"], e["tid"]) for e in doc["traceEvents"] if e.get("cat") == "cpu_op"}
    assert summary["merge"]["processes"] == [[str(p) for p in inputs]]
    # torch ops take their module from the VizTracer `Class.forward` frames around them (forward AND backward)
    linear = events[(events["name"] == "aten::linear") & (events["phase"] == "forward")]
    assert len(linear) > 0 and (linear["module_type"] == "Linear").all()
    backward = events[(events["kind"] == "cpu_op") & (events["phase"] == "backward")]
    assert backward["dur_ns"][backward["module_path"].notna()].sum() >= 0.9 * backward["dur_ns"].sum()


def test_shifted_base_offset_is_recovered(tmp_path, both_merged):
    doc = _load(shared(VIZ_BOTH))
    doc["viztracer_metadata"]["baseTimeNanoseconds"] += SHIFT_NS
    shifted = tmp_path / "viz_shifted.json"
    shifted.write_text(json.dumps(doc))
    result = CliRunner().invoke(main, ["merge", str(shifted), str(shared(PROF_BOTH)), "-o", str(tmp_path / "m.json"),
                                       "--parquet", str(tmp_path / "pq")])
    assert result.exit_code == 0, result.output
    assert "estimated" in result.output and "-52.000 days" in result.output
    summary = json.loads((tmp_path / "pq" / "summary.json").read_text())
    viz = _entry(summary, "viz_shifted.json")
    assert viz["method"].startswith("estimated")
    assert abs(viz["offset_ns"] + SHIFT_NS) <= MAX_ERROR_NS
    assert viz["contained_share"] >= 0.99
    # Every VizTracer event lands within 5 us of where the unshifted pair put it.
    ref = pd.read_parquet(both_merged[0] / "pq" / "events.parquet")
    got = pd.read_parquet(tmp_path / "pq" / "events.parquet")
    key = ["source", "input_index"]
    joined = ref[ref["source"] == "viztracer"][[*key, "ts_ns"]].merge(got[[*key, "ts_ns"]], on=key)
    assert len(joined) == (ref["source"] == "viztracer").sum()
    assert (joined["ts_ns_x"] - joined["ts_ns_y"]).abs().max() <= MAX_ERROR_NS
    _check_clean(summary, tmp_path / "m.json", [shifted, shared(PROF_BOTH)])


def test_missing_base_is_estimated(tmp_path):
    doc = _load(shared(VIZ_BOTH))
    base = doc["viztracer_metadata"].pop("baseTimeNanoseconds")
    nobase = tmp_path / "viz_nobase.json"
    nobase.write_text(json.dumps(doc))
    with pytest.warns(UserWarning):
        summary = merge([nobase, shared(PROF_BOTH)], tmp_path / "m.json")
    viz = _entry(summary, "viz_nobase.json")
    assert "no time base" in viz["method"]
    assert abs(viz["offset_ns"] - base) <= MAX_ERROR_NS
    assert viz["contained_share"] >= 0.99


def test_forced_offset_is_used_and_checked(tmp_path):
    doc = _load(shared(VIZ_BOTH))
    doc["viztracer_metadata"]["baseTimeNanoseconds"] += SHIFT_NS
    shifted = tmp_path / "viz_shifted.json"
    shifted.write_text(json.dumps(doc))
    runner = CliRunner()
    for source, value in ((shifted.name, f"{-SHIFT_NS}"), ("0", f"{-SHIFT_NS // 1000}us")):
        result = runner.invoke(main, ["merge", str(shifted), str(shared(PROF_BOTH)), "-o", str(tmp_path / "m.json"),
                                      "--offset", f"{source}={value}"])
        assert result.exit_code == 0, result.output
        viz = chrome_checks.load_trace(tmp_path / "m.json")["tracekit"]["merge"]["files"][0]
        assert viz["method"] == "forced (--offset)" and viz["offset_ns"] == -SHIFT_NS
        assert viz["contained_share"] >= 0.99
    # A wrong forced offset is applied as asked, and the verification says it does not fit.
    wrong = runner.invoke(main, ["merge", str(shifted), str(shared(PROF_BOTH)), "-o", str(tmp_path / "w.json"),
                                 "--offset", f"{shifted}={-SHIFT_NS + 10**9}"])
    assert wrong.exit_code == 0, wrong.output
    viz = chrome_checks.load_trace(tmp_path / "w.json")["tracekit"]["merge"]["files"][0]
    assert viz["contained_share"] < 0.5
    bad = runner.invoke(main, ["merge", str(shifted), str(shared(PROF_BOTH)), "-o", str(tmp_path / "x.json"),
                               "--offset", "nosuch.json=5"])
    assert bad.exit_code == 2 and "names no input" in bad.output
    assert not (tmp_path / "x.json").exists()


def test_log_torch_merged_with_itself_is_not_duplicated(tmp_path, converted):
    path = shared(LOG_TORCH)
    summary = merge([path, path], tmp_path / "m.json", parquet_dir=tmp_path / "pq")
    _check_clean(summary, tmp_path / "m.json", [path, path])
    single_dir, single = converted(path)
    assert summary["written_events"] == single["written_events"]
    assert summary["skipped"]["duplicate_of_event_in_other_input"] == single["written_events"]
    merged = pd.read_parquet(tmp_path / "pq" / "events.parquet")
    alone = pd.read_parquet(single_dir / "events.parquet")
    # Metadata events of both copies are folded; every other event is there exactly once.
    assert (merged[merged["ph"] != "M"]["kind"].value_counts().to_dict()
            == alone[alone["ph"] != "M"]["kind"].value_counts().to_dict())


def _torch_file_of(log_torch: dict, path: Path) -> Path:
    """What torch.profiler wrote in the run VizTracer logged with log_torch=True: its torch events on a
    Kineto base (a round bucket before the run), ts in us with 3 decimals relative to it."""
    base = log_torch["viztracer_metadata"]["baseTimeNanoseconds"]
    kineto_base = base // 10**12 * 10**12 - 10**15
    events = []
    for ev in log_torch["traceEvents"]:
        if ev.get("cat") == "FEE":
            continue
        ev = dict(ev)
        if isinstance(ev.get("ts"), (int, float)):
            ev["ts"] = (base + round(ev["ts"] * 1000) - kineto_base) / 1000
        events.append(ev)
    path.write_text(json.dumps({"schemaVersion": 1, "baseTimeNanoseconds": kineto_base, "traceEvents": events}))
    return path


def test_log_torch_merged_with_torch_file_keeps_each_event_once(tmp_path):
    log_path = shared(LOG_TORCH)
    log = _load(log_path)
    torch_path = _torch_file_of(log, tmp_path / "prof.json")
    summary = merge([log_path, torch_path], tmp_path / "m.json", parquet_dir=tmp_path / "pq")
    _check_clean(summary, tmp_path / "m.json", [log_path, torch_path])
    viz = _entry(summary, log_path.name)
    assert viz["method"].startswith("time bases, verified") and viz["contained_share"] >= 0.99
    events = pd.read_parquet(tmp_path / "pq" / "events.parquet")
    raw = log["traceEvents"]
    # Every Python frame once (from the VizTracer file), every torch event once (from the torch file).
    assert (events["cat"] == "FEE").sum() == sum(e.get("cat") == "FEE" for e in raw)
    assert (events["kind"] == "cpu_op").sum() == sum(e.get("cat") == "cpu_op" for e in raw)
    torch_rows = events[(events["cat"] != "FEE") & (events["ph"] != "M")]
    assert set(torch_rows["source"]) == {"torch"}
    assert summary["merge"]["duplicates_merged"] == {str(log_path): sum(
        e.get("cat") != "FEE" and e.get("ph") != "M" for e in raw)}


def test_no_overlap_and_nothing_to_match_is_an_error(tmp_path):
    args = [str(shared(LOG_TORCH)), str(shared(PROF_BOTH)), "-o", str(tmp_path / "m.json")]
    result = CliRunner().invoke(main, ["merge", *args])
    assert result.exit_code == 2
    assert "no overlap in time" in result.output and "--offset" in result.output
    assert not (tmp_path / "m.json").exists()
    # Forced, they are merged side by side: two processes, neither track mixes the files.
    forced = CliRunner().invoke(main, ["merge", *args, "--offset", f"{shared(LOG_TORCH)}=0", "--parquet",
                                       str(tmp_path / "pq")])
    assert forced.exit_code == 0, forced.output
    doc = chrome_checks.load_trace(tmp_path / "m.json")
    assert chrome_checks.check_trace(doc) == []
    names = chrome_checks.summarize(doc)["process_names"]
    assert any("pid 9697" in n for n in names.values()) and any("pid 9789" in n for n in names.values())
    events = pd.read_parquet(tmp_path / "pq" / "events.parquet")
    host = events[events["pid"] >= 0]
    assert host.groupby("pid")["source_index"].nunique().max() == 1


def test_file_of_neither_format_is_an_error(tmp_path):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"traceEvents": [{"ph": "X", "name": "work", "ts": 1, "dur": 2, "pid": 1, "tid": 1}]}))
    result = CliRunner().invoke(main, ["merge", str(shared(PROF_BOTH)), str(other), "-o", str(tmp_path / "m.json")])
    assert result.exit_code == 2 and str(other) in result.output
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("model", ["gpt", "cnn"])
def test_bundled_sample_pair(tmp_path, model):
    inputs = [SAMPLES / model / "viz_both.json.gz", SAMPLES / model / "prof_both.json.gz"]
    out = tmp_path / "merged.json.gz"
    result = CliRunner().invoke(main, ["merge", *map(str, inputs), "-o", str(out), "--parquet", str(tmp_path / "pq")])
    assert result.exit_code == 0, result.output
    assert "contained" in result.output and "residual p50" in result.output
    assert out.read_bytes()[:2] == b"\x1f\x8b" and gzip.decompress(out.read_bytes())[:1] == b"{"
    summary = json.loads((tmp_path / "pq" / "summary.json").read_text())
    viz = _entry(summary, "viz_both.json.gz")
    assert viz["method"].startswith("time bases, verified") and viz["contained_share"] >= 0.99
    _check_clean(summary, out, inputs)
    assert _dispatched_share(pd.read_parquet(tmp_path / "pq" / "events.parquet")) >= 0.99


def test_device_kernels_keep_their_launch_flows(tmp_path):
    path = shared("gpu/hta/trace_diff/v100_test.json.gz")
    summary = merge([path], tmp_path / "m.json")
    doc = _check_clean(summary, tmp_path / "m.json", [path])
    alone = convert([path], tmp_path / "c", parquet=False)
    assert summary["trace"]["flows"] == alone["trace"]["flows"] > 0
    assert sum(e.get("cat") == "ac2g" and e.get("ph") == "f" for e in doc["traceEvents"]) > 0


def test_best_offset_ignores_mismatched_pairs():
    rng = np.random.default_rng(0)
    true_lo = 1_000_000 + rng.integers(-900, -100, 300)
    true_hi = 1_000_000 + rng.integers(100, 900, 300)
    noise_lo = rng.integers(-10**9, 10**9, 200)
    noise_hi = noise_lo + rng.integers(0, 10**6, 200)
    est = best_offset(np.concatenate([true_lo, noise_lo]), np.concatenate([true_hi, noise_hi]))
    assert est is not None and est.support >= 300
    assert est.low_ns <= 1_000_000 <= est.high_ns or abs(est.offset_ns - 1_000_000) < 1_000


CASES = SAMPLES / "cases"  # recorded by sample_traces/record_merge_cases.py


def _merge_cli(tmp_path: Path, *inputs: Path, extra: tuple[str, ...] = ()):
    out = tmp_path / "m.json"
    result = CliRunner().invoke(main, ["merge", *map(str, inputs), "-o", str(out), *extra])
    return result, out


def test_recordings_one_after_the_other_are_refused(tmp_path):
    """VizTracer started ~20 ms after the profiler window ended: a few matched calls would 'estimate' an
    offset and invent nesting; the merge must stop, say why, and point at --offset."""
    viz, prof = CASES / "after_viz.json.gz", CASES / "after_prof.json.gz"
    result, out = _merge_cli(tmp_path, viz, prof)
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "does not look like the same run" in text and "Not merged" in text
    assert "recorded one after the other" in text and "after_prof.json.gz ended" in text
    assert f"--offset {viz}=NS" in text
    assert "Traceback" not in result.output and not out.exists()
    forced, out = _merge_cli(tmp_path, viz, prof, extra=("--offset", f"{viz}=0"))
    assert forced.exit_code == 0, forced.output
    assert out.exists()


def test_profiler_hook_displacing_viztracer_is_named(tmp_path):
    """torch.profiler(with_stack=True) started inside VizTracer took the hook: the VizTracer file stops
    where the profiler starts, with 'B' events never closed. The error names that cause."""
    viz, prof = CASES / "hook_viz.json.gz", CASES / "hook_prof.json.gz"
    with pytest.warns(UserWarning, match="no matching 'E'"):
        result, out = _merge_cli(tmp_path, viz, prof)
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "'B' events without 'E'" in text and "hook displaced VizTracer" in text
    assert "with_stack=False" in text and not out.exists()


def test_real_pair_cut_to_after_the_profiler_is_refused(tmp_path):
    """The real gpt pair with the VizTracer recording moved to start 19.5 ms after the profiler ended."""
    prof = _load(shared(PROF_BOTH))
    viz = _load(shared(VIZ_BOTH))
    prof_base_us = prof["baseTimeNanoseconds"] / 1000
    viz_base_us = viz["viztracer_metadata"]["baseTimeNanoseconds"] / 1000
    prof_end = max(float(e["ts"]) + e.get("dur", 0) for e in prof["traceEvents"] if e.get("ph") != "M") + prof_base_us
    cut = [e for e in viz["traceEvents"] if e.get("ph") != "M"]
    # keep the training-step events of the real file, moved to start 19.5 ms after the profiler ended
    first = min(e["ts"] for e in cut)
    moved = [{**e, "ts": e["ts"] - first + prof_end - viz_base_us + 19_500} for e in cut]
    assert len(moved) > 1000
    path = tmp_path / "viz_late.json"
    path.write_text(json.dumps({**viz, "traceEvents": [e for e in viz["traceEvents"] if e.get("ph") == "M"] + moved}))
    result, out = _merge_cli(tmp_path, path, shared(PROF_BOTH))
    text = " ".join(result.output.split())
    if result.exit_code == 0:  # only acceptable if the events themselves verify an offset (bases disagree)
        pytest.fail(f"merged a recording that started after the profiler ended: {text}")
    assert result.exit_code == 2 and "does not look like the same run" in text and not out.exists()
    assert "time bases put the recordings 19.500 ms apart" in text and "cannot tell" in text
    assert "recorded one after the other" in text and f"--offset {path}=-" in text


def test_viztracer_without_base_but_with_version_says_what_is_missing(tmp_path):
    doc = _load(SAMPLES / "gpt" / "viz_both.json.gz")
    version = doc["viztracer_metadata"]["version"]
    doc["viztracer_metadata"].pop("baseTimeNanoseconds")
    path = tmp_path / "viz_nobase.json"
    path.write_text(json.dumps(doc))
    from converters import read_trace

    with pytest.warns(UserWarning) as caught:
        table = read_trace(path)
    text = " ".join(str(w.message) for w in caught)
    assert f"version {version}" in text and "has no baseTimeNanoseconds" in text
    assert "0.16" not in text
    assert table.sources[0].base_ns == 0 and table.sources[0].base_from.startswith("none")


def test_merged_trace_rereads_with_its_absolute_clock(tmp_path, recwarn):
    inputs = [SAMPLES / "cnn" / "viz_both.json.gz", SAMPLES / "cnn" / "prof_both.json.gz"]
    merge(inputs, tmp_path / "m.json", parquet_dir=tmp_path / "pq")
    from converters import read_trace

    again = read_trace(tmp_path / "m.json")
    assert not [w for w in recwarn if "baseTimeNanoseconds" in str(w.message)]
    assert again.sources[0].base_from == "baseTimeNanoseconds (written by tracekit)"
    merged = pd.read_parquet(tmp_path / "pq" / "events.parquet")
    steps = ["tk_step_0", "tk_step_1"]
    want = merged[merged["name"].isin(steps)].sort_values("name")["ts_ns"].to_numpy()
    got = np.unique(again.events[again.events["name"].isin(steps)]["ts_ns"].to_numpy())  # + module-track copies
    assert len(want) == len(got) == 2
    assert np.abs(want - got).max() <= 1_000  # the chrome trace stores us
    assert want.min() > 10**18  # absolute epoch ns, not relative


def test_merged_pair_names_modules_as_torch_does(tmp_path):
    """In the merged cnn pair the ops hang under VizTracer's forward frames; `_BatchNorm.forward` is named by
    its runtime class, so the merged module paths are those torch.profiler gives the same model."""
    from tracekit.modules.table import module_table
    from tracekit.pipeline import process, read_inputs

    merge([SAMPLES / "cnn" / "viz_both.json.gz", SAMPLES / "cnn" / "prof_both.json.gz"], tmp_path / "m.json",
          parquet_dir=tmp_path / "pq")
    events = pd.read_parquet(tmp_path / "pq" / "events.parquet")
    merged_paths = set(events.loc[events["kind"] == "cpu_op", "module_path"].dropna())
    torch = process(read_inputs([SAMPLES / "cnn" / "prof.json.gz"]))
    torch_paths = set(module_table(torch.table, torch.modules)["module_path"])
    assert "Sequential_0/BatchNorm2d_0" in merged_paths
    assert merged_paths <= torch_paths and len(merged_paths) >= len(torch_paths) - 1
