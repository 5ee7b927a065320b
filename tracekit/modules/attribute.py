"""Give every event its innermost nn.Module (forward AND backward) and its phase.

- Host events inside a module span take that module (`module_from = "span"`).
- Autograd nodes (`autograd::engine::evaluate_function: XBackward0`) and everything under them
  take the module of the forward op that created the node, the latest one recorded with the same
  `Sequence number` ("sequence"), or, where the
  number is missing (torch_npu), at the start of their `fwdbwd` flow ("fwdbwd"); AccumulateGrad
  nodes, which have none, take the module of the backward node that ran just before them on the
  same thread ("previous_node"). Module spans inside backward are recomputation (activation
  checkpointing): phase backward, `recompute` true.
- Device events take the module of their launch (or launching op) ("launch"); kernels without a
  launch in the trace but inside a device-side annotation (`nccl:all_reduce`) take the host event
  with the same External id ("gpu_annotation").
- Phases: forward, backward, loss (differentiable ops outside any module), optimizer
  (`Optimizer.step#`/`Optimizer.zero_grad#` annotations), other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tracekit.accounting import flow_status
from tracekit.ancestry import nearest_marked
from tracekit.modules.infer import infer_from_step_pattern
from tracekit.modules.spans import ModuleSpans, find_module_spans
from tracekit.table import DEVICE_KINDS, NO_ROW, EventTable, column, first_match, is_in, kind_in, matches, strings
from tracekit.tree import track_codes

BACKWARD_PREFIX = "autograd::engine::evaluate_function: "
_OPTIMIZER = re.compile(r"^Optimizer\.(step|zero_grad)#")
PHASES = ("forward", "backward", "loss", "optimizer", "other")
HOST_SPAN_KINDS = ("python", "module", "cpu_op", "runtime", "collective", "annotation", "step", "other")


@dataclass(frozen=True)
class ModuleCalls:
    """The module spans found and the path of each call: what the module table reads once the per-row columns are
    in the event table (a pipeline.Processed keeps this, not the per-row arrays: ~40 B a row)."""

    spans: ModuleSpans
    span_path: dict[int, str]  # span row -> path of the call (see _canonical_paths)
    repeat_rows: np.ndarray  # span rows that call an instance already running around them


@dataclass(frozen=True)
class ModuleColumns:
    """Per-row module attribution, plus the module spans and their canonical paths."""

    module: np.ndarray  # row of the module span (-1: none)
    module_path: np.ndarray  # object: "GPT_0/Block_2/MLP_0/Linear_1" or None
    module_type: np.ndarray  # object: "Linear" or None
    phase: np.ndarray  # object: one of PHASES or None
    recompute: np.ndarray  # bool: inside a module span that runs inside backward
    module_from: np.ndarray  # object: span / sequence / previous_node / launch / gpu_annotation / None
    spans: ModuleSpans
    span_path: dict[int, str]  # span row -> path of the call (see _canonical_paths)
    # span rows that call an instance already running around them (recursion): part of that call, not another
    repeat_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def calls(self) -> ModuleCalls:
        """The spans and their paths, without the per-row arrays."""
        return ModuleCalls(self.spans, self.span_path, self.repeat_rows)

    def as_columns(self) -> dict[str, object]:
        return {
            "module": self.module, "module_path": self.module_path, "module_type": self.module_type,
            "phase": self.phase, "recompute": self.recompute, "module_from": self.module_from,
        }


def attribute_modules(table: EventTable) -> ModuleColumns:
    """Module, path, type, phase for every row of a table that has tree and link columns.

    Each per-row intermediate is dropped once used (`del`): at 2.6 M rows each is 21 MB, and holding them all to the
    end set convert's peak (BENCHMARKS.md, "pmem21")."""
    ev = table.events
    n = len(ev)
    parent = column(ev, "parent")
    is_cpu_op = kind_in(ev, ("cpu_op",))
    src = column(ev, "source_index")
    spans = find_module_spans(ev, table.sources, table.args)

    is_span = np.zeros(n, dtype=bool)
    is_span[spans.rows] = True
    mod_of = nearest_marked(parent, is_span)
    is_bw = is_cpu_op & matches(column(ev, "name"), re.escape(BACKWARD_PREFIX))
    bw_of = nearest_marked(parent, is_bw)
    span_path, repeat_rows = _canonical_paths(ev, spans, parent, is_span, bw_of)
    del is_span

    module = mod_of.copy()
    module_from = np.full(n, None, dtype=object)
    module_from[mod_of >= 0] = "span"
    recompute = np.zeros(n, dtype=bool)
    in_bw = bw_of >= 0
    span_in_bw = np.zeros(n, dtype=bool)
    has_mod = mod_of >= 0
    span_in_bw[has_mod] = bw_of[mod_of[has_mod]] >= 0
    recompute[in_bw & has_mod & span_in_bw] = True
    del has_mod

    node_module, node_from = _backward_node_modules(ev, is_bw, mod_of, bw_of, span_in_bw)
    del span_in_bw
    plain_bw = np.flatnonzero(in_bw & ~recompute)
    module[plain_bw] = node_module[bw_of[plain_bw]]
    module_from[plain_bw] = node_from[bw_of[plain_bw]]
    del node_module, node_from, plain_bw
    is_accumulate = matches(column(ev, "name"), ".*AccumulateGrad")
    _gradient_sync(parent, kind_in(ev, ("collective",)), is_accumulate, bw_of, module, module_from, spans, span_path)
    del is_accumulate, bw_of

    seq = column(ev, "sequence")
    is_opt = kind_in(ev, ("annotation", "cpu_op")) & matches(column(ev, "name"), _OPTIMIZER)
    in_opt = nearest_marked(parent, is_opt) >= 0  # under an optimizer op, or within one's time on its track
    in_opt |= _within_ranges(ev, np.flatnonzero(is_opt)) >= 0
    loss_mark = is_cpu_op & (seq >= 0) & ~in_bw & (mod_of < 0) & ~in_opt
    maybe = np.flatnonzero(loss_mark)  # ...and whose sequence number a backward op of its source has
    loss_mark[maybe] = first_match((src[maybe], seq[maybe]), (src[is_bw], seq[is_bw])) >= 0
    del maybe
    del is_bw, is_cpu_op
    in_loss = nearest_marked(parent, loss_mark) >= 0
    del loss_mark

    phase = np.full(n, None, dtype=object)
    host = kind_in(ev, HOST_SPAN_KINDS)
    phase[host] = "other"
    phase[host & in_loss] = "loss"
    phase[host & (mod_of >= 0)] = "forward"
    phase[host & in_opt] = "optimizer"
    phase[host & in_bw] = "backward"
    del host, in_loss, mod_of, in_opt, in_bw

    _attribute_device(ev, src, module, module_from, phase, recompute)
    infer_from_step_pattern(ev, module, module_from, phase, recompute)
    module_path, module_type = _span_values(module, spans, span_path)
    return ModuleColumns(module, module_path, module_type, phase, recompute, module_from, spans, span_path,
                         repeat_rows)


