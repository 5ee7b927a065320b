"""Chunks cut by byte ranges (chrome_ranges: one parse of the event list) give exactly what the split read gives
(chrome_doc + chrome_slices: the list parsed twice); where a guessed cut or the document does not hold up, the
split read runs instead, with the same columns, warnings and errors."""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import shared
from tracekit.converters import chrome_json, chrome_ranges
from tracekit.converters.loading import read_bytes

from tracekit.errors import TraceError

REAL = [
    "gpu/param_dlrm_8ranks/worker0_step_12.1694128201545.pt.trace.json.gz",  # text pid "Spans", M events
    "gpu/hta/mi250_minitoy_train_ROCm6_2_kineto.json.gz",  # text pids, bad link ids
    "gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz",  # keys after traceEvents
    "gpu/kineto_legacy/worker0.1623143089861.pt.trace.json.gz",  # 2021 schema
    "cpu/gpt/viz.json.gz",  # VizTracer: file_info after the events
]
SAMPLE = Path(__file__).resolve().parents[1] / "sample_traces"


def read(path: Path, chunk_bytes: int, monkeypatch, **kwargs) -> tuple[object, list[str], bool]:
    """(columns or the error text, warnings, whether the byte-range read was kept) of `path`."""
    kept = []
    real = chrome_json._read_by_ranges

    def spy(*args):
        result = real(*args)
        kept.append(result is not None)
        return result

    with monkeypatch.context() as m:
        m.setattr(chrome_json, "CHUNK_BYTES", chunk_bytes)
        m.setattr(chrome_json, "_read_by_ranges", spy)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                cols = chrome_json.decode_chrome(read_bytes(path), **kwargs)
            except TraceError as exc:
                cols = f"TraceError: {exc}"
    return cols, [str(w.message) for w in caught], bool(kept) and all(kept)


