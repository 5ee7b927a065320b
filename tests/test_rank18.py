"""rank18 (issue 15, per-rank convert cost): the answers now kept per process or made by arrow kernels are the
answers of the former per-value Python code, on real traces (shared DLRM ranks, Kineto, HTA's NCCL trace, the
recorded sample_traces/dist_* ranks) and on a DLRM rank made odd on purpose (unicode names, args left out, flows
without their end):
- flow ids: canonical-int test with arrow kernels (accounting._canonical_ints) = str(int(text)) == text per text;
- category questions (is_in, regex matches kept by text, kinds kept by (ph, cat, name)) = asked afresh;
- the launching op's members on kernels (arrow) = the former Python loop, byte for byte;
- the flow pairs as arrays = flow_status's DataFrame; flows without an end are counted, not written;
- the event list's end from one raw parse of the document = the former parse of the rest (_last_end);
- JSON text of a value, partition options (cached per schema) = the former functions."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pytest
from conftest import SAMPLES, SHARED, processed_trace, shared

from tracekit.accounting import _canonical_int, _canonical_ints, flow_status, flow_status_arrays
from tracekit.columns import Coded
from tracekit.table import _matches_by_text, column, is_in, matches, strings

TRACES = ["gpu/param_dlrm_8ranks", "gpu/kineto_legacy", "gpu/hta/nccl_data.json.gz"]
DLRM = "gpu/param_dlrm_8ranks"
ODD_TEXTS = ["0", "-0", "7", "-7", "007", "+7", " 7", "7 ", "7\n", "١٢", "０", "1_000", "1e3", "7.0", "",
             "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
             "999999999999999999", "1234567890123456789", "12345678901234567890", "abc", "\udcff"]


def _processed(rel: str | Path):
    if isinstance(rel, Path):
        from tracekit.converters import read_trace

        from tracekit.inputs import with_name_rank
        from tracekit.pipeline import process

        table = with_name_rank(read_trace(rel), rel)
        table.events["source_index"] = 0
        return process(table)
    return processed_trace(rel)


def _sample_rank(name: str) -> Path:
    return sorted(p for p in (SAMPLES / name).glob("*.json*") if p.name != "run_log.json")[0]


@pytest.fixture(scope="module")
def odd_rank(tmp_path_factory) -> Path:
    """A DLRM rank made odd: unicode op names, the args of some ops and kernels left out, 5 flow ends dropped."""
    source = sorted(shared(DLRM).glob("*.json.gz"))[0]
    doc = json.loads(gzip.decompress(source.read_bytes()))
    events = doc["traceEvents"]
    renamed = stripped = 0
    for e in events:
        if e.get("cat") == "cpu_op" and renamed < 40 and e.get("name", "").startswith("aten::"):
            e["name"] = e["name"] + " ünïcødé 名前 \"quoted\" \\"
            renamed += 1
        elif e.get("cat") in ("cpu_op", "kernel") and stripped < 60 and "args" in e and renamed >= 40:
            del e["args"]
            stripped += 1
    ends = [i for i, e in enumerate(events) if e.get("ph") == "f" and e.get("cat") != "ac2g"][:5]
    ends = ends or [i for i, e in enumerate(events) if e.get("ph") == "f"][:5]
    assert len(ends) == 5 and renamed == 40 and stripped == 60
    doc["traceEvents"] = [e for i, e in enumerate(events) if i not in set(ends)]
    path = tmp_path_factory.mktemp("odd") / "odd_rank.json.gz"
    path.write_bytes(gzip.compress(json.dumps(doc, ensure_ascii=False).encode()))
    return path


def test_canonical_ints_is_the_per_text_test_on_real_and_odd_ids() -> None:
    import pandas as pd

    cases = []
    for rel in TRACES:
        cats = column(_processed(rel).table.events, "flow_id").categories
        assert len(cats), f"{rel}: no flow ids"
        cases += [cats, pd.Index([*cats[:50], *ODD_TEXTS], dtype=object)]
    cases += [ODD_TEXTS, pd.Index(["5", "6", "-3"], dtype=object), pd.Index([1, "2", 3.0], dtype=object),
              pd.Index(["1", "02", "-0", "7"], dtype=object), pd.Index([], dtype=object)]
    for texts in cases:
        canonical, values = _canonical_ints(texts)
        want = [_canonical_int(t) for t in texts]
        assert canonical.tolist() == [w is not None for w in want]
        assert values.tolist() == [0 if w is None else w for w in want]


@pytest.mark.parametrize("rel", [*TRACES, SAMPLES / "dist_pp_dp"], ids=str)
def test_category_questions_kept_per_process_are_the_fresh_answers(rel: str | Path) -> None:
    """is_in, matches and classify, asked twice (the second from what was kept) and against the row-by-row answer."""
    ev = _processed(_sample_rank("dist_pp_dp") if isinstance(rel, Path) else rel).table.events
    kinds, names = strings(column(ev, "kind")), strings(column(ev, "name"))
    for wanted in [("kernel", "memcpy", "memset"), ("flow",), ("cpu_op", "collective"), ("nope",)]:
        want = np.isin(kinds.astype(object), list(wanted)) & (kinds != None)  # noqa: E711 (object array)
        for _ in range(2):
            got = is_in(column(ev, "kind"), wanted)
            assert got.tolist() == want.tolist()
            got[:] = True  # the caller's copy: the kept answer does not change
    top = [n for n in dict.fromkeys(names.tolist()) if n][:3]
    assert is_in(column(ev, "name"), iter(top)).tolist() == [n in top for n in names.tolist()]  # (a one-pass iterable)
    for pattern in [r"aten::", r"autograd::engine::evaluate_function:\ ", r".*AccumulateGrad", r"(?i:nccl)"]:
        regex = re.compile(pattern)
        want = [isinstance(n, str) and regex.match(n) is not None for n in names.tolist()]
        assert matches(column(ev, "name"), pattern).tolist() == want
        assert matches(column(ev, "name"), pattern).tolist() == want
    from tracekit.kinds import classify, classify_one

    ph, cat, name = (column(ev, k) for k in ("ph", "cat", "name"))
    for _ in range(2):
        got = strings(classify(ph, cat, name))
        want = [classify_one(p or "", c, n or "") for p, c, n in
                zip(strings(ph).tolist(), strings(cat).tolist(), strings(name).tolist())]
        assert got.tolist() == want


def test_is_in_on_coded_columns_keeps_nothing_and_answers_afresh() -> None:
    """A Coded column's categories are a list (it may change): asked twice after a change, the answer follows it."""
    coded = Coded(np.array([0, 1, -1, 2, 1]), ["a", "b", "c"])
    assert is_in(coded, ("b",)).tolist() == [False, True, False, False, True]
    coded.categories[1] = "x"
    assert is_in(coded, ("b",)).tolist() == [False] * 5
    assert _matches_by_text(["ab", "b", 3, None], re.compile("a")).tolist() == [True, False, False, False]


