"""`tracekit modules --format html`: the model drawing and the module tree table, in the report's style."""

from __future__ import annotations

import pandas as pd

from tracekit.report.fmt import esc
from tracekit.report.page import render_page
from tracekit.report.sections import model_section, modules_section


def render_html(view: pd.DataFrame, title: str, first_step: int | None = None) -> str:
    """One page: the drawing of the first source's model and the tree table of every source."""
    sources = view["source_index"].nunique() if len(view) else 0
    subtitle = esc(f"{len(view):,} modules" + (f" in {sources} inputs" if sources > 1 else ""))
    return render_page(title, subtitle, [model_section(view, "input 0"), modules_section(view, first_step)])
