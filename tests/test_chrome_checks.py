"""Tests for the chrome_checks helper: each check fires on a hand-made doc."""

from __future__ import annotations

import copy
import gzip
import importlib.util
import random
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

try:  # tests/ has no __init__.py, so pytest puts tests/ on sys.path.
    import chrome_checks as cc
except ImportError:  # pragma: no cover - fallback if the layout changes
    _spec = importlib.util.spec_from_file_location(
        "chrome_checks", Path(__file__).with_name("chrome_checks.py")
    )
    assert _spec is not None and _spec.loader is not None
    cc = importlib.util.module_from_spec(_spec)
    sys.modules["chrome_checks"] = cc
    _spec.loader.exec_module(cc)


def meta(pid: int, tid: int | None = None, name: str = "x") -> dict[str, Any]:
    """process_name (tid None) or thread_name metadata event."""
    if tid is None:
        return {"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": name}}
    return {"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": name}}


def X(ts: float, dur: float, pid: int = 1, tid: int = 1, name: str = "s") -> dict[str, Any]:
    """Complete slice."""
    return {"ph": "X", "name": name, "pid": pid, "tid": tid, "ts": ts, "dur": dur}


def flow(ph: str, ts: float, fid: int | str = 7, pid: int = 1, tid: int = 1, **extra: Any) -> dict[str, Any]:
    """Flow event."""
    return {"ph": ph, "name": "flow", "cat": "f", "id": fid, "pid": pid, "tid": tid, "ts": ts, **extra}


def clean_doc() -> dict[str, Any]:
    """A small clean trace: two threads, nested slices, one flow, a counter."""
    return {
        "baseTimeNanoseconds": 1_700_000_000_000_000_000,
        "displayTimeUnit": "ns",
        "traceEvents": [
            meta(1, name="proc"),
            {"ph": "M", "name": "process_sort_index", "pid": 1, "tid": 0, "args": {"sort_index": 0}},
            meta(1, 1, "main"),
            meta(1, 2, "worker"),
            {"ph": "M", "name": "thread_sort_index", "pid": 1, "tid": 2, "args": {"sort_index": 2}},
            X(0, 100),
            X(0, 100, name="same"),  # identical interval: nested
            X(10, 20.5),
            X(30.5, 0),  # zero-length touching previous end
            X(100, 5),  # adjacent to the outer slice
            X(50.001, 1.25, tid=2),
            flow("s", 15),
            flow("t", 50.5, tid=2),
            flow("f", 51.251, tid=2, bp="e"),  # at the slice end: inclusive
            {"ph": "i", "name": "mark", "pid": 1, "tid": 1, "ts": 3, "s": "t"},
            {"ph": "C", "name": "mem", "pid": 1, "tid": 0, "ts": 4, "args": {"rss": 12.5, "heap": 3}},
            {"ph": "b", "name": "a", "cat": "c", "id": 1, "pid": 1, "tid": 1, "ts": 1},
            {"ph": "n", "name": "a", "cat": "c", "id": 1, "pid": 1, "tid": 1, "ts": 2},
            {"ph": "e", "name": "a", "cat": "c", "id": 1, "pid": 1, "tid": 1, "ts": 3},
        ],
    }


def problems_with(mutate) -> list[str]:
    """check_trace of the clean doc after ``mutate(doc)``."""
    doc = copy.deepcopy(clean_doc())
    mutate(doc)
    return cc.check_trace(doc)


def one_problem(probs: list[str], *needles: str) -> str:
    """Assert exactly one problem, containing all ``needles``; return it."""
    assert len(probs) == 1, probs
    for n in needles:
        assert n in probs[0], probs
    return probs[0]


def test_clean_doc_has_no_problems() -> None:
    assert cc.check_trace(clean_doc()) == []


