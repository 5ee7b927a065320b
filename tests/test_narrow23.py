"""Id and row-reference columns held as int32 on large tables (tracekit.narrow, issue 16 item 2).

The outputs must not depend on the width held: every command's output with every table narrowed (NARROW_ROWS = 0)
is the same, byte for byte, as with none narrowed; the Parquet schemas keep int64; a value beyond int32 keeps its
column int64; and the events file written a row group at a time is the one written whole.

The flow status binds flows to the same slices and statuses as the former joins over every span and flow, and a
large table's writers one after the other write the same files as side by side."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import shared

from tracekit import narrow
from tracekit.cli import main
from tracekit.inputs import expand_inputs
from tracekit.pipeline import process, read_inputs
from tracekit.writers import parquet

WIDE_IN_EVENTS = ("correlation", "external_id", "sequence", "fwd_thread", "python_id", "python_parent",
                  "stream", "device", "input_index", "parent", "launch", "launcher", "module")
TRACES = ["gpu/hta/v100_large.json.gz", "gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz",
          "cpu/gpt/prof_both.json"]


def _run(args: list[str]) -> None:
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _outputs(trace: Path, out: Path) -> dict[str, bytes]:
    """convert, modules, a compare of the trace with itself and the HTML report, into `out`."""
    _run(["convert", str(trace), "-o", str(out / "conv")])
    _run(["modules", str(trace), "--format", "csv", "-o", str(out / "modules.csv")])
    _run(["compare", str(trace), str(trace), "-o", str(out / "cmp")])
    _run(["report", str(trace), "-o", str(out / "report.html")])
    return _files(out)


@pytest.mark.parametrize("rel", TRACES)
def test_outputs_do_not_depend_on_the_width_held(rel, tmp_path, monkeypatch):
    trace = shared(rel)
    monkeypatch.setattr(narrow, "NARROW_ROWS", 1 << 62)
    wide_out = _outputs(trace, tmp_path / "wide")
    monkeypatch.setattr(narrow, "NARROW_ROWS", 0)
    narrow_out = _outputs(trace, tmp_path / "narrow")
    assert wide_out.keys() == narrow_out.keys()
    differ = [name for name in wide_out if wide_out[name] != narrow_out[name]]
    assert not differ
    events = pq.read_schema(tmp_path / "narrow" / "conv" / "events.parquet")
    for name in WIDE_IN_EVENTS:
        if name in events.names:
            assert str(events.field(name).type) == "int64", name


def test_merge_does_not_depend_on_the_width_held(tmp_path, monkeypatch):
    viz, prof = shared("cpu/gpt/viz_both.json"), shared("cpu/gpt/prof_both.json")
    monkeypatch.setattr(narrow, "NARROW_ROWS", 1 << 62)
    _run(["merge", str(viz), str(prof), "-o", str(tmp_path / "wide.json")])
    monkeypatch.setattr(narrow, "NARROW_ROWS", 0)
    _run(["merge", str(viz), str(prof), "-o", str(tmp_path / "narrow.json")])
    assert (tmp_path / "wide.json").read_bytes() == (tmp_path / "narrow.json").read_bytes()


def test_large_table_holds_int32_and_writes_int64(tmp_path):
    processed = process(read_inputs(expand_inputs([shared("gpu/hta/v100_large.json.gz")])))
    ev = processed.table.events
    assert len(ev) >= narrow.NARROW_ROWS
    for name in ("correlation", "external_id", "parent", "launch", "launcher", "input_index"):
        assert ev[name].dtype == np.int32, name
    rows = parquet.write_events(processed.table, tmp_path / "events.parquet")
    assert rows == len(ev)
    whole = parquet.events_frame(processed.table)
    parquet.write_table(whole, tmp_path / "whole.parquet")
    assert (tmp_path / "events.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()
    back = pq.read_table(tmp_path / "events.parquet")
    assert back.schema.field("launch").type == "int64"
    assert back.column("launch").to_numpy().tolist() == ev["launch"].to_numpy().tolist()
    meta = json.loads(back.schema.metadata[b"pandas"])
    assert {c["name"]: c["numpy_type"] for c in meta["columns"]}["correlation"] == "int64"


def test_events_file_in_row_groups_is_the_whole_file(tmp_path, monkeypatch):
    """Several row groups (a small group size): the same bytes as the file written from the widened table."""
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 1000)
    monkeypatch.setattr(narrow, "NARROW_ROWS", 0)
    processed = process(read_inputs(expand_inputs([shared("cpu/gpt/prof_both.json")])))
    assert processed.table.events["parent"].dtype == np.int32
    parquet.write_events(processed.table, tmp_path / "a.parquet")
    parquet.write_table(parquet.events_frame(processed.table), tmp_path / "b.parquet")
    assert pq.ParquetFile(tmp_path / "a.parquet").num_row_groups > 1
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_a_value_beyond_int32_keeps_its_column_wide():
    frame = pd.DataFrame({"correlation": np.array([-1, 5, 2**40], dtype=np.int64),
                          "sequence": np.array([-1, 7, 2**31 - 1], dtype=np.int64),
                          "external_id": np.array([-(2**31) - 1, 0, 1], dtype=np.int64)})
    old = narrow.NARROW_ROWS
    narrow.NARROW_ROWS = 0
    try:
        narrow.narrow_ids(frame)
    finally:
        narrow.NARROW_ROWS = old
    assert frame["correlation"].dtype == np.int64 and frame["correlation"].tolist() == [-1, 5, 2**40]
    assert frame["sequence"].dtype == np.int32 and frame["sequence"].tolist() == [-1, 7, 2**31 - 1]
    assert frame["external_id"].dtype == np.int64


def test_small_tables_are_left_as_read():
    frame = pd.DataFrame({"correlation": np.arange(10, dtype=np.int64)})
    narrow.narrow_ids(frame)
    assert frame["correlation"].dtype == np.int64
    assert narrow.narrow_rows(np.arange(10)).dtype == np.int64
    assert narrow.narrowed(np.arange(10)).dtype == np.int32
    assert narrow.wide(np.arange(3, dtype=np.int32)).dtype == np.int64
    assert narrow.wide(np.arange(3, dtype=np.float32)).dtype == np.float32


def test_held_table_is_smaller(monkeypatch):
    """The point of it: the processed v100_large table holds 13 columns at 4 B a row instead of 8."""
    path = [shared("gpu/hta/v100_large.json.gz")]
    narrow_table = process(read_inputs(expand_inputs(path))).table.events
    monkeypatch.setattr(narrow, "NARROW_ROWS", 1 << 62)
    wide_table = process(read_inputs(expand_inputs(path))).table.events
    saved = wide_table.memory_usage(index=False).sum() - narrow_table.memory_usage(index=False).sum()
    assert saved >= 13 * 4 * len(wide_table)


def test_ranks_and_parallel_do_not_depend_on_the_width_held(tmp_path, monkeypatch):
    """A rank set (per-rank Parquet partitions, the cross-rank stage), one worker in-process."""
    ranks = shared("cpu/dist_tp_ddp")
    out = {}
    for label, rows in (("wide", 1 << 62), ("narrow", 0)):
        monkeypatch.setattr(narrow, "NARROW_ROWS", rows)
        _run(["convert", str(ranks), "-o", str(tmp_path / label / "conv"), "--workers", "1"])
        _run(["parallel", str(ranks), "--workers", "1", "--format", "json", "-o", str(tmp_path / label / "par.json")])
        out[label] = _files(tmp_path / label)
    assert out["wide"].keys() == out["narrow"].keys()
    assert [name for name in out["wide"] if out["wide"][name] != out["narrow"][name]] == []


# -- the flow status with less memory, and a large table's writers one after the other -----------------------------

def _old_bind_to_slices(events, flow_rows):
    """accounting._bind_to_slices before narrow23 (joined with every span): the reference."""
    from tracekit.accounting import column, first_match_rows, is_in

    spans = np.flatnonzero(is_in(column(events, "ph"), ("X",)))
    if not len(flow_rows) or not len(spans):
        return np.full(len(flow_rows), -1, dtype=np.int64)
    order = column(events, "dur_ns")[spans][::-1].argsort(kind="quicksort")
    np.subtract(len(spans) - 1, order, out=order)
    longest_first = spans[order[::-1]]
    columns = [column(events, k) for k in ("source_index", "pid", "tid", "ts_ns")]
    at = first_match_rows(columns, flow_rows, longest_first)
    found = at >= 0
    at[found] = longest_first[at[found]]
    return at


@pytest.mark.parametrize("rel", [*TRACES, "gpu/tracelens/h100/google_owlv2-large-patch14-ensemble__1016001.json.gz"])
def test_flows_bind_to_the_same_slices(rel, monkeypatch):
    from tracekit import accounting
    from tracekit.table import column, kind_in

    ev = process(read_inputs(expand_inputs([shared(rel)]))).table.events
    flows = np.flatnonzero(kind_in(ev, ("flow",)))
    assert len(flows)
    got = accounting._bind_to_slices(ev, flows)
    assert (got >= 0).any()
    assert got.tolist() == _old_bind_to_slices(ev, flows).tolist()
    # and the statuses and pairs as a whole: the same as with the former join (the fallback for many sources)
    status, pairs = accounting.flow_status_arrays(ev, column(ev, "launch"))
    monkeypatch.setattr(accounting, "_FEW_SOURCES", -1)
    monkeypatch.setattr(accounting, "_bind_to_slices", _old_bind_to_slices)
    old_status, old_pairs = accounting.flow_status_arrays(ev, column(ev, "launch"))
    assert status.tolist() == old_status.tolist()
    assert {k: v.tolist() for k, v in pairs.items()} == {k: v.tolist() for k, v in old_pairs.items()}
    assert (status == accounting.FLOW_REPLACED).any() == bool(len(kind_in(ev, ("kernel",)).nonzero()[0]))


def test_binding_with_ties_and_many_spans_at_one_time():
    """Spans of equal start and length on one track (the longest first, ties as the former quicksort left them),
    spans at a flow's time on another track, zero-length spans: the same rows as the former join."""
    rng = np.random.default_rng(23)
    n = 20_000
    ph = rng.choice(["X", "X", "X", "s", "f", "i"], n)
    frame = pd.DataFrame({
        "ph": pd.Categorical(ph), "source_index": rng.integers(0, 2, n).astype(np.int32),
        "pid": rng.integers(0, 3, n), "tid": rng.integers(0, 3, n),
        "ts_ns": rng.integers(0, 400, n) * 1000, "dur_ns": rng.integers(0, 4, n) * 500,
    })
    from tracekit import accounting

    flows = np.flatnonzero(ph != "X")
    got = accounting._bind_to_slices(frame, flows)
    assert (got >= 0).sum() > 1000
    assert got.tolist() == _old_bind_to_slices(frame, flows).tolist()


