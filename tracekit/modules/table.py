"""modules table: one row per module instance (path) with its calls, times, shapes, params and FLOPs."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from tracekit.ancestry import nearest_marked
from tracekit.converters.args_bytes import take_args
from tracekit.modules.attribute import BACKWARD_PREFIX, ModuleCalls
from tracekit.modules.call_details import SLICE_NOTE, first_call_details
from tracekit.modules.conv_grads import fill_from_kernels
from tracekit.modules.coverage import (
    COMPILED_NOTE,
    Names,
    compiled_regions,
    math_kernel_launchers,
    names_below,
    uncounted_note,
    uncounted_ops,
)
from tracekit.modules.opflops import FLOP_OP_PATTERN, flops
from tracekit.modules.opshapes import decode_op_args
from tracekit.modules.path_trie import PathTrie
from tracekit.table import (
    DEVICE_KINDS,
    EventTable,
    NonNegative,
    TextAt,
    column,
    few_group_codes,
    first_of_group,
    is_in,
    kind_in,
    matches,
)

_FLOP_OPS = re.compile(FLOP_OP_PATTERN)
__all__ = ["COMPARE_COLUMNS", "MODULE_COLUMNS", "SLICE_NOTE", "module_columns", "module_frame", "module_table"]
MODULE_COLUMNS = (
    "source_index", "rank", "module_path", "module_type", "type_from", "parent_path", "depth", "calls", "first_call_ns",
    "steady_ns", "total_ns", "self_ns", "backward_ns", "device_ns_fwd", "device_ns_bwd", "kernel_count",
    "op_count", "input_shapes", "input_dtypes", "input_from", "last_input_shapes", "output_shapes", "output_from",
    "own_params", "params",
    "flops_fwd", "flops_bwd", "achieved_tflops", "flops_from", "params_from",
)
# what `tracekit compare` reads of a module table (tracekit.compare.align and compare.table.MODULE_FIELDS)
COMPARE_COLUMNS = (
    "module_path", "module_type", "parent_path", "calls", "total_ns", "backward_ns", "device_ns_fwd", "device_ns_bwd",
    "kernel_count", "op_count", "input_shapes", "input_dtypes", "output_shapes", "params", "flops_fwd",
)


def module_table(table: EventTable, modules: ModuleCalls, columns: tuple[str, ...] = MODULE_COLUMNS
                 ) -> pd.DataFrame:
    """One row per (source, module path), in first-call order. `columns=COMPARE_COLUMNS`: only those (the same
    values and dtypes), without the evidence notes and last-call shapes that only the full table holds."""
    return module_frame(module_columns(table, modules, details=columns == MODULE_COLUMNS), columns)


def module_frame(columns: dict[str, object] | None, names: tuple[str, ...] = MODULE_COLUMNS) -> pd.DataFrame:
    """The module table of `module_columns`' columns (None: no module spans), of the columns `names`."""
    if columns is None:
        return pd.DataFrame({c: [] for c in names})
    frame = pd.DataFrame({c: columns[c] for c in names} if names != MODULE_COLUMNS else columns)
    if not len(frame):  # every span is a recomputation: the column types the earlier pandas version gave
        frame = frame.astype({c: t for c, t in (("module_path", np.float64), ("steady_ns", np.int64)) if c in frame})
    return frame


