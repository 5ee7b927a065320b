"""One row per op occurrence that compare aligns: the outermost host ops of each module call.

An op is listed when no enclosing op belongs to the same module call (so `aten::linear` is listed
and its `aten::addmm` is not); collectives are listed too when nested (flag `nested`), since an
added all-reduce is what a parallel run adds. Each row carries its host time, the device time
and count of the kernels it launched (anywhere below it), the time and count of those that only
cast the memory format (TransData and the like, tracekit.compare.equiv.is_format_cast), recorded
`Input Dims`/`Input type`,
and, for ops dispatched on tensor subclasses (DTensor: `PythonSubclass` children), the local
shapes the inner ops saw, from which `weight_shape` is the shard a rank really holds.
"""

from __future__ import annotations

import msgspec
import numpy as np
import pandas as pd

from tracekit.ancestry import nearest_marked
from tracekit.compare.equiv import is_format_cast
from tracekit.modules.opshapes import PARAM_INPUTS, _listed
from tracekit.opargs import op_inputs
from tracekit.table import DEVICE_KINDS, EventTable, strings

HOST_OPS = ("cpu_op", "collective")
SUBCLASS_NODE = "PythonSubclass"
KERNEL_NAMES_KEPT = 3
OP_COLUMNS = (
    "row", "module_path", "module_type", "call", "phase", "ordinal", "name", "ts_ns", "host_ns", "device_ns",
    "kernel_count", "cast_ns", "cast_count",
    "kernel_names", "shapes", "dtypes", "local_shapes", "weight_shape", "nested", "collective",
)


def op_frame(table: EventTable) -> pd.DataFrame:
    """Listed ops in (module path, phase, call, time) order, with `ordinal` within their call.

    The columns are made as arrays and the frame once, in its final order (a few hundred ops: pandas' cost per
    setitem, sort and groupby was most of the time)."""
    ev = table.events
    if not len(ev):
        return pd.DataFrame({c: [] for c in OP_COLUMNS})
    kind = ev["kind"].to_numpy()
    parent = ev["parent"].to_numpy()
    module = ev["module"].to_numpy() if "module" in ev else np.full(len(ev), -1)
    names = strings(ev["name"])
    is_op = np.isin(kind, HOST_OPS)
    is_coll = kind == "collective"
    up = nearest_marked(parent, is_op, include_self=False)
    outer = is_op & ((up < 0) | (module[np.maximum(up, 0)] != module))
    coll_up = nearest_marked(parent, is_coll, include_self=False)
    nested = is_coll & ~outer & (coll_up < 0)
    listed = outer | nested
    rows = np.flatnonzero(listed)
    module_row = module[rows].astype(np.int64)  # (int32 on a large table: tracekit.narrow; "call" stays int64)
    cols: dict[str, object] = {
        "row": rows, "module_path": strings(ev["module_path"])[rows] if "module_path" in ev else None,
        "module_type": strings(ev["module_type"])[rows] if "module_type" in ev else None,
        "call": np.where(module_row >= 0, module_row, ev["step"].to_numpy()[rows]),
        "phase": _phases(strings(ev["phase"])[rows] if "phase" in ev else None, len(rows)), "name": names[rows],
        "ts_ns": ev["ts_ns"].to_numpy()[rows], "host_ns": np.maximum(ev["dur_ns"].to_numpy()[rows], 0),
        "nested": nested[rows], "collective": is_coll[rows],
    }
    cols.update(_kernel_columns(ev, kind, parent, listed, names, rows))
    cols.update(_shape_columns(table, parent, names, listed, rows))
    order, cols["ordinal"] = _order(cols)
    return pd.DataFrame({c: _taken(cols[c], order) for c in OP_COLUMNS})


def _phases(phase: np.ndarray | None, n: int) -> np.ndarray | pd.Series:
    """The phase column with missing phases as "other" (an object column of "other" without phases, as
    `fillna` on an all-None column gives)."""
    if phase is None:
        return pd.Series(["other"] * n, dtype=object)
    return np.array(["other" if p is None else p for p in phase.tolist()], dtype=object)


def _order(cols: dict[str, object]) -> tuple[np.ndarray, np.ndarray]:
    """The rows sorted by (module path (missing first), phase, call, ts_ns, row) and each row's ordinal within
    its (module path, phase, call) after that sort (row is unique: the order is total)."""
    n = len(cols["row"])
    keys = [_codes(cols["module_path"], n), _codes(cols["phase"], n), np.asarray(cols["call"])]
    order = np.lexsort((cols["row"], cols["ts_ns"], *keys[::-1]))
    new = np.ones(n, dtype=bool)
    if n:
        new[1:] = np.any([k[order][1:] != k[order][:-1] for k in keys], axis=0)
    starts = np.flatnonzero(new)
    ordinal = np.arange(n, dtype=np.int64) - np.repeat(starts, np.diff(np.append(starts, n)))
    return order, ordinal[np.argsort(order)]


