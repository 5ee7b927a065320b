"""Pair events of different files that record the same work: VizTracer C calls with the aten ops they
dispatch, `Class.forward` frames with `nn.Module` spans, and identical events present in two files.

Each pair has an `outer` row (the event that should contain the other) and an `inner` row; for
identical events (`same`) outer and inner should coincide. All functions are pure over the events.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from tracekit.table import column, is_in, strings

DISPATCH, MODULE, SAME = "dispatch", "module", "same"
PAIR_KINDS = (DISPATCH, MODULE, SAME)
SAME_TOLERANCE_NS = 1_000  # identical events may differ by rounding to us in one of the files

# Python operators whose aten op has another name.
_DUNDER = {
    "__add__": "add", "__radd__": "add", "__iadd__": "add_", "__sub__": "sub", "__rsub__": "rsub",
    "__isub__": "sub_", "__mul__": "mul", "__rmul__": "mul", "__imul__": "mul_", "__truediv__": "div",
    "__rtruediv__": "div", "__itruediv__": "div_", "__matmul__": "matmul", "__rmatmul__": "matmul",
    "__neg__": "neg", "__pow__": "pow", "__rpow__": "pow", "__eq__": "eq", "__ne__": "ne", "__lt__": "lt",
    "__le__": "le", "__gt__": "gt", "__ge__": "ge", "__abs__": "abs", "__floordiv__": "floor_divide",
    "__mod__": "remainder", "__and__": "bitwise_and", "__or__": "bitwise_or", "__xor__": "bitwise_xor",
    "__invert__": "bitwise_not",
}
_FORWARD = re.compile(r"^(\w+)\.forward \(")
_MODULE = re.compile(r"^nn\.Module: (.+)_\d+$")
_SPAN_PH = ("X",)


def aten_name(call: str) -> str | None:
    """The aten op a VizTracer C-call name dispatches: `torch._C._nn.linear` -> `aten::linear`.

    Only torch's own callables map (`torch.*`, methods of `Tensor`/`Parameter` and their subclasses);
    `math.sqrt` or `set.add` do not. Python frames (`f (file:line)`) and other dunders give None.
    """
    if " (" in call or ":" in call or "." not in call:
        return None
    head = call.split(".", 1)[0]
    if head != "torch" and not head.endswith(("Tensor", "Parameter", "VariableFunctionsClass")):
        return None
    last = call.rsplit(".", 1)[-1]
    last = _DUNDER.get(last, last)
    if not last or last.startswith("__"):
        return None
    return "aten::" + last


def forward_class(frame: str) -> str | None:
    """`Linear.forward (/path/linear.py:130)` -> `Linear`."""
    m = _FORWARD.match(frame)
    return m.group(1) if m else None


def module_class(name: str) -> str | None:
    """`nn.Module: Linear_4` -> `Linear`."""
    m = _MODULE.match(name)
    return m.group(1) if m else None


def _keyed(ev: pd.DataFrame, mask: np.ndarray, keys: np.ndarray, track: np.ndarray) -> pd.DataFrame:
    """Rows in `mask` with a key: row, file, (track, pid, tid, key), start, end."""
    rows = np.flatnonzero(mask & pd.notna(keys))
    ts = ev["ts_ns"].to_numpy()[rows]
    return pd.DataFrame({
        "row": rows, "file": ev["source_index"].to_numpy()[rows], "track": track[rows],
        "pid": ev["pid"].to_numpy()[rows], "tid": ev["tid"].to_numpy()[rows],
        "key": keys[rows], "start": ts, "end": ts + np.maximum(ev["dur_ns"].to_numpy()[rows], 0),
    })


def sides(ev: pd.DataFrame, track: np.ndarray) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """For each pair kind, the (outer, inner) candidate events with the key they join on.

    `track` is the process-group column (events of one process share it), so pairs never cross
    processes or threads.
    """
    names = strings(ev["name"])
    kind = ev["kind"].to_numpy()
    source = strings(ev["source"])
    span = is_in(column(ev, "ph"), _SPAN_PH)  # on the category codes
    viz_py = span & (source == "viztracer") & (kind == "python")
    uniq = pd.unique(names[viz_py])
    to_aten = {n: aten_name(n) for n in uniq}
    to_class = {n: forward_class(n) for n in uniq}
    call_key = np.full(len(ev), None, dtype=object)
    call_key[viz_py] = [to_aten[n] for n in names[viz_py]]
    is_op = span & np.isin(kind, ("cpu_op", "collective"))
    op_key = np.where(is_op, names, None)
    fwd_key = np.full(len(ev), None, dtype=object)
    fwd_key[viz_py] = [to_class[n] for n in names[viz_py]]
    is_mod = span & (kind == "module")
    mod_names = names[is_mod]
    mod_key = np.full(len(ev), None, dtype=object)
    mod_key[is_mod] = [module_class(n) for n in mod_names]
    same_ok = ~is_in(column(ev, "ph"), ("M",))
    ph = strings(ev["ph"])
    same_key = np.full(len(ev), None, dtype=object)
    dur = ev["dur_ns"].to_numpy()
    same_key[same_ok] = [f"{p}|{d}|{n}" for p, d, n in zip(ph[same_ok], dur[same_ok].tolist(), names[same_ok])]
    same = _keyed(ev, same_ok, same_key, track)
    return {
        DISPATCH: (_keyed(ev, viz_py, call_key, track), _keyed(ev, is_op, op_key, track)),
        MODULE: (_keyed(ev, is_mod, mod_key, track), _keyed(ev, viz_py, fwd_key, track)),
        SAME: (same, same),
    }


JOIN = ["track", "pid", "tid", "key"]


def candidate_pairs(outer: pd.DataFrame, inner: pd.DataFrame, moving: int, fixed: set[int],
                    cap_per_key: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """Every (outer, inner) combination with the same key where one side is in `moving` and the
    other in `fixed`, whatever their times (for offset estimation). Keys with more than
    `cap_per_key` combinations are subsampled evenly on the moving side."""
    frames = []
    for mov_side, fix_side in ((outer, inner), (inner, outer)):
        mov = mov_side[mov_side["file"] == moving]
        fix = fix_side[fix_side["file"].isin(list(fixed))]
        if mov.empty or fix.empty:
            continue
        counts = fix.groupby(JOIN, sort=False).size().rename("n_fix").reset_index()
        mov = mov.merge(counts, on=JOIN, how="inner")
        if mov.empty:
            continue
        mov = _thin(mov, cap_per_key, seed)
        pairs = mov.drop(columns="n_fix").merge(fix, on=JOIN, suffixes=("_m", "_f"))
        if mov_side is outer:
            pairs = pairs.rename(columns=lambda c: c.replace("_m", "_o").replace("_f", "_i"))
        else:
            pairs = pairs.rename(columns=lambda c: c.replace("_m", "_i").replace("_f", "_o"))
        pairs["moving_is_outer"] = mov_side is outer
        frames.append(pairs)
        if outer is inner:  # identical events: one direction covers every combination
            break
    if not frames:
        return pd.DataFrame(columns=["row_o", "row_i", "start_o", "end_o", "start_i", "end_i", "moving_is_outer"])
    return pd.concat(frames, ignore_index=True)


def _thin(mov: pd.DataFrame, cap: int, seed: int) -> pd.DataFrame:
    """Keep at most cap / n_fix moving rows per key (evenly spaced in time)."""
    per_key = np.maximum(cap // np.maximum(mov["n_fix"].to_numpy(), 1), 1)
    mov = mov.sort_values([*JOIN, "start"])
    pos = mov.groupby(JOIN, sort=False).cumcount().to_numpy()
    size = mov.groupby(JOIN, sort=False)["start"].transform("size").to_numpy()
    stride = np.maximum(size // per_key, 1)
    return mov[(pos % stride) == 0]


PAIR_COLUMNS = ["row_o", "row_i", "start_o", "end_o", "start_i", "end_i", "moving_is_outer"]


def nearest_pairs(outer: pd.DataFrame, inner: pd.DataFrame, moving: int, fixed: set[int],
                  shift: dict[int, int], window_ns: int = 1_000_000) -> pd.DataFrame:
    """For each moving-file event, the fixed-file event with the same key whose start is nearest
    (times shifted by `shift` per file), within `window_ns`; one to one, nearest first.

    This matching does not look at containment, so containment measured on it means something.
    After pandas' merge_asof, the one-to-one choice runs on numpy arrays (the same sorts: quicksort on the gap,
    then on row_i, first occurrences kept), a few thousand pairs where each pandas call costs more than they do.
    """
    parts: list[dict[str, np.ndarray]] = []
    for mov_side, fix_side, mov_is_outer in ((outer, inner, True), (inner, outer, False)):
        mov = mov_side[mov_side["file"] == moving]
        fix = fix_side[fix_side["file"].isin(list(fixed))]
        if mov.empty or fix.empty:
            continue
        mov = shifted(mov, shift).sort_values("start")
        fix = shifted(fix, shift).sort_values("start")
        joined = pd.merge_asof(mov, fix[[*JOIN, "start", "row"]].rename(columns={"row": "row_f"}),
                               on="start", by=JOIN, direction="nearest", tolerance=window_ns)
        found = joined["row_f"].to_numpy()
        hit = ~pd.isna(found)
        # merge_asof leaves float columns where rows went unmatched: take the fixed side's ns back by row
        row_f = found[hit].astype(np.int64)
        fix_rows = fix["row"].to_numpy()
        sorter = np.argsort(fix_rows, kind="stable")
        at = sorter[np.searchsorted(fix_rows, row_f, sorter=sorter)]
        side = {"row_m": joined["row"].to_numpy()[hit], "start_m": joined["start"].to_numpy()[hit],
                "end_m": joined["end"].to_numpy()[hit], "row_f": row_f,
                "start_f": fix["start"].to_numpy()[at], "end_f": fix["end"].to_numpy()[at]}
        order = np.argsort(np.abs(side["start_m"] - side["start_f"]), kind="quicksort")  # sort_values("gap")
        order = order[_first_of_each(side["row_f"][order])]
        order = order[_first_of_each(side["row_m"][order])]
        o, i = ("m", "f") if mov_is_outer else ("f", "m")
        parts.append({"row_o": side[f"row_{o}"][order], "row_i": side[f"row_{i}"][order],
                      "start_o": side[f"start_{o}"][order], "end_o": side[f"end_{o}"][order],
                      "start_i": side[f"start_{i}"][order], "end_i": side[f"end_{i}"][order],
                      "moving_is_outer": np.full(len(order), mov_is_outer)})
        if outer is inner:
            break
    if not parts:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    out = {c: np.concatenate([part[c] for part in parts]) for c in PAIR_COLUMNS}
    keep = np.argsort(out["row_i"], kind="quicksort")  # sort_values("row_i"), then first row_i, then first row_o
    keep = keep[_first_of_each(out["row_i"][keep])]
    keep = keep[_first_of_each(out["row_o"][keep])]
    return pd.DataFrame({c: values[keep] for c, values in out.items()}, index=keep)  # labels of the concat


def _first_of_each(values: np.ndarray) -> np.ndarray:
    """Positions of the first occurrence of each value, in order (drop_duplicates' rows)."""
    _, first = np.unique(values, return_index=True)
    return np.sort(first)


def shifted(side: pd.DataFrame, shift: dict[int, int]) -> pd.DataFrame:
    """The side's start/end moved by each file's offset in `shift` (files not in it stay)."""
    files = side["file"].to_numpy()
    table = np.zeros(int(files.max()) + 1 if len(files) else 1, dtype=np.int64)
    for f, d in shift.items():
        if f < len(table):
            table[f] = d
    delta = table[files]
    return side.assign(start=side["start"].to_numpy() + delta, end=side["end"].to_numpy() + delta)
