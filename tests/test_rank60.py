"""The per-rank shortcuts of issue 15 (rank60) give what the plain ways give, on real traces: link ids read
from the args alone, the pandas schema metadata made once per schema, the cpu ops' input text decoded once per
table, the chrome fragment's ph / module phase text taken per category, and source records without a deep copy."""

from __future__ import annotations

import gzip
import json
import warnings
from dataclasses import asdict
from pathlib import Path

import msgspec
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pytest
from conftest import processed_trace, shared
from tracekit.converters import chrome_json
from tracekit.converters.link_args import link_chunk
from tracekit.converters.loading import read_bytes

from tracekit.dataset.manifest import source_record
from tracekit.pipeline import Processed
from tracekit.table import DEVICE_KINDS, column, kind_in, strings
from tracekit.writers import op_text
from tracekit.writers.chrome import write_chrome_trace
from tracekit.writers.json_rows import JsonText, PhText, event_rows
from tracekit.writers.parquet import frame_to_arrow, kernels_frame, op_input_columns, ops_frame

DLRM = "gpu/param_dlrm_8ranks/worker0_step_12.1694128201545.pt.trace.json.gz"  # M events, record_function modules
MI250 = "gpu/hta/mi250_minitoy_train_ROCm6_2_kineto.json.gz"  # link ids of the wrong type on some rows
TRACES = (DLRM, "cpu/gpt/prof_stack_modules.json.gz", "cpu/dist_cp_tp/rank-1.json.gz", MI250)


def _processed(rel: str) -> Processed:
    return processed_trace(rel)


@pytest.fixture(scope="module", params=TRACES)
def processed(request) -> Processed:
    return _processed(request.param)


def _events(rel: str) -> list[dict]:
    doc = orjson.loads(gzip.decompress(shared(rel).read_bytes()))
    return doc["traceEvents"] if isinstance(doc, dict) else doc


@pytest.mark.parametrize("rel", [DLRM, MI250])
@pytest.mark.parametrize("chunk", [None, 41])
def test_link_ids_from_the_args_alone_are_those_of_the_whole_events(rel: str, chunk: int | None) -> None:
    """Per chunk, the link columns read from the args alone equal what decoding the events' own text gives
    (link_chunk over each event's JSON), rows with ids of the wrong type included (counted the same)."""
    events = _events(rel)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cols = chrome_json.decode_chrome(read_bytes(shared(rel)), chunk_events=chunk)
    kept = [events[i] for i in cols.index.tolist()]
    raw = [msgspec.json.encode(e.get("args")) if "args" in e else b"" for e in kept]
    span = np.array([e.get("ph") in ("X", "B") for e in kept])
    want = link_chunk(msgspec.json.encode([{"args": e["args"]} if "args" in e else {} for e in kept]), raw, span)
    bad = want.pop("bad_rows", 0)
    for field, values in want.items():
        assert np.array_equal(cols.link[field], values), field
    said = [str(w.message) for w in caught if "link ids" in str(w.message)]
    assert bool(said) == bool(bad)
    if rel == MI250:
        assert bad > 0 and said and f"{bad} events" in said[0]
    assert (cols.link["correlation"] >= 0).sum() > 10


def test_metadata_args_of_another_type_next_to_bad_rows(tmp_path: Path) -> None:
    """A chunk with M events whose args do not fit (text "device") and kept rows that do not either: the kept
    rows are read on their own, the bad ones counted once, the good ones' ids kept."""
    doc = {"traceEvents": [
        {"ph": "M", "name": "process_name", "pid": 1, "tid": 0, "args": {"name": "p", "device": "cpu"}},
        {"ph": "X", "name": "a", "pid": 1, "tid": 1, "ts": 1, "dur": 1, "args": {"correlation": 7}},
        {"ph": "X", "name": "b", "pid": 1, "tid": 1, "ts": 3, "dur": 1, "args": {"correlation": "x"}},
        {"ph": "X", "name": "c", "pid": 1, "tid": 1, "ts": 5, "dur": 1, "args": {"External id": 9}},
    ], "schemaVersion": 1}
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(doc))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cols = chrome_json.decode_chrome(read_bytes(path))
    assert cols.link["correlation"].tolist() == [7, -1, -1]
    assert cols.link["external_id"].tolist() == [-1, -1, 9]
    assert any("1 events have link ids" in str(w.message) for w in caught)


def test_pandas_metadata_made_once_per_schema_is_what_from_pandas_gives() -> None:
    """Frames that share column names and types but not the facts the metadata holds (number of categories,
    order, dtype) each get from_pandas' metadata, also when asked in turn."""
    def frame(cats: list[str], ordered: bool, ints: np.dtype) -> pd.DataFrame:
        return pd.DataFrame({"c": pd.Categorical(cats[:1] * 3, categories=cats, ordered=ordered),
                             "n": np.arange(3, dtype=ints), "s": ["x", None, "z"]})

    frames = [frame(["a"], False, np.int64), frame(["a", "b"], False, np.int64), frame(["a", "b"], True, np.int64),
              frame(["a"], False, np.int32)]
    for _ in range(2):
        for f in frames:
            got, want = frame_to_arrow(f), pa.Table.from_pandas(f, preserve_index=False)
            assert got.schema.equals(want.schema, check_metadata=True)
            assert got.equals(want)
    with_attrs = frames[0].copy()
    with_attrs.attrs["note"] = "kept"
    assert frame_to_arrow(with_attrs).schema.equals(pa.Table.from_pandas(with_attrs, preserve_index=False).schema,
                                                    check_metadata=True)


