"""The comparison as one self-contained HTML page (inline SVG charts, no scripts from anywhere).

Sections: inputs and notes, step breakdown per side (stacked bars), per-module time side by side,
largest regressions, the module table and the top ops.
"""

from __future__ import annotations

import html
import math

import pandas as pd

from tracekit.writers.compare_text import top_deltas
from tracekit.writers.modules_text import _ms

BASE_COLOR, TARGET_COLOR = "#4e79a7", "#f28e2b"
PART_COLORS = {"compute_ns": "#59a14f", "exposed_comm_ns": "#e15759", "overlapped_comm_ns": "#edc948",
               "idle_ns": "#bab0ac"}
PART_LABELS = {"compute_ns": "compute", "exposed_comm_ns": "exposed communication",
               "overlapped_comm_ns": "overlapped communication (inside compute)", "idle_ns": "idle / host-bound"}
BAR_W, LABEL_W, ROW_H = 700, 380, 18
MAX_CHART_MODULES = 40


def _e(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return html.escape(str(value))


def _ratio(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}x"


def render_report(cmp, top: int = 20) -> str:
    """The report page of a tracekit.compare.job.Comparison."""
    title = f"tracekit compare: {cmp.base.path} vs {cmp.target.path}"
    matched = cmp.matched_fraction()
    pairs = int((cmp.modules["status"] == "matched").sum()) if len(cmp.modules) else 0
    alone = len(cmp.modules) - pairs
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>"
        "body{font-family:system-ui,sans-serif;margin:20px}table{border-collapse:collapse;font-size:12px}"
        "td,th{padding:2px 6px;border-bottom:1px solid #eee;text-align:right}td.l,th.l{text-align:left}"
        "svg text{font-size:11px}.key span{margin-right:14px}tr.base_only{background:#eef3fa}"
        "tr.target_only{background:#fdf1e6}</style></head><body>",
        f"<h1>{_e(title)}</h1><ul><li>base: {_e(cmp.base.path)}</li><li>target: {_e(cmp.target.path)}</li>"
        f"<li>modules matched: {matched:.1%} ({pairs} pairs, {alone} unpaired)</li>"
        + "".join(f"<li>{_e(n)}</li>" for n in cmp.notes) + "</ul>",
        _steps_chart(cmp.steps),
    ]
    if len(cmp.modules):
        parts.append(_module_chart(cmp.modules))
        parts.append(_regressions_chart(cmp.modules, top))
        parts.append(_module_table(cmp.modules))
    else:
        parts.append("<p>No nn.Module events on either side: no module comparison.</p>")
    parts.append(_ops_table(cmp.ops, top))
    parts.append("</body></html>")
    return "".join(parts)


def _steps_chart(steps: pd.DataFrame) -> str:
    if not len(steps):
        return "<h2>Step breakdown</h2><p>No steps.</p>"
    means = steps.groupby("side", sort=False)[["dur_ns", *PART_COLORS]].mean()
    longest = float(means["dur_ns"].max()) or 1.0
    rows = []
    for i, (side, r) in enumerate(means.iterrows()):
        x, y = LABEL_W, i * (ROW_H + 8)
        rows.append(f"<text x='0' y='{y + 13}'>{_e(side)} ({_ms(r['dur_ns'])} ms/step)</text>")
        for part in ("compute_ns", "exposed_comm_ns", "idle_ns"):
            w = float(r[part]) / longest * BAR_W
            rows.append(f"<rect x='{x:.1f}' y='{y}' width='{max(w, 0):.1f}' height='{ROW_H}' "
                        f"fill='{PART_COLORS[part]}'><title>{PART_LABELS[part]}: {_ms(r[part])} ms</title></rect>")
            x += max(w, 0)
    key = "".join(f"<span style='color:{PART_COLORS[p]}'>&#9632;</span> {PART_LABELS[p]} " for p in
                  ("compute_ns", "exposed_comm_ns", "idle_ns"))
    table = steps[["side", "step", "basis", "dur_ns", *PART_COLORS]].copy()
    body = "".join(
        "<tr>" + f"<td class='l'>{_e(r.side)}</td><td>{r.step}</td><td class='l'>{_e(r.basis)}</td>"
        + "".join(f"<td>{_ms(getattr(r, c))}</td>" for c in ("dur_ns", *PART_COLORS)) + "</tr>"
        for r in table.itertuples(index=False))
    head = "".join(f"<th>{h}</th>" for h in ("step ms", *(PART_LABELS[p] + " ms" for p in PART_COLORS)))
    height = len(means) * (ROW_H + 8)
    return (f"<h2>Step breakdown (mean per step)</h2><div class='key'>{key}</div>"
            f"<svg width='{LABEL_W + BAR_W + 10}' height='{height}'>{''.join(rows)}</svg>"
            f"<table id='steps'><tr><th class='l'>side</th><th>step</th><th class='l'>basis</th>{head}</tr>"
            f"{body}</table>")


