"""Terminal view of a comparison: the step breakdown and the top-N modules and ops by |delta|."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd
from rich.console import Console

from tracekit.writers.box_table import print_table
from tracekit.writers.modules_text import _ms


def top_deltas(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """The n rows with the largest absolute delta (ties in table order)."""
    if not len(frame):
        return frame
    order = frame["delta_ns"].abs().sort_values(ascending=False, kind="stable").index
    return frame.loc[order[:n]]


def _ratio(value: float) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}x"


def render_steps(steps: pd.DataFrame, console: Console) -> None:
    """Mean step time and its split per side."""
    columns = [(col, "left" if col in ("side", "basis") else "right") for col in (
        "side", "basis", "steps", "step ms", "compute ms", "exposed comm ms", "overlapped comm ms",
        "idle/host-bound ms")]
    rows = [[str(side), str(frame["basis"].iat[0]), str(len(frame)), _ms(frame["dur_ns"].mean()),
             _ms(frame["compute_ns"].mean()), _ms(frame["exposed_comm_ns"].mean()),
             _ms(frame["overlapped_comm_ns"].mean()), _ms(frame["idle_ns"].mean())]
            for side, frame in steps.groupby("side", sort=False)]
    print_table(console, "step breakdown (mean per step)", columns, rows)


def records(frame: pd.DataFrame, columns: tuple[str, ...]) -> list[SimpleNamespace]:
    """The rows of `frame` as attribute records of `columns` (an absent column reads None), values as
    itertuples gives them, without a pandas row object per row."""
    values = [frame[c].tolist() if c in frame else [None] * len(frame) for c in columns]
    return [SimpleNamespace(**dict(zip(columns, row))) for row in zip(*values)]


_MODULE_FIELDS = ("module_path", "module_type", "status", "base_ns", "target_ns", "delta_ns", "ratio",
                  "shapes_differ", "base_input_shapes", "target_input_shapes", "base_comm_ns", "target_comm_ns",
                  "base_format_cast_ns", "target_format_cast_ns")
_OP_FIELDS = ("module_path", "phase", "op", "status", "base_ns", "target_ns", "delta_ns", "ratio",
              "base_kernel_count", "target_kernel_count")


def render_top(modules: pd.DataFrame, ops: pd.DataFrame, n: int, console: Console, basis: str) -> None:
    """Top-n modules and ops by |target - base| time per call."""
    columns = [("module", "left"), ("type", "left"), ("status", "left"), ("base ms", "right"),
               ("target ms", "right"), ("delta ms", "right"), ("ratio", "right"),
               ("comm ms b/t", "right"), ("format cast ms b/t", "right"), ("shapes", "left")]
    rows = []
    for r in records(top_deltas(modules, n), _MODULE_FIELDS):
        shapes = f"{r.base_input_shapes} -> {r.target_input_shapes}" if r.shapes_differ else ""
        rows.append([str(r.module_path), str(r.module_type), str(r.status), _ms(r.base_ns), _ms(r.target_ns),
                     _ms(r.delta_ns), _ratio(r.ratio), _pair(r, "comm_ns"), _pair(r, "format_cast_ns"), shapes])
    print_table(console, f"top {n} modules by |delta| ({basis} time per call)", columns, rows)
    if not len(ops):
        return
    columns = [("module", "left"), ("phase", "left"), ("op", "left"), ("status", "left"),
               ("base ms", "right"), ("target ms", "right"), ("delta ms", "right"), ("ratio", "right"),
               ("kernels b/t", "right")]
    rows = []
    for r in records(top_deltas(ops, n), _OP_FIELDS):
        kernels = f"{_num(r.base_kernel_count)}/{_num(r.target_kernel_count)}"
        rows.append([str(r.module_path or "(no module)"), str(r.phase), str(r.op), str(r.status), _ms(r.base_ns),
                     _ms(r.target_ns), _ms(r.delta_ns), _ratio(r.ratio), kernels])
    print_table(console, f"top {n} ops by |delta|", columns, rows)


def _pair(row, col: str) -> str:
    """`base/target` ms of a per-module part (comm, format casts); `-` where a side has none recorded."""
    def one(value) -> str:
        return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else _ms(value)

    return f"{one(getattr(row, f'base_{col}', None))}/{one(getattr(row, f'target_{col}', None))}"


def _num(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:g}"


def render_one_sided(frame: pd.DataFrame, n: int, console: Console) -> None:
    """Ops found on one side only (no partner under the equivalence map), largest time first per side."""
    if not len(frame):
        return
    columns = [("side", "left"), ("op", "left"), ("phase", "left"), ("occurrences", "right"),
               ("modules", "right"), ("ms per call", "right")]
    rows = [[str(side), str(r.op), str(r.phase), str(r.occurrences), str(r.modules), _ms(r.time_ns)]
            for side, part in frame.groupby("side", sort=False)
            for r in records(part.head(n), ("op", "phase", "occurrences", "modules", "time_ns"))]
    print_table(console, "ops on one side only (no partner, equivalences applied)", columns, rows)