def module_columns(table: EventTable, modules: ModuleCalls, details: bool = True) -> dict[str, object] | None:
    """The columns of `module_table` (MODULE_COLUMNS, in order) as the arrays and lists it is made from, before pandas
    infers their dtypes (a rank's partition writer takes them to Arrow without a frame); None without module spans.
    Without `details`, the notes (`flops_from`, `params_from`, `input_from`, `output_from`) and `last_input_shapes`
    are not made (None): what compare reads is the same."""
    ev = table.events
    spans = modules.spans
    if not len(spans):
        return None
    # names and phases read at rows (TextAt), durations clipped at rows: no object or int64 copy of every row
    names = TextAt(column(ev, "name"))
    src = column(ev, "source_index")
    ts = column(ev, "ts_ns")
    dur = NonNegative(column(ev, "dur_ns"))
    recompute = column(ev, "recompute")
    phase = TextAt(column(ev, "phase"))

    # a recursive call (an instance called inside its own running call) is part of that call: not counted again
    fwd_spans = spans.rows[~recompute[spans.rows] & ~np.isin(spans.rows, modules.repeat_rows)]
    fwd_spans = fwd_spans[np.lexsort((fwd_spans, ts[fwd_spans], src[fwd_spans]))]
    at_span = np.searchsorted(spans.rows, fwd_spans)
    span_path = np.array([modules.span_path[r] for r in fwd_spans.tolist()], dtype=object)
    group, first = _groups_in_order(src[fwd_spans], span_path)
    first_row = fwd_spans[first]
    span_dur = dur[fwd_spans]
    out: dict[str, object] = {
        "source_index": src[first_row], "module_path": span_path[first],
        "module_type": _first_known(group, spans.module_type[at_span], len(first)),
        "type_from": _first_known(group, _type_from(spans)[at_span], len(first)),
        "calls": np.bincount(group, minlength=len(first)), "total_ns": _sum_int(group, span_dur, len(first)),
        "first_row": first_row, "last_row": fwd_spans[_last_of(group, len(first))], "first_call_ns": span_dur[first],
        "steady_ns": _steady(group, first, span_dur),
    }
    out["parent_path"] = [p.rpartition("/")[0] or None for p in out["module_path"]]
    out["depth"] = [p.count("/") for p in out["module_path"]]
    rank_of = {i: s.rank for i, s in enumerate(table.sources)}
    out["rank"] = [rank_of.get(int(s), -1) for s in out["source_index"]]

    is_span = np.zeros(len(ev), dtype=bool)
    is_span[fwd_spans] = True
    enclosing = nearest_marked(column(ev, "parent"), is_span, include_self=False)[fwd_spans]
    del is_span
    by_row = np.argsort(fwd_spans)  # the enclosing span of a span is a span: its children's time kept per span
    child = np.zeros(len(fwd_spans), dtype=np.int64)
    inner = enclosing >= 0
    np.add.at(child, by_row[np.searchsorted(fwd_spans, enclosing[inner], sorter=by_row)], span_dur[inner])
    out["self_ns"] = _sum_int(group, span_dur - child, len(first))
    del by_row, child, inner, enclosing

    device = kind_in(ev, DEVICE_KINDS)
    host_ops = kind_in(ev, ("cpu_op", "collective"))
    is_node = host_ops & matches(column(ev, "name"), re.escape(BACKWARD_PREFIX))
    top_node = is_node & (nearest_marked(column(ev, "parent"), is_node, include_self=False) < 0)
    has_rule = host_ops & matches(column(ev, "name"), _FLOP_OPS)
    flop_rows, flop_values, flop_inferred = _op_flops(ev, table, names, has_rule)
    # compute ops no rule counts make their modules' FLOPs unknown, not smaller
    name_codes = Names(ev["name"])
    no_rule = uncounted_ops(column(ev, "parent"), name_codes, host_ops, has_rule)
    no_rule = (no_rule | math_kernel_launchers(column(ev, "parent"), name_codes, kind_in(ev, ("kernel",)),
                                                column(ev, "launcher"), column(ev, "launch"), has_rule,
                                                no_rule)) & ~recompute
    inclusive = _Inclusive(src, ev["module_path"], out["source_index"], out["module_path"])
    forward, backward = is_in(column(ev, "phase"), ("forward",)), is_in(column(ev, "phase"), ("backward",))
    out["device_ns_fwd"] = inclusive.sums(device & forward & ~recompute, dur)
    out["device_ns_bwd"] = inclusive.sums(device & backward, dur)
    out["backward_ns"] = inclusive.sums(top_node, dur)
    out["kernel_count"] = inclusive.sums(device & (forward | backward))
    out["op_count"] = inclusive.sums(host_ops & (forward | backward))
    paths = inclusive.paths
    for which in ("forward", "backward"):
        mask = np.zeros(len(ev), dtype=bool)
        weight = np.zeros(len(ev), dtype=np.float64)
        pick = flop_rows[(phase[flop_rows] == which) & ~recompute[flop_rows]]
        mask[pick] = True
        weight[flop_rows] = np.nan_to_num(flop_values)
        total = _flop_sums(inclusive, out, src, paths, mask, weight)
        # an op with a FLOP rule whose shapes did not allow counting (no stride/padding recorded, ...)
        # makes its modules' FLOPs unknown (NaN, shown blank), not a smaller number
        unknown = np.zeros(len(ev), dtype=bool)
        unknown[pick[np.isnan(flop_values[np.searchsorted(flop_rows, pick)])]] = True
        unknown |= no_rule & (forward if which == "forward" else backward)
        uncounted = inclusive.sums(unknown)
        out[f"flops_{'fwd' if which == 'forward' else 'bwd'}"] = np.where(
            uncounted > 0, np.nan, np.round(total / out["calls"]))
        del mask, weight, unknown  # (9 B a row each round: not kept beside the next stages)
    inferred = np.zeros(len(ev), dtype=bool)
    inferred[flop_rows[flop_inferred & ~recompute[flop_rows]]] = True
    if details:
        no_rule_names = names_below(src, paths, names, np.flatnonzero(no_rule & (forward | backward)))
        out["flops_from"] = _flops_from(inclusive.sums(inferred), out["calls"], out["flops_bwd"],
                                        [no_rule_names.get((int(s), p)) for s, p in zip(out["source_index"],
                                                                                       out["module_path"])])
    else:
        out["flops_from"] = None
    device_ns = out["device_ns_fwd"] + out["device_ns_bwd"]
    total_flops = (out["flops_fwd"] + out["flops_bwd"]) * out["calls"]
    out["achieved_tflops"] = np.where(device_ns > 0, total_flops / np.maximum(device_ns, 1) / 1e3, np.nan)
    out.update(first_call_details(out, ev, table, names, modules, details))
    hidden = compiled_regions(name_codes, kind_in(ev, ("cpu_op", "runtime"))) & forward & ~recompute
    _unknown_in_compiled(out, inclusive, src, paths, hidden)
    _unknown_without_shapes(out, ev, table)
    return {name: out[name] for name in MODULE_COLUMNS}