def test_op_input_text_is_op_input_columns(processed: Processed) -> None:
    """The input text of any ops, taken from the table's one decode, equals decoding those rows; rows it did not
    decode and a second table are decoded for themselves."""
    table = processed.table
    ev = table.events
    cpu = np.flatnonzero(kind_in(ev, ("cpu_op", "collective")))
    launcher = column(ev, "launcher")
    launchers = np.unique(launcher[kind_in(ev, DEVICE_KINDS) & (launcher >= 0)])
    op_text._LAST = None
    asks = [launchers, cpu, cpu[::3], np.zeros(0, dtype=np.int64), np.arange(min(len(ev), 50))]
    for rows in asks:
        got = op_text.op_input_text(table.args, ev, rows)
        want = op_input_columns(table.args, rows)
        assert got[0].equals(want[0]) and got[1].equals(want[1])
    if len(ev) <= op_text.SHARED_ROWS:
        assert op_text._LAST is not None and op_text._LAST[0]() is table.args
    else:  # a large table keeps nothing
        assert op_text._LAST is None
    other = pa.array([b'{"Input Dims": [[1, 2]]}', b""], pa.large_binary())
    got = op_text.op_input_text(other, ev.iloc[:2], np.array([0, 1]))
    assert got[0].to_pylist() == ["[[1, 2]]", ""] and op_text._LAST[0]() is other
    if len(cpu):
        assert (pa.compute.binary_length(op_input_columns(table.args, cpu)[0]).to_numpy() > 0).any() or "viz" in str(
            table.sources[0].path)


def test_large_tables_are_decoded_per_ask(processed: Processed, monkeypatch) -> None:
    """Above SHARED_ROWS nothing is kept: the same text, decoded for each ask."""
    table = processed.table
    monkeypatch.setattr(op_text, "SHARED_ROWS", 10)
    op_text._LAST = None
    rows = np.flatnonzero(kind_in(table.events, ("cpu_op", "collective")))[:40]
    got = op_text.op_input_text(table.args, table.events, rows)
    want = op_input_columns(table.args, rows)
    assert got[0].equals(want[0]) and got[1].equals(want[1]) and op_text._LAST is None


def test_kernel_and_op_tables_do_not_depend_on_what_was_asked_first(processed: Processed) -> None:
    table = processed.table
    op_text._LAST = None
    kernels_first, ops_after = kernels_frame(table), ops_frame(table)
    op_text._LAST = None
    ops_first, kernels_after = ops_frame(table), kernels_frame(table)
    assert kernels_first.equals(kernels_after) and ops_first.equals(ops_after)


def test_ph_text_is_what_event_rows_made(processed: Processed) -> None:
    ev = processed.table.events
    rows = np.flatnonzero(~kind_in(ev, ("flow",)))
    ph = strings(column(ev, "ph"))[rows]
    names, cats = JsonText(column(ev, "name")), JsonText(column(ev, "cat"))
    scope = JsonText(column(ev, "scope"), missing="t")
    common = (ph, column(ev, "pid")[rows], column(ev, "tid")[rows], names.at(rows), cats.at(rows),
              column(ev, "ts_ns")[rows] - int(column(ev, "ts_ns").min()), column(ev, "dur_ns")[rows], scope.at(rows),
              processed.table.args.take(pa.array(rows)))
    plain = event_rows(*common)
    assert event_rows(*common, ph_text=PhText(column(ev, "ph")).at(rows)).equals(plain)
    assert len(plain) == len(rows) > 100


def test_fragment_with_plain_phase_column_is_the_same(processed: Processed, tmp_path: Path) -> None:
    """The module phase text taken from the categorical's codes is the text the object column gives."""
    table = processed.table
    categorical = tmp_path / "categorical.json"
    write_chrome_trace(table, categorical, base_ns=0, slot=1)
    phase = pd.Series(strings(column(table.events, "phase")), index=table.events.index, dtype=object)
    plain_table = table.with_columns(phase=phase)
    assert not isinstance(column(plain_table.events, "phase"), pd.Categorical)
    plain = tmp_path / "plain.json"
    write_chrome_trace(plain_table, plain, base_ns=0, slot=1)
    assert categorical.read_bytes() == plain.read_bytes()
    if "param_dlrm" in str(table.sources[0].path):
        assert b'"phase":"forward"' in categorical.read_bytes()


def test_source_record_is_the_deep_copy_record(processed: Processed) -> None:
    src = processed.table.sources[0]
    rec = asdict(src)
    for key in ("process_names", "process_labels", "process_sort"):
        rec[key] = [[k, v] for k, v in getattr(src, key).items()]
    for key in ("thread_names", "thread_sort"):
        rec[key] = [[*k, v] for k, v in getattr(src, key).items()]
    rec["source_index"] = 3
    assert source_record(src, 3) == json.loads(json.dumps(rec, default=str))
    assert source_record(src, 3)["thread_names"]
