"""`tracekit modules`' terminal table written by the plain box writer (tracekit.writers.box_table) must be the text
rich writes, caption included, on real module trees; on a terminal, or where a cell is not plain, rich writes it."""

from __future__ import annotations

import io

import pytest
from conftest import SAMPLES, shared

from tracekit.cli.console import out_console
from tracekit.modules.table import module_table
from tracekit.modules.view import first_recorded_step, step_time_ns, tree_view
from tracekit.pipeline import process, read_inputs
from tracekit.writers import box_table
from tracekit.writers.modules_text import render_table

TRACES = {
    "owlv2 h100": shared("gpu/tracelens/h100/google_owlv2-large-patch14-ensemble__1016001.json.gz"),
    "qwen h100": shared("gpu/tracelens/h100/Qwen_Qwen1.5-0.5B-Chat__1016005.json.gz"),
    "alexnet npu": shared("npu/msinsight_alexnet_dp/text/level1/rank0_ascend_pt"),
    "gpt viztracer": SAMPLES / "gpt" / "viz.json.gz",
    "gpt torch": SAMPLES / "gpt" / "prof.json.gz",
}


def _rendered(path, plain: bool, monkeypatch, terminal: bool = False) -> str:
    processed = process(read_inputs([path]))
    view = tree_view(module_table(processed.table, processed.modules), step_time_ns(processed.table))
    buf = io.StringIO()
    console = out_console(buf)
    with monkeypatch.context() as m:
        if not plain:
            m.setattr(box_table, "_fits_plain", lambda *a: False)
        if terminal:
            m.setattr(type(console), "is_terminal", property(lambda self: True))
        render_table(view, console, "modules", first_recorded_step(processed.table))
    return buf.getvalue()


@pytest.mark.parametrize("name", list(TRACES))
def test_plain_module_table_is_what_rich_writes(name, monkeypatch):
    path = TRACES[name]
    if not path.exists():
        pytest.fail(f"missing trace {path}")
    plain, rich = _rendered(path, True, monkeypatch), _rendered(path, False, monkeypatch)
    assert plain == rich
    lines = plain.splitlines()
    assert lines[0] == "modules" and lines[1].startswith("┏") and lines[3].startswith("┡")
    body = [x for x in lines if x.startswith("│")]
    assert len(body) > 5  # the module rows are there, one line each


def test_caption_notes_survive_the_plain_path(monkeypatch):
    """owlv2's notes (params inferred '~', blank FLOPs) are written under the table on both paths."""
    text = _rendered(TRACES["owlv2 h100"], True, monkeypatch)
    tail = text.split("└")[-1]
    assert "~ params inferred or unsure" in tail


def test_a_cell_with_markup_goes_to_rich(monkeypatch):
    called = []
    monkeypatch.setattr(box_table, "box_text", lambda *a: called.append(a) or "")
    buf = io.StringIO()
    box_table.print_table(out_console(buf), "t", [("a", "left")], [["[bold]x[/bold]"]])
    assert not called and "│ x │" in buf.getvalue()  # rich rendered the markup
    box_table.print_table(out_console(io.StringIO()), "t", [("a", "left")], [["x"]], caption="[b]note[/b]")
    assert not called  # a caption rich would change also goes to rich


def test_a_terminal_gets_rich(monkeypatch):
    called = []
    monkeypatch.setattr(box_table, "box_text", lambda *a: called.append(a) or "")
    text = _rendered(SAMPLES / "gpt" / "prof.json.gz", True, monkeypatch, terminal=True)
    assert not called and "┏" in text


def test_parallel_tables_plain_equal_rich(monkeypatch):
    """`tracekit parallel`'s tables (per rank: one row a rank) through the plain writer, as rich writes them."""
    from click.testing import CliRunner

    from tracekit.cli import main

    args = ["parallel", str(SAMPLES / "dist_pp_dp"), "--workers", "1"]
    plain = CliRunner().invoke(main, args)
    with monkeypatch.context() as m:
        m.setattr(box_table, "_fits_plain", lambda *a: False)
        rich = CliRunner().invoke(main, args)
    assert plain.exit_code == rich.exit_code == 0, plain.output
    assert plain.output == rich.output and "per rank: compute" in plain.output