def _unknown_in_compiled(out: dict[str, object], inclusive: _Inclusive, src: np.ndarray, paths: np.ndarray,
                         compiled: np.ndarray) -> None:
    """Params of a module whose forward runs a torch.compile graph or replays a CUDA graph are unknown (null), with
    the reason in `params_from`; so are those of every module above it. Its own params too where the graph runs in
    its own code (not only in a module below it)."""
    below = inclusive.sums(compiled) > 0
    rows = np.flatnonzero(compiled)
    own_graph = set(zip(src[rows].tolist(), paths[rows].tolist()))
    own = np.array([(int(s), p) in own_graph for s, p in zip(out["source_index"], out["module_path"])], dtype=bool)
    out["params_from"] = pd.Series([COMPILED_NOTE if b else note for b, note in zip(below.tolist(),
                                                                                  out["params_from"])], dtype="str")
    if not below.any():
        return
    for name, unknown in (("own_params", own), ("params", below)):
        values = pd.array(out[name], dtype="Int64")
        values[unknown] = pd.NA
        out[name] = values


def _unknown_without_shapes(out: dict[str, object], ev: pd.DataFrame, table: EventTable) -> None:
    """Params and FLOPs of the modules of a source that recorded no op input shapes (VizTracer, torch.profiler
    without record_shapes) are unknown (null/NaN), not 0: nothing in such a trace can count them."""
    src = np.asarray(out["source_index"])
    unknown = ~np.isin(src, _sources_with_shapes(ev, table))
    if not unknown.any():
        return
    for name in ("own_params", "params"):
        values = pd.array(out[name], dtype="Int64")
        values[unknown] = pd.NA
        out[name] = values
    for name in ("flops_fwd", "flops_bwd", "achieved_tflops"):
        out[name] = np.where(unknown, np.nan, out[name])


def _sources_with_shapes(ev: pd.DataFrame, table: EventTable, sample: int = 2000) -> list[int]:
    """Sources whose ops carry `Input Dims` (record_shapes): the key is on every op when it is on, so the first
    `sample` ops of a source tell."""
    ops = np.flatnonzero(kind_in(ev, ("cpu_op",)))
    if not len(ops) or table.args is None:
        return []
    src = column(ev, "source_index")[ops]
    found = []
    for source in np.unique(src).tolist():
        rows = ops[src == source][:sample]
        if any(raw and b"Input Dims" in raw for raw in take_args(table.args, rows).to_pylist()):
            found.append(source)
    return found