def _codes(values: object, n: int) -> np.ndarray:
    """Sort codes of a text column: missing (None, NaN) -1, then the texts in code-point order."""
    if values is None:
        return np.full(n, -1, dtype=np.int64)
    values = values.tolist() if hasattr(values, "tolist") else list(values)
    rank = {v: i for i, v in enumerate(sorted({v for v in values if isinstance(v, str)}))}
    return np.array([rank.get(v, -1) if isinstance(v, str) else -1 for v in values], dtype=np.int64)


def _taken(values: object, order: np.ndarray) -> object:
    """A column's values in the frame's row order (None: a column of None, as a scalar gives)."""
    if values is None:
        return None
    if isinstance(values, pd.Series):
        return values.take(order).reset_index(drop=True)
    if isinstance(values, list):
        return [values[i] for i in order.tolist()]
    return values[order]


def _kernel_columns(ev: pd.DataFrame, kind: np.ndarray, parent: np.ndarray, listed: np.ndarray, names: np.ndarray,
                    rows: np.ndarray) -> dict[str, np.ndarray]:
    """Device time, kernel count, format-cast time and count and the most common kernel names under each listed op
    (`rows`)."""
    device = np.flatnonzero(np.isin(kind, list(DEVICE_KINDS)) & (ev["launcher"].to_numpy() >= 0))
    owner_of = nearest_marked(parent, listed)
    owner = owner_of[ev["launcher"].to_numpy()[device]]
    keep = owner >= 0
    dur = np.maximum(ev["dur_ns"].to_numpy()[device[keep]], 0)
    if dur.dtype != np.int64:  # sums as pandas makes them (a float column, truncated)
        return _kernels_pandas(rows, owner[keep], dur, names[device[keep]])
    owner, kernel = owner[keep], names[device[keep]]
    uniques, codes = np.unique(np.asarray([str(n) for n in kernel], dtype=object), return_inverse=True) \
        if len(kernel) else (np.array([], dtype=object), np.array([], dtype=np.int64))
    is_cast = np.array([is_format_cast(n) for n in uniques], dtype=bool)[codes]  # each kernel name tested once
    out = {}
    for prefix, part in (("", np.ones(len(owner), dtype=bool)), ("cast_", is_cast)):
        total = np.zeros(len(ev), dtype=np.int64)
        np.add.at(total, owner[part], dur[part])  # int64 sums, exact as pandas' groupby sum
        size = np.bincount(owner[part], minlength=len(ev)).astype(np.int64)
        out["device_ns" if not prefix else "cast_ns"] = total[rows]
        out["kernel_count" if not prefix else "cast_count"] = size[rows]
    out["kernel_names"] = _top_names(owner, kernel, rows)
    return out