def test_top_level_shape() -> None:
    assert cc.check_trace([]) == ["top level must be an object, got list"]
    assert cc.check_trace({"traceEvents": {}}) == ["top level has no 'traceEvents' list"]
    one_problem(problems_with(lambda d: d.pop("baseTimeNanoseconds")), "baseTimeNanoseconds")
    one_problem(problems_with(lambda d: d.update(baseTimeNanoseconds=1.5)), "baseTimeNanoseconds", "int")


def test_bad_ph_and_non_dict_event() -> None:
    one_problem(
        problems_with(lambda d: d["traceEvents"].append({"ph": "B", "pid": 1, "tid": 1, "ts": 1})),
        "event 19",
        "'B'",
    )
    one_problem(problems_with(lambda d: d["traceEvents"].append(3)), "event 19")


def test_string_pid() -> None:
    def m(d: dict[str, Any]) -> None:
        d["traceEvents"][14]["pid"] = "1"

    one_problem(problems_with(m), "event 14", "'pid' must be an int")


def test_string_tid_and_missing_pid() -> None:
    def m(d: dict[str, Any]) -> None:
        d["traceEvents"][14]["tid"] = "1"
        del d["traceEvents"][15]["pid"]

    probs = problems_with(m)
    assert len(probs) == 2, probs
    assert "event 14" in probs[0] and "'tid'" in probs[0]
    assert "event 15" in probs[1] and "missing 'pid'" in probs[1]


@pytest.mark.parametrize(
    "ts, needle",
    [
        ("1", "finite number"),
        (float("nan"), "finite number"),
        (float("inf"), "finite number"),
        (True, "finite number"),
        (-1, "negative"),
        (1.0005, "whole number of ns"),
    ],
)
def test_bad_ts(ts: Any, needle: str) -> None:
    def m(d: dict[str, Any]) -> None:
        d["traceEvents"][14]["ts"] = ts

    one_problem(problems_with(m), "event 14", needle)


def test_missing_ts() -> None:
    one_problem(problems_with(lambda d: d["traceEvents"][14].pop("ts")), "event 14", "no 'ts'")


def test_absolute_epoch_us_ts() -> None:
    epoch_us = time.time_ns() // 1000

    def m(d: dict[str, Any]) -> None:
        d["traceEvents"][14]["ts"] = epoch_us

    one_problem(problems_with(m), "event 14", "1e12")

    # float epoch us as well
    def m2(d: dict[str, Any]) -> None:
        d["traceEvents"][14]["ts"] = epoch_us + 0.5

    one_problem(problems_with(m2), "event 14", "1e12")


def test_ns_exact_accepts_float_repr() -> None:
    # ns / 1000 written as float is accepted, even near the 1e12 bound
    for ns in (1, 999, 123_456_789, 86_400_000_000_001, 999_999_999_999_999):
        us = orjson.loads(orjson.dumps(ns / 1000))
        assert cc._ns_exact(us), ns
        assert cc._to_ns(us) == ns
    assert cc._ns_exact(0.1 + 0.2)  # 0.30000000000000004
    assert not cc._ns_exact(0.0001)
    assert not cc._ns_exact(12.3456)


def test_x_dur() -> None:
    one_problem(problems_with(lambda d: d["traceEvents"][7].pop("dur")), "event 7", "no 'dur'")

    def m(d: dict[str, Any]) -> None:
        d["traceEvents"][7]["dur"] = -1

    one_problem(problems_with(m), "event 7", "negative")

    def m2(d: dict[str, Any]) -> None:
        d["traceEvents"][7]["dur"] = "3"

    one_problem(problems_with(m2), "event 7", "'dur'")


def test_partial_overlap() -> None:
    # [10, 30.5) inside [0, 100); add [20, 40) which partly overlaps it
    probs = problems_with(lambda d: d["traceEvents"].append(X(20, 20)))
    one_problem(probs, "event 19", "event 7", "partly overlaps", "9500 ns")


