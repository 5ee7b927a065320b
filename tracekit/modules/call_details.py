"""Per module, what its first call's ops say: input and output shapes, parameters (own and inclusive) and how
each was found; and the input shapes of its last call where they differ (prefill then decode, varying batches)."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pandas as pd

from tracekit.ancestry import nearest_marked
from tracekit.modules.attribute import ModuleCalls
from tracekit.modules.opshapes import (
    LINEAR_ADDMM,
    LINEAR_ADDMM_NOTE,
    OUT_INPUTS,
    PARAM_INPUTS,
    PARAM_LISTS,
    created_shape,
    decode_op_args,
    input_tensors,
    linear_addmm,
    module_output,
    param_count,
    param_shapes,
)
from tracekit.modules.params_infer import (
    NORM_MUL,
    OWN_MATMULS,
    leaf_norms,
    matmul_operands,
    norm_note,
    norm_weight,
    own_matmul_note,
    rows_of,
    tied_notes,
)
from tracekit.modules.path_trie import PathTrie
from tracekit.modules.spans import RECORD_FUNCTION
from tracekit.table import EventTable, TextAt, column, is_in, kind_in
from tracekit.tree import track_codes

FIRST_OPS_TRIED = 8


def first_call_details(out: dict[str, object], ev: pd.DataFrame, table: EventTable, names: TextAt | np.ndarray,
                        modules: ModuleCalls, details: bool = True) -> dict[str, list]:
    """input/output shapes and params from the ops of each module's first call, and the input shapes of its last
    call where they differ from the first's (columns by name). Without `details`: no last-call shapes and no
    notes (`input_from`, `output_from`, `params_from` None; the shapes and params are the same)."""
    ops = np.flatnonzero(kind_in(ev, ("cpu_op",)))
    module = column(ev, "module")
    track = track_codes(ev)
    ts, dur = column(ev, "ts_ns"), column(ev, "dur_ns")
    op_parent = nearest_marked(column(ev, "parent"), kind_in(ev, ("cpu_op",)), include_self=False)
    order = ops[np.lexsort((ops, ts[ops], track[ops]))]
    order_track, order_ts = track[order], ts[order]
    index = range(len(out["first_row"]))

    def top_ops(spans: list[int]) -> tuple[dict[int, np.ndarray], dict[int, int]]:
        """Per module index: the first top-level ops of the call at `spans[idx]`, and its last one."""
        firsts, lasts = {}, {}
        for idx, span in zip(index, spans):
            if span < 0:
                continue
            lo = np.searchsorted(order_track, track[span], side="left")
            hi = np.searchsorted(order_track, track[span], side="right")
            a = lo + np.searchsorted(order_ts[lo:hi], ts[span], side="left")
            b = lo + np.searchsorted(order_ts[lo:hi], ts[span] + max(int(dur[span]), 0), side="left")
            inside = order[a:b]
            top = inside[(op_parent[inside] < 0) | (ts[np.maximum(op_parent[inside], 0)] < ts[span])]
            if len(top):
                firsts[idx], lasts[idx] = top[:FIRST_OPS_TRIED], int(top[-1])
        return firsts, lasts

    firsts, lasts = top_ops(out["first_row"].tolist())
    later = [int(last) if last != first else -1 for first, last in zip(out["first_row"].tolist(), out["last_row"])]
    last_firsts, _ = top_ops(later) if details else ({}, {})
    own: dict[int, int] = {}
    own_shapes: dict[int, list[list[int]]] = {}
    param_rows = ops[is_in(column(ev, "name"), (*PARAM_INPUTS, *PARAM_LISTS, LINEAR_ADDMM))[ops]]  # on the codes
    # only the outermost: instance_norm calls batch_norm with its weights repeated per sample, lstm may run linear
    is_param_op = np.zeros(len(ev), dtype=bool)
    is_param_op[param_rows] = True
    param_rows = param_rows[nearest_marked(column(ev, "parent"), is_param_op, include_self=False)[param_rows] < 0]
    first_rows = dict(zip(out["first_row"].tolist(), index))
    param_rows = param_rows[np.isin(module[param_rows], out["first_row"])]  # only first calls are read
    first_ops = [int(r) for found in (firsts, last_firsts) for rows in found.values() for r in rows]
    wanted = np.unique(np.array(first_ops + list(lasts.values()) + param_rows.tolist(), dtype=np.int64))
    decoded = decode_op_args(table.args, wanted)
    inferred: set[int] = set()
    for row in param_rows.tolist():
        idx = first_rows.get(int(module[row]))
        if idx is not None and linear_addmm(str(names[row]), decoded[row]):
            inferred.add(idx)
        if idx is not None:
            own[idx] = own.get(idx, 0) + param_count(str(names[row]), decoded[row])
            own_shapes.setdefault(idx, []).extend(param_shapes(str(names[row]), decoded[row]))
    evidence = {i: [LINEAR_ADDMM_NOTE] for i in inferred}
    types, paths, sources = list(out["module_type"]), list(out["module_path"]), np.asarray(out["source_index"]).tolist()
    norms = leaf_norms(types, paths, sources, own)
    if norms:  # RMSNorm written out as `weight * x`: the 1-d operand of its mul is the weight
        mul_rows = rows_of(module, ops[names[ops] == NORM_MUL], first_rows, norms)
        mul_args = decode_op_args(table.args, mul_rows)
        for row in mul_rows.tolist():
            idx, weight = first_rows[int(module[row])], norm_weight(mul_args[row])
            if weight and idx not in evidence:
                own[idx], evidence[idx] = weight[0], [norm_note(weight)]
    def batch_of(idx: int) -> int | None:
        tensors, _ = _data_inputs(firsts.get(idx, []), names, decoded)
        return tensors[0][0][0] if tensors and tensors[0][0] else None

    if details:  # notes only: they change no count
        own_matmuls = ops[is_in(column(ev, "name"), OWN_MATMULS)[ops]]
        _note_own_matmuls(evidence, own_matmuls, names, module, op_parent, first_rows, types, table, batch_of)
    shapes, dtypes, input_from, outputs, output_from, last_shapes = [], [], [], [], [], []
    for idx in index:
        tensors, first = _data_inputs(firsts.get(idx, []), names, decoded)
        later_tensors, _ = _data_inputs(last_firsts.get(idx, []), names, decoded) if details else ([], -1)
        differs = bool(later_tensors) and [t[0] for t in later_tensors] != [t[0] for t in tensors]
        last_shapes.append(json.dumps([t[0] for t in later_tensors]) if differs else None)
        shapes.append(json.dumps([t[0] for t in tensors]) if tensors else None)
        dtypes.append(json.dumps([t[1] for t in tensors]) if tensors else None)
        input_from.append(_input_from(str(names[first])) if tensors else None)
        last = lasts.get(idx)
        shape, why = (module_output(str(names[last]), decoded[last], own_shapes.get(idx, []))
                      if last is not None else (None, "no ops recorded"))
        outputs.append(json.dumps([shape]) if shape is not None else None)
        output_from.append(why)
    own_params = [own.get(idx, 0) for idx in index]
    if not details:
        return {"input_shapes": shapes, "input_dtypes": dtypes, "input_from": None, "last_input_shapes": None,
                "output_shapes": outputs, "output_from": None, "own_params": own_params,
                "params": _inclusive_params(out["source_index"], out["module_path"], out["type_from"], own_params),
                "params_from": [None] * len(own_params)}
    return {"input_shapes": shapes, "input_dtypes": dtypes, "input_from": input_from, "last_input_shapes": last_shapes,
            "output_shapes": outputs,
            "output_from": output_from,
            "own_params": own_params,
            "params": _inclusive_params(out["source_index"], out["module_path"], out["type_from"], own_params),
            "params_from": _params_from(out, evidence, tied_notes(types, paths, sources, own_shapes))}


def _note_own_matmuls(evidence: dict[int, list[str]], rows: np.ndarray, names: np.ndarray, module: np.ndarray,
                      op_parent: np.ndarray, first_rows: dict[int, int], types: list, table: EventTable,
                      batch_of: Callable[[int], int | None]) -> None:
    """Add a lower-bound note to each module whose first call's own code (not an op inside another op of it) runs
    a matrix product on an operand that may be a parameter (`rows`: the ops of params_infer.OWN_MATMULS;
    `batch_of(idx)`: the leading size of the module's input)."""
    rows = rows[np.isin(module[rows], np.fromiter(first_rows, dtype=np.int64, count=len(first_rows)))]
    parent = op_parent[rows]
    rows = rows[(parent < 0) | (module[np.maximum(parent, 0)] != module[rows])]
    decoded = decode_op_args(table.args, rows)
    for row in rows.tolist():
        name, op = str(names[row]), decoded[row]
        if linear_addmm(name, op):
            continue
        idx = first_rows[int(module[row])]
        note = own_matmul_note(types[idx], name, matmul_operands(name, op), batch_of(idx))
        if note and note not in evidence.get(idx, []):
            evidence.setdefault(idx, []).append(note)


def _data_inputs(first_ops, names: np.ndarray, decoded: dict) -> tuple[list[tuple[list[int], str]], int]:
    """(shape, dtype) of a call's data inputs: those of its first op with tensor inputs (arange, empty... have none),
    and that op's row (-1 if none)."""
    tensors, created, first = [], [], -1
    for first in first_ops:
        # zero-element tensors (checkpoint's `empty(0)` placeholder) are not the module's data
        tensors = [t for t in input_tensors(str(names[first]), decoded[first]) if 0 not in t[0]]
        made = created_shape(str(names[first]), decoded[first])
        if made is not None and not tensors:  # `empty(size)`; `empty_like(x)` reads the input x
            created.append(made)
            continue
        if str(names[first]) not in OUT_INPUTS and any(t[0] in created for t in tensors):
            return [], first  # it may read a buffer the module just created (an `out=` tensor): not known
        if tensors:
            break
    return tensors, first


def _params_from(out: dict[str, object], evidence: dict[int, list[str]], tied: dict[int, str]) -> list[str | None]:
    """`params_from`: the evidence of params inferred in a module or below it, and the tied-weight doubt."""
    notes: dict[tuple[int, str], list[str]] = {}
    for i, said in evidence.items():
        parts = str(out["module_path"][i]).split("/")
        for k in range(1, len(parts) + 1):
            held = notes.setdefault((int(out["source_index"][i]), "/".join(parts[:k])), [])
            held.extend(n for n in said if n not in held)
    keys = [(s, str(p)) for s, p in zip(np.asarray(out["source_index"]).tolist(), out["module_path"])]
    return ["; ".join(notes.get(key, []) + ([tied[i]] if i in tied else [])) or None for i, key in enumerate(keys)]


# Ops that read a part of a tensor: as a module's first op they may read a registered buffer (HF BERT slices its
# `position_ids` buffer [1, 512] before it touches `input_ids` [1, 141]) as well as the module's input.
_PART_READS = ("aten::slice", "aten::select", "aten::narrow", "aten::as_strided", "aten::index_select",
               "aten::unsqueeze")  # `buffer[None, :, None]`: HF rotary embeddings index their inv_freq buffer
SLICE_NOTE = "a view or part of a tensor, which may be a registered buffer rather than the input"


def _input_from(op: str) -> str:
    """How a module's input shapes were found: its first op with tensor inputs, flagged where that op slices."""
    return f"first op {op}: {SLICE_NOTE}" if op in _PART_READS else f"first op {op}"


def _inclusive_params(out_src: np.ndarray, out_paths: np.ndarray, type_from, own_params: list[int]) -> list[int]:
    """Own params plus those of every module below, each instance once, as `module.parameters()` counts them:
    an instance called from several parents (one path under each) counts once in a subtree that holds
    several of its paths. record_function annotations of the same name are different code: each counted."""
    trie = PathTrie()
    node = [trie.node(int(s), p, create=True) for s, p in zip(np.asarray(out_src).tolist(), out_paths)]
    for n, own in zip(node, own_params):
        trie.total[n] = trie.total[n] + int(own)
    total, up = trie.total, trie.up
    for n in range(len(up) - 1, 0, -1):
        total[up[n]] = total[up[n]] + total[n]
    paths_of: dict[tuple[int, str], list[int]] = {}
    for i, (s, p, how) in enumerate(zip(np.asarray(out_src).tolist(), out_paths, type_from)):
        if how != RECORD_FUNCTION:
            paths_of.setdefault((int(s), str(p).rpartition("/")[2]), []).append(i)
    for rows in paths_of.values():
        own = int(own_params[rows[0]])
        if len(rows) < 2 or not own:
            continue
        held: dict[int, int] = {}  # trie node -> how many of this instance's paths lie in its subtree
        for i in rows:
            n = node[i]
            while n > 0:
                held[n] = held.get(n, 0) + 1
                n = up[n]
        for n, count in held.items():
            total[n] -= (count - 1) * own
    return [int(total[n]) for n in node]