def _span_values(module: np.ndarray, spans: ModuleSpans, span_path: dict[int, str]) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the path and the type of its module span (None where `module` names no span row): lookups by
    binary search in the span rows, not through two lookup arrays of one entry per row."""
    n = len(module)
    module_path = np.full(n, None, dtype=object)
    module_type = np.full(n, None, dtype=object)
    if not len(spans.rows):
        return module_path, module_type
    order = np.argsort(spans.rows, kind="stable")
    rows = spans.rows[order]
    last = np.append(rows[1:] != rows[:-1], True)  # a row listed twice: its last entry, as a loop of assignments
    rows, order = rows[last], order[last]
    paths = np.empty(len(rows), dtype=object)
    paths[:] = [span_path[r] for r in rows.tolist()]
    types = np.asarray(spans.module_type, dtype=object)[order]
    at = np.flatnonzero(module >= 0)
    pos = np.minimum(np.searchsorted(rows, module[at]), len(rows) - 1)
    hit = rows[pos] == module[at]
    at, pos = at[hit], pos[hit]
    module_path[at] = paths[pos]
    module_type[at] = types[pos]
    return module_path, module_type


_WRAPPERS = re.compile(r"DistributedDataParallel|FullyShardedDataParallel")


def _gradient_sync(parent: np.ndarray, is_collective: np.ndarray, is_accumulate: np.ndarray, bw_of: np.ndarray,
                   module: np.ndarray, module_from: np.ndarray, spans: ModuleSpans, span_path: dict[int, str]) -> None:
    """Collectives run by a gradient hook, under an `AccumulateGrad` node (DDP's bucket all-reduce, FSDP's
    reduce-scatter), belong to the data-parallel wrapper, not to the module whose gradient happened to complete
    the bucket: on the Ascend AlexNet run a 79 ms all-reduce was the last Linear's backward device time.
    They go to the nearest enclosing DistributedDataParallel / FullyShardedDataParallel span (or to no module
    where there is none), `module_from = "gradient_sync"`; their kernels follow them."""
    top = is_collective & (bw_of >= 0) & is_accumulate[np.maximum(bw_of, 0)]
    if not top.any():
        return
    top &= nearest_marked(parent, top, include_self=False) < 0
    rows = np.flatnonzero(nearest_marked(parent, top) >= 0)
    wrapper = np.zeros(len(parent), dtype=bool)
    for row in spans.rows.tolist():
        wrapper[row] = bool(_WRAPPERS.search(span_path.get(row, "").rpartition("/")[2]))
    owner = nearest_marked(parent, wrapper)
    current = module[rows]
    module[rows] = np.where(current >= 0, owner[np.maximum(current, 0)], NO_ROW)
    module_from[rows] = "gradient_sync"


_CHUNK = 1 << 16


def _within_ranges(ev: pd.DataFrame, range_rows: np.ndarray) -> np.ndarray:
    """Per row, a range row on the same track whose [ts, ts+dur) holds the row's start (or -1).

    Annotations opened from Python often start inside the frame that opens them and so only partly
    overlap their ops in the call tree; time containment on the track finds their ops anyway.
    """
    out = np.full(len(ev), NO_ROW, dtype=np.int64)
    if not len(range_rows):
        return out
    track = track_codes(ev)
    ts, dur = column(ev, "ts_ns"), column(ev, "dur_ns")
    for code in np.unique(track[range_rows]).tolist():
        mine = range_rows[track[range_rows] == code]
        mine = mine[np.argsort(ts[mine], kind="stable")]
        starts, ends = ts[mine], ts[mine] + np.maximum(dur[mine], 0)  # the ranges' (not every row's)
        rows = np.flatnonzero(track == code)
        for at in range(0, len(rows), _CHUNK):  # the track's rows a chunk at a time: few arrays of every row
            part = rows[at : at + _CHUNK]
            start = ts[part]
            pos = np.searchsorted(starts, start, side="right") - 1
            inside = (pos >= 0) & (start < ends[np.maximum(pos, 0)])
            out[part[inside]] = mine[pos[inside]]
    return out


def _canonical_paths(ev: pd.DataFrame, spans: ModuleSpans, parent: np.ndarray, is_span: np.ndarray,
                     bw_of: np.ndarray) -> tuple[dict[int, str], np.ndarray]:
    """Path of every span row: the chain of instances that enclose this call, innermost last.

    A module is named by where it is called: an instance called from several parents (vLLM's one rotary
    embedding shared by every attention layer, OWLv2's post-layernorm reused by its detection head)
    appears under each of them with its own instance name, so each call's time, shapes, ops and kernels
    stay with the parent that made them. A call of an instance already open around it (recursion, a
    wrapper's `forward` inside itself) is that enclosing call's module. A call with no enclosing span
    inside backward (the root of an activation-checkpointing recomputation) takes the path of its
    instance's first forward call, so the recomputed subtree lands in the forward tree.
    Also returns the rows of those recursive calls.
    """
    if not len(spans):
        return {}, np.zeros(0, dtype=np.int64)
    enclosing = nearest_marked(parent, is_span, include_self=False)
    src = column(ev, "source_index")
    ts = column(ev, "ts_ns")
    rows = spans.rows
    instance = dict(zip(rows.tolist(), spans.instance.tolist()))
    children: dict[int, list[int]] = {}
    roots = []
    for row in rows[np.argsort(ts[rows], kind="stable")].tolist():
        up = int(enclosing[row])
        if up >= 0:
            children.setdefault(up, []).append(row)
        else:
            roots.append(row)
    roots.sort(key=lambda r: bw_of[r] >= 0)  # forward roots first (stable: in time order)
    first_forward: dict[tuple[int, str], str] = {}  # (source, instance) -> path of its first forward call
    path: dict[int, str] = {}
    repeats: list[int] = []
    for root in roots:
        key = (int(src[root]), instance[root])
        path[root] = first_forward.get(key, instance[root]) if bw_of[root] >= 0 else instance[root]
        _name_subtree(root, path, children, instance, src, bw_of, first_forward, repeats)
    return {row: path[row] for row in rows.tolist()}, np.sort(np.asarray(repeats, dtype=np.int64))


def _name_subtree(root: int, path: dict[int, str], children: dict[int, list[int]], instance: dict[int, str],
                  src: np.ndarray, bw_of: np.ndarray, first_forward: dict[tuple[int, str], str],
                  repeats: list[int]) -> None:
    """Depth-first from a named root: each call's path below its enclosing call's, recursion collapsed."""
    source = int(src[root])
    open_paths = {instance[root]: path[root]}  # instance -> its path, for the calls open on the current chain
    if bw_of[root] < 0:
        first_forward.setdefault((source, instance[root]), path[root])
    stack = [(c, path[root]) for c in reversed(children.get(root, []))]
    while stack:
        call, up_path = stack.pop()
        if call < 0:  # every call below ~call is named: close it
            del open_paths[instance[~call]]
            continue
        name = instance[call]
        if name in open_paths:  # the instance is already running around this call
            path[call] = open_paths[name]
            repeats.append(call)
        else:
            path[call] = open_paths[name] = f"{up_path}/{name}"
            stack.append((~call, ""))
        if bw_of[call] < 0:
            first_forward.setdefault((source, name), path[call])
        stack.extend((c, path[call]) for c in reversed(children.get(call, [])))


def _backward_node_modules(ev: pd.DataFrame, is_bw: np.ndarray, mod_of: np.ndarray, bw_of: np.ndarray,
                           span_in_bw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Module span row (and how it was found) for every autograd node row."""
    n = len(ev)
    node_module = np.full(n, NO_ROW, dtype=np.int64)
    node_from = np.full(n, None, dtype=object)
    nodes = np.flatnonzero(is_bw)
    if not len(nodes):
        return node_module, node_from
    src = column(ev, "source_index")
    seq = column(ev, "sequence")
    forward = kind_in(ev, ("cpu_op", "collective")) & (seq >= 0) & ~is_bw & ((bw_of < 0) | span_in_bw)
    fwd = np.flatnonzero(forward)
    # An op records the number the next autograd node will take; only an op that creates a node takes it.
    # Ops on inputs that need no gradient (an upsample of the data, an arange) so share the number of the
    # next node-creating op: that op, the latest with the number, is the one whose backward this node runs.
    fwd = fwd[np.lexsort((column(ev, "depth")[fwd], column(ev, "ts_ns")[fwd]))][::-1]
    at = first_match((src[nodes], seq[nodes]), (src[fwd], seq[fwd]))
    creator = np.where(at >= 0, fwd[np.maximum(at, 0)], NO_ROW)
    found = (creator >= 0) & (mod_of[np.maximum(creator, 0)] >= 0)
    node_module[nodes[found]] = mod_of[creator[found]]
    node_from[nodes[found]] = "sequence"
    _from_fwdbwd_flows(ev, bw_of, mod_of, node_module, node_from)
    _accumulate_grad_from_previous(ev, nodes, node_module, node_from)
    return node_module, node_from


def _from_fwdbwd_flows(ev: pd.DataFrame, bw_of: np.ndarray, mod_of: np.ndarray, node_module: np.ndarray,
                       node_from: np.ndarray) -> None:
    """Nodes without a Sequence number (torch_npu writes -1): follow the `fwdbwd` flow from the forward op."""
    if not (kind_in(ev, ("flow",)) & is_in(column(ev, "cat"), ("fwdbwd",))).any():
        return
    _, pairs = flow_status(ev, np.full(len(ev), NO_ROW, dtype=np.int64))
    pairs = pairs[pairs["cat"] == "fwdbwd"]
    start, end = pairs["start"].to_numpy(np.int64), pairs["end"].to_numpy(np.int64)
    node = bw_of[end]
    ok = (node >= 0) & (mod_of[start] >= 0) & (bw_of[start] < 0)
    node, start = node[ok], start[ok]
    todo = node_module[node] < 0
    node_module[node[todo]] = mod_of[start[todo]]
    node_from[node[todo]] = "fwdbwd"


def _accumulate_grad_from_previous(ev: pd.DataFrame, nodes: np.ndarray, node_module: np.ndarray,
                                   node_from: np.ndarray) -> None:
    """AccumulateGrad runs right after the node that produced the gradient: take that node's module."""
    names = strings(column(ev, "name"), nodes)  # the nodes' names, in the order of `nodes`
    src, pid, tid = (column(ev, k)[nodes] for k in ("source_index", "pid", "tid"))
    order = np.lexsort((nodes, column(ev, "ts_ns")[nodes], tid, pid, src))
    last: dict[tuple, int] = {}
    for s, p, t, row, name in zip(src[order].tolist(), pid[order].tolist(), tid[order].tolist(),
                                  nodes[order].tolist(), names[order].tolist()):
        key = (s, p, t)
        if node_module[row] >= 0:
            last[key] = int(node_module[row])
        elif "AccumulateGrad" in str(name) and key in last:
            node_module[row] = last[key]
            node_from[row] = "previous_node"


def _attribute_device(ev: pd.DataFrame, src: np.ndarray, module: np.ndarray, module_from: np.ndarray,
                      phase: np.ndarray, recompute: np.ndarray) -> None:
    """Device rows take module/phase of their launch, launching op, or the host twin of their annotation."""
    device = kind_in(ev, DEVICE_KINDS)
    launch = column(ev, "launch")
    launcher = column(ev, "launcher")
    link = np.where(launcher >= 0, launcher, launch)  # the op (NPU launches sit on the CANN thread, outside it)
    link[~device] = NO_ROW
    _link_by_gpu_annotation(ev, src, device, link)
    rows = np.flatnonzero(link >= 0)
    host = link[rows]
    via_annotation = np.zeros(len(ev), dtype=bool)
    via_annotation[rows] = (launch[rows] < 0) & (launcher[rows] < 0)
    module[device] = NO_ROW
    module_from[device] = None
    module[rows] = module[host]
    has = rows[module[rows] >= 0]
    module_from[has] = np.where(via_annotation[has], "gpu_annotation", "launch")
    phase[rows] = phase[host]
    recompute[rows] = recompute[host]


def _link_by_gpu_annotation(ev: pd.DataFrame, src: np.ndarray, device: np.ndarray, link: np.ndarray) -> None:
    """Kernels with no launch, inside a `gpu_user_annotation`: the host row with the same External id."""
    is_gpu_ann = is_in(column(ev, "cat"), ("gpu_user_annotation",))
    need = np.flatnonzero(device & (link < 0))
    if not len(need) or not is_gpu_ann.any():
        return
    ann_of = _within_ranges(ev, np.flatnonzero(is_gpu_ann))[need]
    ext = column(ev, "external_id")
    host = np.flatnonzero(~is_gpu_ann & (ext >= 0) & kind_in(ev, ("annotation", "collective", "step", "cpu_op")))
    ok = ann_of >= 0
    at = first_match((src[need[ok]], ext[ann_of[ok]]), (src[host], ext[host]))
    link[need[ok][at >= 0]] = host[at[at >= 0]]