def test_overlap_off_by_float_noise_is_ignored() -> None:
    # 0.1 + 0.2 ends at 0.30000000000000004 us == 300 ns: touching, not overlapping
    def m(d: dict[str, Any]) -> None:
        d["traceEvents"] += [X(200.1, 0.2, name="a"), X(200.3, 1, name="b")]

    assert problems_with(m) == []


def test_overlap_across_tracks_is_fine() -> None:
    def m(d: dict[str, Any]) -> None:
        d["traceEvents"].append(X(50, 1.1, tid=2))  # partly overlaps 50.001 on tid 2

    one_problem(problems_with(m), "partly overlaps")

    def m2(d: dict[str, Any]) -> None:
        d["traceEvents"] += [meta(1, 3), X(50, 1.1, tid=3)]

    assert problems_with(m2) == []


def test_nesting_matches_brute_force() -> None:
    rng = random.Random(1)
    for _ in range(200):
        evs = [X(rng.randint(0, 20), rng.randint(0, 8)) for _ in range(8)]
        doc = {"baseTimeNanoseconds": 0, "traceEvents": [meta(1), meta(1, 1), *evs]}
        brute = any(a["ts"] < b["ts"] < a["ts"] + a["dur"] < b["ts"] + b["dur"] for a in evs for b in evs)
        probs = cc.check_trace(doc)
        assert bool(probs) == brute, (evs, probs)


def test_missing_thread_name() -> None:
    def m(d: dict[str, Any]) -> None:
        d["traceEvents"].append(X(0, 1, tid=9))

    one_problem(problems_with(m), "event 19", "(pid 1, tid 9)", "thread_name")


def test_flow_and_counter_need_no_thread_name() -> None:
    def m(d: dict[str, Any]) -> None:
        d["traceEvents"][15]["tid"] = 42  # counter on an unnamed tid

    assert problems_with(m) == []


def test_missing_process_name() -> None:
    def m(d: dict[str, Any]) -> None:
        d["traceEvents"] += [meta(2, 1), X(0, 1, pid=2)]

    one_problem(problems_with(m), "event 20", "pid 2", "process_name")


def test_duplicate_names() -> None:
    probs = problems_with(lambda d: d["traceEvents"].append(meta(1, 1, "again")))
    one_problem(probs, "event 19", "duplicate thread_name", "first at event 2")
    probs = problems_with(lambda d: d["traceEvents"].append(meta(1, name="again")))
    one_problem(probs, "event 19", "duplicate process_name", "first at event 0")


def test_bad_metadata_args() -> None:
    def m(d: dict[str, Any]) -> None:
        d["traceEvents"][1]["args"]["sort_index"] = "0"

    one_problem(problems_with(m), "event 1", "sort_index")

    def m2(d: dict[str, Any]) -> None:
        d["traceEvents"][2]["args"] = {}

    one_problem(problems_with(m2), "event 2", "args.name")


def test_args_must_be_dict() -> None:
    def m(d: dict[str, Any]) -> None:
        d["traceEvents"][5]["args"] = [1]

    one_problem(problems_with(m), "event 5", "'args' must be an object")


def test_counter_values() -> None:
    def m(d: dict[str, Any]) -> None:
        d["traceEvents"][15]["args"]["rss"] = "big"

    one_problem(problems_with(m), "event 15", "'rss'")


def test_unmatched_flow_start() -> None:
    one_problem(
        problems_with(lambda d: d["traceEvents"].append(flow("s", 1, fid=8))), "event 19", "id=8", "no end"
    )


def test_unmatched_flow_end() -> None:
    one_problem(
        problems_with(lambda d: d["traceEvents"].append(flow("f", 1, fid="z"))),
        "event 19",
        "id='z'",
        "no start",
    )


def test_duplicate_flow_start() -> None:
    one_problem(problems_with(lambda d: d["traceEvents"].append(flow("s", 1))), "event 19", "2 start events")