def _former_launcher_members(table, ops: np.ndarray) -> list[str]:
    """The launching op's members per op as the writer made them before rank18 (a Python loop)."""
    from tracekit.writers.op_text import op_input_text

    dims_text, types_text = op_input_text(table.args, table.events, ops)
    names = strings(column(table.events, "name"))
    out = []
    for op, dims, types in zip(ops.tolist(), dims_text.to_pylist(), types_text.to_pylist()):
        added = b'"launcher op":' + msgspec.json.encode(names[op])
        if dims:
            added += b',"launcher Input Dims":' + dims.encode()
        if types:
            added += b',"launcher Input type":' + types.encode()
        out.append(added.decode())
    return out


@pytest.mark.parametrize("rel", [DLRM, "gpu/kineto_legacy", "odd", "sample"], ids=str)
def test_launcher_members_are_the_former_loop_byte_for_byte(rel: str, odd_rank: Path) -> None:
    from tracekit.writers.chrome import _KernelArgs
    from tracekit.writers.json_rows import JsonText

    source = {"odd": odd_rank, "sample": SAMPLES / "gpt" / "prof_both_cuda.json.gz"}.get(rel, rel)
    table = _processed(source).table
    members = _KernelArgs(table, JsonText(column(table.events, "name")))
    assert len(members.ops), f"{rel}: no launched device events"
    per_op = members.per_op if members.per_op is not None else members._text(members.ops)  # large: per chunk
    assert per_op.to_pylist() == _former_launcher_members(table, members.ops)
    if rel == "odd":
        assert any("ünïcødé 名前" in m for m in per_op.to_pylist())


