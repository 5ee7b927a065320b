"""`tracekit info` on raw torch / VizTracer traces without pandas or pyarrow (tracekit.columns): the same facts
as the pandas tables give, on real and recorded traces and on damaged copies, and the numpy stand-ins for the
pandas/arrow steps give their exact results (ties and hostile values included)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import SAMPLES, shared

from tracekit.info import _descending, _top, _top_coded, quick_info
from tracekit.pipeline import read_inputs

# Each runs in a fresh process, so that the pandas-free path is the one taken (pandas is loaded here).
LEAN_FACTS = """
import json, sys
from tracekit.info import quick_info
from tracekit.info_inputs import read_for_info
out = []
for group in json.loads(sys.argv[1]):
    table = read_for_info(group)
    out.append({"facts": quick_info(table, top=25), "columns": type(table.events).__name__})
out.append([m for m in ("pandas", "pyarrow") if m in sys.modules])
print(json.dumps(out))
"""


def lean_facts(groups: list[list[Path]], env: dict[str, str] | None = None) -> tuple[list[dict], list[str]]:
    """(facts and table type of each group of inputs, heavy modules loaded) from one fresh process."""
    arg = json.dumps([[str(p) for p in g] for g in groups])
    proc = subprocess.run([sys.executable, "-c", LEAN_FACTS, arg], capture_output=True, text=True, check=True,
                          env=None if env is None else os.environ | env)
    *facts, loaded = json.loads(proc.stdout)
    return facts, loaded


def pandas_facts(group: list[Path]) -> dict:
    """The facts as `info` gave them before: read_inputs (pandas tables) and quick_info, JSON round trip."""
    return json.loads(json.dumps(quick_info(read_inputs(group, keep_args=False), top=25)))


REAL = [
    "gpu/hta/v100_large.json.gz",
    "gpu/hta/nccl_data.json.gz",
    "gpu/hta/mi250_minitoy_train_ROCm6_2_kineto.json.gz",
    "gpu/kineto_legacy/worker0.1623143089861.pt.trace.json.gz",
    "gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz",
    "gpu/tracelens/mi300/resnet_act_checkpoint.json.gz",
    "cpu/gpt/viz.json.gz",
    "cpu/gpt/viz_log_torch.json.gz",
    "cpu/gpt/prof_both.json",
    "cpu/gpt/prof_stack_modules.json.gz",
]


def test_real_and_recorded_traces_give_the_same_facts_without_pandas() -> None:
    groups = [[shared(rel)] for rel in REAL]
    groups += [[SAMPLES / rel] for rel in ("gpt/prof.json.gz", "cnn/viz_cuda.json.gz", "gpt/prof_both_cuda.json.gz")]
    groups.append(sorted(shared("cpu/dist_tp_ddp").glob("rank-*.json.gz")))  # 4 ranks: one table, source_index
    groups.append([SAMPLES / "gpt/viz_both.json.gz", SAMPLES / "gpt/prof_both.json.gz"])  # VizTracer + torch
    facts, loaded = lean_facts(groups)
    assert loaded == []
    for group, got in zip(groups, facts):
        assert got["columns"] == "Columns"
        want = pandas_facts(group)
        assert json.dumps(got["facts"]) == json.dumps(want), group  # same values, same order
    v100 = facts[0]["facts"]
    assert v100["top_kernels"] and v100["top_ops"] and v100["counts_by_kind"]["kernel"] > 10_000
    dist = facts[len(REAL) + 3]["facts"]
    assert dist["ranks"] == [0, 1, 2, 3] and len(dist["sources"]) == 4


def _events(path: Path) -> dict:
    with gzip.open(path, "rb") as fh:
        return json.loads(fh.read())


@pytest.mark.parametrize("processes", ["1", "2"])
def test_one_or_two_decode_processes_give_the_same_facts(processes: str) -> None:
    """The columns-only chunks travel from the decode child as codes (columns_chunk.LocalCodes)."""
    group = [shared("gpu/hta/v100_large.json.gz")]  # 14 chunks
    facts, loaded = lean_facts([group], {"TRACEKIT_DECODE_PROCESSES": processes})
    assert loaded == []
    assert json.dumps(facts[0]["facts"]) == json.dumps(pandas_facts(group))


def test_npu_mixed_with_torch_traces_reads_all_the_pandas_way() -> None:
    """torch_npu output needs pandas: given beside a torch trace, both are read as before (same facts)."""
    from tracekit.info_inputs import read_for_info

    group = [shared("gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz"),
             shared("npu/msinsight_alexnet_dp/text/level0/rank0_ascend_pt")]
    table = read_for_info(group)
    assert isinstance(table.events, pd.DataFrame)
    got = json.loads(json.dumps(quick_info(table, top=25)))
    assert got == pandas_facts(group)
    assert [s["format"] for s in got["sources"]] == ["torch", "npu"]


def test_damaged_traces_give_the_same_facts_damage_and_skipped_counts(tmp_path: Path) -> None:
    doc = _events(shared("gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz"))
    base = json.dumps(doc).encode()
    events = doc["traceEvents"]
    xs = [i for i, e in enumerate(events) if e.get("ph") == "X"]
    cases = {}
    cases["truncated.json"] = base[: len(base) * 2 // 3]
    cases["truncated.json.gz"] = gzip.compress(base)[:-200]
    bad = json.loads(base)
    bad["traceEvents"][xs[3]]["name"] = "BADUTF8"
    bad["traceEvents"][xs[5]]["ts"] = 1e300  # out of range: skipped
    bad["traceEvents"][xs[6]].pop("ts")  # no ts: skipped
    bad["traceEvents"][xs[7]].pop("dur")  # X without dur: kept with 0
    bad["traceEvents"][xs[8]]["pid"] = "Spans"  # a text track
    bad["traceEvents"][xs[9]]["ts"] = "123.5"  # a decimal string
    bad["traceEvents"][xs[10]]["args"] = {"correlation": "x"}  # link id of the wrong type
    bad["traceEvents"][xs[11]]["name"] = 17  # a number as name
    bad["traceEvents"].append({"ph": "B", "name": "open", "pid": 1, "tid": 1, "ts": events[xs[0]]["ts"]})
    bad["traceEvents"].append({"ph": "E", "pid": 1, "tid": 2, "ts": events[xs[0]]["ts"]})  # unmatched E
    cases["mixed.json"] = json.dumps(bad).encode().replace(b"BADUTF8", b"ab\xff")
    paths = []
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        paths.append(path)
    facts, _ = lean_facts([[p] for p in paths])
    for path, got in zip(paths, facts):
        want = pandas_facts([path])
        assert json.dumps(got["facts"]) == json.dumps(want), path.name
        assert got["facts"]["sources"][0]["damage"], path.name  # the damage is reported
    mixed = facts[2]["facts"]
    assert mixed["skipped"].get("ts_out_of_range") == 1 and mixed["skipped"].get("missing_ts") == 1
    assert mixed["skipped"].get("unmatched_end") == 1


def test_info_cli_imports_neither_pandas_nor_pyarrow() -> None:
    """The command itself, on a torch trace and on a VizTracer one (JSON and table output)."""
    code = ("import sys\nfrom tracekit.cli import main\n"
            "for args in (['info', '--json', sys.argv[1]], ['info', sys.argv[2]]):\n"
            "    try:\n        main(args, standalone_mode=False)\n"
            "    except SystemExit as e:\n        assert not e.code\n"
            "print('LOADED:', *(m for m in ('pandas', 'pyarrow', 'pyarrow.compute') if m in sys.modules))")
    trace = shared("gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz")
    proc = subprocess.run([sys.executable, "-c", code, str(trace), str(SAMPLES / "gpt/viz.json.gz")],
                          capture_output=True, text=True, check=True)
    assert proc.stdout.rsplit("LOADED:", 1)[1].split() == []
    assert '"top_kernels"' in proc.stdout


def test_npu_trace_view_is_read_the_pandas_way() -> None:
    """torch_npu output needs its own reader (pandas): info still works on its trace_view.json."""
    from tracekit.info_inputs import read_for_info

    tv = shared("npu/msinsight_alexnet_dp/text/level0/rank0_ascend_pt/ASCEND_PROFILER_OUTPUT/trace_view.json")
    table = read_for_info([tv])
    assert isinstance(table.events, pd.DataFrame)
    assert quick_info(table)["sources"][0]["format"] == "npu"


# --- the numpy stand-ins give pandas' and arrow's exact results ---------------------------------------------

def test_factorize_matches_pandas() -> None:
    from tracekit import table

    rng = np.random.default_rng(3)
    for values in (rng.integers(-5, 5, 1000), rng.integers(0, 2**62, 300), np.zeros(0, dtype=np.int64)):
        for sort in (False, True):
            want_codes, want_uniques = pd.factorize(values, sort=sort)
            saved = sys.modules.pop("pandas")
            try:
                codes, uniques = table._factorize(values, sort=sort)
            finally:
                sys.modules["pandas"] = saved
            assert codes.tolist() == want_codes.tolist() and uniques.tolist() == want_uniques.tolist()


def test_top_by_name_matches_pandas_with_ties_and_missing_names() -> None:
    from tracekit.columns import Coded

    rng = np.random.default_rng(5)
    cats = [f"op{i}" for i in range(40)] + ["nan"]
    codes = rng.integers(-1, len(cats), 5000).astype(np.int32)
    dur = rng.choice([10, 20, 30], 5000).astype(np.int64)  # many equal totals
    frame = pd.DataFrame({"name": pd.Categorical.from_codes(codes, categories=pd.Index(cats, dtype=object)),
                          "dur_ns": dur})
    picked = rng.random(5000) < 0.7
    for n in (5, 50):
        want = _top(frame, picked, n)
        got = _top_coded(Coded(codes, cats), dur, np.flatnonzero(picked), n)
        assert got == want


def test_descending_is_pandas_sort_order() -> None:
    values = np.array([3, 1, 3, 2, 1, 3, 0, 2] * 5, dtype=np.int64)
    for kind in ("stable", "quicksort"):
        want = pd.Series(values).sort_values(ascending=False, kind=kind).index.to_numpy()
        assert _descending(values, kind).tolist() == want.tolist()


HOSTILE = [0, 1, -1, 2**53 - 1, 2**53, 2**60, -(2**62), 2**70, 1.5, 1e308, -1e308, float("inf"), 4485561333650.786,
           5e15, None, 123456789012.3456]


def test_times_and_ids_match_the_arrow_versions() -> None:
    from tracekit.converters import chrome_chunks
    from tracekit.converters.columns_chunk import ids, us_to_ns

    from tracekit.timeconv import us_to_ns_ranged

    for values in (HOSTILE, [v for v in HOSTILE if v is not None], [None, None], [], ["12.5", 3, None],
                   [10**400, 1]):
        got, want = us_to_ns(values), us_to_ns_ranged(values)
        assert got[2] == want[2] and all(np.array_equal(g, w) for g, w in zip(got[:2] + got[3:], want[:2] + want[3:]))
    for values in ([1, 2, None], [2**62, 1], [-(2**62) + 1, 5], ["Spans", 1], [2**70], [], [None]):
        got, want = ids(values), chrome_chunks.chunk_ids(values)
        assert type(got) is type(want) and (got == want if isinstance(got, list) else np.array_equal(got, want))


def test_list_encoding_matches_arrow_encoding() -> None:
    from tracekit.converters.chrome_json import _Codes
    from tracekit.converters.columns_chunk import encode

    chunks = [["b", None, "a", "b", "c"], [None, None], ["c", "d", "a", None], []]
    by_list, by_arrow = _Codes(), _Codes()
    for chunk in chunks:
        assert by_list.add(encode(chunk)).tolist() == by_arrow.add(pa.array(chunk, type=pa.string())).tolist()
    got, want = by_list.column(), by_arrow.column()
    assert got.categories == want.categories and got.codes.tolist() == want.codes.tolist()
