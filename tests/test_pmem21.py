"""Convert's peak memory on large traces (issue 16, item 2): module attribution lets go of its per-row temporaries,
a Processed keeps the module spans but not per-row copies of columns the table already has, the key columns of
first_match are packed one at a time, and a large table's flow status is made before the Parquet thread starts.
Each change keeps the outputs (bench/golden.py on every shared trace); these tests check the memory itself (Python's
allocation tracer: deterministic, unlike RSS) and that the new paths write what the old ones did."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from conftest import shared

from tracekit import convert as convert_module
from tracekit.accounting import flow_status_arrays
from tracekit.inputs import expand_inputs
from tracekit.modules.attribute import ModuleCalls, attribute_modules
from tracekit.pipeline import _with_columns, process, read_inputs
from tracekit.table import column, first_match, group_codes, track_view
from tracekit.tree import build_call_tree
from tracekit.writers import chrome


def _read(path: str):
    return read_inputs(expand_inputs([shared(path)]))


@pytest.fixture(scope="module")
def v100_processed():
    return process(_read("gpu/hta/v100_large.json.gz"))


def _tree_table(path: str):
    """The table as attribute_modules sees it inside process (tree and link columns, no module columns)."""
    from tracekit.link import link_launches
    from tracekit.steps import assign_steps

    table = _read(path)
    tree = build_call_tree(track_view(table.events))
    links = link_launches(table.events, tree.parent)
    step = assign_steps(track_view(table.events), links.launch)
    return _with_columns(table, {"parent": tree.parent, "depth": tree.depth, "lane": tree.lane,
                                 "launch": links.launch, "launcher": links.launcher, "step": step})


def test_attribute_modules_holds_about_100_bytes_a_row_at_its_peak() -> None:
    table = _tree_table("gpu/hta/v100_large.json.gz")
    rows = len(table.events)
    tracemalloc.start()
    try:
        found = attribute_modules(table)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the six output columns are ~41 B a row; every intermediate held to the end made the peak ~160 B a row
    assert peak / rows < 130, f"{peak / rows:.0f} B a row"
    assert len(found.module) == rows


def test_process_lets_go_of_the_tree_and_link_arrays_once_in_the_table() -> None:
    table = _read("gpu/hta/v100_large.json.gz")
    rows = len(table.events)
    tracemalloc.start()
    try:
        process(table)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the table copies the tree, link and step columns (34 B a row); holding the originals through module
    # attribution as well made the peak 168 B a row (134 without them)
    assert peak / rows < 150, f"{peak / rows:.0f} B a row"


def test_processed_keeps_the_spans_not_per_row_copies(v100_processed) -> None:
    modules = v100_processed.modules
    assert isinstance(modules, ModuleCalls)
    assert not any(hasattr(modules, name) for name in ("module", "module_path", "module_type", "phase"))
    ev = v100_processed.table.events
    for name in ("module_path", "module_type", "phase", "module_from"):  # the per-row values are in the table
        assert str(ev[name].dtype) == "category"


def test_first_match_packs_columns_without_changing_them() -> None:
    rng = np.random.default_rng(5)
    query = (rng.integers(0, 3, 500), rng.integers(0, 2, 500).astype(bool), rng.integers(-(2**62), 2**62, 500))
    table = tuple(np.concatenate([q[::2], q[:40]]) for q in query)
    before = [c.copy() for c in (*query, *table)]
    got = first_match(query, table)
    for kept, now in zip(before, (*query, *table)):
        np.testing.assert_array_equal(kept, now)  # keys are packed in arrays of their own, never in the inputs
    # every even row of the query is in the table (its half): found at its own half-position
    np.testing.assert_array_equal(got[::2], np.arange(250))
    code, groups = group_codes(*query)
    assert groups == len({(int(a), bool(b), int(c)) for a, b, c in zip(*query)})
    assert code.max() == groups - 1


def test_a_flow_status_made_beforehand_writes_the_same_trace(v100_processed, tmp_path) -> None:
    table = v100_processed.table
    plain = chrome.write_chrome_trace(table, tmp_path / "plain.json")
    flows = flow_status_arrays(table.events, column(table.events, "launch"))
    given = chrome.write_chrome_trace(table, tmp_path / "given.json", flows=flows)
    assert (tmp_path / "plain.json").read_bytes() == (tmp_path / "given.json").read_bytes()
    assert plain.status.tolist() == given.status.tolist()
    assert (plain.events_written, plain.flows_written) == (given.events_written, given.flows_written)


def test_convert_makes_a_large_tables_flow_status_first(tmp_path, monkeypatch) -> None:
    trace = shared("gpu/hta/nccl_data.json.gz")
    small = process(_read("gpu/hta/nccl_data.json.gz")).table
    assert chrome.flow_status_first(small) is None  # a small table: the writer makes it
    convert_module.convert([trace], tmp_path / "plain")
    made = []
    real = chrome.flow_status_arrays
    monkeypatch.setattr(chrome, "SERIAL_FLOW_ROWS", 1)
    monkeypatch.setattr(chrome, "flow_status_arrays", lambda *a: made.append(1) or real(*a))
    convert_module.convert([trace], tmp_path / "first")
    assert made == [1]  # once, before the writers: the chrome writer took it
    for name in ("trace.json", "summary.json"):
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "first" / name).read_bytes()
