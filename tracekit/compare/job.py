"""The compare job: two sides -> module, op and step tables, plus the notes a reader needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from tracekit.compare.equiv import equivalence, load_groups
from tracekit.compare.iterations import find_iterations, steps_from_iterations
from tracekit.compare.opframe import op_frame
from tracekit.compare.side import Side, load_side
from tracekit.compare.steps import WHOLE_TRACE, step_breakdown
from tracekit.compare.table import basis_of, compare_modules, compare_ops, time_basis
from tracekit.errors import warn
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
    notes: list[str] = []
    base, target = (_by_iteration(side, notes) for side in (base, target))
    basis = time_basis(base, target)
    modules = compare_modules(base, target, basis)
    ops = compare_ops(base, target, modules, canon, basis)
    steps = pd.concat([step_breakdown(s.processed.table, iterations=True).assign(side=s.label)
                       for s in (base, target)], ignore_index=True)
    notes.insert(0, f"times compared: {basis} time per module call")
    notes[1:1] = [f"{side.label}: {side.note}" for side in (base, target) if side.note]
    if basis not in ("device", "host"):
        notes[1:1] = [time_note(side, basis_of(basis, side.label)) for side in (base, target)]
    notes.extend(step_kind_notes(steps, base, target))
    for side in (base, target):
        if not len(side.modules):
            notes.append(f"{side.label} ({Path(side.path).name}) has no nn.Module events: ops are compared "
                         "outside modules and the step breakdown still applies")
        elif (side.modules["module_type"] == RECORD_FUNCTION).all():
            notes.append(f"{side.label} ({Path(side.path).name}) has no nn.Module events: its record_function "
                         "annotations stand in for modules")
    return Comparison(base, target, basis, modules, ops, steps, notes)


def time_note(side: Side, kind: str) -> str:
    """What one side's times are, for a comparison that mixes device and host times."""
    name = Path(side.path).name
    if kind == "device":
        return (f"{side.label} ({name}) times are DEVICE time: the kernels its ops launched on the accelerator "
                "(format casts such as TransData included, in *_format_cast_ns)")
    return (f"{side.label} ({name}) times are HOST time: it has no device events (a CPU run), so an op's time "
            "is its wall time on the host; ratios against the other side compare different clocks")


def _by_iteration(side: Side, notes: list[str]) -> Side:
    """A side without ProfilerStep events, its rows numbered by iteration (the repeats of its top-level
    call) when it has them, so its ops outside modules are folded per iteration like the other side's."""
    table = side.processed.table
    if (table.events["kind"] == "step").any():
        return side
    found = find_iterations(table)
    if found is None:
        return side
    table = table.with_columns(step=steps_from_iterations(table, found))
    notes.append(f"{side.label} ({Path(side.path).name}) has no ProfilerStep events: its steps are the "
                 f"{len(found.windows)} repeats of its top-level call '{found.name}' (inferred, step_kind "
                 "iteration)")
    return replace(side, processed=replace(side.processed, table=table), ops=op_frame(table))


def step_kind_notes(steps: pd.DataFrame, base: Side, target: Side) -> list[str]:
    """Say when the two sides' steps are of different kinds, and warn when one side has no steps at all."""
    kinds = {label: set(f["step_kind"]) for label, f in steps.groupby("side", sort=False)}
    a, b = (kinds.get(s.label, set()) for s in (base, target))
    if a == b:
        if a == {WHOLE_TRACE}:
            return ["neither side has ProfilerStep events or a repeated top-level call: each step breakdown is "
                    "one window over the whole trace"]
        return []
    out = []
    for side, other in ((base, target), (target, base)):
        mine = steps[steps["side"] == side.label]
        theirs = steps[steps["side"] == other.label]
        if set(mine["step_kind"]) == {WHOLE_TRACE} and len(theirs):
            text = (f"steps of different kinds: {side.label} has no steps (one {mine['dur_ns'].iloc[0] / 1e6:,.3f} ms "
                    f"window over the whole trace) against {len(theirs)} {theirs['step_kind'].iloc[0]} steps of "
                    f"{theirs['dur_ns'].mean() / 1e6:,.3f} ms on {other.label}: ops outside modules are compared "
                    f"whole trace against one step, so expect them as {side.label}_only")
            warn(side.path, text)
            out.append(text)
    if not out:
        out.append(f"steps of different kinds: {base.label} {'/'.join(sorted(a))}, {target.label} "
                   f"{'/'.join(sorted(b))}; both are per iteration")
    return out


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
