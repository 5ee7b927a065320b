"""The compare tables: one row per module pair and one row per op pair, with base/target side by side.

Times are per call of the module (so runs that profiled a different number of steps compare).
The time compared (`base_ns`/`target_ns`) is each side's device time when it has device events, else
its host time (forward span + backward autograd nodes): an NPU or GPU run against a CPU run compares
device time with host time, and `basis` says so (`device`, `host` or `base device / target host`).
Both kinds are kept in their own columns. `*_comm_ns` is the part of a module's time in the collectives
it launched (DDP's gradient all-reduce in the backward of the layer that completes a bucket), and
`*_format_cast_ns` the part in layout-conversion kernels (TransData), both per call.
`ratio` = target / base (NaN unless both sides have time), `delta_ns` = target - base (a side
with no partner counts as 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tracekit.compare.align import align_modules
from tracekit.compare.ops import SEQ_COLUMNS, align_ops
from tracekit.compare.seqtable import SequenceTable, sequence_table
from tracekit.compare.side import Side

SIDES = ("base", "target")
MODULE_FIELDS = ("calls", "module_type", "total_ns", "backward_ns", "device_ns_fwd", "device_ns_bwd", "kernel_count",
                 "op_count", "input_shapes", "input_dtypes", "output_shapes", "params", "flops_fwd")
# per-call columns of the module table: compare's name -> the module table's column
_PER_CALL = {"host_fwd_ns": "total_ns", "host_bwd_ns": "backward_ns", "device_ns_fwd": "device_ns_fwd",
             "device_ns_bwd": "device_ns_bwd", "kernels": "kernel_count", "ops": "op_count"}
PHASE_ORDER = {"forward": 0, "backward": 1, "loss": 2, "optimizer": 3, "other": 4}


def side_basis(side: Side) -> str:
    """"device" when the run has device events (kernels), else "host"."""
    return "device" if side.has_device else "host"


def time_basis(base: Side, target: Side) -> str:
    """"device" or "host" when both sides' times are of one kind, else "base device / target host"."""
    b, t = side_basis(base), side_basis(target)
    return b if b == t else f"base {b} / target {t}"


def basis_of(basis: str, label: str) -> str:
    """The kind of time (device / host) of side `label` under a basis from time_basis."""
    if basis in ("device", "host"):
        return basis
    parts = dict(part.split() for part in basis.split(" / "))
    return parts[label]


def _ratio_delta(frame: pd.DataFrame) -> None:
    b, t = (frame[f"{side}_ns"].to_numpy(dtype=np.float64, na_value=np.nan) for side in SIDES)
    frame["delta_ns"] = np.where(np.isnan(t), 0.0, t) - np.where(np.isnan(b), 0.0, b)
    frame["ratio"] = np.where((b > 0) & (t > 0), t / np.where(b > 0, b, 1.0), np.nan)


def compare_modules(base: Side, target: Side, basis: str) -> pd.DataFrame:
    """One row per module of either run, aligned by tree place and type (see tracekit.compare.align)."""
    pairs = align_modules(base.modules, target.modules)
    added: dict[str, pd.Series | np.ndarray] = {}  # every new column, added to the pairs in one concat
    for label, side, col in (("base", base, "base_path"), ("target", target, "target_path")):
        m = side.modules.set_index("module_path")
        row = m[list(MODULE_FIELDS)].reindex(pairs[col].to_numpy()).set_axis(pairs.index)  # one lookup per side
        calls = row["calls"].astype(float)
        per_call = row[list(_PER_CALL.values())].div(calls, axis=0)  # one division for all of them
        paths = pairs[col].tolist()
        per = {
            "calls": calls, "type": row["module_type"],
            **{name: per_call[field] for name, field in _PER_CALL.items()},
            "input_shapes": row["input_shapes"], "input_dtypes": row["input_dtypes"],
            "output_shapes": row["output_shapes"], "params": row["params"],
            "flops_fwd": row["flops_fwd"], "weight_shape": _weight_shapes(side.ops, paths, pairs.index),
        }
        added.update({f"{label}_{name}": values for name, values in per.items()})
        kind = f"{_kind(basis, label)}_ns"
        known = set(m.index.tolist())
        per_calls = calls.to_numpy()
        for name, rolled in (("format_cast_ns", _rolled_up(side.ops, "cast_ns", False, known)),
                             ("comm_ns", _rolled_up(side.ops, kind, True, known))):  # comm: collectives launched
            added[f"{label}_{name}"] = np.array([rolled.get(p, np.nan) if isinstance(p, str) else np.nan
                                                 for p in paths], dtype=np.float64) / per_calls
        if basis_of(basis, label) == "device":
            added[f"{label}_ns"] = added[f"{label}_device_ns_fwd"] + added[f"{label}_device_ns_bwd"]
        else:
            added[f"{label}_ns"] = added[f"{label}_host_fwd_ns"] + added[f"{label}_host_bwd_ns"]
    head = {"module_path": pairs["base_path"].where(pairs["base_path"].notna(), pairs["target_path"]),
            "module_type": added["base_type"].where(added["base_type"].notna(), added["target_type"])}
    head["depth"] = [p.count("/") for p in head["module_path"]]
    out = pd.concat([pd.DataFrame(head, index=pairs.index), pairs, pd.DataFrame(added, index=pairs.index)], axis=1)
    _ratio_delta(out)
    out["shapes_differ"] = (pairs["status"].to_numpy() == "matched") & (
        (_or_empty(out["base_input_shapes"]) != _or_empty(out["target_input_shapes"]))
        | (_or_empty(out["base_weight_shape"]) != _or_empty(out["target_weight_shape"])))
    return out.reset_index(drop=True)