def _chart_modules(modules: pd.DataFrame) -> pd.DataFrame:
    """Modules for the side-by-side chart: the shallowest levels with more than one module, by time."""
    matched = modules[modules["status"] == "matched"]
    frame = matched if len(matched) else modules
    for depth in sorted(frame["depth"].unique()):
        level = frame[frame["depth"] <= depth]
        if len(level[level["depth"] == depth]) > 1 or depth == frame["depth"].max():
            break
    size = level[["base_ns", "target_ns"]].fillna(0).max(axis=1)
    return level.loc[size.sort_values(ascending=False, kind="stable").index[:MAX_CHART_MODULES]]


def _module_chart(modules: pd.DataFrame) -> str:
    frame = _chart_modules(modules)
    longest = float(frame[["base_ns", "target_ns"]].fillna(0).to_numpy().max()) or 1.0
    rows = []
    for i, r in enumerate(frame.itertuples(index=False)):
        y = i * (2 * ROW_H + 6)
        rows.append(f"<text x='0' y='{y + ROW_H}'>{_e(str(r.module_path)[-60:])}</text>")
        for k, (label, value, color) in enumerate((("base", r.base_ns, BASE_COLOR), ("target", r.target_ns,
                                                                                    TARGET_COLOR))):
            v = 0.0 if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
            w = v / longest * BAR_W
            rows.append(f"<rect x='{LABEL_W}' y='{y + k * ROW_H}' width='{w:.1f}' height='{ROW_H - 2}' "
                        f"fill='{color}'><title>{label}: {_ms(v)} ms</title></rect>"
                        f"<text x='{LABEL_W + w + 4:.1f}' y='{y + k * ROW_H + 12}'>{_ms(v)}</text>")
    key = (f"<span style='color:{BASE_COLOR}'>&#9632;</span> base <span style='color:{TARGET_COLOR}'>&#9632;"
           "</span> target (ms per call)")
    return (f"<h2>Per-module time, side by side</h2><div class='key'>{key}</div>"
            f"<svg id='module-chart' width='{LABEL_W + BAR_W + 80}' height='{len(frame) * (2 * ROW_H + 6)}'>"
            f"{''.join(rows)}</svg>")


def _regressions_chart(modules: pd.DataFrame, top: int) -> str:
    worse = modules[modules["delta_ns"] > 0]
    worse = worse.loc[worse["delta_ns"].sort_values(ascending=False, kind="stable").index[:top]]
    if not len(worse):
        return "<h2>Largest regressions</h2><p>No module is slower on the target.</p>"
    longest = float(worse["delta_ns"].max()) or 1.0
    rows = []
    for i, r in enumerate(worse.itertuples(index=False)):
        y = i * (ROW_H + 4)
        w = float(r.delta_ns) / longest * BAR_W
        rows.append(f"<text x='0' y='{y + 13}'>{_e(str(r.module_path)[-60:])}</text>"
                    f"<rect x='{LABEL_W}' y='{y}' width='{w:.1f}' height='{ROW_H}' fill='#e15759'>"
                    f"<title>+{_ms(r.delta_ns)} ms ({_ratio(r.ratio)}, {_e(r.status)})</title></rect>"
                    f"<text x='{LABEL_W + w + 4:.1f}' y='{y + 13}'>+{_ms(r.delta_ns)} ms {_ratio(r.ratio)}</text>")
    return (f"<h2>Largest regressions (target slower, ms per call)</h2>"
            f"<svg id='regressions' width='{LABEL_W + BAR_W + 140}' height='{len(worse) * (ROW_H + 4)}'>"
            f"{''.join(rows)}</svg>")


