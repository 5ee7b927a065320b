"""The module (and phase) each op and kernel ran in, read from the truth ranges `tests/attribution_record.py`
writes, next to what tracekit attributed it to."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tracekit.ancestry import nearest_marked

PREFIX = "truth::"
HOOK_OPS = ("BackwardHookFunction", "autograd::engine::evaluate_function: BackwardHookFunctionBackward",
            "BackwardHookFunctionBackward")


def truth_table(events: pd.DataFrame) -> pd.DataFrame:
    """Per cpu op and per kernel (by row): tracekit's phase and module_path, and the innermost truth range around
    the op (for a kernel, around the runtime call that launched it): `true_phase` (forward/backward or None) and
    `true_path`; `hook_op` marks the ops of the truth hooks themselves."""
    names = events["name"].astype(str)
    ranges = events[names.str.startswith(PREFIX) & (events["cat"].astype(str) == "user_annotation").to_numpy()]
    is_op = (events["kind"] == "cpu_op") & ~names.str.startswith(PREFIX)
    is_kernel = events["kind"] == "kernel"
    rows = events[is_op | is_kernel]
    at = np.where(rows["kind"] == "kernel", rows["launch"], rows.index)
    ok = at >= 0
    rows, at = rows[ok], at[ok]
    when = events["ts_ns"].to_numpy()[at]
    thread = list(zip(events["pid"].to_numpy()[at].tolist(), events["tid"].to_numpy()[at].tolist()))
    true_phase, true_path = [], []
    by_thread: dict[tuple, pd.DataFrame] = {k: g for k, g in ranges.groupby(["pid", "tid"])}
    for t, (pid, tid) in zip(when.tolist(), thread):
        found = by_thread.get((pid, tid))
        best = None
        if found is not None:
            inside = found[(found["ts_ns"] <= t) & (found["ts_ns"] + found["dur_ns"] > t)]
            if len(inside):
                best = str(inside.loc[inside["dur_ns"].idxmin(), "name"])
        if best is None:
            true_phase.append(None)
            true_path.append(None)
        else:
            which, _, path = best[len(PREFIX):].partition("::")
            true_phase.append("forward" if which == "fwd" else "backward")
            true_path.append(path)
    hook = names.isin(HOOK_OPS).to_numpy()
    in_hook = nearest_marked(events["parent"].to_numpy(), hook, include_self=True) >= 0
    out = rows[["name", "kind", "phase", "module_path"]].copy()
    # the truth hooks' own machinery (full backward hooks wrap module inputs and outputs), not the model's ops
    out["hook_op"] = in_hook[at]
    out["module_path"] = out["module_path"].astype(object).where(out["module_path"].notna(), None)
    out["true_phase"], out["true_path"] = true_phase, true_path
    return out


def without_hook(rows: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Where tracekit names a module below the truth's in backward, and that module has no backward truth range
    at all (its full backward hooks never fired: Hugging Face layers take their input as a keyword argument, which
    backward hooks do not see), the truth could not be more specific: such rows are taken out."""
    names = events["name"].astype(str)
    hooked = {n[len(PREFIX) + len("bwd::"):] for n in names[names.str.startswith(f"{PREFIX}bwd::")].unique()}
    keep = []
    for path, true, phase in zip(rows["module_path"], rows["true_path"], rows["phase"]):
        below = (phase == "backward" and isinstance(path, str) and isinstance(true, str)
                 and path.startswith(f"{true}/"))
        child = f"{true}/{path[len(true) + 1:].split('/')[0]}" if below else None
        keep.append(not (below and child not in hooked))
    return rows[keep]


def truth_calls(events: pd.DataFrame) -> pd.Series:
    """Forward calls per module path: the host truth ranges (Kineto also copies record_function ranges onto the
    GPU timeline as `gpu_user_annotation`; those are not calls)."""
    names = events["name"].astype(str)
    host = names.str.startswith(f"{PREFIX}fwd::") & (events["cat"].astype(str) == "user_annotation")
    return names[host].str[len(f"{PREFIX}fwd::"):].value_counts()
