"""HTML building blocks shared by every page: tables with units, Chart.js bar charts, fact lists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tracekit.report.fmt import esc, json_script

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac")


def table(table_id: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[bool] | None = None,
          row_class: Sequence[str] | None = None, sortable: bool = True, whole: Sequence[str] = (),
          row_title: Sequence[str] | None = None) -> str:
    """A table whose column titles carry the units; `rows` hold already formatted text (escaped here).

    Text columns wrap anywhere (paths, shapes) except those named in `whole` (short words: type, status);
    numbers never wrap, except a "base / target" pair, which may break after its "/" where the page is narrow.
    """
    numeric = numeric or [False] * len(columns)
    kinds = ["n" if n else "l nw" if c in whole else "l" for c, n in zip(columns, numeric)]
    head = "".join(f"<th class='{'n' if n else 'l'}'>{esc(c)}</th>" for c, n in zip(columns, numeric))
    body = []
    for i, row in enumerate(rows):
        cls = f" class='{esc(row_class[i])}'" if row_class else ""
        cls += f" title='{esc(row_title[i])}'" if row_title else ""
        body.append(f"<tr{cls}>" + "".join(f"<td class='{_pair_kind(k, v)}'>{esc(v)}</td>" for v, k in zip(row, kinds))
                    + "</tr>")
    sort = " sortable" if sortable else ""
    return (f"<div class='tablewrap'><table id='{esc(table_id)}' class='data{sort}'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _pair_kind(kind: str, value: Any) -> str:
    return kind + " p" if kind == "n" and " / " in str(value) else kind


def facts(items: Sequence[tuple[str, str]]) -> str:
    """A definition list of (label, already-escaped HTML value)."""
    return "<dl class='facts'>" + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def bar_chart(chart_id: str, labels: Sequence[str], datasets: Sequence[dict[str, Any]], unit: str,
              stacked: bool = False, horizontal: bool = True, title: str = "") -> str:
    """A Chart.js bar chart: datasets are {label, data, color}; the page script draws it from the JSON spec."""
    spec = {"labels": [str(x) for x in labels], "unit": unit, "stacked": stacked, "horizontal": horizontal,
            "title": title,
            "datasets": [{"label": d["label"], "data": [None if v is None else round(float(v), 6) for v in d["data"]],
                          "color": d.get("color") or PALETTE[i % len(PALETTE)]} for i, d in enumerate(datasets)]}
    rows = max(len(labels), 1)
    height = (rows * (18 + 8 * len(datasets) if not stacked else 24) + 70) if horizontal else 320
    return (f"<div class='chart' style='height:{min(height, 2400)}px'><canvas id='{esc(chart_id)}' "
            f"aria-label='{esc(title or chart_id)}' role='img'></canvas></div>"
            + json_script(f"{chart_id}-spec", spec).replace("<script ", "<script class='chart-spec' data-chart='"
                                                              + esc(chart_id) + "' ", 1))


def legend(items: Sequence[tuple[str, str]]) -> str:
    """Colour keys: (label, colour)."""
    return "<div class='legend'>" + "".join(
        f"<span><i style='background:{c}'></i>{esc(label)}</span>" for label, c in items) + "</div>"