MODULE_HEAD = ("module", "type", "status", "calls b/t", "base ms", "target ms", "delta ms", "ratio",
               "device fwd ms b/t", "device bwd ms b/t", "kernels b/t", "input shapes b/t", "weight b/t")


def _module_table(modules: pd.DataFrame) -> str:
    head = "".join(f"<th class='l'>{h}</th>" if i in (0, 1, 2, 11, 12) else f"<th>{h}</th>"
                   for i, h in enumerate(MODULE_HEAD))
    body = []
    for r in modules.itertuples(index=False):
        indent = "&nbsp;" * 2 * int(r.depth)
        body.append(
            f"<tr class='{_e(r.status)}'><td class='l'>{indent}{_e(r.module_path)}</td><td class='l'>"
            f"{_e(r.module_type)}</td><td class='l'>{_e(r.status)}</td><td>{_pair(r.base_calls, r.target_calls)}</td>"
            f"<td>{_ms(r.base_ns)}</td><td>{_ms(r.target_ns)}</td><td>{_ms(r.delta_ns)}</td><td>{_ratio(r.ratio)}</td>"
            f"<td>{_ms(r.base_device_ns_fwd)} / {_ms(r.target_device_ns_fwd)}</td>"
            f"<td>{_ms(r.base_device_ns_bwd)} / {_ms(r.target_device_ns_bwd)}</td>"
            f"<td>{_pair(r.base_kernels, r.target_kernels)}</td>"
            f"<td class='l'>{_e(r.base_input_shapes)} / {_e(r.target_input_shapes)}</td>"
            f"<td class='l'>{_e(r.base_weight_shape)} / {_e(r.target_weight_shape)}</td></tr>")
    return (f"<h2>Modules ({len(modules)})</h2><table id='modules'><tr>{head}</tr>{''.join(body)}</table>")


def _pair(a, b) -> str:
    def one(v):
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:g}"
    return f"{one(a)} / {one(b)}"


def _ops_table(ops: pd.DataFrame, top: int) -> str:
    if not len(ops):
        return "<h2>Ops</h2><p>No ops.</p>"
    rows = top_deltas(ops, top * 2)
    head = "".join(f"<th class='l'>{h}</th>" if i < 4 else f"<th>{h}</th>" for i, h in enumerate(
        ("module", "phase", "op (base / target)", "status", "base ms", "target ms", "delta ms", "ratio",
         "kernels b/t", "shapes b/t")))
    body = "".join(
        f"<tr class='{_e(r.status)}'><td class='l'>{_e(r.module_path) or '(no module)'}</td><td class='l'>"
        f"{_e(r.phase)}</td><td class='l'>{_e(r.base_op)} / {_e(r.target_op)}</td><td class='l'>{_e(r.status)}</td>"
        f"<td>{_ms(r.base_ns)}</td><td>{_ms(r.target_ns)}</td><td>{_ms(r.delta_ns)}</td><td>{_ratio(r.ratio)}</td>"
        f"<td>{_pair(r.base_kernel_count, r.target_kernel_count)}</td>"
        f"<td class='l'>{_e(r.base_shapes)} / {_e(r.target_shapes)}</td></tr>"
        for r in rows.itertuples(index=False))
    return (f"<h2>Ops with the largest |delta| ({len(rows)} of {len(ops)}; all in compare_ops.parquet)</h2>"
            f"<table id='ops'><tr>{head}</tr>{body}</table>")