def _top_names(owner: np.ndarray, kernel: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per listed row, its KERNEL_NAMES_KEPT most frequent kernel names (ties by name) joined by " | "; NaN
    where it launched none (the values of a Series.map)."""
    counts: dict[int, dict[str, int]] = {}
    for own, name in zip(owner.tolist(), kernel.tolist()):
        if name is not None:  # a missing name is left out, as groupby leaves it out
            per = counts.setdefault(own, {})
            per[name] = per.get(name, 0) + 1
    if not counts:  # no names at all: all-NaN floats, as a map onto an empty Series gives
        return np.full(len(rows), np.nan)
    joined = {own: " | ".join(sorted(per, key=lambda n: (-per[n], n))[:KERNEL_NAMES_KEPT])
              for own, per in counts.items()}
    return np.array([joined.get(r, np.nan) for r in rows.tolist()], dtype=object)


def _kernels_pandas(rows: np.ndarray, owner: np.ndarray, dur: np.ndarray, kernel: np.ndarray
                    ) -> dict[str, np.ndarray]:
    """_kernel_columns with pandas groupbys (for a duration column that is not int64)."""
    row = pd.Series(rows)
    dev = pd.DataFrame({"owner": owner, "dur": dur, "name": kernel})
    sums = dev.groupby("owner")["dur"].agg(["sum", "size"])
    out = {"device_ns": row.map(sums["sum"]).fillna(0).astype(np.int64).to_numpy(),
           "kernel_count": row.map(sums["size"]).fillna(0).astype(np.int64).to_numpy()}
    codes, uniques = pd.factorize(dev["name"].to_numpy(), use_na_sentinel=False)  # each kernel name tested once
    is_cast = np.array([is_format_cast(str(n)) for n in uniques], dtype=bool)[codes]
    casts = dev[is_cast].groupby("owner")["dur"].agg(["sum", "size"])
    out["cast_ns"] = row.map(casts["sum"]).fillna(0).astype(np.int64).to_numpy()
    out["cast_count"] = row.map(casts["size"]).fillna(0).astype(np.int64).to_numpy()
    top = (dev.groupby(["owner", "name"]).size().reset_index(name="n")
           .sort_values(["owner", "n"], ascending=[True, False]).groupby("owner").head(KERNEL_NAMES_KEPT))
    joined = _joined_by_owner(top["owner"].to_numpy(), top["name"].to_numpy())
    out["kernel_names"] = row.map(joined).to_numpy()
    return out


def _joined_by_owner(owner: np.ndarray, names: np.ndarray) -> pd.Series:
    """Per owner (sorted), its names in the given order joined by " | " (rows of an owner are adjacent)."""
    keys: list = []
    texts: list[str] = []
    for key, name in zip(owner.tolist(), names.tolist()):
        if keys and keys[-1] == key:
            texts[-1] += f" | {name}"
        else:
            keys.append(key)
            texts.append(str(name))
    order = np.argsort(np.asarray(keys, dtype=np.int64), kind="stable")
    return pd.Series([texts[i] for i in order], index=np.asarray(keys, dtype=np.int64)[order], name="name",
                     dtype=object)


def _shape_columns(table: EventTable, parent: np.ndarray, names: np.ndarray, listed: np.ndarray,
                   rows: np.ndarray) -> dict[str, list]:
    """Recorded shapes/dtypes, local shapes under tensor-subclass dispatch, and the (local) weight shape of each
    listed op (`rows`)."""
    inputs = op_inputs(table.args, rows)
    out = {"shapes": _each_once(inputs.dims, lambda d: _as_lists(d, shapes=True)),
           "dtypes": _each_once(inputs.types, _as_lists)}
    is_sub = names == SUBCLASS_NODE
    local = np.flatnonzero((parent >= 0) & is_sub[np.maximum(parent, 0)] & (parent >= 0))
    owner = nearest_marked(parent, listed)[local]
    local = local[owner >= 0]
    owner = owner[owner >= 0]
    local_dims = op_inputs(table.args, local)
    per_owner: dict[int, list] = {}
    for own, row, dims in zip(owner.tolist(), local.tolist(), local_dims.dims):
        if dims:
            per_owner.setdefault(own, []).append([str(names[row]), msgspec.json.decode(dims)])
    out["local_shapes"] = [msgspec.json.encode(per_owner[r]).decode() if r in per_owner else None
                           for r in rows.tolist()]
    out["weight_shape"] = [_weight(str(n), s, per_owner.get(r)) for r, n, s in
                           zip(rows.tolist(), names[rows], out["shapes"])]
    return out


def _each_once(texts, convert) -> list:
    """`convert` of each text, computed once per distinct text (ops repeat the same few shapes)."""
    done: dict = {}
    return [done[t] if t in done else done.setdefault(t, convert(t)) for t in texts]


def _as_lists(text: str, shapes: bool = False) -> str | None:
    """Recorded inputs as compact JSON list text, the same for every vendor: torch_npu's
    `32,3,224,224;\r\n64,...` strings become lists, and trailing shapeless (scalar) inputs are left out
    of shapes (torch_npu drops the last one), so NPU and GPU/CPU shapes compare equal."""
    if not text:
        return None
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text
    if isinstance(value, str):
        value = _listed(value, shapes=shapes)
    if shapes and isinstance(value, list):
        while value and value[-1] == []:
            value = value[:-1]
    return msgspec.json.encode(value).decode()


def _weight(name: str, dims_text: str | None, local: list | None) -> str | None:
    """Weight shape of a parameter-owning op: the local shard when the op ran on tensor subclasses."""
    index = PARAM_INPUTS.get(name, (None,))[0]
    if index is None or not dims_text:
        return None
    shape = None
    if local:
        shape = _local_weight(name, index, local)
    if shape is None:
        dims = msgspec.json.decode(dims_text)
        shape = dims[index] if index < len(dims) and isinstance(dims[index], list) else None
    return msgspec.json.encode(shape).decode() if shape else None


def _local_weight(name: str, index: int, local: list) -> list[int] | None:
    """The weight as the inner (local) ops saw it: linear decomposes into t + addmm/mm."""
    for inner, dims in local:
        if inner == name and index < len(dims) and dims[index]:
            return dims[index]
    if name == "aten::linear":
        for inner, dims in local:
            if inner == "aten::t" and dims and dims[0]:
                return dims[0]
            if inner == "aten::addmm" and len(dims) > 2 and dims[2]:
                return dims[2][::-1]
            if inner == "aten::mm" and len(dims) > 1 and dims[1]:
                return dims[1][::-1]
    return None
