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
from tracekit.compare.ops import SEQ_COLUMNS, align_ops, sequences
from tracekit.compare.side import Side

SIDES = ("base", "target")
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
    b, t = frame["base_ns"].astype(float), frame["target_ns"].astype(float)
    frame["delta_ns"] = t.fillna(0) - b.fillna(0)
    frame["ratio"] = np.where((b > 0) & (t > 0), t / b.where(b > 0, 1), np.nan)


def compare_modules(base: Side, target: Side, basis: str) -> pd.DataFrame:
    """One row per module of either run, aligned by tree place and type (see tracekit.compare.align)."""
    pairs = align_modules(base.modules, target.modules)
    out = pairs.copy()
    for label, side, col in (("base", base, "base_path"), ("target", target, "target_path")):
        m = side.modules.set_index("module_path")
        calls = out[col].map(m["calls"]).astype(float)
        per = {
            "calls": calls, "type": out[col].map(m["module_type"]),
            "host_fwd_ns": out[col].map(m["total_ns"]) / calls, "host_bwd_ns": out[col].map(m["backward_ns"]) / calls,
            "device_ns_fwd": out[col].map(m["device_ns_fwd"]) / calls,
            "device_ns_bwd": out[col].map(m["device_ns_bwd"]) / calls,
            "kernels": out[col].map(m["kernel_count"]) / calls, "ops": out[col].map(m["op_count"]) / calls,
            "input_shapes": out[col].map(m["input_shapes"]), "input_dtypes": out[col].map(m["input_dtypes"]),
            "output_shapes": out[col].map(m["output_shapes"]), "params": out[col].map(m["params"]),
            "flops_fwd": out[col].map(m["flops_fwd"]), "weight_shape": out[col].map(_weight_shapes(side.ops)),
        }
        for name, values in per.items():
            out[f"{label}_{name}"] = values
        own = side.ops[side.ops["module_path"].notna()]
        kind = "device_ns" if basis_of(basis, label) == "device" else "host_ns"
        casts = _rolled_up(own.groupby("module_path")["cast_ns"].sum(), m.index)
        comm = _rolled_up(own[own["collective"].astype(bool)].groupby("module_path")[kind].sum(), m.index)
        out[f"{label}_format_cast_ns"] = out[col].map(casts) / calls
        out[f"{label}_comm_ns"] = out[col].map(comm) / calls  # collectives launched in the module
        if basis_of(basis, label) == "device":
            out[f"{label}_ns"] = out[f"{label}_device_ns_fwd"] + out[f"{label}_device_ns_bwd"]
        else:
            out[f"{label}_ns"] = out[f"{label}_host_fwd_ns"] + out[f"{label}_host_bwd_ns"]
    out.insert(0, "module_path", out["base_path"].where(out["base_path"].notna(), out["target_path"]))
    out.insert(1, "module_type", out["base_type"].where(out["base_type"].notna(), out["target_type"]))
    out.insert(2, "depth", [p.count("/") for p in out["module_path"]])
    _ratio_delta(out)
    out["shapes_differ"] = (out["status"] == "matched") & (
        (out["base_input_shapes"].fillna("") != out["target_input_shapes"].fillna(""))
        | (out["base_weight_shape"].fillna("") != out["target_weight_shape"].fillna("")))
    return out.reset_index(drop=True)


def _rolled_up(values: pd.Series, paths: pd.Index) -> pd.Series:
    """Per module path, the sum of `values` (indexed by module path) over the module and its descendants."""
    out = {}
    for path in paths:
        prefix = f"{path}/"
        out[path] = float(sum(v for p, v in values.items() if p == path or str(p).startswith(prefix)))
    return pd.Series(out, dtype=float)


def _weight_shapes(ops: pd.DataFrame) -> pd.Series:
    """Per module path: the weight shape of its first parameter-owning forward op."""
    own = ops[(ops["phase"] == "forward") & ops["weight_shape"].notna() & ops["module_path"].notna()]
    return own.drop_duplicates("module_path").set_index("module_path")["weight_shape"]


