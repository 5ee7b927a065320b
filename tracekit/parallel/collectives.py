"""One row per collective call per rank, from the processed event table of ONE rank (pure functions).

A logical collective shows up as several nested events: `_c10d_functional::all_reduce` around
`c10d::allreduce_` around `record_param_comms` around `nccl:all_reduce`, and on gloo a `gloo:*`
annotation on a worker thread that runs it. The outermost one on the calling thread is the call;
the others lend it their facts (collective name, sizes, group) and are not counted again.
Execution time is the NCCL kernel it launched, or the gloo annotation that ran it, else the call.
"""

from __future__ import annotations

import ast
import re
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from tracekit.converters.args_bytes import take_args
from tracekit.parallel.exposure import exposed_ns
from tracekit.parallel.hccl import EXTRA as HCCL_EXTRA
from tracekit.parallel.hccl import compute_free, label_hccl_groups, with_hccl
from tracekit.table import DEVICE_KINDS, EventTable, NonNegative, TextAt, column, column_array, is_in, kind_in

_PREFIX = re.compile(r"^(?:c10d::|_c10d_functional::|c10d_functional::|nccl:|gloo:|hccl:|vllm::|symm_mem::)(.+)$")
_RPC = "record_param_comms"
_ORDER = (
    ("allreduce", "all_reduce"), ("allgather", "all_gather"), ("reducescatter", "reduce_scatter"),
    ("alltoall", "all_to_all"), ("broadcast", "broadcast"), ("send", "send"), ("recv", "recv"),
    ("barrier", "barrier"), ("reduce", "reduce"), ("gather", "gather"), ("scatter", "scatter"),
)
DTYPE_BYTES = {
    "float": 4, "float32": 4, "double": 8, "float64": 8, "half": 2, "float16": 2, "bfloat16": 2,
    "long int": 8, "long": 8, "int64": 8, "int": 4, "int32": 4, "short": 2, "int16": 2, "char": 1,
    "signed char": 1, "unsigned char": 1, "byte": 1, "bool": 1, "int8": 1, "uint8": 1,
    "float8_e4m3fn": 1, "float8_e5m2": 1, "complexfloat": 8, "complexdouble": 16,
}
NO_SIZES = ("no sizes recorded: no `In/Out msg nelems`, and the op's tensor inputs have no `Input Dims` "
            "(TensorList recorded without shapes)")
COLUMNS = (
    "rank", "step", "name", "collective", "group", "group_desc", "group_ranks", "group_from", "peer",
    "dtype", "bytes", "bytes_from", "start_ns", "dur_ns", "call_ns", "exposed_ns", "module_path",
    "module_from", "call_row", "exec_row", "thread", "exec_thread", "exec_link_set",
)


def collective_kind(op: str) -> str | None:
    """Normalised collective of an op text (`allreduce_`, `_allgather_base`, `all_to_all_single`...)."""
    key = op.lower().replace("_", "").replace("multimem", "")
    for prefix, kind in _ORDER:
        if key.startswith(prefix):
            return kind
    return None


def _name_kind(name: str) -> str | None:
    if name == _RPC:
        return "?"
    m = _PREFIX.match(name)
    return collective_kind(m.group(1)) if m else None


_KINDS: dict[str, str | None] = {}  # name -> _name_kind(name): a worker sees the same op names rank after rank
_KINDS_MAX = 1 << 16


def _name_kinds(names: list[Any]) -> list[str | None]:
    """_name_kind of each name (a rank's name categories), remembered across the ranks a worker converts."""
    if len(_KINDS) > _KINDS_MAX:
        _KINDS.clear()
    out = []
    for name in names:
        kind = _KINDS.get(name, _KINDS) if type(name) is str else _KINDS
        if kind is _KINDS:
            kind = _name_kind(name)
            if type(name) is str:
                _KINDS[name] = kind
        out.append(kind)
    return out


