"""Chunked decoding: the event table does not depend on how many events are decoded at a time."""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shared
from tracekit.converters import chrome_json, read_trace
from tracekit.converters.loading import read_bytes

from tracekit.errors import TraceError

SMALL_REAL = [
    "gpu/hta/mi250_minitoy_train_ROCm6_2_kineto.json.gz",  # text pids ("Spans"), flows, legacy-ish
    "gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz",
    "gpu/tracelens/vllm_cuda_graph/graph_execution.json.gz",
    "cpu/gpt/viz.json.gz",  # VizTracer
]
MEDIUM_REAL = [
    "gpu/kineto_legacy/worker0.1623143089861.pt.trace.json.gz",  # 2021 schema
    "gpu/param_dlrm_8ranks/worker0_step_12.1694128201545.pt.trace.json.gz",
]


def read_with_chunk(path: Path, chunk: int | None, monkeypatch, env: dict[str, str] | None = None,
                    keep_args: bool = True) -> object:
    """(table, warning texts) of `path` read with `chunk` events per chunk and the environment `env` set."""
    with monkeypatch.context() as m:
        for name, value in (env or {}).items():
            m.setenv(name, value)
        if chunk:
            m.setattr(chrome_json, "CHUNK_EVENTS", chunk)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            table = read_trace(path, keep_args=keep_args)
    return table, [str(w.message) for w in caught]


def assert_same_table(a, b) -> None:
    pd.testing.assert_frame_equal(a.events, b.events, check_exact=True)
    assert a.args.equals(b.args)
    assert [vars(s) for s in a.sources] == [vars(s) for s in b.sources]


def damaged_doc() -> dict:
    """Text and numeric-text pids/tids, B/E pairs (some unmatched), missing ts/dur, string ts, flows."""
    events = [
        {"ph": "M", "name": "process_name", "pid": "Spans", "tid": 0, "args": {"name": "spans"}},
        {"ph": "M", "name": "thread_name", "pid": 1, "tid": "7", "args": {"name": "main"}},
        {"ph": "X", "cat": "cpu_op", "name": "a", "pid": 1, "tid": 7, "ts": 10, "dur": 50,
         "args": {"External id": 3, "Sequence number": 9}},
        {"ph": "B", "cat": "cpu_op", "name": "b", "pid": "1", "tid": "7", "ts": 12, "args": {"correlation": 5}},
        {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1, "tid": 7, "ts": 13, "dur": 2,
         "args": {"correlation": 44, "external id": 3}},
        {"ph": "E", "cat": "cpu_op", "name": "b", "pid": "1", "tid": "7", "ts": 20},
        {"ph": "X", "cat": "kernel", "name": 12345, "pid": 0, "tid": "stream 7", "ts": "15.5", "dur": 3,
         "args": {"correlation": 44, "device": 0, "stream": 7}},
        {"ph": "X", "cat": "cpu_op", "name": "no_ts", "pid": 1, "tid": 7, "dur": 3},
        {"ph": "X", "cat": "cpu_op", "name": "no_dur", "pid": 1, "tid": 7, "ts": 30},
        {"ph": "s", "cat": "ac2g", "name": "flow", "id": 44, "pid": 1, "tid": 7, "ts": 13},
        {"ph": "f", "cat": "ac2g", "name": "flow", "id": "44", "bp": "e", "pid": 0, "tid": "stream 7", "ts": 15.5},
        {"ph": "i", "cat": "cpu_instant_event", "name": "mark", "s": "p", "pid": "Traces", "tid": "Other", "ts": 40},
        {"ph": "X", "cat": "cpu_op", "name": "bad_corr", "pid": 1, "tid": 7, "ts": 41, "dur": 1,
         "args": {"correlation": "x"}},
        {"ph": "B", "cat": "cpu_op", "name": "open", "pid": 1, "tid": 7, "ts": 45},
        {"ph": "E", "cat": "cpu_op", "name": "stray", "pid": 2, "tid": 2, "ts": 46},
        {"ph": "X", "cat": "cpu_op", "name": "big", "pid": 1, "tid": 7, "ts": 4485561333650.786, "dur": 1.5},
    ]
    return {"schemaVersion": 1, "baseTimeNanoseconds": 1_700_000_000_000_000_000, "traceEvents": events}