def compare_ops(base: Side, target: Side, modules: pd.DataFrame, canon: dict[str, str], basis: str) -> pd.DataFrame:
    """One row per op of either run: ops of matched modules aligned per phase, the others listed alone.

    Ops outside any module (loss, optimizer, a trace without module events) are aligned as the
    pseudo-module None.
    """
    seq_a, seq_b = sequences(base.ops), sequences(target.ops)
    pairs = [(p, q) for p, q in zip(modules["base_path"], modules["target_path"])]
    pairs = [(p if isinstance(p, str) else None, q if isinstance(q, str) else None) for p, q in pairs]
    pairs.append((None, None))
    parts = []
    for p, q in pairs:
        a_ok, b_ok = p is not None or q is None, q is not None or p is None  # not a one-sided module
        phases = sorted(({ph for (path, ph) in seq_a if path == p} if a_ok else set())
                        | ({ph for (path, ph) in seq_b if path == q} if b_ok else set()),
                        key=lambda ph: PHASE_ORDER.get(ph, 9))
        for phase in phases:
            a = seq_a.get((p, phase)) if a_ok else None
            b = seq_b.get((q, phase)) if b_ok else None
            parts.append(_pair_frame(p, q, phase, a, b, canon))
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, ignore_index=True)
    for label in SIDES:
        kind = "device" if basis_of(basis, label) == "device" else "host"
        out[f"{label}_ns"] = out[f"{label}_{kind}_ns"]
    _ratio_delta(out)
    out["shapes_equal"] = out["base_shapes"].fillna("") == out["target_shapes"].fillna("")
    return out


def _empty(n: int) -> pd.DataFrame:
    return pd.DataFrame({c: [None] * n for c in SEQ_COLUMNS})


def _pair_frame(p: str | None, q: str | None, phase: str, a: pd.DataFrame | None, b: pd.DataFrame | None,
                canon: dict[str, str]) -> pd.DataFrame:
    a = a if a is not None else _empty(0)
    b = b if b is not None else _empty(0)
    pairs = align_ops(a, b, canon) if len(a) and len(b) else ([(i, None) for i in range(len(a))]
                                                               + [(None, j) for j in range(len(b))])
    ia = [i for i, _ in pairs]
    ib = [j for _, j in pairs]
    left = _take(a, ia).add_prefix("base_")
    right = _take(b, ib).add_prefix("target_")
    frame = pd.concat([left, right], axis=1)
    status = ["matched" if i is not None and j is not None else ("base_only" if i is not None else "target_only")
              for i, j in pairs]
    cols_a = {c: a[c].tolist() for c in ("name", "nested", "collective")}
    cols_b = {c: b[c].tolist() for c in ("name", "nested", "collective")}

    def pick(col: str) -> list:
        return [cols_a[col][i] if i is not None else cols_b[col][j] for i, j in pairs]

    head = pd.DataFrame({
        "module_path": [p if p is not None else q] * len(pairs), "base_module_path": [p] * len(pairs),
        "target_module_path": [q] * len(pairs), "phase": phase, "position": np.arange(len(pairs)),
        "op": [canon.get(n, n) for n in pick("name")], "status": status,
        "nested": [bool(v) for v in pick("nested")], "collective": [bool(v) for v in pick("collective")],
    })
    frame = frame.drop(columns=[c for c in frame.columns if c.endswith(("_nested", "_collective"))])
    return pd.concat([head, frame.rename(columns={"base_name": "base_op", "target_name": "target_op"})], axis=1)


def _take(seq: pd.DataFrame, idx: list[int | None]) -> pd.DataFrame:
    """Rows of seq at idx (None gives an empty row)."""
    if not len(seq):
        return _empty(len(idx))
    picked = seq.reindex([i if i is not None else -1 for i in idx]).reset_index(drop=True)
    return picked