def _args(table: EventTable, rows: list[int]) -> dict[int, dict[str, Any]]:
    """The decoded args of `rows`, with the fields read here type-checked (see _checked_args)."""
    raws = take_args(table.args, rows).to_pylist() if rows else []
    out = {}
    for row, raw in zip(rows, raws):
        try:
            out[row] = _checked_args(msgspec.json.decode(raw) if raw else {})
        except (msgspec.DecodeError, RecursionError):
            out[row] = {}
    return out


def _is_count(v: Any) -> bool:
    return type(v) is int and 0 <= v < 2**48


def _is_shape(s: Any) -> bool:
    """A shape: a list of ints in [0, 2**40)."""
    if not isinstance(s, list):
        return False
    for d in s:  # noqa: SIM110  (a loop: ~2x faster than all() over a generator on these short lists)
        if type(d) is not int or not 0 <= d < 1 << 40:
            return False
    return True


def _is_dims(v: Any) -> bool:
    """Input Dims: a list whose entries are shapes (lists of ints) or lists of shapes (TensorList)."""
    if not isinstance(v, list):
        return False
    for d in v:
        if not isinstance(d, list):
            return False
        if d and isinstance(d[0], list):  # not a shape (its first entry is no int): a list of shapes
            for x in d:
                if not _is_shape(x):
                    return False
        elif not _is_shape(d):
            return False
    return True


# The args fields the collective reader uses, with the type each must have; others pass through untouched.
_FIELD_OK = {
    "Collective name": lambda v: isinstance(v, str),
    "dtype": lambda v: isinstance(v, str),
    "In msg nelems": _is_count,
    "Out msg nelems": _is_count,
    "Group size": _is_count,
    "Process Group Name": lambda v: isinstance(v, (str, int)) and not isinstance(v, bool),
    "Process Group Description": lambda v: isinstance(v, str),
    "Process Group Ranks": lambda v: isinstance(v, str) or (isinstance(v, list) and all(_is_count(r) for r in v)),
    "Input Dims": _is_dims,
    "Input type": lambda v: isinstance(v, list),
    "Concrete Inputs": lambda v: isinstance(v, list),
}


def _checked_args(args: Any) -> dict[str, Any]:
    """args as a dict whose collective fields have the expected types; a field that does not (a
    `Collective name` that is a number, `Input Dims` holding text) is left out, as if not recorded."""
    if not isinstance(args, dict):
        return {}
    bad = [k for k, ok in _FIELD_OK.items() if k in args and not ok(args[k])]
    if bad:
        args = {k: v for k, v in args.items() if k not in bad}
    return args