def test_flow_ids_are_per_cat() -> None:
    def m(d: dict[str, Any]) -> None:
        d["traceEvents"].append({**flow("s", 1), "cat": "other"})

    one_problem(problems_with(m), "event 19", "cat='other'", "no end")


def test_flow_id_and_cat_types() -> None:
    def m(d: dict[str, Any]) -> None:
        d["traceEvents"][11]["id"] = 1.5
        d["traceEvents"][11]["cat"] = None

    probs = problems_with(m)
    assert any("event 11" in p and "'id'" in p for p in probs), probs
    assert any("event 11" in p and "'cat'" in p for p in probs), probs


def test_flow_end_without_enclosing_slice() -> None:
    def m(d: dict[str, Any]) -> None:
        d["traceEvents"][13]["ts"] = 51.252  # 1 ns after the slice ends

    one_problem(problems_with(m), "event 13", "no enclosing X slice", "tid 2")


def test_flow_start_without_enclosing_slice() -> None:
    def m(d: dict[str, Any]) -> None:
        d["traceEvents"][11]["tid"] = 2  # tid 2 has no slice at ts 15

    one_problem(problems_with(m), "event 11", "no enclosing X slice")


def test_flow_end_without_bp_also_needs_slice() -> None:
    def m(d: dict[str, Any]) -> None:
        del d["traceEvents"][13]["bp"]
        d["traceEvents"][13]["ts"] = 60

    one_problem(problems_with(m), "event 13", "no enclosing X slice")


def test_load_trace_json_and_gzip(tmp_path: Path) -> None:
    doc = clean_doc()
    raw = orjson.dumps(doc)
    plain = tmp_path / "t.json"
    plain.write_bytes(raw)
    gz = tmp_path / "t.json.gz"
    gz.write_bytes(gzip.compress(raw))
    sneaky = tmp_path / "gz_named.json"  # gzip detected by magic, not name
    sneaky.write_bytes(gzip.compress(raw))
    for p in (plain, gz, sneaky, str(gz)):
        assert cc.load_trace(p) == doc
        assert cc.check_trace(cc.load_trace(p)) == []


def test_track_events() -> None:
    doc = clean_doc()
    evs = cc.track_events(doc, 1, 1, "X")
    assert [(e["ts"], e["dur"]) for e in evs] == [(0, 100), (0, 100), (10, 20.5), (30.5, 0), (100, 5)]
    assert [e["name"] for e in evs[:2]] == ["s", "same"]  # stable on ties
    assert all(e["ph"] != "M" for e in cc.track_events(doc, 1, 1))
    assert [e["ph"] for e in cc.track_events(doc, 1, 2, "M")] == ["M", "M"]
    assert [e["ph"] for e in cc.track_events(doc, 1, 2)] == ["X", "t", "f"]


def test_summarize() -> None:
    s = cc.summarize(clean_doc())
    assert s["events"] == 19
    assert s["by_ph"] == {"M": 5, "X": 6, "s": 1, "t": 1, "f": 1, "i": 1, "C": 1, "b": 1, "n": 1, "e": 1}
    assert s["processes"] == 1
    assert s["threads"] == 2
    assert s["flows"] == 1
    assert s["slices"] == 6
    assert s["process_names"] == {1: "proc"}
    assert s["thread_names"] == {(1, 1): "main", (1, 2): "worker"}


def test_large_trace_is_fast() -> None:
    n = 500_000
    evs: list[dict[str, Any]] = [meta(1), meta(1, 1)]
    for k in range(n // 2):  # pairs: parent [10k, 10k+8), child [10k+1, 10k+3)
        evs.append(X(k * 10, 8))
        evs.append(X(k * 10 + 1.001, 2))
    doc = {"baseTimeNanoseconds": 0, "traceEvents": evs}
    t0 = time.perf_counter()
    assert cc.check_trace(doc) == []
    assert time.perf_counter() - t0 < 20
