"""Convert's writers on large traces (issue 16, item 2): the kernels and ops tables are made and written one row
group at a time, collective_calls reads the name, kind and module texts at the rows it looks at and decodes args a
chunk of calls at a time, step_figures keeps masks only, and is_in indexes with the codes as they are. Each keeps the
outputs (bench/golden.py on every shared trace; here: the same bytes, the same frames); the memory is checked with
Python's allocation tracer (deterministic, unlike RSS)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shared

from tracekit.inputs import expand_inputs
from tracekit.modules import view
from tracekit.parallel import collectives
from tracekit.pipeline import process, read_inputs
from tracekit.table import TextAt, is_in, strings
from tracekit.writers import parquet

REPO = Path(__file__).resolve().parent.parent


def _processed(path: Path):
    return process(read_inputs(expand_inputs([path])))


@pytest.fixture(scope="module")
def v100():
    return _processed(shared("gpu/hta/v100_large.json.gz"))


def _traced_peak(fn) -> tuple[object, int]:
    tracemalloc.start()
    try:
        out = fn()
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return out, peak


@pytest.mark.parametrize("group_rows", [4_096, parquet.ROW_GROUP_ROWS])
def test_sliced_kernels_and_ops_are_the_bytes_of_the_whole_tables(v100, tmp_path, monkeypatch, group_rows) -> None:
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", group_rows)
    table = v100.table
    kernels, ops = parquet.kernel_rows(table), parquet.op_rows(table)
    assert len(ops) > group_rows  # more than one row group: the sliced path
    launched = parquet.launched_rows(table)
    for name, rows, make in (("kernels", kernels, lambda r: parquet.kernels_frame(table, r)),
                             ("ops", ops, lambda r: parquet.ops_frame(table, r, launched))):
        sliced, whole = tmp_path / f"{name}_sliced.parquet", tmp_path / f"{name}_whole.parquet"
        assert parquet.write_sliced(make, rows, sliced) == len(rows)
        parquet.write_table(make(rows), whole)
        assert sliced.read_bytes() == whole.read_bytes(), name


def test_ops_kernel_count_is_the_count_of_launched_kernels(v100) -> None:
    table = v100.table
    ops = parquet.ops_frame(table)
    launcher = table.events["launcher"].to_numpy()
    expected = np.bincount(launcher[launcher >= 0], minlength=len(launcher))[parquet.op_rows(table)]
    assert np.array_equal(ops.column("kernel_count").to_numpy(), expected)
    assert ops.column("kernel_count").to_numpy().sum() > 0


def test_a_dictionary_larger_than_a_row_group_sets_the_group(tmp_path, monkeypatch) -> None:
    processed = _processed(REPO / "sample_traces" / "gpt" / "prof.json.gz")
    table = processed.table
    paths = table.events["module_path"].array.categories
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 16)
    assert len(paths) > 16  # the module_path dictionary is larger than a row group
    ops = parquet.op_rows(table)
    assert len(ops) > 2 * len(paths)
    made = []

    def make(rows: np.ndarray):
        made.append(len(rows))
        return parquet.ops_frame(table, rows)

    sliced, whole = tmp_path / "sliced.parquet", tmp_path / "whole.parquet"
    parquet.write_sliced(make, ops, sliced)
    parquet.write_table(parquet.ops_frame(table), whole)
    assert sliced.read_bytes() == whole.read_bytes()
    assert made[0] == 16 and made[1] == len(paths)  # first slice, then rebuilt at the dictionary's size


def test_collective_calls_holds_under_half_the_old_peak(v100) -> None:
    rows = len(v100.table.events)
    (calls, _skipped), peak = _traced_peak(lambda: collectives.collective_calls(v100.table))
    # object arrays of names, kinds, module paths and sources, and the args of every call at once: 99 B a row
    assert peak / rows < 45, f"{peak / rows:.0f} B a row"
    assert len(calls) > 1_000


@pytest.mark.parametrize("path", ["cpu/dist_tp_ddp/rank-0.json.gz", "gpu/hta/nccl_data.json.gz"])
def test_collective_calls_the_same_whatever_the_args_chunk(path, monkeypatch) -> None:
    table = _processed(shared(path)).table
    whole_calls, whole_skipped = collectives.collective_calls(table)
    monkeypatch.setattr(collectives, "ARGS_CALLS", 1)
    calls, skipped = collectives.collective_calls(table)
    assert len(calls) > 1
    pd.testing.assert_frame_equal(calls, whole_calls)
    assert skipped == whole_skipped


def test_text_at_reads_what_strings_holds() -> None:
    values = pd.Categorical(["b", None, "a", "b", "c"])
    text = TextAt(values)
    assert [text[i] for i in range(5)] == list(strings(values))
    kinds = TextAt(values, ["kind of a", None, "kind of c"])
    assert [kinds[i] for i in range(5)] == [None, None, "kind of a", None, "kind of c"]
    plain = np.array(["x", None, "y"], dtype=object)
    assert [TextAt(plain)[i] for i in range(3)] == ["x", None, "y"]
    empty = pd.Categorical([None, None], categories=[])
    assert TextAt(empty)[1] is None


def test_is_in_does_not_copy_the_codes() -> None:
    values = pd.Categorical.from_codes(np.arange(1_000_000) % 5 - 1, categories=list("abcd"))  # int8 codes, -1
    mask, peak = _traced_peak(lambda: is_in(values, ("b", "d")))
    assert peak < 1.5 * len(values)  # the bool mask; take() made an intp copy of the codes first: 9 B a row
    assert np.array_equal(mask, np.isin(np.asarray(values, dtype=object), ["b", "d"]))


def _old_step_figures(source, is_metadata, is_step, ts_ns, dur_ns, step):
    """step_figures as it was (copies of the columns at the non-metadata rows): the reference."""
    out = {}
    keep = ~is_metadata
    src, steps_of, ts, dur = source[keep], is_step[keep], ts_ns[keep], dur_ns[keep]
    for s in sorted(set(src.tolist())):
        mine = src == s
        picked = mine & steps_of
        if picked.any():
            out[int(s)] = int(dur[picked].sum())
        else:
            end = ts[mine] + np.maximum(dur[mine], 0)
            out[int(s)] = int(end.max() - ts[mine].min())
    first = None
    if step is not None:
        numbers = step[is_step]
        numbers = numbers[numbers >= 0]
        first = int(numbers.min()) if len(numbers) else None
    return out, first


@pytest.mark.parametrize("seed", range(4))
def test_step_figures_equal_the_old_ones(seed, monkeypatch) -> None:
    monkeypatch.setattr(view, "_SPAN_CHUNK", 64)  # many chunks
    rng = np.random.default_rng(seed)
    n = 1_000
    source = rng.integers(2, 7, n).astype(np.int32)
    source[source == 6] = 5  # source 6 never appears; 5 is metadata only below
    is_metadata = (source == 5) | (rng.random(n) < 0.1)
    is_step = (source == 2) & (rng.random(n) < 0.05)
    ts = rng.integers(10**9, 2 * 10**9, n)
    dur = rng.integers(-5, 10**6, n)
    step = rng.integers(-1, 9, n)
    figures = view.step_figures(source, is_metadata, is_step, ts, dur, step)
    assert figures == _old_step_figures(source, is_metadata, is_step, ts, dur, step)
    assert set(figures[0]) == {2, 3, 4}


def test_step_figures_keep_masks_only(v100) -> None:
    rows = len(v100.table.events)
    figures, peak = _traced_peak(lambda: view.step_figures_of(v100.table))
    assert peak / rows < 12, f"{peak / rows:.0f} B a row"  # copies of source, ts and dur at the rows: ~37 B a row
    assert figures[0] and all(ns > 0 for ns in figures[0].values())


# --- process: call tree tracks, module attribution, module columns -------------------------------------------------


def _old_nearest_marked(parent: np.ndarray, mark: np.ndarray) -> np.ndarray:
    """nearest_marked as it was (positions of every row at once): the reference."""
    n = len(parent)
    jump = np.where(mark, np.arange(n, dtype=np.int64), parent)
    pending = np.arange(n, dtype=np.int64)
    while True:
        target = jump[pending]
        live = target >= 0
        live[live] = ~mark[target[live]]
        pending = pending[live]
        if not len(pending):
            return jump
        jump[pending] = jump[jump[pending]]


@pytest.mark.parametrize("seed", range(5))
def test_nearest_marked_is_the_old_answer(seed, monkeypatch) -> None:
    from tracekit import ancestry

    monkeypatch.setattr(ancestry, "_CHUNK", 97)  # many chunks
    rng = np.random.default_rng(seed)
    n = 5_000
    parent = np.array([-1 if i == 0 or rng.random() < 0.05 else int(rng.integers(max(0, i - 50), i))
                       for i in range(n)], dtype=np.int64)
    mark = rng.random(n) < [0.0, 0.01, 0.3, 1.0, 0.1][seed]
    assert np.array_equal(ancestry.nearest_marked(parent, mark), _old_nearest_marked(parent, mark))
    without_self = ancestry.nearest_marked(parent, mark, include_self=False)
    has = parent >= 0
    assert np.array_equal(without_self[has], _old_nearest_marked(parent, mark)[parent[has]])


def test_few_group_codes_are_group_codes(v100, monkeypatch) -> None:
    from tracekit import table as table_module

    ev = v100.table.events
    columns = [ev[c].to_numpy() for c in ("source_index", "pid", "tid")]
    assert table_module.few_group_codes(*columns)[1] > 1
    for chunk in (table_module._FIRST_CHUNK, 1_000):
        monkeypatch.setattr(table_module, "_FIRST_CHUNK", chunk)
        codes, groups = table_module.few_group_codes(*columns)
        expected, expected_groups = table_module.group_codes(*columns, sort=True)
        assert groups == expected_groups and np.array_equal(codes, expected)
    rng = np.random.default_rng(1)
    many = rng.integers(0, 10**12, 300_000)  # too many distinct keys: falls back to group_codes
    assert np.array_equal(table_module.few_group_codes(many)[0], table_module.group_codes(many, sort=True)[0])
    wide = (rng.integers(-2**40, 2**40, 1_000), rng.integers(-2**40, 2**40, 1_000))  # a key past 62 bits
    assert np.array_equal(table_module.few_group_codes(*wide)[0], table_module.group_codes(*wide, sort=True)[0])


def test_track_codes_need_no_hash_table_of_every_row(v100) -> None:
    from tracekit.tree import track_codes

    rows = len(v100.table.events)
    codes, peak = _traced_peak(lambda: track_codes(v100.table.events))
    assert peak / rows < 20, f"{peak / rows:.0f} B a row"  # group_codes: ~48 B a row
    assert len(codes) == rows


def _factorized(values: np.ndarray) -> pd.Categorical:
    """_categorical_once as it encodes a column of one chunk (pd.factorize of the whole column): the reference."""
    from tracekit import pipeline

    chunk = pipeline._ENCODE_CHUNK
    pipeline._ENCODE_CHUNK = 1 << 40
    try:
        return pipeline._categorical_once(values)
    finally:
        pipeline._ENCODE_CHUNK = chunk


@pytest.mark.parametrize("seed", range(3))
def test_categorical_once_is_the_old_encoding(seed, monkeypatch) -> None:
    from tracekit import pipeline

    monkeypatch.setattr(pipeline, "_ENCODE_CHUNK", 333)
    rng = np.random.default_rng(seed)
    words = np.array(["forward", "backward", "optimizer", "other", None, float("nan"), "a/b", "" ], dtype=object)
    values = words[rng.integers(0, len(words), 10_000)]
    new, old = pipeline._categorical_once(values), _factorized(values)
    assert list(new.categories) == list(old.categories)
    assert new.codes.dtype == old.codes.dtype and np.array_equal(new.codes, old.codes)
    nothing = np.zeros(0, dtype=object)
    empty = pipeline._categorical_once(nothing)
    assert len(empty) == 0 and list(empty.categories) == list(_factorized(nothing).categories)


@pytest.mark.parametrize("chunk", [64, 1 << 30])
def test_categorical_by_key_through_a_table_of_keys_or_factorized(chunk, monkeypatch) -> None:
    from tracekit import pipeline
    from tracekit.modules.attribute import attribute_modules

    monkeypatch.setattr(pipeline, "_ENCODE_CHUNK", chunk)  # 64: the table of one entry per key; 2**30: factorize
    modules = attribute_modules(_processed(REPO / "sample_traces" / "gpt" / "prof.json.gz").table)
    assert (modules.module >= 0).any()
    for name in ("module_path", "module_type"):
        values = getattr(modules, name)
        fast, generic = pipeline._categorical_by_key(modules.module, values), _factorized(values)
        assert list(fast.categories) == list(generic.categories), name
        assert np.array_equal(fast.codes, generic.codes), name


def test_categorical_by_key_of_keys_that_are_no_row_numbers() -> None:
    from tracekit.pipeline import _categorical_by_key

    keys = np.array([10**15, -7, 10**15, 5], dtype=np.int64)  # factorized, not a table of every possible key
    values = np.array(["b", None, "b", "a"], dtype=object)
    encoded = _categorical_by_key(keys, values)
    assert list(encoded.categories) == ["a", "b"] and encoded.codes.tolist() == [1, -1, 1, 0]


def test_process_holds_under_110_bytes_a_row_at_its_peak() -> None:
    table = read_inputs(expand_inputs([shared("gpu/hta/v100_large.json.gz")]))
    rows = len(table.events)
    processed, peak = _traced_peak(lambda: process(table))
    # attribute_modules' temporaries (nearest_marked's positions, _within_ranges, the loss marks' key of every row),
    # the tracks' hash table and the module columns' factorize set it at ~134 B a row
    assert peak / rows < 110, f"{peak / rows:.0f} B a row"
    assert "module_path" in processed.table.events


def test_few_group_codes_at_rows_are_group_codes_at(v100, monkeypatch) -> None:
    from tracekit import table as table_module

    ev = v100.table.events
    columns = [ev[c].to_numpy() for c in ("source_index", "pid", "tid", "lane")]
    rows = np.flatnonzero(ev["ph"].to_numpy() != "M")[::3]
    monkeypatch.setattr(table_module, "_FIRST_CHUNK", 5_000)
    codes, groups = table_module.few_group_codes(*columns, rows=rows)
    expected, expected_groups = table_module.group_codes_at(columns, rows, sort=True)
    assert groups == expected_groups > 1 and np.array_equal(codes, expected)


def test_first_match_rows_is_first_match(v100) -> None:
    from tracekit.table import first_match, first_match_rows

    ev = v100.table.events
    columns = [ev[c].to_numpy() for c in ("source_index", "pid", "tid", "ts_ns")]
    query, table = np.arange(0, len(ev), 7), np.arange(len(ev))[::-2]
    found = first_match_rows(columns, query, table)
    assert np.array_equal(found, first_match(tuple(c[query] for c in columns), tuple(c[table] for c in columns)))
    assert (found >= 0).any() and (found < 0).any()


@pytest.mark.parametrize("rel", ["gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz",
                                 "gpu/hta/nccl_data.json.gz"])
def test_launcher_members_made_per_chunk_write_the_same_trace(rel, tmp_path, monkeypatch) -> None:
    from tracekit.writers import chrome

    table = _processed(shared(rel)).table
    whole = chrome._KernelArgs(table)
    assert whole.per_op is not None and len(whole.ops)  # a small table: the members of every op made at once
    chrome.write_chrome_trace(table, tmp_path / "once.json")
    monkeypatch.setattr(chrome, "SHARED_ROWS", 0)  # as a large table: each chunk's ops
    monkeypatch.setattr(chrome, "CHUNK_ROWS", 1_000)
    assert chrome._KernelArgs(table).per_op is None
    chrome.write_chrome_trace(table, tmp_path / "chunks.json")
    assert (tmp_path / "chunks.json").read_bytes() == (tmp_path / "once.json").read_bytes()


def _old_parts(rows: np.ndarray, row_bytes: np.ndarray, chunk_rows: int, chunk_bytes: int) -> list[np.ndarray]:
    """chrome._parts as it was (a running total of every row's bytes): the reference."""
    parts, begin = [], 0
    total = np.cumsum(row_bytes)
    while begin < len(rows):
        before = int(total[begin - 1]) if begin else 0
        end = int(np.searchsorted(total, before + chunk_bytes, side="right"))
        end = min(max(end, begin + 1), begin + chunk_rows, len(rows))
        parts.append(rows[begin:end])
        begin = end
    return parts


@pytest.mark.parametrize("seed", range(4))
def test_parts_are_the_old_parts(seed, monkeypatch) -> None:
    from tracekit.writers import chrome

    monkeypatch.setattr(chrome, "CHUNK_ROWS", 300)
    monkeypatch.setattr(chrome, "CHUNK_BYTES", 5_000)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(50_000, 20_000, replace=False))
    sizes = rng.integers(0, [40, 400, 4_000, 20][seed], len(rows))
    sizes[rng.integers(0, len(rows), 30)] = 9_000  # rows above the limit: parts of their own
    asked = []

    def row_bytes(part: np.ndarray) -> np.ndarray:
        asked.append(len(part))
        return sizes[np.searchsorted(rows, part)]

    new = list(chrome._parts(rows, row_bytes))
    old = _old_parts(rows, sizes, 300, 5_000)
    assert len(new) == len(old) and all(np.array_equal(a, b) for a, b in zip(new, old))
    assert max(asked) <= 300  # never the bytes of every row