def _rolled_up(ops: pd.DataFrame, value: str, collectives: bool, paths: set[str]) -> dict[str, float]:
    """Per module path of `paths`, the sum of the ops' `value` over the module and its descendants (ops of
    collectives only with `collectives`)."""
    column = ops[value]
    if column.dtype != np.int64:  # float sums: pandas' groupby (compensated), as before
        own = ops[ops["module_path"].notna()]
        own = own[own["collective"].astype(bool)] if collectives else own
        sums = own.groupby("module_path")[value].sum().items()
    else:
        exact: dict[str, int] = {}
        op_paths, values = ops["module_path"].tolist(), column.tolist()
        if collectives:
            rows = np.flatnonzero(ops["collective"].to_numpy().astype(bool)).tolist()
            op_paths, values = [op_paths[i] for i in rows], [values[i] for i in rows]
        for p, v in zip(op_paths, values):
            if isinstance(p, str):
                exact[p] = exact.get(p, 0) + v
        sums = sorted(exact.items())
    totals: dict[str, object] = {}
    for p, v in sums:  # each value goes to its own path and to every ancestor path
        p = str(p)
        for end in [i for i, ch in enumerate(p) if ch == "/"] + [len(p)]:
            totals[p[:end]] = totals.get(p[:end], 0) + v
    return {path: float(totals.get(path, 0)) for path in paths}


def _weight_shapes(ops: pd.DataFrame, paths: list, index: pd.Index) -> pd.Series:
    """Per module path of `paths`: the weight shape of its first parameter-owning forward op (NaN where none)."""
    first: dict[str, str] = {}
    for p, phase, shape in zip(ops["module_path"].tolist(), ops["phase"].tolist(), ops["weight_shape"].tolist()):
        if phase == "forward" and isinstance(p, str) and isinstance(shape, str) and p not in first:
            first[p] = shape
    return pd.Series([first.get(p, np.nan) if isinstance(p, str) else np.nan for p in paths], index=index,
                     dtype=ops["weight_shape"].dtype)


