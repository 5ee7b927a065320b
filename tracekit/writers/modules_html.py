"""The module tree as a self-contained HTML page: an icicle chart of module time and a collapsible tree."""

from __future__ import annotations

import html
import json

import pandas as pd

from tracekit.writers.modules_text import _count, _ms, _shape

WIDTH, ROW_H = 1200, 22
_PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
            "#bab0ac")


def render_html(view: pd.DataFrame, title: str) -> str:
    """One page: per source, an icicle (width = forward + backward host time) and a <details> tree."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:system-ui,sans-serif;margin:20px}summary{cursor:pointer}"
             "table{border-collapse:collapse;font-size:13px}td,th{padding:2px 8px;text-align:right}"
             "td:first-child,th:first-child{text-align:left}svg text{font-size:11px;pointer-events:none}"
             "details{margin-left:18px}.row{display:inline-grid;grid-template-columns:340px 150px 170px 170px"
             " 80px 90px 90px 90px 90px 70px;font-size:13px}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    for _source, frame in view.groupby("source_index", sort=True):
        parts.append(_icicle(frame))
        parts.append(_tree(frame))
    parts.append("</body></html>")
    return "".join(parts)


def _value(row) -> float:
    return float(row.total_ns) + float(row.backward_ns or 0)


def _icicle(frame: pd.DataFrame) -> str:
    rows = list(frame.itertuples(index=False))
    by_path = {r.module_path: r for r in rows}
    children: dict[str | None, list] = {}
    for r in rows:
        parent = r.parent_path if isinstance(r.parent_path, str) and r.parent_path in by_path else None
        children.setdefault(parent, []).append(r)
    roots = children.get(None, [])
    total = sum(_value(r) for r in roots) or 1.0
    depth = int(frame["depth"].max()) + 1 if len(frame) else 1
    boxes: list[str] = []
    types = sorted({str(r.module_type) for r in rows})
    color = {t: _PALETTE[i % len(_PALETTE)] for i, t in enumerate(types)}

    def place(items: list, x0: float, scale: float, level: int) -> None:
        x = x0
        for r in items:
            w = _value(r) * scale
            if w >= 0.5:
                label = str(r.module_path).rsplit("/", 1)[-1]
                tip = (f"{r.module_path} ({r.module_type})\nforward {_ms(r.total_ns)} ms, backward "
                       f"{_ms(r.backward_ns)} ms, calls {r.calls}, params {_count(r.params)}")
                boxes.append(
                    f"<g><title>{html.escape(tip)}</title><rect x='{x:.1f}' y='{level * ROW_H}' width='{w:.1f}' "
                    f"height='{ROW_H - 2}' fill='{color[str(r.module_type)]}' rx='2'/>"
                    + (f"<text x='{x + 3:.1f}' y='{level * ROW_H + 15}'>{html.escape(label[: int(w / 7)])}</text>"
                       if w > 30 else "") + "</g>")
            place(children.get(r.module_path, []), x, scale, level + 1)
            x += w

    place(roots, 0.0, WIDTH / total, 0)
    legend = " ".join(f"<span style='color:{c}'>&#9632;</span> {html.escape(t)}" for t, c in color.items())
    return (f"<h2>Module time (forward + backward host time; hover for details)</h2><div>{legend}</div>"
            f"<svg width='{WIDTH}' height='{depth * ROW_H}' role='img'>{''.join(boxes)}</svg>")


def _tree(frame: pd.DataFrame) -> str:
    header = ("<div class='row' style='font-weight:bold'><span>module</span><span>type</span><span>input</span>"
              "<span>output</span><span>params</span><span>first ms</span><span>steady ms</span>"
              "<span>device fwd ms</span><span>device bwd ms</span><span>share</span></div>")
    out = ["<h2>Module tree</h2>", header]
    stack: list[int] = []
    rows = list(frame.itertuples(index=False))
    for i, r in enumerate(rows):
        depth = int(r.depth)
        while stack and stack[-1] >= depth:
            out.append("</details>")
            stack.pop()
        share = "" if pd.isna(r.share) else f"{r.share:.1%}"
        cells = (f"<span>{html.escape(str(r.module_path).rsplit('/', 1)[-1])}</span>"
                 f"<span>{html.escape(str(r.module_type))}</span><span>{html.escape(_shape(r.input_shapes))}</span>"
                 f"<span>{html.escape(_shape(r.output_shapes))}</span><span>{_count(r.params)}</span>"
                 f"<span>{_ms(r.first_call_ns)}</span><span>{_ms(r.steady_ns)}</span>"
                 f"<span>{_ms(r.device_ns_fwd)}</span><span>{_ms(r.device_ns_bwd)}</span><span>{share}</span>")
        has_kids = i + 1 < len(rows) and int(rows[i + 1].depth) > depth
        if has_kids:
            out.append(f"<details{' open' if depth < 2 else ''} data-path='{html.escape(str(r.module_path))}'>"
                       f"<summary><div class='row'>{cells}</div></summary>")
            stack.append(depth)
        else:
            out.append(f"<div class='row leaf' data-path='{html.escape(str(r.module_path))}'>{cells}</div>")
    out.extend("</details>" for _ in stack)
    out.append(f"<script type='application/json' id='modules'>{html.escape(json.dumps(len(rows)))}</script>")
    return "".join(out)
