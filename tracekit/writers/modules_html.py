"""`tracekit modules --format html`: the model drawing and the module tree table, in the report's style."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tracekit.report.fmt import esc
from tracekit.report.page import render_page
from tracekit.report.sections import model_section, modules_section
from tracekit.writers.modules_text import view_rows

if TYPE_CHECKING:
    import pandas as pd

    from tracekit.modules.view import Row


def render_html(view: list[Row] | pd.DataFrame, title: str, first_step: int | None = None) -> str:
    """One page: the drawing of the first source's model and the tree table of every source (tree_rows, or a
    tree_view frame)."""
    view = view_rows(view)
    sources = len({r["source_index"] for r in view})
    subtitle = esc(f"{len(view):,} modules" + (f" in {sources} inputs" if sources > 1 else ""))
    return render_page(title, subtitle, [model_section(view, "input 0"), modules_section(view, first_step)])
