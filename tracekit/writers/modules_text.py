"""The module tree as a terminal table (rich), CSV or JSON, from the rows of tracekit.modules.view.tree_rows.

Writes what pandas wrote before (`DataFrame.to_csv`, `to_json` with its 10 digits) without importing pandas, so
that `tracekit modules DATASET` loads pyarrow.parquet and rich only."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import TYPE_CHECKING, Any

from tracekit.modules.view import Row, missing

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

# tracekit.modules.call_details.SLICE_NOTE (checked equal by a test): importing it would load pandas
SLICE_NOTE = "a view or part of a tensor, which may be a registered buffer rather than the input"
RECORD_FUNCTION = "record_function"  # tracekit.modules.spans.RECORD_FUNCTION (the same test): the module type of
# record_function annotations shown where a trace has no module events

DISPLAY_COLUMNS = (
    "module_path", "module_type", "type_from", "depth", "calls", "input_shapes", "input_from", "last_input_shapes",
    "output_shapes",
    "params", "first_call_ns", "steady_ns", "total_ns", "self_ns", "backward_ns", "device_ns_fwd", "device_ns_bwd",
    "kernel_count", "flops_fwd", "flops_bwd", "achieved_tflops", "share", "flops_from", "params_from",
)
# what the tree view reads of the module table (tracekit.modules.view.tree_rows, and the writers above)
VIEW_COLUMNS = (*DISPLAY_COLUMNS, "source_index", "parent_path")
_NO_RULE = "unknown: no FLOP rule for "


def _ms(ns: float) -> str:
    return "" if ns is None or (isinstance(ns, float) and math.isnan(ns)) else f"{ns / 1e6:,.3f}"


def _count(value: float | None) -> str:
    if missing(value) or not value:  # None: params of a trace without op shapes
        return ""
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.2f}{unit}"
    return f"{int(value)}"


def view_rows(view: list[Row] | pd.DataFrame) -> list[Row]:
    """Rows of tree_rows as they are; a tree_view frame (the report, the API, tests) as the same rows."""
    if isinstance(view, list):
        return view
    from tracekit.writers.parquet import frame_to_arrow

    return frame_to_arrow(view).to_pylist()


def by_source(rows: list[Row]) -> list[list[Row]]:
    """The rows of each source, sources in order of first appearance (groupby("source_index", sort=False))."""
    groups: dict[Any, list[Row]] = {}
    for row in rows:
        groups.setdefault(row["source_index"], []).append(row)
    return list(groups.values())


class RowView:
    """Attribute access to a row dict (what the table code read from DataFrame.itertuples)."""

    __slots__ = ("_row",)

    def __init__(self, row: Row):
        self._row = row

    def __getattr__(self, name: str) -> Any:
        return self._row.get(name)


def render_table(view: list[Row] | pd.DataFrame, console: Console, title: str, first_step: int | None = None) -> None:
    """Indented module tree with type, shapes, params, first/steady time, device time and step share.
    `first_step`: the lowest ProfilerStep number recorded (a note says "first" is not the program's first call)."""
    from tracekit.writers.box_table import print_table

    rows = view_rows(view)
    has_device = bool(sum(v for r in rows for v in (r["device_ns_fwd"], r["device_ns_bwd"]) if not missing(v)))
    # no autograd node in the trace (inference, or VizTracer, which records none): blank, not 0.000
    has_backward = any(not missing(r["backward_ns"]) and r["backward_ns"] > 0 for r in rows)
    columns = [c for c in (("module", "left"), ("type", "left"), ("input", "left"), ("output", "left"),
                          ("params", "right"), ("calls", "right"), ("first ms", "right"), ("steady ms", "right"),
                          ("bwd ms", "right"), ("device fwd ms", "right"), ("device bwd ms", "right"),
                          ("FLOPs fwd", "right"), ("share", "right")) if has_device or "device" not in c[0]]
    cells: list[list[str]] = []
    notes: set[str] = set()
    no_rule: set[str] = set()
    if first_step:
        notes.add(f"first ms: the first call in the recording, which starts at ProfilerStep#{first_step}; the "
                  "program's first (warm-up) calls were not recorded")
    for row in map(RowView, rows):
        name = "  " * int(row.depth) + str(row.module_path).rsplit("/", 1)[-1]
        share = "" if missing(row.share) else f"{row.share:.1%}"
        device = [_ms(row.device_ns_fwd), _ms(row.device_ns_bwd)] if has_device else []
        defining = getattr(row, "type_from", None) == "defining_class"
        mtype = str(row.module_type) + ("*" if defining else "")
        if defining:
            notes.add("* the class that defines forward; the module's own class may be a subclass of it")
        params_from = getattr(row, "params_from", None)
        params_mark = "~" if isinstance(params_from, str) and not missing(row.params) else ""
        if params_mark:
            notes.add("~ params inferred or unsure (params_from says how: a hand-written linear's addmm, an "
                      "RMSNorm's weight, a weight that may be tied, a lower bound where the module's own matmul may "
                      "read a parameter)")
        if missing(row.params) and isinstance(params_from, str):
            notes.add(f"params blank: {params_from.removeprefix('unknown: ')}")
        elif missing(row.params):
            notes.add("params and FLOPs blank: the trace records no op input shapes (VizTracer; torch.profiler "
                      "without record_shapes)")
        flops_from = str(getattr(row, "flops_from", None) or "")
        if _NO_RULE in flops_from:
            no_rule.add(flops_from.partition(_NO_RULE)[2].split(" (")[0])
        unsure = SLICE_NOTE in str(getattr(row, "input_from", "") or "")
        if unsure:
            notes.add(f"? input from the module's first op: {SLICE_NOTE}")
        later = getattr(row, "last_input_shapes", None)
        if isinstance(later, str):
            notes.add("a … b: the input shapes of the first and of the last call differ (prefill then decode, "
                      "varying batch or sequence)")
        shown_in = _shape(row.input_shapes) + ("?" if unsure else "") + (f" … {_shape(later)}" if isinstance(later, str)
                                                                          else "")
        cells.append([name, mtype, shown_in, _shape(row.output_shapes),
                      _count(row.params) + params_mark, str(row.calls), _ms(row.first_call_ns), _ms(row.steady_ns),
                      _ms(row.backward_ns) if has_backward else "", *device, _count(row.flops_fwd), share])
    if no_rule:
        notes.add("FLOPs blank: ops that compute, with no FLOP rule, ran inside (flops_from names them): "
                  + ", ".join(sorted(no_rule)))
    print_table(console, title, columns, cells, "\n".join(sorted(notes)) or None, ("module", "input", "output"))


def _shape(text: str | None) -> str:
    if not isinstance(text, str):
        return ""
    shapes = json.loads(text)
    return " ".join("[" + ",".join(str(d) for d in s) + "]" for s in shapes)


def to_csv(view: list[Row] | pd.DataFrame) -> str:
    """The display columns, as DataFrame.to_csv(index=False) wrote them (missing: empty, floats as repr)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(DISPLAY_COLUMNS)
    for row in view_rows(view):
        writer.writerow(["" if missing(v := row[c]) else repr(v) if isinstance(v, float) else v
                         for c in DISPLAY_COLUMNS])
    return buffer.getvalue()


def _json_number(value: Any) -> Any:
    """A value as DataFrame.to_json wrote it and json.loads read it back: floats to 10 decimals (10 significant
    digits below 1e-15 and from 1e16 on), NaN as null, lists element by element."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value == 0:
            return 0.0
        return float(f"{value:.9e}") if abs(value) >= 1e16 or abs(value) < 1e-15 else round(value, 10)
    if isinstance(value, list):
        return [_json_number(v) for v in value]
    return value


def to_json(view: list[Row] | pd.DataFrame) -> str:
    """Records; the shape columns as JSON lists of shapes (not JSON text inside strings)."""
    records = []
    for row in view_rows(view):
        record = {c: row[c] for c in DISPLAY_COLUMNS}
        for col in ("input_shapes", "last_input_shapes", "output_shapes"):
            record[col] = json.loads(record[col]) if isinstance(record[col], str) else None
        records.append({k: _json_number(v) for k, v in record.items()})
    return "[\n" + ",\n".join(json.dumps(r, separators=(", ", ": ")) for r in records) + "\n]"
