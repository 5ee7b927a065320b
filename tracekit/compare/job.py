"""The compare job: two sides -> module, op and step tables, plus the notes a reader needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tracekit.compare.equiv import equivalence, load_groups
from tracekit.compare.side import Side, load_side
from tracekit.compare.steps import step_breakdown
from tracekit.compare.table import basis_of, compare_modules, compare_ops, time_basis
from tracekit.modules.spans import RECORD_FUNCTION


@dataclass
class Comparison:
    """Everything compare found; the writers render it."""

    base: Side
    target: Side
    basis: str
    modules: pd.DataFrame
    ops: pd.DataFrame
    steps: pd.DataFrame  # step breakdown of both sides, column `side`
    notes: list[str] = field(default_factory=list)

    def matched_fraction(self) -> float:
        """Share of all modules (of either side) that found a partner (1.0 when there are none)."""
        if not len(self.modules):
            return 1.0
        matched = int((self.modules["status"] == "matched").sum())
        return 2 * matched / (2 * matched + int((self.modules["status"] != "matched").sum()))


def compare_sides(base: Side, target: Side, equiv_file: str | Path | None = None) -> Comparison:
    """Align two processed runs module by module and op by op; break both down by step."""
    canon = equivalence(load_groups(equiv_file) if equiv_file else None)
    basis = time_basis(base, target)
    modules = compare_modules(base, target, basis)
    ops = compare_ops(base, target, modules, canon, basis)
    steps = pd.concat([step_breakdown(s.processed.table).assign(side=s.label) for s in (base, target)],
                      ignore_index=True)
    notes = [f"times compared: {basis} time per module call"]
    if basis not in ("device", "host"):
        notes += [time_note(side, basis_of(basis, side.label)) for side in (base, target)]
    for side in (base, target):
        if not len(side.modules):
            notes.append(f"{side.label} ({Path(side.path).name}) has no nn.Module events: ops are compared "
                         "outside modules and the step breakdown still applies")
        elif (side.modules["module_type"] == RECORD_FUNCTION).all():
            notes.append(f"{side.label} ({Path(side.path).name}) has no nn.Module events: its record_function "
                         "annotations stand in for modules")
    for side in (base, target):
        if (steps[steps["side"] == side.label]["step"] < 0).all():
            notes.append(f"{side.label} has no ProfilerStep events: its step breakdown is one window over the "
                         "whole trace")
    return Comparison(base, target, basis, modules, ops, steps, notes)


def time_note(side: Side, kind: str) -> str:
    """What one side's times are, for a comparison that mixes device and host times."""
    name = Path(side.path).name
    if kind == "device":
        return (f"{side.label} ({name}) times are DEVICE time: the kernels its ops launched on the accelerator "
                "(format casts such as TransData included, in *_format_cast_ns)")
    return (f"{side.label} ({name}) times are HOST time: it has no device events (a CPU run), so an op's time "
            "is its wall time on the host; ratios against the other side compare different clocks")


def compare_paths(base: str | Path, target: str | Path, equiv_file: str | Path | None = None,
                  progress: Callable[[str], None] | None = None) -> Comparison:
    """Read, process and compare two inputs."""
    step = progress or (lambda _msg: None)
    step(f"reading base {base}")
    a = load_side("base", base)
    step(f"reading target {target}")
    b = load_side("target", target)
    step("aligning modules and ops")
    return compare_sides(a, b, equiv_file)