@pytest.mark.parametrize("rel", SMALL_REAL)
def test_chunk_of_one_and_seven_give_the_same_table(rel: str, monkeypatch) -> None:
    path = shared(rel)
    reference, ref_warnings = read_with_chunk(path, chrome_json.CHUNK_EVENTS, monkeypatch)
    for chunk in (1, 7):
        table, caught = read_with_chunk(path, chunk, monkeypatch)
        assert_same_table(reference, table)
        assert caught == ref_warnings


@pytest.mark.parametrize("rel", MEDIUM_REAL)
def test_chunk_of_seven_gives_the_same_table(rel: str, monkeypatch) -> None:
    path = shared(rel)
    reference, _ = read_with_chunk(path, chrome_json.CHUNK_EVENTS, monkeypatch)
    table, _ = read_with_chunk(path, 7, monkeypatch)
    assert_same_table(reference, table)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1000])
def test_damaged_events_same_for_every_chunk_size(tmp_path: Path, chunk: int, monkeypatch) -> None:
    path = tmp_path / "damaged.json"
    path.write_text(json.dumps(damaged_doc()))
    reference, ref_warnings = read_with_chunk(path, 1 << 20, monkeypatch)
    table, caught = read_with_chunk(path, chunk, monkeypatch)
    assert_same_table(reference, table)
    assert caught == ref_warnings
    ev = reference.events
    # B/E folded; the unmatched E skipped, the one without ts skipped.
    assert reference.sources[0].skipped == {"missing_ts": 1, "end_folded_into_begin": 1, "unmatched_end": 1}
    assert "E" not in set(ev["ph"].astype(str))
    # Text pids/tids get negative ids, numbered by first appearance in a kept row ("Traces", then
    # "Other"), then the others ("Spans", only on an M event, which keeps no row); "7" and
    # "stream 7" are 7.
    assert sorted(set(ev["pid"].tolist())) == [-1, 0, 1]
    assert reference.sources[0].metadata_folded == 2
    assert reference.sources[0].process_names == {-1: "Traces", -3: "spans"}
    assert set(ev.loc[ev["name"] == "12345", "tid"].tolist()) == {7}
    # Join ids of slices; a wrongly typed one is left out for its row only.
    row = ev.index[ev["name"] == "cudaLaunchKernel"][0]
    assert ev.at[row, "correlation"] == 44 and ev.at[row, "external_id"] == 3
    assert ev.loc[ev["name"] == "bad_corr", "correlation"].tolist() == [-1]
    assert ev.loc[ev["name"] == "b", "correlation"].tolist() == [5]
    assert ev.loc[ev["ph"] == "s", "correlation"].tolist() == [-1]  # flows: no join ids read
    assert set(ev["flow_id"].dropna().astype(str)) == {"44"}
    ts = dict(zip(ev["name"].astype(str), ev["ts_ns"].tolist()))
    assert ts["12345"] == 1_700_000_000_000_015_500
    assert ts["big"] == 1_700_000_000_000_000_000 + 4485561333650786


@pytest.mark.parametrize("chunk", [1, 3, 100])
def test_malformed_event_index_counts_across_chunks(tmp_path: Path, chunk: int, monkeypatch) -> None:
    doc = damaged_doc()
    doc["traceEvents"].insert(5, {"ph": "X", "pid": [1], "ts": 1})
    path = tmp_path / "bad.json.gz"
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))
    with monkeypatch.context() as m:
        m.setattr(chrome_json, "CHUNK_EVENTS", chunk)
        with pytest.raises(TraceError) as info:
            read_trace(path)
    assert "traceEvents[5]" in str(info.value) and "event 5" in str(info.value)


def test_input_bytes_released_after_decoding() -> None:
    raw = read_bytes(shared(SMALL_REAL[0]))
    size = len(raw.data)
    cols = chrome_json.decode_chrome(raw)
    assert raw.data == b"" and size > 0 and len(cols.ts_ns) > 0
    raw = read_bytes(shared(SMALL_REAL[0]))
    chrome_json.decode_chrome(raw, release_input=False)
    assert len(raw.data) == size


def test_str_column_reads_like_a_list() -> None:
    col = chrome_json.StrColumn(np.array([1, -1, 0, 1], dtype=np.int32), ["a", "b"])
    assert list(col) == ["b", None, "a", "b"] and col[:2] == ["b", None] and col[2] == "a"
    assert len(col) == 4 and bool(col) and "a" in col
    kept = col.take(np.array([0, 2]))
    assert kept.categories == ["b", "a"] and list(kept) == ["b", "a"]
