"""The modules page (`tracekit modules --format html`) built from the view's rows (what a dataset query reads, no
pandas) is byte for byte the page built from the tree_view frame (the report's and the API's path), on real
traces: the drawing's data, the tree table with its marks and notes, blank columns where nothing was measured."""

from __future__ import annotations

import pytest
from conftest import SAMPLES, shared

from tracekit.modules.table import module_table
from tracekit.modules.view import first_recorded_step, step_time_ns, tree_rows, tree_view
from tracekit.pipeline import process, read_inputs
from tracekit.writers.modules_html import render_html
from tracekit.writers.modules_text import VIEW_COLUMNS, view_rows

TRACES = {
    "owlv2 h100": "gpu/tracelens/h100/google_owlv2-large-patch14-ensemble__1016001.json.gz",
    "alexnet npu": "npu/msinsight_alexnet_dp/text/level1/rank0_ascend_pt",
    "a100 record_function only": "gpu/hta/trace_diff/a100_control.json.gz",
    "gpt viztracer": SAMPLES / "gpt" / "viz.json.gz",
    "dist_pp_dp two ranks": SAMPLES / "dist_pp_dp",
}


@pytest.mark.parametrize("name", list(TRACES))
@pytest.mark.parametrize("options", [{}, {"depth": 2, "sort": "total"}])
def test_page_from_rows_is_the_page_from_the_frame(name, options):
    trace = TRACES[name]
    path = trace if not isinstance(trace, str) else shared(trace)
    inputs = sorted(p for p in path.glob("rank*.json*")) if path.is_dir() and name.startswith("dist") else [path]
    processed = process(read_inputs(inputs))
    modules = module_table(processed.table, processed.modules)
    steps, first = step_time_ns(processed.table), first_recorded_step(processed.table)
    frame_page = render_html(tree_view(modules, steps, **options), "t", first)
    rows = [{k: r[k] for k in VIEW_COLUMNS if k in r} for r in view_rows(modules)]
    rows_page = render_html(tree_rows(rows, steps, **options), "t", first)
    assert rows_page == frame_page
    assert frame_page.count("<tr data-id=") == len(tree_rows(rows, steps, **options)) > 0