def _ranks(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return None
    if isinstance(value, (list, tuple)) and all(type(v) is int and 0 <= v < 2**31 for v in value):
        return tuple(value)
    return None


def tensor_size(dims: Any, types: Any) -> tuple[int | None, str | None]:
    """Elements of the largest tensor operand (a TensorList counts as the sum of its tensors) and its dtype
    (None for a TensorList, whose element type is not recorded)."""
    if not isinstance(dims, list) or not isinstance(types, list):
        return None, None
    best, best_type = None, None
    for d, t in zip(dims, types):
        if not isinstance(d, list):
            continue
        shapes = d if (d and isinstance(d[0], list)) else ([d] if d else [])
        dtype = str(t).removeprefix("c10::")
        if not shapes or (dtype.lower() not in DTYPE_BYTES and dtype != "TensorList"):
            continue
        if not _is_dims(shapes):
            continue
        total = sum(int(np.prod(s, dtype=np.int64)) for s in shapes)
        if best is None or total > best:
            best, best_type = total, (None if dtype == "TensorList" else dtype)
    return best, best_type


def sent_size(dims: Any, types: Any) -> tuple[int | None, str | None]:
    """Elements and dtype of the input operand of c10d::alltoall_base_ / alltoall_ (output first, input
    second): what the rank sends. With uneven splits the output is another size."""
    if isinstance(dims, list) and isinstance(types, list) and len(dims) > 1 and len(types) > 1:
        n, t = tensor_size(dims[1:2], types[1:2])
        if n is not None:
            return n, t
    return tensor_size(dims, types)


def size_bytes(elems: int | None, dtype: str | None) -> int | None:
    """elems x element size of dtype, None when either is unknown."""
    size = DTYPE_BYTES.get(str(dtype).lower()) if dtype else None
    return elems * size if (elems is not None and size) else None


def _outermost(cand: np.ndarray, parent: np.ndarray) -> dict[int, int]:
    """For each candidate row, the outermost candidate among itself and its ancestors."""
    is_cand = np.zeros(len(parent), dtype=bool)
    is_cand[cand] = True
    outer = {}
    for row in cand.tolist():
        top, cur = row, int(parent[row])
        while cur >= 0:
            if is_cand[cur]:
                top = cur
            cur = int(parent[cur])
        outer[row] = top
    return outer


def _enclosing_modules(ev: pd.DataFrame, names: np.ndarray, row: int) -> str | None:
    """`A_0/B_1/...` from the nn.Module events enclosing `row` (forward only; fallback without tracekit.modules)."""
    parent, kind = column(ev, "parent"), ev["kind"].to_numpy()
    path, cur = [], int(parent[row])
    while cur >= 0:
        if kind[cur] == "module":
            path.append(str(names[cur]).removeprefix("nn.Module: "))
        cur = int(parent[cur])
    return "/".join(reversed(path)) or None


# Calls whose nested events' and kernels' args are decoded together: a decoded args dict is ~0.4 KB, and the
# candidates of a large trace's every call at once were most of collective_calls' peak (510 MB trace: +150 MB).
ARGS_CALLS = 1_024


def collective_calls(table: EventTable) -> tuple[pd.DataFrame, dict[str, int]]:
    """Collective calls of one rank's processed table, and counts of what was left out and why."""
    ev = table.events
    # names, kinds, module paths: looked up at the few rows read (TextAt), not as object arrays of every row
    names = TextAt(column(ev, "name"))
    kind_of = _name_kinds(column(ev, "name").categories.tolist()) if len(ev) else []
    base_kind = TextAt(column(ev, "name"), kind_of)
    has_kind = np.append(np.not_equal(np.array(kind_of, dtype=object), None), False)[column(ev, "name").codes]
    has_kind &= ~is_in(column(ev, "cat"), ("gpu_user_annotation",))
    has_kind &= is_in(column(ev, "ph"), ("X",))
    cand = np.flatnonzero(has_kind)
    del has_kind
    parent = column(ev, "parent")
    outer = _outermost(cand, parent)
    members: dict[int, list[int]] = {}
    for row, top in outer.items():
        members.setdefault(top, []).append(row)
    launcher = column(ev, "launcher")
    is_dev = kind_in(ev, DEVICE_KINDS)
    kernels_of: dict[int, list[int]] = {}
    for k in np.flatnonzero(is_dev & (launcher >= 0)).tolist():
        if int(launcher[k]) in outer:
            kernels_of.setdefault(outer[int(launcher[k])], []).append(k)
    ts, dur = column(ev, "ts_ns"), NonNegative(column(ev, "dur_ns"))
    tid = column(ev, "tid")
    has_modules = "module_path" in ev
    rank, step = column(ev, "rank"), column(ev, "step")
    module_paths = TextAt(column(ev, "module_path")) if has_modules else None
    via = TextAt(column(ev, "module_from")) if has_modules and "module_from" in ev else None
    parent = column(ev, "parent")
    rows, skipped = [], {}
    calls, execs = [], []
    for top in sorted(members, key=lambda r: (ts[r], r)):
        if names[top].startswith("gloo:"):
            execs.append(top)
        else:
            calls.append(top)
    args: dict[int, dict[str, Any]] = {}
    kernel_args: dict[int, dict[str, Any]] = {}
    for at, top in enumerate(calls):
        if at % ARGS_CALLS == 0:  # the decoded args of the next ARGS_CALLS calls only: not of every call at once
            chunk = calls[at : at + ARGS_CALLS]
            args = _args(table, sorted(r for t in chunk for r in members[t]))
            kernel_args = _args(table, [k for t in chunk for k in kernels_of.get(t, [])])
        facts = _facts(top, members[top], names, base_kind, args, kernels_of.get(top, []), kernel_args)
        if facts is None:
            skipped["record_param_comms without a collective (no name, no tensors, no kernel)"] = (
                skipped.get("record_param_comms without a collective (no name, no tensors, no kernel)", 0) + 1)
            continue
        kernels = kernels_of.get(top, [])
        done = kernels or ([facts["_exec"]] if facts["_exec"] is not None else [])
        start = int(min(ts[k] for k in kernels)) if kernels else int(ts[top])
        end = int(max(ts[k] + dur[k] for k in done)) if done else int(ts[top] + dur[top])
        if has_modules:
            module, module_from = module_paths[top], "tracekit.modules"
            if via is not None and via[top] == "gradient_sync" and parent[top] >= 0:
                module, module_from = module_paths[parent[top]], GRADIENT_HOOK
        else:
            module, module_from = _enclosing_modules(ev, names, top), "enclosing nn.Module events"
        rows.append({
            "rank": int(rank[top]), "step": int(step[top]), "name": names[top],
            **facts, "start_ns": start, "dur_ns": end - start, "call_ns": int(dur[top]),
            "module_path": module, "module_from": module_from, "call_row": top,
            "exec_row": done[0] if done else -1, "thread": int(tid[top]),
            "exec_thread": int(tid[facts["_exec"]]) if facts["_exec"] is not None else None,
        })
    frame = _rows_frame(rows, [*[c for c in COLUMNS if c != "exposed_ns"], "_elems", "_exec"])
    del args, kernel_args
    frame = _link_gloo_execs(frame, execs, names, base_kind, _args(table, execs), ts, dur, ev, skipped)
    frame = with_hccl(table, frame)  # Ascend: HCCL ops (tracekit/parallel/hccl.py)
    frame["exposed_ns"] = exposed_ns(ev, frame) if not compute_free(table) else None
    for col in ("bytes", "peer", "exec_thread"):  # one at a time: astype({...}) rebuilds every column (2 ms)
        if frame[col].dtype != "Int64":
            frame[col] = frame[col].astype("Int64")
    extra = [c for c in HCCL_EXTRA if c in frame]
    # sort_values(["start_ns", "call_row"]) as a stable lexsort on the two int columns, and the columns in their
    # order, as one frame made from the columns' arrays taken in that order
    order = np.lexsort((column(frame, "call_row"), column(frame, "start_ns")))
    return _taken(frame, [*COLUMNS, *extra], order), skipped


# The dtypes of the call rows' columns (pd.DataFrame of the row dicts infers the same; see _rows_frame).
_INT_COLUMNS = frozenset(("rank", "step", "start_ns", "dur_ns", "call_ns", "call_row", "exec_row", "thread"))
_NULLABLE_INT_COLUMNS = frozenset(("peer", "bytes", "exec_thread"))
_TEXT_COLUMNS = frozenset(("name", "collective", "group", "group_desc", "group_from", "dtype", "bytes_from",
                           "module_path", "module_from"))


def _rows_frame(rows: list[dict[str, Any]], names: list[str]) -> pd.DataFrame:
    """`pd.DataFrame(rows, columns=names)` of the call rows, with `bytes`/`peer`/`exec_thread` as Int64, built
    column by column with the dtypes pandas infers from the rows (int64 for the row/time columns, `str` for a
    text column with some text, object otherwise): inferring them from the row dicts costs ~1 ms a rank."""
    n = len(rows)
    columns = {name: [row.get(name) for row in rows] for name in names}  # exec_link_set: set by the gloo linking
    if not rows or not all(_as_expected(name, values) for name, values in columns.items()):
        return pd.DataFrame(rows, columns=names)  # no rows, or a value of another type: pandas infers
    arrays: list[Any] = []
    for name, values in columns.items():
        if name in _INT_COLUMNS:
            arrays.append(np.array(values, dtype=np.int64))
        elif name in _NULLABLE_INT_COLUMNS:
            arrays.append(pd.array(values, dtype="Int64"))
        elif name in _TEXT_COLUMNS and any(isinstance(v, str) for v in values):
            arrays.append(pd.array(values, dtype="str"))
        else:  # member lists, all-None text, the linking helpers: objects as they are
            objects = np.empty(n, dtype=object)
            for i, value in enumerate(values):  # one by one: member lists stay list objects
                objects[i] = value
            arrays.append(objects)
    return _frame_from_arrays(arrays, names)


def _as_expected(name: str, values: list[Any]) -> bool:
    """Whether a column's values are of the type _rows_frame builds it from (ints; ints or None; text or None)."""
    if name in _INT_COLUMNS:
        return all(type(v) is int for v in values)
    if name in _NULLABLE_INT_COLUMNS:
        return all(v is None or type(v) is int for v in values)
    if name in _TEXT_COLUMNS:
        return all(v is None or type(v) is str for v in values)
    return True


def _frame_from_arrays(arrays: list[Any], names: list[str]) -> pd.DataFrame:
    """A frame whose columns are these arrays with their dtypes (no index alignment, no dtype inference)."""
    make = getattr(pd.DataFrame, "_from_arrays", None)
    n = len(arrays[0]) if arrays else 0
    if make is None:  # a pandas without it: Series keep their dtypes
        return pd.DataFrame({name: pd.Series(a, dtype=a.dtype) for name, a in zip(names, arrays)})
    return make(arrays, columns=pd.Index(names), index=pd.RangeIndex(n), verify_integrity=False)


def _taken(frame: pd.DataFrame, names: list[str], order: np.ndarray) -> pd.DataFrame:
    """frame[names].take(order).reset_index(drop=True), made once from the column arrays."""
    if not len(frame):
        return frame[names].reset_index(drop=True)
    keep = bool(np.array_equal(order, np.arange(len(order))))
    arrays = []
    for name in names:
        values = column_array(frame, name)
        arrays.append(values if keep else values[order] if isinstance(values, np.ndarray) else values.take(order))
    return _frame_from_arrays(arrays, names)


# a DDP/FSDP gradient hook's collective: the table names the layer whose backward completed the bucket (the
# events and the modules table give the call itself to the data-parallel wrapper: module_from "gradient_sync")
GRADIENT_HOOK = "gradient hook: the module whose backward completed the bucket"


def _facts(top: int, rows: list[int], names, base_kind, args, kernels: list[int], kernel_args) -> dict | None:
    """Collective, group, dtype, bytes and peer of one call from its nested events and kernels."""
    sources = [args[r] for r in sorted(rows, key=lambda r: r != top)] + [kernel_args[k] for k in kernels]
    stated = next((a for a in sources if a.get("Collective name")), {})
    kind = collective_kind(stated["Collective name"]) if stated else None
    kind = kind or next((base_kind[r] for r in sorted(rows) if base_kind[r] not in (None, "?")), None)
    size_from = next((a for a in sources if isinstance(a.get("In msg nelems"), int)), None)
    dtype = stated.get("dtype")
    nbytes, bytes_from = None, NO_SIZES
    if size_from is not None:
        dtype = size_from.get("dtype") or dtype
        elem = DTYPE_BYTES.get(str(dtype).lower())
        count = max(size_from.get("In msg nelems", 0), size_from.get("Out msg nelems", 0) or 0)
        if kind == "all_to_all":  # what this rank sends: splits may be uneven, so out may differ from in
            count = size_from.get("In msg nelems", 0)
        if elem and count:
            nbytes, bytes_from = count * elem, "In/Out msg nelems"
    elems = None
    if nbytes is None:
        for r in sorted(rows, key=lambda r: (r != top, r)):
            sent = kind == "all_to_all" and str(names[r]).startswith("c10d::alltoall")
            n, t = (sent_size if sent else tensor_size)(args[r].get("Input Dims"), args[r].get("Input type"))
            elems = elems if elems is not None else n
            if size_bytes(n, t) is not None:
                nbytes, dtype = size_bytes(n, t), dtype or t
                bytes_from = f"Input Dims of {names[r]}" + (" (its input: what this rank sends)" if sent else "")
                break
    if kind is None:
        if nbytes is None and not kernels:
            return None
        kind = "unknown"
    group = next((a for a in sources if a.get("Process Group Name") is not None), {})
    peer = None
    if kind in ("send", "recv"):
        concrete = args[top].get("Concrete Inputs") or []
        if len(concrete) > 2 and str(concrete[2]).lstrip("-").isdigit() and len(str(concrete[2])) < 10:
            peer = int(concrete[2])
    return {
        "collective": kind, "group": str(group["Process Group Name"]) if group else None,
        "group_desc": group.get("Process Group Description"),
        "group_ranks": list(_ranks(group.get("Process Group Ranks")) or []) or None,
        "group_from": "event args" if group else None, "peer": peer,
        "dtype": dtype, "bytes": nbytes, "bytes_from": bytes_from, "_elems": elems,
        "_exec": next((r for r in sorted(rows) if names[r].startswith("gloo:")), None),
    }


def _link_gloo_execs(frame: pd.DataFrame, execs: list[int], names, base_kind, args, ts, dur, ev,
                     skipped: dict[str, int]) -> pd.DataFrame:
    """Give each call the `gloo:*` annotation that ran it: the first free one of the same collective and size
    starting after the call began (gloo runs each process group's work in order). Where several such calls were
    waiting (asynchronous calls, possibly of different groups), they share an `exec_link_set` id: their work
    may have gone to either."""
    frame["exec_link_set"] = pd.array([None] * len(frame), dtype="Int64")  # the caller's new frame: no copy
    if not execs:
        return frame
    free = {i: True for i in range(len(frame))}
    order = frame.sort_values("start_ns").index.tolist()
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        while parent.get(i, i) != i:
            i = parent[i]
        return i

    for ex in execs:
        kind = base_kind[ex]
        n, t = tensor_size(args[ex].get("Input Dims"), args[ex].get("Input type"))
        waiting = [i for i in order if free[i] and _runs(kind, n, frame.at[i, "collective"], frame.at[i, "_elems"])
                   and frame.at[i, "start_ns"] <= ts[ex]]
        if not waiting:
            skipped["gloo annotation without a calling op"] = skipped.get("gloo annotation without a calling op", 0) + 1
            continue
        match = waiting[0]
        for other in waiting[1:]:
            parent[root(other)] = root(match)
        free[match] = False
        frame.at[match, "start_ns"] = int(ts[ex])
        frame.at[match, "dur_ns"] = int(dur[ex])
        frame.at[match, "exec_row"] = ex
        frame.at[match, "exec_thread"] = int(ev["tid"].iat[ex])
        if pd.isna(frame.at[match, "bytes"]) and size_bytes(n, t) is not None:
            frame.at[match, "bytes"] = size_bytes(n, t)
            frame.at[match, "dtype"] = t
            frame.at[match, "bytes_from"] = f"Input Dims of {names[ex]} (the gloo work that ran it)"
    if parent:
        frame["exec_link_set"] = pd.array([root(i) if i in parent or root(i) != i or i in parent.values() else None
                                           for i in range(len(frame))], dtype="Int64")
    return frame


def _runs(exec_kind: str, exec_elems: int | None, call_kind: str, call_elems) -> bool:
    """Can a gloo annotation (its collective, elements of its input) be the work of a call? gloo runs
    reduce_scatter as an all_reduce of the full input, and an all_gather annotation shows the local input
    while the call's largest operand is the gathered output (a whole multiple of it)."""
    if exec_kind != call_kind and not (exec_kind == "all_reduce" and call_kind == "reduce_scatter"):
        return False
    if exec_elems is None or pd.isna(call_elems):
        return True
    return call_elems == exec_elems or (call_kind == "all_gather" and exec_elems > 0
                                        and call_elems > exec_elems and call_elems % exec_elems == 0)


def bus_factor(collective: str, n: int) -> float:
    """NCCL-tests bus bandwidth factor for a group of n ranks."""
    if n <= 1:
        return 0.0
    if collective == "all_reduce":
        return 2 * (n - 1) / n
    if collective in ("all_gather", "reduce_scatter", "all_to_all"):
        return (n - 1) / n
    return 1.0


def with_bandwidth(calls: pd.DataFrame) -> pd.DataFrame:
    """algbw = bytes / time (GB/s) and busbw = algbw x NCCL-tests factor of the group size."""
    nbytes = calls["bytes"].astype("Float64")
    dur = calls["dur_ns"].astype("Float64").where(calls["dur_ns"] > 0)
    algbw = nbytes / dur
    sizes = [len(r) if isinstance(r, (list, tuple, np.ndarray)) else 0 for r in calls["group_ranks"]]
    factor = pd.array([bus_factor(c, n) if n else None for c, n in zip(calls["collective"], sizes)], dtype="Float64")
    return calls.assign(algbw=algbw, busbw=algbw * factor)


ORDER = ("rank", "step", "name", "collective", "group", "group_desc", "group_ranks", "group_from", "parallel_dim",
         "parallel_dim_inferred", "peer", "dtype", "bytes", "bytes_from", "start_ns", "dur_ns", "algbw", "busbw",
         "exposed_ns", "call_ns", "module_path", "module_from", "call_row", "exec_row", "thread", "exec_thread",
         "exec_link_set", "group_candidates")


def label_calls(calls: pd.DataFrame, distributed: list[dict[str, Any]]) -> pd.DataFrame:
    """The cross-rank part of the collectives table: groups (stated or inferred across ranks), parallel dimension,
    HCCL group members and bandwidth of every call. Reads only the group, matching and size columns, so it runs
    on a narrow table of all ranks' calls (tracekit.parallel.crossrank); rows keep their order and index."""
    from tracekit.parallel.groups import groups_from_ranks

    return label_with_groups(calls, groups_from_ranks(distributed, calls))


def label_with_groups(calls: pd.DataFrame, groups: dict) -> pd.DataFrame:
    """label_calls with the process groups already known (groups.groups_from_ranks). Where every call's events
    name its group and there are no HCCL ops, nothing here looks across rows: the cross-rank stage then labels
    each rank's calls alone (tracekit.parallel.crossrank)."""
    from tracekit.parallel.groups import assign_groups, label_dims

    calls = label_dims(assign_groups(calls, groups), groups)
    calls = label_hccl_groups(calls, groups)
    return with_bandwidth(calls)


def ordered(calls: pd.DataFrame) -> pd.DataFrame:
    """The collectives table's columns in their order (HCCL columns last, where present)."""
    return calls[ordered_columns(calls)]


def ordered_columns(names: Any) -> list[str]:
    """The collectives table's column names in order, for a table (or mapping) with columns `names`."""
    return [*ORDER, *(c for c in HCCL_EXTRA if c in names)]


def build_collectives(frames: list[pd.DataFrame], distributed: list[dict[str, Any]]) -> pd.DataFrame:
    """The collectives table of all ranks held in memory (one input; many ranks go through
    tracekit.parallel.crossrank, which reads them from rank-partitioned Parquet)."""
    frames = [f for f in frames if len(f)]
    calls = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(COLUMNS))
    return ordered(label_calls(calls, distributed)).sort_values(["rank", "start_ns"], ignore_index=True)
