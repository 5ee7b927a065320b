"""The chrome and Parquet writers of issue 16 (write16) write what the plain ways wrote, on real traces: rows
joined in one arrow kernel equal the rows built member by member, the launcher and module members appended
with byte kernels equal the UTF-8 kernels' result, trace.json does not depend on how its rows are chunked,
and Parquet tables written in row groups read back equal to one group."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLES, processed_trace
from tracekit.converters import read_trace

from tracekit.inputs import with_name_rank
from tracekit.pipeline import Processed, process
from tracekit.table import column, kind_in, strings
from tracekit.writers import chrome, parquet
from tracekit.writers.json_rows import JsonText, PhText, append_members, event_rows, joined_members, plain_event_rows

BERT = "gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz"  # kernels launched by ops, nn.Modules
SHARED_TRACES = (BERT, "cpu/gpt/viz.json.gz", "gpu/param_dlrm_8ranks/worker0_step_12.1694128201545.pt.trace.json.gz",
                 "gpu/hta/mi250_minitoy_train_ROCm6_2_kineto.json.gz")
RECORDED = SAMPLES / "attribution_cuda" / "gpt_truth.json.gz"  # recorded with sample_traces/, modules known


def _recorded() -> Processed:
    table = with_name_rank(read_trace(RECORDED), RECORDED)
    table.events["source_index"] = 0
    return process(table)


_CACHE: dict[str, Processed] = {}


def _processed(name: str) -> Processed:
    if name not in _CACHE:
        _CACHE[name] = _recorded() if name == "recorded" else processed_trace(name)
    return _CACHE[name]


def _row_inputs(processed: Processed, rows: np.ndarray) -> tuple[tuple, dict]:
    """The arguments write_chrome_trace gives event_rows for `rows`, and the members it appends."""
    table = processed.table
    ev = table.events
    common = (strings(column(ev, "ph"))[rows], column(ev, "pid")[rows], column(ev, "tid")[rows],
              JsonText(column(ev, "name")).at(rows), JsonText(column(ev, "cat")).at(rows),
              column(ev, "ts_ns")[rows] - int(column(ev, "ts_ns").min()) // 1000 * 1000, column(ev, "dur_ns")[rows],
              JsonText(column(ev, "scope"), missing="t").at(rows), table.args.take(pa.array(rows)))
    extra = joined_members(chrome._KernelArgs(table).added(rows), chrome._ModuleArgs(ev).added(rows))
    return common, {"args_extra": extra, "ph_text": PhText(column(ev, "ph")).at(rows)}


@pytest.mark.parametrize("name", [*SHARED_TRACES, "recorded"])
def test_rows_joined_at_once_are_the_rows_made_member_by_member(name: str) -> None:
    processed = _processed(name)
    ev = processed.table.events
    rows = np.flatnonzero(~kind_in(ev, ("flow",)) & (strings(column(ev, "ph")) != "M"))
    common, extra = _row_inputs(processed, rows)
    fast = event_rows(*common, prefix=",", **extra)
    plain = plain_event_rows(*common[:-1], append_members(common[-1], extra["args_extra"]), ",", extra["ph_text"])
    assert fast.equals(plain)
    assert len(fast) == len(rows) > 100
    if name in (BERT, "recorded"):  # the launcher and module members were appended to some rows, not all
        added = extra["args_extra"]
        assert 0 < len(added) - added.null_count < len(added)
        text = b"[" + b",".join(r.as_py().encode()[1:] for r in fast.slice(0, 2000)) + b"]"
        assert len(json.loads(text)) == 2000  # each row is one JSON object


def test_edge_rows_are_the_plain_rows() -> None:
    """Null categories, instants, empty and padded args, non-ASCII text, members added to some rows, and the rows
    that go the plain way (a null name, a negative ts)."""
    ph = np.array(["X", "i", "I", "X", "B", "X", "i"], dtype=object)
    ls = pa.large_string()
    name = pa.array(['"a"', '"\\u00e9t\\u00e9"', '"c"', '"d"', '"e"', '"f"', '"g"'], ls)
    cat = pa.array(['"k"', None, '"k"', None, '"x"', '"k"', '"k"'], ls)
    scope = pa.array(['"t"', '"g"', '"p"', '"t"', '"t"', '"t"', '"t"'], ls)
    args = pa.array([b"", b'  {"a": 1}  ', b"{ }", b'{\n  "\xc3\xa9": "\xc3\xa9"\n}', b"null", b"{}", b""],
                    pa.large_binary())
    extra = pa.array(['"m":1', None, '"m":2', '"m":"\\u00e9"', None, None, '"z":[1]'], ls)
    ts = np.array([0, 1, 999, 1000, 123456789, 5, 7], dtype=np.int64)
    dur = np.array([1500, 0, 0, -3, 10, 0, 0], dtype=np.int64)
    pid, tid = np.arange(7), np.arange(7) * -1
    for extras in (None, extra, pa.nulls(7, ls)):
        for ts_rel, names in ((ts, name), (ts - 10, name), (ts, pa.array([None, *name.to_pylist()[1:]], ls))):
            fast = event_rows(ph, pid, tid, names, cat, ts_rel, dur, scope, args, prefix=",", args_extra=extras)
            plain = plain_event_rows(ph, pid, tid, names, cat, ts_rel, dur, scope, append_members(args, extras), ",")
            assert fast.equals(plain)
    rows = event_rows(ph, pid, tid, name, cat, ts, dur, scope, args, args_extra=extra).to_pylist()
    assert [json.loads(r) for r in rows][1] == {"ph": "i", "pid": 1, "tid": -1, "name": "été", "ts": 0.001, "s": "g",
                                                "args": {"a": 1}}
    assert json.loads(rows[2])["args"] == {"m": 2} and json.loads(rows[3])["args"] == {"é": "é", "m": "é"}
    assert json.loads(rows[6])["args"] == {"z": [1]} and json.loads(rows[5])["args"] == {}
    assert json.loads(rows[0])["args"] == {"m": 1} and json.loads(rows[0])["dur"] == 1.5
    plain = [json.loads(r) for r in event_rows(ph, pid, tid, name, cat, ts, dur, scope, args).to_pylist()]
    assert "args" not in plain[0] and "args" not in plain[6] and "cat" not in plain[3]  # empty: left out


def test_joined_members_keeps_every_row() -> None:
    ls = pa.large_string()
    first = pa.array(["a", None, None, "b"], ls)
    second = pa.array([None, "c", None, "d"], ls)
    assert joined_members(first, second).to_pylist() == ["a", "c", None, "b,d"]
    assert joined_members(first, None) is first and joined_members(None, second) is second
    assert joined_members(None, None) is None


def test_parts_hold_bounded_rows_and_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chrome, "CHUNK_ROWS", 50)
    monkeypatch.setattr(chrome, "CHUNK_BYTES", 1000)
    rng = np.random.default_rng(16)
    rows = np.sort(rng.choice(10_000, 3_000, replace=False))
    sizes = rng.integers(0, 80, len(rows))
    sizes[100] = 5000  # one row above the limit: a part of its own
    parts = list(chrome._parts(rows, lambda asked: sizes[np.searchsorted(rows, asked)]))
    assert np.array_equal(np.concatenate(parts), rows)
    ends = np.cumsum([len(p) for p in parts])
    for part, end in zip(parts, ends.tolist()):
        part_bytes = int(sizes[end - len(part) : end].sum())
        assert len(part) <= 50 and (part_bytes <= 1000 or len(part) == 1)
    assert list(chrome._parts(rows[:0], lambda asked: sizes[:0])) == []


@pytest.mark.parametrize("name", [BERT, "recorded"])
def test_trace_does_not_depend_on_the_chunks(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    processed = _processed(name)
    default = chrome.write_chrome_trace(processed.table, tmp_path / "default.json")
    monkeypatch.setattr(chrome, "CHUNK_ROWS", 7)
    monkeypatch.setattr(chrome, "CHUNK_BYTES", 300)
    small = chrome.write_chrome_trace(processed.table, tmp_path / "small.json")
    assert (tmp_path / "small.json").read_bytes() == (tmp_path / "default.json").read_bytes()
    assert small.events_written == default.events_written > 1000
    doc = json.loads((tmp_path / "small.json").read_bytes())
    written = [e for e in doc["traceEvents"] if e["ph"] not in ("M", "s", "f") and e.get("cat") != "module"]
    assert len(written) == default.events_written
    launched = [e for e in written if "launcher op" in e.get("args", {})]
    moduled = [e for e in written if "module_path" in e.get("args", {})]
    assert launched and moduled  # both sets of members were appended


def test_parquet_row_groups_read_back_as_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    processed = _processed("recorded")
    (tmp_path / "one").mkdir()
    (tmp_path / "many").mkdir()
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 1 << 30)
    one = parquet.write_parquet_tables(processed.table, tmp_path / "one")
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 500)
    many = parquet.write_parquet_tables(processed.table, tmp_path / "many")
    assert one == many and one["events"] > 1000
    events = pq.ParquetFile(tmp_path / "many" / "events.parquet").metadata
    group = parquet.row_group_rows(parquet.events_frame(processed.table))  # 500, or the largest dictionary
    assert events.num_row_groups == -(-one["events"] // group) > 1
    assert events.row_group(0).num_rows == group >= len(column(processed.table.events, "name").categories)
    for table in one:
        a, b = (pq.read_table(tmp_path / folder / f"{table}.parquet") for folder in ("one", "many"))
        assert a.schema.equals(b.schema, check_metadata=True) and a.equals(b)
        assert a.to_pandas().equals(b.to_pandas())


def test_row_groups_hold_the_largest_dictionary(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dictionary column is written whole in every row group: groups never hold fewer rows than it has values."""
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 100)
    codes = pa.array(np.arange(5000, dtype=np.int32) % 1000)
    table = pa.table({"id": pa.DictionaryArray.from_arrays(codes, pa.array([str(k) for k in range(1000)])),
                      "n": np.arange(5000)})
    assert parquet.row_group_rows(table) == 1000
    assert parquet.row_group_rows(table.select(["n"])) == 100
