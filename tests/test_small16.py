"""small16: compare's terminal tables written without rich's layout must be exactly what rich writes.

The plain path (tracekit.writers.box_table) is taken only where rich would print the cells unchanged; these
tests render the real comparisons both ways and require the same text, and check the cases that must go
to rich (markup, emoji codes, control characters, a table wider than the console, a terminal).
"""

from __future__ import annotations

import io

import pytest
from conftest import SAMPLES, compared_pair, shared
from rich.console import Console
from rich.table import Table

from tracekit.cli.console import out_console
from tracekit.compare.job import compare_paths
from tracekit.compare.ops import one_sided
from tracekit.writers import box_table
from tracekit.writers.compare_text import records, render_one_sided, render_steps, render_top

PAIRS = {
    "bert h100 vs falconsai h100": ("gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz",
                                    "gpu/tracelens/h100/Falconsai_nsfw_image_detection__1016002.json.gz"),
    "gpt vs tp+ddp (one-sided ops)": ("cpu/gpt/prof_stack_modules.json.gz", "cpu/dist_tp_ddp/rank-0.json.gz"),
}
def compared(name: str):
    return compared_pair(*PAIRS[name])


def _render(cmp, plain: bool, monkeypatch) -> str:
    """The terminal output of compare for `cmp`, with the plain path allowed or not."""
    buf = io.StringIO()
    console = out_console(buf)
    with monkeypatch.context() as m:
        if not plain:
            m.setattr(box_table, "_fits_plain", lambda *a: False)
        render_steps(cmp.steps, console)
        render_top(cmp.modules, cmp.ops, 15, console, cmp.basis)
        render_one_sided(one_sided(cmp.ops), 15, console)
    return buf.getvalue()


@pytest.mark.parametrize("name", list(PAIRS))
def test_plain_tables_equal_rich_on_real_comparisons(name, monkeypatch):
    cmp = compared(name)
    plain, rich = _render(cmp, True, monkeypatch), _render(cmp, False, monkeypatch)
    assert plain == rich
    # the tables are really there: the top modules by |delta| and the step rows of both sides
    top = cmp.modules.loc[cmp.modules["delta_ns"].abs().idxmax(), "module_path"]
    assert f"│ {top} " in plain
    assert plain.count("┏") >= 3 and "│ base " in plain and "│ target " in plain
    if name.startswith("gpt"):  # ops found on the tp+ddp side only (its all-reduces) are listed
        assert "ops on one side only" in plain and "all_reduce" in plain


def test_plain_path_is_taken_for_piped_output(monkeypatch):
    """The plain writer runs (rich's Table is not built) when the output is piped and the cells are plain."""
    cmp = compared("bert h100 vs falconsai h100")
    built = []
    monkeypatch.setattr(box_table, "Table", lambda *a, **k: built.append(1) or Table(*a, **k))
    render_top(cmp.modules, cmp.ops, 15, out_console(io.StringIO()), cmp.basis)
    assert built == []


def _both(title, columns, rows, console_kwargs=None) -> tuple[str, str, bool]:
    kwargs = {"width": 400, "soft_wrap": True, **(console_kwargs or {})}
    ours, theirs = io.StringIO(), io.StringIO()
    console = Console(file=ours, **kwargs)
    plain = box_table._fits_plain(console, title, columns, rows)
    box_table.print_table(console, title, columns, rows)
    table = Table(title=title)
    for header, just in columns:
        table.add_column(header, justify=just)
    for row in rows:
        table.add_row(*row)
    Console(file=theirs, **kwargs).print(table)
    return ours.getvalue(), theirs.getvalue(), plain


COLUMNS = [("op", "left"), ("shapes", "left"), ("ms", "right")]


@pytest.mark.parametrize("cell, plain", [
    ("aten::addmm", True),                   # '::' is no emoji code
    ("[[8, 128], [256, 256]]", True),        # shapes: brackets that are no markup tag
    ("autograd::engine::evaluate_function: AddmmBackward0", True),
    ("fused [bold]kernel", False),           # a markup tag: rich would drop it
    ("add :thumbs_up: mul", False),          # an emoji code: rich would replace it
    ("tab\there", False),                    # control characters: rich expands / strips them
    ("全角の名前", True),                      # wide characters: measured in cells
])
def test_cells_rich_would_change_go_to_rich(cell, plain):
    ours, theirs, took_plain = _both("t", COLUMNS, [[cell, "[1,2]", "0.123"], ["x", "", "12,345.678"]])
    assert took_plain is plain
    assert ours == theirs


