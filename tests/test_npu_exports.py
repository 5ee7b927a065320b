"""The text (trace_view.json + CSVs) and .db exports of the shared NPU AlexNet runs give the same tables.

The text and db folders are separate recordings of the same program (same steps, ops and kernels; the
sampled counters have as many samples as each run lasted), so structure is compared exactly and sample
counts within a tenth.
"""

from __future__ import annotations

import collections
import re
import shutil
import sqlite3
import warnings

import msgspec
import numpy as np
import pytest
from conftest import shared
from tracekit.converters import read_trace

from tracekit.modules.table import module_table
from tracekit.parallel.collectives import collective_calls
from tracekit.pipeline import process, read_inputs
from tracekit.table import strings

RUNS = [(level, rank) for level in ("level0", "level1", "level2") for rank in (0, 1)]
ALEX = "npu/msinsight_alexnet_dp"
_HCOM_RUN = re.compile(r"__\d+_")  # hcom_allReduce__868_0_1: the 868 is the group's hash, new in each run


def _processed(rel: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return process(read_inputs([shared(rel)])).table


def _tables(rel: str) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        processed = process(read_inputs([shared(rel)]))
    table = processed.table
    mods = module_table(table, processed.modules)
    ev = table.events
    info = table.sources[0]
    kind = ev["kind"].astype(str).to_numpy()
    names = strings(ev["name"])
    procs = np.array([info.process_names.get(p) for p in ev["pid"].tolist()], dtype=object)
    kernels = np.flatnonzero(kind == "kernel")
    raw = table.args.take(kernels).to_pylist()
    types = [msgspec.json.decode(r).get("Type") if r else None for r in raw]
    calls, _skipped = collective_calls(table)
    return {
        "kinds": collections.Counter(kind.tolist()),
        "kernels": collections.Counter(zip([_HCOM_RUN.sub("__*_", n) for n in names[kernels].tolist()], types)),
        "modules": collections.Counter(names[kind == "module"].tolist()),
        "module_table": sorted(zip(mods["module_path"], mods["input_shapes"].fillna(""), mods["params"],
                                   mods["calls"])),
        "counters": collections.Counter(zip(procs[kind == "counter"].tolist(), names[kind == "counter"].tolist())),
        "collectives": sorted(zip(calls["collective"], calls["bytes"].fillna(-1))),
        "group_sizes": set(calls["group_size"].dropna()),
    }


def _has_table(rel: str, table: str) -> bool:
    db = next((shared(rel) / "ASCEND_PROFILER_OUTPUT").glob("ascend_pytorch_profiler_*.db"))
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT 1 FROM sqlite_master WHERE name=?", (table,)).fetchone() is not None
    finally:
        con.close()


@pytest.mark.parametrize(("level", "rank"), RUNS)
def test_text_and_db_exports_give_the_same_tables(level, rank):
    rel_text, rel_db = (f"{ALEX}/{form}/{level}/rank{rank}_ascend_pt" for form in ("text", "db"))
    text, db = _tables(rel_text), _tables(rel_db)
    # events per kind: equal, except sampled counters (below), flows (the db links no memcpy to its op),
    # CANN calls and task-queue events (`other`: Enqueue/Dequeue): their number varies from run to run (a
    # few more or fewer AscendCL/Runtime calls, destroy_event dequeues), and the level0 db export records
    # CANN calls while the level0 trace_view.json has none at all
    for kind in set(text["kinds"]) | set(db["kinds"]):
        if kind not in {"counter", "flow", "runtime", "other"}:
            assert text["kinds"][kind] == db["kinds"][kind], kind
    assert abs(text["kinds"]["other"] - db["kinds"]["other"]) <= text["kinds"]["other"] // 10
    if level == "level0":
        assert text["kinds"]["runtime"] == 0 and db["kinds"]["runtime"] > 0
    else:
        assert abs(text["kinds"]["runtime"] - db["kinds"]["runtime"]) <= text["kinds"]["runtime"] // 10
    # kernels by name and op type, modules: identical
    assert text["kernels"] == db["kernels"] and len(text["kernels"]) > 20
    assert text["modules"] == db["modules"] and len(text["modules"]) >= 20
    # the modules table (paths, input shapes read from the ops, parameters): the db export writes the
    # dims and dtypes into each other's PYTORCH_API column, which the reader detects and swaps back
    assert text["module_table"] == db["module_table"]
    assert sum(1 for _p, shapes, _n, _c in db["module_table"] if shapes) >= 20
    # counters: the same families and names; only QoS is text-only, since the db has no QoS table
    assert not _has_table(rel_db, "QOS")
    text_counters = {k: v for k, v in text["counters"].items() if k[0] != "QoS"}
    assert set(text_counters) == set(db["counters"])
    assert {p for p, _n in db["counters"]} >= {"AI Core Freq", "HBM", "LLC", "NPU MEM", "Acc PMU", "Stars Soc Info"}
    for key, count in text_counters.items():
        assert abs(count - db["counters"][key]) <= max(1, count // 10), key
    # collectives: the same calls, kinds and sizes, all in one HCCL group of 8 (level0 records no ranks: the
    # text export has no communication*.json and the db's task info has no src/dst ranks)
    assert text["collectives"] == db["collectives"] and len(text["collectives"]) == 4
    assert all(nbytes > 0 for _kind, nbytes in db["collectives"])
    assert text["group_sizes"] == db["group_sizes"] == (set() if level == "level0" else {8})


def test_overlap_analysis_derived_when_the_db_lacks_it_equals_the_table(tmp_path):
    """level1 rank0 is the one db with OVERLAP_ANALYSIS: drop it and the derived spans must be the same."""
    src = shared(f"{ALEX}/db/level1/rank0_ascend_pt")
    copy = tmp_path / src.name
    shutil.copytree(src, copy)
    db = next((copy / "ASCEND_PROFILER_OUTPUT").glob("ascend_pytorch_profiler_*.db"))
    db.chmod(0o644)
    con = sqlite3.connect(db)
    con.execute("DROP TABLE OVERLAP_ANALYSIS")
    con.commit()
    con.close()

    def spans(path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = read_trace(path)
        ev = table.events
        pids = [p for p, n in table.sources[0].process_names.items() if n == "Overlap Analysis"]
        rows = ev[ev["pid"].isin(pids)]
        raw = table.args.take(np.flatnonzero(ev["pid"].isin(pids).to_numpy())).to_pylist()
        return set(zip(rows["name"].astype(str), rows["ts_ns"], rows["dur_ns"])), raw

    stored, stored_args = spans(src)
    derived, derived_args = spans(copy)
    assert len(stored) > 300 and {n for n, _t, _d in stored} == {
        "Computing", "Communication", "Communication(Not Overlapped)", "Free"}
    assert derived == stored
    assert all(b"derived" in (a or b"") for a in derived_args)
    assert not any(b"derived" in (a or b"") for a in stored_args)


def test_db_task_types_read_like_trace_view():
    """The db's TASK types become the SQE types trace_view.json writes (KERNEL_AIVEC -> AI_CORE ...)."""
    def types(rel):
        table = _processed(rel)
        ev = table.events
        hw = [p for p, n in table.sources[0].process_names.items() if n == "Ascend Hardware"]
        rows = np.flatnonzero(ev["pid"].isin(hw).to_numpy() & (ev["ph"] == "X").to_numpy())
        return collections.Counter(msgspec.json.decode(r).get("Task Type") for r in table.args.take(rows).to_pylist())

    text, db = types(f"{ALEX}/text/level1/rank0_ascend_pt"), types(f"{ALEX}/db/level1/rank0_ascend_pt")
    for task_type in ("AI_CORE", "MIX_AIV", "DSA_SQE", "EVENT_WAIT_SQE", "Notify Wait", "Write Value", "SDMA"):
        assert text[task_type] == db[task_type] > 0, task_type
    # the db does not say whether a memcpy went by PCIe or SDMA: MEMCPY_ASYNC stands for both
    assert db["MEMCPY_ASYNC"] == text["PCIE_DMA_SQE"] + text["SDMA_SQE"]
