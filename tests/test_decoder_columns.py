"""The chrome decoder's cheap paths give the same columns as the plain ones: link ids of a chunk decoded
with its M events in place, text pids/tids mapped once per distinct value, all-null string columns."""

from __future__ import annotations

import gzip
import warnings

import numpy as np
import orjson
import pyarrow as pa
import pytest
from conftest import shared
from tracekit.converters import chrome_json
from tracekit.converters.loading import read_bytes

DLRM = "gpu/param_dlrm_8ranks/worker0_step_12.1694128201545.pt.trace.json.gz"  # text pid "Spans", M events
MI250 = "gpu/hta/mi250_minitoy_train_ROCm6_2_kineto.json.gz"  # text pids, bad link ids


def decode(rel: str, **kwargs) -> chrome_json.ChromeColumns:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return chrome_json.decode_chrome(read_bytes(shared(rel)), **kwargs)


def events_of(rel: str) -> list[dict]:
    doc = orjson.loads(gzip.decompress(shared(rel).read_bytes()))
    return doc["traceEvents"] if isinstance(doc, dict) else doc


@pytest.mark.parametrize("chunk", [None, 37])
def test_link_ids_match_each_events_args(chunk) -> None:
    """Every row's correlation / External id is its own event's (chunks with M events in them included)."""
    events = events_of(DLRM)
    cols = decode(DLRM, chunk_events=chunk)
    assert cols.metadata_folded == sum(e.get("ph") == "M" for e in events) > 0
    assert not any(events[i].get("ph") == "M" for i in cols.index.tolist())
    for field, key in (("external_id", "External id"), ("correlation", "correlation")):
        want = [(events[i].get("args") or {}).get(key, -1) if events[i].get("ph") in ("X", "B") else -1
                for i in cols.index.tolist()]
        assert cols.link[field].tolist() == want
    assert (cols.link["external_id"] >= 0).sum() > 1000


def test_lean_decode_has_the_same_link_ids() -> None:
    full, lean = decode(DLRM, chunk_events=37), decode(DLRM, chunk_events=37, keep_args=False)
    assert lean.index.tolist() == full.index.tolist()
    for field in full.link:
        assert np.array_equal(lean.link[field], full.link[field]), field


@pytest.mark.parametrize("rel", [DLRM, MI250])
def test_text_pids_get_ids_in_order_of_first_appearance(rel) -> None:
    """Text pids/tids: the same ids as mapping each value in turn (synthetic ids -1, -2, ... by first row)."""
    events = events_of(rel)
    cols = decode(rel, chunk_events=50)
    ids = chrome_json._IdMap()
    kept = [events[i] for i in cols.index.tolist()]
    pid = np.array([ids(e.get("pid")) for e in kept], dtype=np.int64)
    tid = np.array([ids(e.get("tid")) for e in kept], dtype=np.int64)
    ids.renumber(pid, tid)
    assert (pid < 0).any(), "the trace should have text pids"
    assert np.array_equal(cols.pid, pid) and np.array_equal(cols.tid, tid)
    texts = {e.get("pid") for e in kept if isinstance(e.get("pid"), str) and not e["pid"].strip().isdigit()}
    assert texts <= set(cols.track_names.values())


def test_all_null_string_column_codes() -> None:
    codes = chrome_json._Codes()
    assert codes.add(pa.array([None, None], type=pa.string())).tolist() == [-1, -1]
    assert codes.add(pa.array(["a", None, "b"], type=pa.string())).tolist() == [0, -1, 1]
    column = codes.column()
    assert list(column) == [None, None, "a", None, "b"] and column.categories == ["a", "b"]


def test_metadata_args_of_another_type_do_not_slow_or_change_link_ids(tmp_path, monkeypatch) -> None:
    """M events whose args hold a link field as text ("device": "cpu") are dropped rows: the other rows'
    link ids are the same and are still decoded in one pass (no row-by-row decode, nothing counted bad)."""
    from tracekit.converters import link_args

    doc = orjson.loads(gzip.decompress(shared(DLRM).read_bytes()))
    for event in doc["traceEvents"]:
        if event.get("ph") == "M":
            event.setdefault("args", {})["device"] = "cpu"
    path = tmp_path / "meta_device_text.json"
    path.write_bytes(orjson.dumps(doc))
    one_by_one = []
    lenient = link_args._decode_lenient
    monkeypatch.setattr(link_args, "_decode_lenient", lambda piece: one_by_one.append(1) or lenient(piece))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cols = chrome_json.decode_chrome(read_bytes(path), chunk_events=37)
    plain = decode(DLRM, chunk_events=37)
    assert not one_by_one and not any("link ids" in str(w.message) for w in caught)
    assert cols.index.tolist() == plain.index.tolist()
    for field in plain.link:
        assert np.array_equal(cols.link[field], plain.link[field]), field