@pytest.mark.parametrize("rel", [DLRM, "gpu/kineto_legacy", "odd", "sample"], ids=str)
def test_flow_pairs_as_arrays_are_flow_status_pairs(rel: str, odd_rank: Path) -> None:
    source = {"odd": odd_rank, "sample": _sample_rank("dist_pp_dp")}.get(rel, rel)
    ev = _processed(source).table.events
    launch = column(ev, "launch")
    status, frame = flow_status(ev, launch)
    status_arrays, pairs = flow_status_arrays(ev, launch)
    assert status.tolist() == status_arrays.tolist()
    assert pairs is not None and list(frame.columns) == list(pairs)
    for key in pairs:
        assert frame[key].tolist() == pairs[key].tolist(), key
    if rel == "odd":
        assert (status == "flow_unmatched").sum() >= 5  # each start whose end was dropped


def test_odd_rank_converts_with_every_flow_whole_and_every_event_counted(odd_rank: Path, tmp_path: Path) -> None:
    """The odd rank's merged trace: each flow written has its start and its end (same id); the dropped ends'
    starts are counted as skipped (flow_unmatched); unicode names are written as they are."""
    from tracekit.convert import convert

    summary = convert([odd_rank], tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "trace.json").read_text())
    flows: dict[int, list[str]] = {}
    for e in doc["traceEvents"]:
        if e["ph"] in ("s", "f"):
            flows.setdefault(e["id"], []).append(e["ph"])
    assert flows and all(sorted(v) == ["f", "s"] for v in flows.values())
    assert summary["trace"]["flows"] == len(flows)
    assert summary["conserved"] and summary["accounted"] == summary["input_events"]
    assert summary["skipped"].get("flow_unmatched", 0) >= 5
    assert any("ünïcødé 名前 \"quoted\" \\" in e.get("name", "") for e in doc["traceEvents"])


def test_list_end_from_the_document_is_the_former_parse_of_the_rest() -> None:
    from tracekit.converters.chrome_ranges import _KEY, _last_end, _list_end

    paths = [p for p in sorted(SHARED.rglob("*.json*")) + sorted(SAMPLES.rglob("*.json*"))
             if p.is_file() and p.stat().st_size < 20_000_000 and p.name != "run_log.json"]
    checked = 0
    for path in paths:
        data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        found = _KEY.search(data)
        if found is None:
            continue
        list_open = data.rindex(b"[", 0, found.end())
        got = _list_end(data, list_open)
        assert got == _last_end(data, found.end()), path
        assert _list_end(data[: len(data) // 2], list_open) is None  # truncated: the former way decides
        checked += 1
    assert checked >= 50
    nested = b'{"a": {"traceEvents": [{"ph": "X"}]}, "traceEvents": [{"ph": "X"} ] }'
    assert _list_end(nested, nested.index(b"[")) is None  # not the list at that offset
    assert _list_end(nested, nested.rindex(b"[")) == nested.rindex(b"}") - 3


def test_json_text_and_partition_options_are_the_former_functions() -> None:
    from tracekit.writers.json_rows import json_text
    from tracekit.writers.partition import _options, partition_options

    assert [json_text(v) for v in (1, 1.0, True, "1", "é\"", None)] == ["1", "1.0", "true", '"1"', '"é\\""', "null"]
    schema = pa.schema([("a", pa.dictionary(pa.int32(), pa.string())), ("b", pa.int64()), ("c", pa.string())])
    first = partition_options(schema)
    first["use_dictionary"].append("z")  # the caller's copy
    assert partition_options(schema) == _options(schema) == {
        "use_dictionary": ["a"], "write_statistics": ["b"], "data_page_version": "2.0"}
