"""`tracekit parallel --html`: per-rank and per-group charts and the tables with units, in the report's style."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tracekit.parallel.pipeline import pipeline_view
from tracekit.parallel.report import terminal_view
from tracekit.report.blocks import bar_chart, table
from tracekit.report.fmt import missing
from tracekit.report.page import Section, render_page
from tracekit.writers.atomic import staged_file
from tracekit.writers.pipeline_svg import pipeline_section

SPLIT_COLORS = {"compute": "#59a14f", "exposed communication": "#e15759", "idle": "#bab0ac"}
TABLE_TITLES = {"groups": "Process groups", "by_group": "Collectives per parallel dimension and group (all ranks)",
                "by_module": "Per module: what each parallel dimension added", "by_rank": "Per rank",
                "stragglers": "Straggler per step (most compute; the others wait for it)"}


def _cell(value: object, column: str) -> str:
    if missing(value):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple, np.ndarray)):
        return ", ".join(map(str, value))
    if isinstance(value, (float, np.floating)):
        return f"{value:,.2f}" if "MB" in column or "GB/s" in column else f"{value:,.3f}"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}" if column not in ("rank", "step", "longest step on rank") else str(value)
    return str(value)


def _frame_table(table_id: str, frame: pd.DataFrame) -> str:
    numeric = [(pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]))
               or str(frame[c].iloc[0]).endswith("%") for c in frame.columns] if len(frame) else []
    rows = [[_cell(v, c) for v, c in zip(row, frame.columns)] for row in frame.itertuples(index=False)]
    percent = [bool(len(frame)) and str(frame[c].iloc[0]).endswith("%") and "%" not in str(c) for c in frame.columns]
    return table(table_id, [f"{c} %" if p else str(c) for c, p in zip(frame.columns, percent)], rows, numeric)


def _groups_view(groups: pd.DataFrame) -> pd.DataFrame:
    if not len(groups):
        return groups
    return pd.DataFrame({"group": groups["group"], "description": groups["desc"], "ranks": groups["ranks"],
                         "dimension": groups["parallel_dim"], "dimension inferred": groups["dim_inferred"],
                         "from": groups["from"]})


def parallel_sections(tables: dict[str, pd.DataFrame]) -> list[Section]:
    """Charts first (per rank, per group), then every table in ms, MB and %."""
    by_rank, by_group = tables["by_rank"], tables["by_group"]
    body = ""
    if len(by_rank):
        body += "<h3>Per rank: where step time went (all steps)</h3>" + bar_chart(
            "rank-split", [f"rank {int(r)}" for r in by_rank["rank"]],
            [{"label": label, "data": (by_rank[col] / 1e6).tolist(), "color": SPLIT_COLORS[label]}
             for col, label in (("compute_ns", "compute"), ("exposed_comm_ns", "exposed communication"),
                                ("idle_ns", "idle"))], "ms", stacked=True)
    if len(by_group):
        labels = [f"{g.parallel_dim} {g.group_desc or g.group} [{g.group_ranks}]" for g in by_group.itertuples()]
        body += "<h3>Per parallel dimension and group: communication time (summed over ranks)</h3>" + bar_chart(
            "group-comm", labels,
            [{"label": "overlapped with compute", "color": "#76b7b2",
              "data": ((by_group["time_ns"] - by_group["exposed_ns"]) / 1e6).tolist()},
             {"label": "exposed", "data": (by_group["exposed_ns"] / 1e6).tolist(), "color": "#e15759"}],
            "ms", stacked=True)
    body += pipeline_section(tables)  # PP runs only (tracekit/writers/pipeline_svg.py)
    for i, (title, frame) in enumerate(pipeline_view(tables).items()):
        if len(frame):
            body += f"<h3>{title[:1].upper() + title[1:]}</h3>" + _frame_table(f"pipeline-{i}", frame)
    view = terminal_view(tables)
    view["groups"] = _groups_view(tables["groups"])
    for name, title in TABLE_TITLES.items():
        frame = view.get(name)
        if frame is not None and len(frame):
            body += f"<h3>{title}</h3>" + _frame_table(f"parallel-{name.replace('_', '-')}", frame)
    return [Section("parallel", "Parallel: ranks, groups and collectives", body or "<p>No ranks.</p>")]


def render_html(tables: dict[str, pd.DataFrame], inputs: list[str] | None = None) -> str:
    """The parallel page on its own; `inputs` (the command's arguments) name it."""
    names = [Path(p).name for p in inputs or []]
    ranks = len(tables["by_rank"])
    shown = ", ".join(names) if len(names) <= 2 else f"{names[0]}, … {names[-1]}"
    title = "tracekit parallel" + (f": {shown}" if names else "") + f" ({ranks} ranks)"
    return render_page(title, f"{ranks} ranks · {len(tables['groups'])} process groups", parallel_sections(tables),
                       charts=True)


def write_html(tables: dict[str, pd.DataFrame], path: Path, inputs: list[str] | None = None) -> None:
    """Write the page atomically."""
    with staged_file(path) as tmp:
        tmp.write_text(render_html(tables, inputs), encoding="utf-8")
