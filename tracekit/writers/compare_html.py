"""The comparison as sections of the report (and as its own page, `tracekit compare`'s report.html).

Sections: step breakdown per side, per-module time side by side, largest regressions, the module table and
the ops with the largest change. Charts are Chart.js (inlined); tables carry their units.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tracekit.report.blocks import bar_chart, facts, table
from tracekit.report.fmt import esc, missing, ms, pct, shape_text
from tracekit.report.page import Section, render_page
from tracekit.writers.compare_text import records, top_deltas

BASE_COLOR, TARGET_COLOR = "#4e79a7", "#f28e2b"
PARTS = (("compute_ns", "compute", "#59a14f"), ("exposed_comm_ns", "exposed communication", "#e15759"),
         ("idle_ns", "idle / host-bound", "#bab0ac"))
MAX_CHART_MODULES = 40


def _ratio(value) -> str:
    return "" if missing(value) else f"{value:.2f}x"


def _pair(a, b, fmt=None) -> str:
    def one(v):
        if missing(v):
            return "-"
        return fmt(v) if fmt else f"{v:g}"
    return f"{one(a)} / {one(b)}"


def _same_or_pair(a, b, fmt=str) -> str:
    a, b = ("" if missing(a) else fmt(a)), ("" if missing(b) else fmt(b))
    return a if a == b else f"{a or '-'} / {b or '-'}"


def _label(path: str, width: int = 56) -> str:
    """The end of a module path, which names it best, shortened from the left."""
    return path if len(path) <= width else "…" + path[-(width - 1):]


def side_names(cmp) -> tuple[str, str]:
    """Short names of the two inputs: their file names, or their folders where the file names agree."""
    base, target = Path(str(cmp.base.path)), Path(str(cmp.target.path))
    if base.name == target.name and base.parent.name != target.parent.name:
        return base.parent.name, target.parent.name
    return base.name, target.name


def compare_title(cmp) -> str:
    base, target = Path(str(cmp.base.path)), Path(str(cmp.target.path))
    names = side_names(cmp)
    if base.name == target.name and names[0] != base.name:
        return f"tracekit compare: {base.name}, {names[0]} vs {names[1]}"
    return f"tracekit compare: {names[0]} vs {names[1]}"


def compare_sections(cmp, top: int = 20) -> list[Section]:
    """Summary + steps, module charts and tables, ops."""
    pairs = int((cmp.modules["status"] == "matched").sum()) if len(cmp.modules) else 0
    base, target = side_names(cmp)
    summary = facts([("base", esc(cmp.base.path)), ("target", esc(cmp.target.path)),
                     ("modules matched", esc(f"{cmp.matched_fraction():.1%} ({pairs} pairs, "
                                             f"{len(cmp.modules) - pairs} unpaired)"))])
    summary += "".join(f"<p class='note'>{esc(n)}</p>" for n in cmp.notes)
    out = [Section("compare", f"Comparison: {base} (base) vs {target} (target)", summary + _steps(cmp.steps))]
    if len(cmp.modules):
        out.append(Section("compare-modules", "Modules, base vs target",
                           _module_chart(cmp.modules) + _regressions(cmp.modules, top) + _module_table(cmp.modules)))
    else:
        out.append(Section("compare-modules", "Modules, base vs target",
                           "<p>No nn.Module events on either side: no module comparison.</p>"))
    out.append(Section("compare-ops", "Ops with the largest change", _ops_table(cmp.ops, top)))
    return out


def render_report(cmp, top: int = 20) -> str:
    """The report page of a tracekit.compare.job.Comparison."""
    return render_page(compare_title(cmp), esc(f"times compared: {cmp.basis} time per module call"),
                       compare_sections(cmp, top), charts=True)


def _steps(steps: pd.DataFrame) -> str:
    if not len(steps):
        return "<h3>Step breakdown</h3><p>No steps.</p>"
    means = steps.groupby("side", sort=False)[["dur_ns", *[p for p, _, _ in PARTS], "overlapped_comm_ns"]].mean()
    chart = bar_chart("compare-steps", [f"{side} ({ms(r['dur_ns'])} ms/step)" for side, r in means.iterrows()],
                      [{"label": label, "data": (means[col] / 1e6).tolist(), "color": color}
                       for col, label, color in PARTS], "ms", stacked=True)
    rows = [[r.side, str(r.step), r.basis, ms(r.dur_ns), *[ms(getattr(r, c)) for c, _, _ in PARTS],
             ms(r.overlapped_comm_ns), pct(r.compute_ns / r.dur_ns) if r.dur_ns else ""]
            for r in steps.itertuples(index=False)]
    head = ["side", "step", "basis", "step ms", *[f"{label} ms" for _, label, _ in PARTS],
            "overlapped comm ms", "compute %"]
    return ("<h3>Step breakdown (mean per step)</h3>" + chart
            + table("steps", head, rows, [False, True, False, *[True] * 6]))


def _chart_modules(modules: pd.DataFrame) -> pd.DataFrame:
    """Modules for the side-by-side chart: the shallowest levels with more than one module, by time."""
    modules = modules[["module_path", "status", "depth", "base_ns", "target_ns"]]  # not a copy of ~45 columns
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
    return ("<h3>Per-module time, side by side (ms per call)</h3>" + bar_chart(
        "module-chart", [_label(str(p)) for p in frame["module_path"]],
        [{"label": "base", "data": (frame["base_ns"] / 1e6).tolist(), "color": BASE_COLOR},
         {"label": "target", "data": (frame["target_ns"] / 1e6).tolist(), "color": TARGET_COLOR}], "ms"))


def _regressions(modules: pd.DataFrame, top: int) -> str:
    modules = modules[["module_path", "ratio", "status", "delta_ns"]]
    worse = modules[modules["delta_ns"] > 0]
    worse = worse.loc[worse["delta_ns"].sort_values(ascending=False, kind="stable").index[:top]]
    if not len(worse):
        return "<h3>Largest regressions</h3><p>No module is slower on the target.</p>"
    labels = [f"{_label(str(r.module_path), 48)} ({_ratio(r.ratio) or r.status})"
              for r in records(worse, ("module_path", "ratio", "status"))]
    return ("<h3>Largest regressions (target slower, ms per call)</h3>" + bar_chart(
        "regressions", labels, [{"label": "target − base", "data": (worse["delta_ns"] / 1e6).tolist(),
                                 "color": "#e15759"}], "ms"))


MODULE_HEAD = ("module", "type", "status", "calls b/t", "base ms", "target ms", "delta ms", "ratio",
               "device fwd ms b/t", "device bwd ms b/t", "kernels b/t", "comm ms b/t", "format cast ms b/t",
               "input shapes (b / t)", "weight (b / t)")
# Optional numeric columns: shown only where either side measured something in them.
_SHOWN_IF_ANY = {"device bwd ms b/t": ("base_device_ns_bwd", "target_device_ns_bwd"),
                 "comm ms b/t": ("base_comm_ns", "target_comm_ns"),
                 "format cast ms b/t": ("base_format_cast_ns", "target_format_cast_ns")}


_MODULE_FIELDS = ("depth", "module_path", "module_type", "status", "base_calls", "target_calls", "base_ns", "target_ns",
                  "delta_ns", "ratio", "base_device_ns_fwd", "target_device_ns_fwd", "base_device_ns_bwd",
                  "target_device_ns_bwd", "base_kernels", "target_kernels", "base_comm_ns", "target_comm_ns",
                  "base_format_cast_ns", "target_format_cast_ns", "base_input_shapes", "target_input_shapes",
                  "base_weight_shape", "target_weight_shape")
_OP_FIELDS = ("module_path", "phase", "base_op", "target_op", "status", "base_ns", "target_ns", "delta_ns", "ratio",
              "base_kernel_count", "target_kernel_count", "base_shapes", "target_shapes")


def _module_table(modules: pd.DataFrame) -> str:
    def pair_of(row, base: str, target: str, fmt=None) -> str:
        return _pair(getattr(row, base, None), getattr(row, target, None), fmt)

    rows = [[("\u00a0\u00a0\u00a0" * int(r.depth)) + str(r.module_path).rsplit("/", 1)[-1], r.module_type, r.status,
             _pair(r.base_calls, r.target_calls), ms(r.base_ns), ms(r.target_ns), ms(r.delta_ns), _ratio(r.ratio),
             _pair(r.base_device_ns_fwd, r.target_device_ns_fwd, ms),
             _pair(r.base_device_ns_bwd, r.target_device_ns_bwd, ms), _pair(r.base_kernels, r.target_kernels),
             pair_of(r, "base_comm_ns", "target_comm_ns", ms),
             pair_of(r, "base_format_cast_ns", "target_format_cast_ns", ms),
             _same_or_pair(r.base_input_shapes, r.target_input_shapes, shape_text),
             _same_or_pair(r.base_weight_shape, r.target_weight_shape, shape_text)]
            for r in records(modules, _MODULE_FIELDS)]
    numeric = [False, False, False, *[True] * 10, False, False]
    head = list(MODULE_HEAD)
    for name, columns in _SHOWN_IF_ANY.items():
        present = [c for c in columns if c in modules.columns]
        if present and (modules[present].fillna(0).to_numpy() > 0).any():
            continue
        drop = head.index(name)  # nothing measured on either side: no column
        rows, numeric = [r[:drop] + r[drop + 1:] for r in rows], numeric[:drop] + numeric[drop + 1:]
        head.pop(drop)
    html = table("modules", head, rows, numeric, row_class=[str(s) for s in modules["status"]],
                 whole=("module", "type", "status"), row_title=[str(p) for p in modules["module_path"]])
    return f"<h3>All modules ({len(modules):,}; indented by depth)</h3>" + html


def _ops_table(ops: pd.DataFrame, top: int) -> str:
    if not len(ops):
        return "<p>No ops.</p>"
    rows = top_deltas(ops, top * 2)
    head = ["module", "phase", "op (base / target)", "status", "base ms", "target ms", "delta ms", "ratio",
            "kernels b/t", "shapes (b / t)"]
    body = [[r.module_path if not missing(r.module_path) and r.module_path else "(no module)", r.phase,
             _same_or_pair(r.base_op, r.target_op), r.status, ms(r.base_ns), ms(r.target_ns), ms(r.delta_ns),
             _ratio(r.ratio), _pair(r.base_kernel_count, r.target_kernel_count),
             _same_or_pair(r.base_shapes, r.target_shapes, shape_text)] for r in records(rows, _OP_FIELDS)]
    return (f"<p class='note'>{len(rows)} of {len(ops):,} ops by |delta|; all in compare_ops.parquet.</p>"
            + table("ops", head, body, [False, False, False, False, *[True] * 5, False],
                    row_class=[str(s) for s in rows["status"]], whole=("phase", "status")))