def test_row_bytes_read_the_offsets(v100) -> None:
    import pyarrow.compute as pc

    from tracekit.writers import chrome

    args = v100.table.args
    rows = np.arange(0, len(args), 3)
    of = chrome._row_bytes(args, lambda r: None)
    assert np.array_equal(of(rows), pc.binary_length(args).to_numpy(zero_copy_only=False)[rows])
    sliced = args.slice(5)  # an array with an offset
    assert np.array_equal(chrome._row_bytes(sliced, lambda r: None)(rows[:-2]),
                          pc.binary_length(sliced).to_numpy(zero_copy_only=False)[rows[:-2]])


# --- the module table ----------------------------------------------------------------------------------------------


def test_module_columns_hold_no_copy_of_every_row() -> None:
    from tracekit.modules.table import module_columns

    processed = _processed(shared("gpu/tracelens/h100/google_owlv2-large-patch14-ensemble__1016001.json.gz"))
    rows = len(processed.table.events)
    columns, peak = _traced_peak(lambda: module_columns(processed.table, processed.modules))
    # names, kinds and phases as object arrays, clipped durations, children's time and paths of every row, the
    # (source, path) factorize and two whole nearest_marked temporaries: ~153 B a row
    assert peak / rows < 110, f"{peak / rows:.0f} B a row"
    assert len(columns["module_path"]) > 100 and np.nansum(np.asarray(columns["flops_fwd"], dtype=float)) > 0


def test_nearest_marked_rounds_in_chunks_give_the_answer_of_one_round(monkeypatch) -> None:
    from tracekit import ancestry

    rng = np.random.default_rng(7)
    n = 20_000
    parent = np.array([-1 if i == 0 else int(rng.integers(max(0, i - 3), i)) for i in range(n)], dtype=np.int64)
    parent = parent[::-1].copy()  # parents after their children in row order, deep chains
    parent = np.where(parent >= 0, n - 1 - parent, -1)
    mark = rng.random(n) < 0.001
    expected = _old_nearest_marked(parent, mark)
    for chunk in (1, 13, 1 << 16):
        monkeypatch.setattr(ancestry, "_CHUNK", chunk)
        assert np.array_equal(ancestry.nearest_marked(parent, mark), expected)
