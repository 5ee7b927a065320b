"""The pipeline picture of `tracekit parallel --html`: one lane per rank, grouped by stage, on one time axis.

Compute (merged kernel intervals), PP send/recv, DP gradient sync and other collectives are drawn as
bars; the idle gaps between them are the bubble, and each lane ends with its start/end bubble in ms.
Inline SVG, no scripts (`pipeline_section(tables)` returns the HTML to include).
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

COLORS = {"compute": "#4e79a7", "PP p2p": "#f28e2b", "DP": "#59a14f", "other": "#b07aa1"}
WIDTH, LANE, LEFT, RIGHT = 900, 26, 150, 230


def _color(kind: str) -> str:
    if kind in COLORS:
        return COLORS[kind]
    return COLORS["DP"] if kind.startswith("DP ") else COLORS["other"]


def _merged(starts: np.ndarray, ends: np.ndarray, min_gap: float) -> list[tuple[int, int]]:
    """Spans joined across gaps narrower than a pixel (thousands of kernels stay a few hundred rects)."""
    out: list[list[int]] = []
    for a, b in sorted(zip(starts.tolist(), ends.tolist())):
        if out and a - out[-1][1] <= min_gap:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def pipeline_svg(timeline: pd.DataFrame, bubble: pd.DataFrame) -> str:
    """The SVG of the pipeline timeline (empty string when there is nothing to draw)."""
    if not len(timeline):
        return ""
    lo, hi = int(timeline["start_ns"].min()), int(timeline["end_ns"].max())
    span = max(hi - lo, 1)
    scale = WIDTH / span
    lanes = timeline[["stage", "rank"]].drop_duplicates().sort_values(["stage", "rank"]).itertuples(index=False)
    lanes = list(lanes)
    height = LANE * len(lanes) + 40
    parts = [f'<svg width="{LEFT + WIDTH + RIGHT}" height="{height}" font-family="sans-serif" font-size="12" '
             f'role="img" aria-label="pipeline timeline">']
    by_rank = {int(r): b for r, b in bubble.groupby("rank")} if len(bubble) else {}
    for i, lane in enumerate(lanes):
        y = 10 + i * LANE
        rank, stage = int(lane.rank), int(lane.stage)
        parts.append(f'<text x="{LEFT - 8}" y="{y + 15}" text-anchor="end">stage {stage} · rank {rank}</text>')
        parts.append(f'<rect x="{LEFT}" y="{y}" width="{WIDTH}" height="{LANE - 6}" fill="#eeeeee"/>')
        mine = timeline[timeline["rank"] == rank]
        for kind, rows in mine.groupby("kind", sort=False):
            color = _color(str(kind))
            inset = 0 if kind == "compute" else 4
            for a, b in _merged(rows["start_ns"].to_numpy(), rows["end_ns"].to_numpy(), span / WIDTH):
                x, w = LEFT + (a - lo) * scale, max((b - a) * scale, 0.5)
                parts.append(f'<rect x="{x:.1f}" y="{y + inset}" width="{w:.1f}" height="{LANE - 6 - 2 * inset}" '
                             f'fill="{color}"><title>{html.escape(str(kind))}: {(b - a) / 1e6:,.3f} ms</title></rect>')
        parts.append(f'<text x="{LEFT + WIDTH + 8}" y="{y + 15}">{html.escape(_bubble_text(by_rank.get(rank)))}</text>')
    axis_y = 10 + LANE * len(lanes) + 14
    parts.append(f'<text x="{LEFT}" y="{axis_y}">0 ms</text>')
    parts.append(f'<text x="{LEFT + WIDTH}" y="{axis_y}" text-anchor="end">{span / 1e6:,.1f} ms</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _bubble_text(rows: pd.DataFrame | None) -> str:
    if rows is None or not len(rows):
        return ""
    r = rows.iloc[0]
    if pd.isna(r["bubble_start_ns"]):
        return "no compute events"
    return f"bubble start {r['bubble_start_ns'] / 1e6:,.1f} ms · end {r['bubble_end_ns'] / 1e6:,.1f} ms"


def pipeline_section(tables: dict[str, pd.DataFrame]) -> str:
    """The HTML of the pipeline picture and its legend (the page adds the tables, in ms and MB)."""
    timeline = tables.get("pipeline_timeline")
    if timeline is None or not len(timeline):
        return ""
    bubble = tables.get("pipeline_bubble", pd.DataFrame())
    legend = " ".join(f'<span style="color:{c}">&#9632;</span> {html.escape(n)}' for n, c in COLORS.items())
    body = ["<h2>Pipeline: stages, transfers and bubble</h2>", pipeline_svg(timeline, bubble),
            f"<p>{legend} &#160; grey: idle (no compute)</p>"]
    return "\n".join(body)