def assert_same(a, b) -> None:
    if isinstance(a, str) or isinstance(b, str):
        assert a == b
        return
    for name in ("index", "pid", "tid", "ts_ns", "dur_ns"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    for name in ("ph", "name", "cat", "flow_id", "bp", "scope"):
        assert getattr(a, name).tolist() == getattr(b, name).tolist(), name
    assert (a.args is None) == (b.args is None)
    if a.args is not None:
        assert a.args.equals(b.args)
    assert a.link.keys() == b.link.keys()
    for key in a.link:
        assert np.array_equal(a.link[key], b.link[key]), key
    assert sorted(map(repr, a.meta)) == sorted(map(repr, b.meta))
    for name in ("top", "track_names", "skipped", "damage", "input_events", "metadata_folded"):
        assert getattr(a, name) == getattr(b, name), name


@pytest.mark.parametrize("rel", REAL)
@pytest.mark.parametrize("columns_only", [True, False])
def test_byte_chunks_match_the_split_read(rel, columns_only, monkeypatch) -> None:
    """Many small byte chunks (cuts inside every few events) and the default size: same columns as the split
    read, and the byte-range read was the one kept."""
    path = shared(rel)
    split, split_warnings, _ = read(path, 0, monkeypatch, columns_only=columns_only)
    assert split.input_events > 200
    for chunk_bytes in (4096, chrome_json.CHUNK_BYTES):
        cols, caught, kept = read(path, chunk_bytes, monkeypatch, columns_only=columns_only)
        assert kept, f"{rel}: fell back to the split read"
        assert_same(cols, split)
        assert caught == split_warnings


def test_byte_chunks_in_two_processes(monkeypatch) -> None:
    """The forked decode child works on byte chunks too (their events numbered by the parent)."""
    path = shared(REAL[0])
    split, _, _ = read(path, 0, monkeypatch)
    monkeypatch.setenv("TRACEKIT_DECODE_PROCESSES", "2")
    cols, _, kept = read(path, 8192, monkeypatch)
    assert kept
    assert_same(cols, split)
    assert len(chrome_ranges.plan(read_bytes(path).data, 8192)) > 4


def test_recorded_sample_traces(monkeypatch) -> None:
    """The traces recorded by sample_traces/ read the same either way."""
    paths = sorted(p for p in SAMPLE.rglob("*.json*") if p.suffix in (".json", ".gz"))
    read_any = False
    for path in paths:
        split, split_warnings, _ = read(path, 0, monkeypatch)
        if isinstance(split, str):
            continue
        cols, caught, kept = read(path, 2048, monkeypatch)
        assert kept, path
        assert_same(cols, split)
        assert caught == split_warnings
        read_any = True
    assert read_any


def write(tmp_path: Path, text: str, name: str = "t.json") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def events(n: int, nested: bool = False) -> list[dict]:
    out = [{"ph": "M", "name": "process_name", "pid": 1, "tid": 0, "args": {"name": "p"}}]
    for i in range(n):
        args = {"External id": i}
        if nested:  # objects in a list: "}, {" with a key after it, inside an event
            args["frames"] = [{"file": "a.py", "line": i}, {"file": "b.py", "line": i + 1}]
        out.append({"ph": "X", "cat": "cpu_op", "name": f"op{i % 7}", "pid": 1, "tid": 2, "ts": 10 * i, "dur": 5,
                    "args": args})
    return out


@pytest.mark.parametrize("case", ["nested_objects", "key_in_nested_object", "truncated", "bad_event",
                                  "trailing_keys", "bare_list", "empty"])
def test_damaged_or_unusual_documents(case, tmp_path, monkeypatch) -> None:
    """Cuts inside nested objects, a nested "traceEvents", a cut-off file, a bad event, keys after the list,
    the bare-list form, an empty list: the same columns, warnings and errors as the split read."""
    doc: object = {"schemaVersion": 1, "traceEvents": events(300)}
    kept_expected = True
    if case == "nested_objects":
        doc = {"schemaVersion": 1, "traceEvents": events(300, nested=True)}
        kept_expected = None  # either (a cut may or may not land inside an event)
    elif case == "key_in_nested_object":
        doc = {"meta": {"traceEvents": [{"ph": "X", "ts": 1}]}, "traceEvents": events(300)}
        kept_expected = False
    elif case == "bad_event":
        doc["traceEvents"][200]["ph"] = 5
        kept_expected = False
    elif case == "trailing_keys":
        doc["displayTimeUnit"] = "ms"
        doc["deviceProperties"] = [{"id": 0, "name": "x"}, {"id": 1, "name": "y"}]
    elif case == "bare_list":
        doc = doc["traceEvents"]
        kept_expected = False
    elif case == "empty":
        doc["traceEvents"] = []
        kept_expected = False
    text = json.dumps(doc, indent=1 if case != "trailing_keys" else None)
    if case == "truncated":
        text = text[: len(text) * 2 // 3]
        kept_expected = False
    path = write(tmp_path, text)
    split, split_warnings, _ = read(path, 0, monkeypatch)
    cols, caught, kept = read(path, 1024, monkeypatch)
    if kept_expected is not None:
        assert kept == kept_expected
    assert_same(cols, split)
    assert caught == split_warnings
    if case == "nested_objects":  # every fifth event or so holds a "}, {" cut candidate: some chunk failed
        assert not kept
    if case in ("bad_event", "empty"):
        assert isinstance(cols, str) and str(path) in cols
    if case == "truncated":
        assert any("truncated" in w for w in caught)


def test_gzip_and_bad_utf8(tmp_path, monkeypatch) -> None:
    """A gzip input and events with invalid UTF-8: same columns, same count and first index in the warning."""
    text = json.dumps({"schemaVersion": 1, "traceEvents": events(400)}).encode()
    text = text.replace(b'"op3"', b'"op\xff3"')
    path = tmp_path / "t.json.gz"
    path.write_bytes(gzip.compress(text))
    split, split_warnings, _ = read(path, 0, monkeypatch)
    cols, caught, kept = read(path, 700, monkeypatch)
    assert kept
    assert_same(cols, split)
    assert caught == split_warnings
    assert any("invalid UTF-8" in w and "first at event 4)" in w for w in caught)


def test_columns_grow_past_the_first_guess(tmp_path, monkeypatch) -> None:
    """The first chunk's events are large (the row count is guessed low): the columns grow, same result."""
    big = [{"ph": "X", "cat": "cpu_op", "name": "big", "pid": 1, "tid": 1, "ts": i, "dur": 1,
            "args": {"blob": "x" * 4000}} for i in range(4)]
    doc = {"schemaVersion": 1, "traceEvents": big + events(6000)}
    path = write(tmp_path, json.dumps(doc))
    grown = []
    real = chrome_json._Column.append

    def spy(self, values):
        before = len(self.data)
        real(self, values)
        grown.append(len(self.data) > before)

    monkeypatch.setattr(chrome_json._Column, "append", spy)
    split, split_warnings, _ = read(path, 0, monkeypatch)
    assert not any(grown)
    cols, caught, kept = read(path, 16384, monkeypatch)
    assert kept and any(grown)
    assert_same(cols, split)
    assert caught == split_warnings
