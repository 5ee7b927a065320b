"""The module tree as an indented, collapsible, sortable table (the page script adds the behaviour)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracekit.report.fmt import count, esc, missing, ms, pct, shape_text
from tracekit.writers.modules_text import SLICE_NOTE, RowView, by_source, view_rows

if TYPE_CHECKING:
    import pandas as pd

    from tracekit.modules.view import Row

# (title, value column, formatter, numeric)
COLUMNS: tuple[tuple[str, str | None, Any, bool], ...] = (
    ("module", None, None, False), ("type", "module_type", str, False), ("input", "input_shapes", shape_text, False),
    ("output", "output_shapes", shape_text, False), ("calls", "calls", lambda v: f"{int(v):,}", True),
    ("first ms", "first_call_ns", ms, True), ("steady ms", "steady_ns", ms, True),
    ("bwd ms", "backward_ns", ms, True), ("dev fwd ms", "device_ns_fwd", ms, True),
    ("dev bwd ms", "device_ns_bwd", ms, True), ("params", "params", count, True),
    ("FLOPs fwd", "flops_fwd", count, True), ("TFLOP/s", "achieved_tflops", lambda v: f"{float(v):.2f}", True),
    ("% of step", "share", pct, True),
)


HINTS = {"input": "from the module's first op with tensor inputs; '?': that op reads a view or part of a tensor, which "
                  "may be a registered buffer rather than the input; 'a … b': first and last call differ",
         "first ms": "host time of the first call (often slower: warm-up)",
         "steady ms": "host time per call after the first (median)", "bwd ms": "backward host time, all calls",
         "dev fwd ms": "device (GPU/NPU) time of the forward kernels, all calls",
         "dev bwd ms": "device time of the backward kernels, all calls",
         "TFLOP/s": "achieved: FLOPs / device time", "% of step": "forward + backward host time / step time",
         "params": "'~': inferred or unsure, '?': unknown (hover the cell for why)",
         "FLOPs fwd": "forward FLOPs per call; '?': unknown (hover the cell for why)"}
# the evidence column behind a value column: its note becomes the cell's tooltip and a mark
EVIDENCE = {"params": "params_from", "flops_fwd": "flops_from"}


def _unsure_input(row: Any) -> bool:
    """The module's input shapes came from an op that reads a view or part of a tensor (maybe a buffer): shown
    with '?'."""
    return SLICE_NOTE in str(getattr(row, "input_from", "") or "")


def _cell_class(column: str, numeric: bool) -> str:
    """Numbers right-aligned; the type kept whole; shapes may break inside when the window is narrow."""
    return "n" if numeric else "l nw" if column == "module_type" else "l sh"


def _measurable(rows: list[Row]) -> dict[str, bool]:
    """Which columns hold a measurement for this source: device times need device events, backward needs
    backward events; a column with nothing measured is shown blank, never as 0."""
    device = any(not missing(r["kernel_count"]) and r["kernel_count"] > 0 for r in rows)
    backward = any(not missing(r["backward_ns"]) and r["backward_ns"] > 0 for r in rows)
    return {"device_ns_fwd": device, "device_ns_bwd": device and backward, "backward_ns": backward,
            "achieved_tflops": device}


def tree_table(view: list[Row] | pd.DataFrame, table_id: str = "module-tree", open_depth: int = 1) -> str:
    """Rows in tree order (tree_rows, or a tree_view frame); `data-parent` links each row to its parent row; rows
    deeper than open_depth start folded."""
    head = "".join(f"<th class='{'n' if num else 'l'}' data-col='{i}' title='{esc(HINTS.get(title, title))}'>"
                   f"{esc(title)}</th>"
                   for i, (title, _col, _f, num) in enumerate(COLUMNS))
    rows = []
    for source_rows in by_source(view_rows(view)):
        measured = _measurable(source_rows)
        index_of: dict[str, int] = {}
        has_kids = {str(r["module_path"]).rpartition("/")[0] for r in source_rows}
        for r in map(RowView, source_rows):
            path = str(r.module_path)
            index_of[path] = len(rows)
            parent = index_of.get(r.parent_path, -1) if isinstance(r.parent_path, str) else -1
            depth = int(r.depth)
            cells, keys, notes = [], [], []
            for _title, col, fmt, _num in COLUMNS[1:]:
                value = getattr(r, col)
                blank = missing(value) or not measured.get(col, True)
                note = getattr(r, EVIDENCE[col], None) if col in EVIDENCE else None
                note = note if isinstance(note, str) and note else None
                if col == "flops_fwd" and not (blank and note and note.startswith("unknown")):
                    note = None  # flops_from's inferred notes are about backward gradients, not this column
                mark = ("?" if col == "input_shapes" and _unsure_input(r) else
                        ("?" if blank else "~") if note else "")
                later = getattr(r, "last_input_shapes", None) if col == "input_shapes" else None
                cells.append(mark if blank else fmt(value) + mark + (f" … {shape_text(later)}"
                                                                    if isinstance(later, str) else ""))
                keys.append("" if blank or not _num else f"{float(value):.6g}")
                notes.append(note)
            folded = depth >= open_depth and path in has_kids
            toggle = (f"<button class='tg' aria-label='fold or unfold'>{'▸' if folded else '▾'}</button>"
                      if path in has_kids else "<i class='tg'></i>")
            classes = " ".join(c for c, on in (("hidden", depth > open_depth), ("folded", folded)) if on)
            tds = "".join(
                f"<td class='{_cell_class(col, num)}'" + (f" data-v='{k}'" if k else "")
                + (f" title='{esc(n)}'" if n else "") + f">{esc(c)}</td>"
                for c, k, n, (_t, col, _f, num) in zip(cells, keys, notes, COLUMNS[1:]))
            name = esc(path.rsplit("/", 1)[-1])
            rows.append(f"<tr data-id='{len(rows)}' data-parent='{parent}' data-depth='{depth}' class='{classes}'"
                        f" title='{esc(path)}'><td class='l name' style='padding-left:{6 + 16 * depth}px'>"
                        f"{toggle}{name}</td>{tds}</tr>")
    return (f"<div class='tablewrap'><table id='{esc(table_id)}' class='data tree'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")