def test_pair_lookup_is_the_join():
    from tracekit.accounting import PairLookup
    from tracekit.table import first_match

    rng = np.random.default_rng(5)
    for sources in (1, 3):
        source = rng.integers(0, sources, 3000).astype(np.int32)
        value = rng.integers(-5, 2000, 3000).astype(np.int32)
        q_source = rng.integers(0, sources + 1, 5000).astype(np.int32)
        q_value = np.concatenate([rng.integers(-5, 2000, 4990), [2**40, -(2**40), 2**63 - 1, -1, 0, 7, 8, 9, 10, 11]])
        want = first_match((q_source, q_value), (source, value)) >= 0
        assert PairLookup(source, value).has(q_source, q_value).tolist() == want.tolist()
    assert PairLookup(np.zeros(0, np.int32), np.zeros(0, np.int64)).has(np.zeros(3, np.int32), np.arange(3)).sum() == 0


@pytest.mark.parametrize("rel", ["gpu/hta/v100_large.json.gz", "cpu/gpt/prof_both.json"])
def test_writers_one_after_the_other_write_the_same(rel, tmp_path, monkeypatch):
    """A table of SERIAL_FLOW_ROWS rows and more: flow status first, then the chrome trace, then the Parquet tables;
    the same files as the writers side by side."""
    from tracekit.writers import chrome

    trace = shared(rel)
    _run(["convert", str(trace), "-o", str(tmp_path / "side")])
    monkeypatch.setattr(chrome, "SERIAL_FLOW_ROWS", 0)
    _run(["convert", str(trace), "-o", str(tmp_path / "serial")])
    side, serial = _files(tmp_path / "side"), _files(tmp_path / "serial")
    assert side.keys() == serial.keys() and [k for k in side if side[k] != serial[k]] == []