def compare_ops(base: Side, target: Side, modules: pd.DataFrame, canon: dict[str, str], basis: str) -> pd.DataFrame:
    """One row per op of either run: ops of matched modules aligned per phase, the others listed alone.

    Ops outside any module (loss, optimizer, a trace without module events) are aligned as the
    pseudo-module None. Each side's sequences are one flat table (tracekit.compare.seqtable); the
    alignment yields row numbers into both, and the output is taken from them in one pass.
    """
    seq_a, seq_b = sequence_table(base.ops), sequence_table(target.ops)
    pairs = [(p if isinstance(p, str) else None, q if isinstance(q, str) else None)
             for p, q in zip(modules["base_path"], modules["target_path"])]
    pairs.append((None, None))
    rows = _aligned_rows(seq_a, seq_b, pairs, canon)
    if not len(rows["phase"]):
        return pd.DataFrame()
    ia, ib = np.asarray(rows["ia"], dtype=np.int64), np.asarray(rows["ib"], dtype=np.int64)
    in_a = ia >= 0
    name, nested, collective = (_pick(seq_a, seq_b, ia, ib, c) for c in ("name", "nested", "collective"))
    status = np.where(in_a & (ib >= 0), "matched", np.where(in_a, "base_only", "target_only"))
    head = pd.DataFrame({
        "module_path": pd.Series([p if p is not None else q for p, q in zip(rows["p"], rows["q"])], dtype=object),
        "base_module_path": pd.Series(rows["p"], dtype=object),
        "target_module_path": pd.Series(rows["q"], dtype=object), "phase": rows["phase"],
        "position": np.asarray(rows["position"], dtype=np.int64),
        "op": [canon.get(n, n) for n in name.tolist()], "status": status.tolist(),
        "nested": [bool(v) for v in nested.tolist()], "collective": [bool(v) for v in collective.tolist()],
    })
    kept = [c for c in SEQ_COLUMNS if c not in ("nested", "collective")]
    sides = {label: seq.take(at, kept, absent).set_axis([f"{label}_{'op' if c == 'name' else c}" for c in kept],
                                                          axis=1)
             for label, seq, at, absent in (("base", seq_a, ia, rows["absent_a"]),
                                            ("target", seq_b, ib, rows["absent_b"]))}
    # the compared times, ratio and shape test made on a small frame: no setitem on the ~35-column table
    tail = pd.DataFrame({f"{label}_ns": sides[label][f"{label}_{_kind(basis, label)}_ns"] for label in SIDES})
    _ratio_delta(tail)
    tail["shapes_equal"] = _or_empty(sides["base"]["base_shapes"]) == _or_empty(sides["target"]["target_shapes"])
    return pd.concat([head, sides["base"], sides["target"], tail], axis=1)


def _kind(basis: str, label: str) -> str:
    """"device" or "host": the op time compared on side `label`."""
    return "device" if basis_of(basis, label) == "device" else "host"


def _aligned_rows(seq_a: SequenceTable, seq_b: SequenceTable, pairs: list[tuple[str | None, str | None]],
                  canon: dict[str, str]) -> dict:
    """Per output row: module pair, phase, position, and the row in each side's table (-1: none);
    `absent_a`/`absent_b`: whether some rows come from a pair and phase with no sequence on that side."""
    rows: dict = {"p": [], "q": [], "phase": [], "position": [], "ia": [], "ib": [], "absent_a": False,
                  "absent_b": False}
    for p, q in pairs:
        a_ok, b_ok = p is not None or q is None, q is not None or p is None  # not a one-sided module
        phases = sorted((seq_a.phases(p) if a_ok else set()) | (seq_b.phases(q) if b_ok else set()),
                        key=lambda ph: PHASE_ORDER.get(ph, 9))
        for phase in phases:
            span_a = seq_a.span(p, phase) if a_ok else None
            span_b = seq_b.span(q, phase) if b_ok else None
            if span_a is not None and span_b is not None:
                steps = align_ops(seq_a.view(span_a), seq_b.view(span_b), canon)
            else:
                steps = ([(i, None) for i in range(len(span_a or ()))] + [(None, j) for j in range(len(span_b or ()))])
            n = len(steps)
            rows["absent_a"] |= span_a is None
            rows["absent_b"] |= span_b is None
            rows["p"].extend([p] * n)
            rows["q"].extend([q] * n)
            rows["phase"].extend([phase] * n)
            rows["position"].extend(range(n))
            rows["ia"].extend(span_a[i] if i is not None else -1 for i, _ in steps)
            rows["ib"].extend(span_b[j] if j is not None else -1 for _, j in steps)
    return rows


def _pick(seq_a: SequenceTable, seq_b: SequenceTable, ia: np.ndarray, ib: np.ndarray, column: str) -> np.ndarray:
    """Per output row, `column` of its base op, or of its target op where it has no base op."""
    out = np.empty(len(ia), dtype=object)
    in_a = ia >= 0
    out[in_a] = seq_a.column(column)[ia[in_a]]
    out[~in_a] = seq_b.column(column)[ib[~in_a]]
    return out


def _or_empty(values: pd.Series) -> np.ndarray:
    """Text values with missing ones as "" (also for an all-missing float column), as an object array."""
    return values.to_numpy(dtype=object, na_value="")
