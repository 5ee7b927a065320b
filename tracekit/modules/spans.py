"""Find the nn.Module forward spans of a trace and name each module instance (`Linear_4`).

A source with no module events at all falls back to its `record_function` annotations
(module_type "record_function"), so the module view still shows the code's own hierarchy.

torch.profiler names them itself (`nn.Module: Linear_4`: class + per-class counter in first-call
order). VizTracer records `Linear.forward (/path/linear.py:130)` frames called from
`Module._call_impl`, without instance identity: instances are numbered the same way torch does,
assuming the module structure repeats from call to call (the k-th `Linear` called by a given
parent instance is the same instance every time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tracekit.ancestry import nearest_marked
from tracekit.table import SourceInfo, matches, strings

TORCH_PREFIX = "nn.Module: "
_VIZ_FORWARD = re.compile(r"^(?:(?P<cls>[\w.]+)\.)?forward \((?P<path>.+):(?P<line>\d+)\)$")
_VIZ_CALL_IMPL = re.compile(r"^(?:Module\.)?_(?:wrapped_)?call_impl \(")
_CLASS_LINE = re.compile(r"^(\s*)class\s+(\w+)")
# Traces without module events fall back to the record_function annotation hierarchy
RECORD_FUNCTION = "record_function"
_NOT_A_LAYER = re.compile(r"^(Optimizer\.|ProfilerStep#|## .*(wait|publish))")


@dataclass(frozen=True)
class ModuleSpans:
    """Rows that are module forward calls, with the instance name and type of each."""

    rows: np.ndarray
    instance: np.ndarray  # object: "Linear_4"
    module_type: np.ndarray  # object: "Linear"

    def __len__(self) -> int:
        return len(self.rows)


def find_module_spans(events: pd.DataFrame, sources: list[SourceInfo]) -> ModuleSpans:
    """Module spans of every source, torch-named or VizTracer-derived."""
    names = strings(events["name"])
    kind = events["kind"].to_numpy()
    rows_out, inst_out, type_out = [], [], []
    torch_rows = np.flatnonzero(kind == "module")
    for row in torch_rows.tolist():
        # "/" separates the levels of a module path: one inside a name would invent levels (and orphan
        # the module from the tree), so it is written "|" as in record_function annotations below.
        instance = str(names[row])[len(TORCH_PREFIX):].strip().replace("/", "|")
        rows_out.append(row)
        inst_out.append(instance)
        type_out.append(_type_of(instance))
    viz = _viztracer_spans(events, names, kind, sources)
    rows_out.extend(viz.rows.tolist())
    inst_out.extend(viz.instance.tolist())
    type_out.extend(viz.module_type.tolist())
    src = events["source_index"].to_numpy()
    with_modules = set(src[np.asarray(rows_out, dtype=np.int64)].tolist())
    cat = strings(events["cat"])
    for row in np.flatnonzero((kind == "annotation") & (cat == "user_annotation")).tolist():
        name = str(names[row])
        if int(src[row]) not in with_modules and not _NOT_A_LAYER.match(name):
            rows_out.append(row)
            inst_out.append(name.replace("/", "|"))
            type_out.append(RECORD_FUNCTION)
    order = np.argsort(np.asarray(rows_out, dtype=np.int64), kind="stable")
    return ModuleSpans(
        np.asarray(rows_out, dtype=np.int64)[order],
        np.asarray(inst_out, dtype=object)[order],
        np.asarray(type_out, dtype=object)[order],
    )


def _type_of(instance: str) -> str:
    head, sep, tail = instance.rpartition("_")
    return head if sep and tail.isdigit() else instance


def _viztracer_spans(events: pd.DataFrame, names: np.ndarray, kind: np.ndarray,
                     sources: list[SourceInfo]) -> ModuleSpans:
    """`X.forward` frames whose caller is `Module._call_impl`, numbered per class in first-call order."""
    python = np.flatnonzero((kind == "python") & matches(events["name"], _VIZ_FORWARD))
    empty = ModuleSpans(np.zeros(0, np.int64), np.zeros(0, object), np.zeros(0, object))
    if not len(python):
        return empty
    parent = events["parent"].to_numpy()
    src = events["source_index"].to_numpy()
    ts = events["ts_ns"].to_numpy()
    candidates = []
    for row in python.tolist():
        match = _VIZ_FORWARD.match(str(names[row]))
        if not match:
            continue
        up = parent[row]
        if up < 0 or not _VIZ_CALL_IMPL.match(str(names[up])):
            continue
        cls = match.group("cls")
        if cls is None:
            cls = _class_from_source(sources[src[row]], match.group("path"), int(match.group("line")))
        candidates.append((row, cls.rsplit(".", 1)[-1] if cls else "forward"))
    if not candidates:
        return empty
    rows = np.array([r for r, _ in candidates], dtype=np.int64)
    classes = dict(candidates)
    is_span = np.zeros(len(events), dtype=bool)
    is_span[rows] = True
    enclosing = nearest_marked(parent, is_span, include_self=False)
    instance = _number_instances(rows[np.lexsort((rows, ts[rows], src[rows]))], classes, enclosing, src)
    out_rows = np.array(sorted(instance), dtype=np.int64)
    return ModuleSpans(
        out_rows,
        np.array([instance[r] for r in out_rows.tolist()], dtype=object),
        np.array([classes[r] for r in out_rows.tolist()], dtype=object),
    )


def _number_instances(rows_in_time: np.ndarray, classes: dict[int, str], enclosing: np.ndarray,
                      src: np.ndarray) -> dict[int, str]:
    """Instance name per span: key (source, parent instance, class, ordinal under that parent call)."""
    instance: dict[int, str] = {}
    known: dict[tuple, str] = {}
    counters: dict[tuple[int, str], int] = {}
    ordinals: dict[tuple[int, str], int] = {}
    for row in rows_in_time.tolist():
        cls, source, up = classes[row], int(src[row]), int(enclosing[row])
        ordinal_key = (up, cls)
        ordinal = ordinals.get(ordinal_key, 0) if up >= 0 else 0
        ordinals[ordinal_key] = ordinal + 1
        key = (source, instance.get(up), cls, ordinal)
        name = known.get(key)
        if name is None:
            number = counters.get((source, cls), 0)
            counters[(source, cls)] = number + 1
            name = known[key] = f"{cls}_{number}"
        instance[row] = name
    return instance


def _class_from_source(info: SourceInfo, path: str, line: int) -> str | None:
    """The class whose body holds `def forward` at `line`, read from VizTracer's embedded file_info."""
    files = (info.top.get("file_info") or {}).get("files") or {}
    entry = files.get(path) if isinstance(files, dict) else None
    if not entry or not isinstance(entry, (list, tuple)):  # damaged file_info: no class from sources
        return None
    lines = str(entry[0]).splitlines()
    if not 0 < line <= len(lines):
        return None
    def_line = lines[line - 1]
    indent = len(def_line) - len(def_line.lstrip())
    for text in reversed(lines[: line - 1]):
        match = _CLASS_LINE.match(text)
        if match and len(match.group(1)) < indent:
            return match.group(2)
    return None