def _groups_in_order(src: np.ndarray, paths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group of each (source, path) pair, numbered in order of first appearance, and each group's first position."""
    path_codes, path_values = pd.factorize(paths)
    group, _ = pd.factorize(src.astype(np.int64) * max(len(path_values), 1) + path_codes)
    first = np.full(int(group.max()) + 1 if len(group) else 0, len(group), dtype=np.int64)
    np.minimum.at(first, group, np.arange(len(group)))
    return group, first


def _last_of(group: np.ndarray, groups: int) -> np.ndarray:
    """Per group, the position of its last member (the spans are in time order)."""
    last = np.zeros(groups, dtype=np.int64)
    np.maximum.at(last, group, np.arange(len(group), dtype=np.int64))
    return last


def _first_known(group: np.ndarray, values: np.ndarray, groups: int) -> np.ndarray:
    """Per group, its first value that is not None (None where all are)."""
    known = np.flatnonzero(values != None)  # noqa: E711 (object array)
    first = np.full(groups, len(values), dtype=np.int64)
    np.minimum.at(first, group[known], known)
    return np.append(values, None)[first]


def _sum_int(group: np.ndarray, values: np.ndarray, groups: int) -> np.ndarray:
    total = np.zeros(groups, dtype=np.int64)
    np.add.at(total, group, values)
    return total


def _steady(group: np.ndarray, first: np.ndarray, dur: np.ndarray) -> np.ndarray:
    """Per group, the median duration of the calls after the first (NaN with one call)."""
    later = np.ones(len(group), dtype=bool)
    later[first] = False
    g, d = group[later], dur[later]
    order = np.lexsort((d, g))
    g, d = g[order], d[order].astype(np.float64)
    count = np.bincount(g, minlength=len(first))
    begin = np.cumsum(count) - count
    out = np.full(len(first), np.nan)
    has = count > 0
    lo, hi = begin[has] + (count[has] - 1) // 2, begin[has] + count[has] // 2
    out[has] = (d[lo] + d[hi]) / 2
    return out


class _Inclusive:
    """Sums over the rows in a module or any module below it, for many row masks.

    The (source, path) pairs of the rows and of the modules go once into a trie of their `/`-separated
    parts (see _roll_up); its nodes in depth-first order make every module's subtree one contiguous
    range, so a sum over a subtree is a difference of prefix sums, vectorized per mask."""

    def __init__(self, src: np.ndarray, path_column: pd.Series, out_src: np.ndarray, out_paths: np.ndarray):
        if isinstance(path_column.dtype, pd.CategoricalDtype):
            codes = path_column.array.codes  # (its own small int type: no int64 copy of every row)
            cats = np.asarray(path_column.array.categories, dtype=object)
            self.paths: TextAt | np.ndarray = TextAt(path_column.array)  # a row's path, read at the rows asked
        else:
            codes, cats = pd.factorize(path_column.to_numpy(dtype=object))
            cats = np.asarray(cats, dtype=object)
            self.paths = np.append(cats, None)[codes]
        has = np.flatnonzero(codes >= 0)
        # the (source, path) pair of each row with a path: few distinct pairs, numbered without a hash table of rows
        pair, pairs = few_group_codes(np.asarray(src), codes, rows=has)
        first = has[first_of_group(pair, pairs)]
        trie = PathTrie()
        pair_node = np.array([trie.node(int(s), cats[c], create=True)
                              for s, c in zip(src[first].tolist(), codes[first].tolist())], dtype=np.int64)
        out_node = np.array([trie.node(int(s), p, create=True) for s, p in zip(out_src.tolist(), out_paths)],
                            dtype=np.int64)
        pos, size = _preorder(trie.up)
        self.row_pos = np.full(len(codes), -1, dtype=np.int32 if len(trie.up) < 2**31 - 1 else np.int64)
        self.row_pos[has] = pos[pair_node[pair]]
        self.nodes = len(trie.up)
        self.begin, self.end = pos[out_node], pos[out_node] + size[out_node]

    def sums(self, mask: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
        """Per module: the sum of the integer `weight` (or the count) of the masked rows in it or below it."""
        rows = np.flatnonzero(mask & (self.row_pos >= 0))
        at_node = np.zeros(self.nodes, dtype=np.int64)
        np.add.at(at_node, self.row_pos[rows], 1 if weight is None else weight[rows])
        prefix = np.append(0, np.cumsum(at_node))
        return prefix[self.end] - prefix[self.begin]


def _preorder(up: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Depth-first position of every trie node and the size of its subtree (itself included)."""
    children: list[list[int]] = [[] for _ in up]
    for node in range(1, len(up)):
        children[up[node]].append(node)
    pos = np.zeros(len(up), dtype=np.int64)
    size = np.ones(len(up), dtype=np.int64)
    order: list[int] = []
    stack = [0]
    while stack:
        node = stack.pop()
        pos[node] = len(order)
        order.append(node)
        stack.extend(reversed(children[node]))
    for node in reversed(order[1:]):
        size[up[node]] += size[node]
    return pos, size


def _type_from(spans) -> np.ndarray:
    """How each span's type is known (torch, subclass_method, defining_class, unknown_name, record_function)."""
    if spans.type_from is not None:
        return spans.type_from
    return np.full(len(spans.rows), None, dtype=object)


def _flop_sums(inclusive: _Inclusive, out: dict[str, object], src: np.ndarray, paths: np.ndarray,
               mask: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Per module, the FLOPs of the masked rows in it or below it. Whole numbers whose total stays below 2**53
    sum exactly in int64, in any order, to what the float sums give; others take the float path."""
    picked = weight[mask]
    if not len(picked):
        return np.zeros(len(out["calls"]))
    if np.all(np.floor(picked) == picked) and picked.min() >= 0 and picked.sum() < 2.0**53:
        whole = np.zeros(len(weight), dtype=np.int64)
        whole[mask] = picked.astype(np.int64)
        return inclusive.sums(mask, whole).astype(np.float64)
    return _inclusive(out["source_index"], out["module_path"], src, paths, mask, weight)


def _inclusive(out_src: np.ndarray, out_paths: np.ndarray, src: np.ndarray, paths: np.ndarray, mask: np.ndarray,
               weight: np.ndarray) -> np.ndarray:
    """Per module row: the sum of the float `weight` over masked rows in it or any descendant (the FLOP sums:
    summed per path by pandas, then up the trie, in that order, so that the float result stays the same)."""
    rows = np.flatnonzero(mask)
    rows = rows[np.not_equal(paths[rows], None)]  # (paths: an object array or a TextAt)
    if not len(rows):
        return np.zeros(len(out_src))
    frame = pd.DataFrame({"s": src[rows], "p": paths[rows], "w": weight[rows]})
    return np.array(_roll_up(frame.groupby(["s", "p"])["w"].sum().to_dict(), zip(out_src, out_paths)))


def _roll_up(exact: dict[tuple[int, str], float], keys) -> list[float]:
    """Per (source, path) of `keys`: the value of that path plus those of every path below it (0 if none).

    The paths go into a trie of their `/`-separated parts, values flow from children to parents
    in reverse creation order, and each key is looked up in the trie: linear in the length of the
    paths, however many `/` they hold (no prefix string is built).
    """
    trie = PathTrie()
    for (s, p), w in exact.items():
        node = trie.node(int(s), p, create=True)
        trie.total[node] = trie.total[node] + w
    total, up = trie.total, trie.up
    for node in range(len(up) - 1, 0, -1):
        total[up[node]] = total[up[node]] + total[node]
    found = [trie.node(int(s), p, create=False) for s, p in keys]
    return [total[node] if node > 0 else 0 for node in found]


def _op_flops(ev: pd.DataFrame, table: EventTable, names: np.ndarray, has_rule: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of the outermost FLOP-counted ops, their FLOPs (NaN where the op's shapes did not allow counting) and
    which of them were counted from the kernels they launched (conv backward without a recorded output_mask)."""
    outer = has_rule & (nearest_marked(column(ev, "parent"), has_rule, include_self=False) < 0)
    rows = np.flatnonzero(outer)
    decoded = decode_op_args(table.args, rows)
    counted = (flops(str(names[r]), decoded[r]) for r in rows.tolist())
    values = np.array([np.nan if f is None else f for f in counted], dtype=np.float64)
    return rows, values, fill_from_kernels(ev, names, rows, values, decoded)


def _flops_from(inferred: np.ndarray, calls: np.ndarray, flops_bwd: np.ndarray, no_rule: list) -> pd.Series:
    """The evidence note of modules whose backward FLOPs count conv gradients read from kernel names, or whose
    FLOPs an op without a rule leaves unknown (a text column even where every value is missing, so that every
    rank's partition has the same schema)."""
    notes = []
    for n, c, f, missing in zip(*(np.asarray(a).tolist() for a in (inferred, calls, flops_bwd)), no_rule):
        note = [] if not n or np.isnan(f) else [
            f"inferred: the gradients of {n / max(c, 1):g} convolution_backward per call (no output_mask recorded) "
            "from the kernels they launched (Conv2DBackpropInput/Filter)"]
        if missing:
            note.append(uncounted_note(missing, c))
        notes.append("; ".join(note) or None)
    return pd.Series(notes, dtype="str")