def test_wide_tables_terminals_and_empty_tables_go_to_rich():
    wide = [["x" * 300, "y" * 150, "1.0"]]
    assert _both("t", COLUMNS, wide)[2] is False  # wider than the console: rich wraps the cells
    ours, theirs, plain = _both("a title longer than the table itself", COLUMNS, [["a", "b", "1"]])
    assert plain is False and ours == theirs  # rich wraps such a title to the table's width
    assert _both("t", COLUMNS, [])[2] is False  # no rows: rich's header-only box
    assert _both("t", COLUMNS, [["a", "b", "1"]], {"force_terminal": True})[2] is False  # styles are written


def test_records_read_like_itertuples():
    cmp = compared("gpt vs tp+ddp (one-sided ops)")
    cols = ("module_path", "base_ns", "ratio", "status", "no_such_column")
    rows = records(cmp.modules, cols)
    assert len(rows) == len(cmp.modules)
    for rec, tup in zip(rows, cmp.modules.itertuples(index=False)):
        for c in cols[:-1]:
            a, b = getattr(rec, c), getattr(tup, c)
            assert a == b or (a != a and b != b)
        assert rec.no_such_column is None


def test_npu_vs_cuda_terminal_output_matches_rich(monkeypatch):
    """An Ascend folder against a CUDA sample trace (module names from another vendor) prints the same."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cmp = compare_paths(shared("npu/msinsight_alexnet_dp/text/level1/rank0_ascend_pt"),
                            SAMPLES / "alexnet" / "cuda_rank0.json.gz")
    assert _render(cmp, True, monkeypatch) == _render(cmp, False, monkeypatch)


SEQ_PAIRS = [*PAIRS, "npu vs alexnet cuda"]


def _sides(name: str):
    if name == "npu vs alexnet cuda":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cmp = compared_pair("npu/msinsight_alexnet_dp/text/level1/rank0_ascend_pt",
                                SAMPLES / "alexnet" / "cuda_rank0.json.gz")
    else:
        cmp = compared(name)
    return cmp.base, cmp.target


@pytest.mark.parametrize("name", SEQ_PAIRS)
def test_sequence_table_over_lists_equals_the_pandas_groupby(name, monkeypatch):
    """The list-based per-ordinal fold gives the very table (values, dtypes, spans) of the pandas groupby."""
    import pandas as pd

    from tracekit.compare import seqtable

    for side in _sides(name):
        assert seqtable._per_ordinal_rows(side.ops) is not None  # op frames take the fast path
        fast = seqtable.sequence_table(side.ops)
        with monkeypatch.context() as m:
            m.setattr(seqtable, "_per_ordinal_rows", lambda ops: None)
            slow = seqtable.sequence_table(side.ops)
        pd.testing.assert_frame_equal(fast.frame, slow.frame, check_dtype=True)
        assert fast.spans == slow.spans and fast.phases_of == slow.phases_of
        # meaning: every sequence holds each ordinal once, and repeated module calls fold into one row each
        assert fast.frame["count"].sum() <= len(side.ops) and (fast.frame["calls"] >= 1).all()


def test_sequence_table_falls_back_to_pandas_on_other_dtypes():
    from tracekit.compare import seqtable

    base, _ = _sides(next(iter(PAIRS)))
    odd = base.ops.assign(host_ns=base.ops["host_ns"].astype(float))  # e.g. a dataset written with floats
    assert seqtable._per_ordinal_rows(odd) is None
    assert len(seqtable.sequence_table(odd).frame) == len(seqtable.sequence_table(base.ops).frame)


@pytest.mark.parametrize("name", SEQ_PAIRS)
def test_kernel_columns_over_numpy_equal_the_pandas_groupby(name):
    """Device time, kernel and cast counts and top kernel names per op: the numpy path (int64 durations)
    gives what the pandas groupby path (taken for other duration dtypes) gives, on GPU, NPU and CPU runs."""
    import pandas as pd

    from tracekit.compare.opframe import op_frame
    from tracekit.table import EventTable

    cols = ["row", "device_ns", "kernel_count", "cast_ns", "cast_count", "kernel_names"]
    for side in _sides(name):
        table = side.processed.table
        assert table.events["dur_ns"].dtype == "int64"
        floats = EventTable(table.events.assign(dur_ns=table.events["dur_ns"].astype(float)), table.args,
                            table.sources)
        fast, slow = op_frame(table)[cols], op_frame(floats)[cols]
        pd.testing.assert_frame_equal(fast, slow, check_dtype=True)
        if side.has_device:  # the GPU/NPU sides: kernels found under their ops, names listed most frequent first
            assert fast["kernel_count"].sum() > 0 and fast["kernel_names"].notna().any()
            assert (fast["device_ns"] >= fast["cast_ns"]).all()
