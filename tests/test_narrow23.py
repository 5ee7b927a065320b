"""Id and row-reference columns held as int32 on large tables (tracekit.narrow, issue 16 item 2).

The outputs must not depend on the width held: every command's output with every table narrowed (NARROW_ROWS = 0)
is the same, byte for byte, as with none narrowed; the Parquet schemas keep int64; a value beyond int32 keeps its
column int64; and the events file written a row group at a time is the one written whole."""

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
