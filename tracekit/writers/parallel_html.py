"""A small self-contained HTML page with the charts of `tracekit parallel --html` (inline SVG, no scripts)."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from tracekit.writers.atomic import staged_file
from tracekit.writers.pipeline_svg import pipeline_section

COLORS = {"compute": "#4e79a7", "exposed communication": "#e15759", "idle": "#bab0ac",
          "overlapped": "#76b7b2", "exposed": "#e15759"}


def _bars(title: str, rows: list[tuple[str, dict[str, float]]], unit: str) -> str:
    """Horizontal stacked bars: one row per label, segments in the order of COLORS present."""
    width, height, left = 760, 22, 220
    top = max((sum(v.values()) for _, v in rows), default=0) or 1
    parts = [f"<h2>{html.escape(title)}</h2>",
             f'<svg width="{width + left + 120}" height="{height * len(rows) + 30}" font-family="sans-serif" '
             f'font-size="12">']
    for i, (label, segs) in enumerate(rows):
        y, x = 10 + i * height, left
        parts.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">{html.escape(label)}</text>')
        for name, value in segs.items():
            w = width * value / top
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{height - 4}" fill="{COLORS[name]}">'
                         f"<title>{html.escape(name)}: {value:,.3f} {unit}</title></rect>")
            x += w
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 14}">{sum(segs.values()):,.1f} {unit}</text>')
    parts.append("</svg>")
    legend = " ".join(f'<span style="color:{c}">&#9632;</span> {html.escape(n)}' for n, c in COLORS.items()
                      if any(n in s for _, s in rows))
    return "\n".join([*parts, f"<p>{legend}</p>"])


def render_html(tables: dict[str, pd.DataFrame]) -> str:
    """Per-rank compute / exposed communication / idle, and per parallel dimension overlapped vs exposed time."""
    by_rank, by_group = tables["by_rank"], tables["by_group"]
    ranks = [(f"rank {int(r['rank'])}", {"compute": r["compute_ns"] / 1e6,
                                          "exposed communication": r["exposed_comm_ns"] / 1e6,
                                          "idle": r["idle_ns"] / 1e6}) for _, r in by_rank.iterrows()]
    dims = [(f"{g['parallel_dim']} {g['group_desc'] or g['group']} [{g['group_ranks']}]",
             {"overlapped": (g["time_ns"] - g["exposed_ns"]) / 1e6, "exposed": g["exposed_ns"] / 1e6})
            for _, g in by_group.iterrows()]
    body = [_bars("Per rank: where step time went", ranks, "ms"),
            _bars("Per parallel dimension and group: communication time (all ranks)", dims, "ms")]
    body.append(pipeline_section(tables))  # PP runs only (tracekit/writers/pipeline_svg.py)
    for name in ("by_group", "by_module", "stragglers"):
        if len(tables[name]):
            body.append(f"<h2>{name.replace('_', ' ')}</h2>" + tables[name].to_html(index=False, na_rep=""))
    return ("<!doctype html><html><head><meta charset='utf-8'><title>tracekit parallel</title></head>"
            "<body style='font-family:sans-serif'><h1>tracekit parallel</h1>" + "\n".join(body) + "</body></html>")


def write_html(tables: dict[str, pd.DataFrame], path: Path) -> None:
    """Write the page atomically."""
    with staged_file(path) as tmp:
        tmp.write_text(render_html(tables), encoding="utf-8")
