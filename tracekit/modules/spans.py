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
import pyarrow as pa

from tracekit.ancestry import nearest_marked
from tracekit.converters.args_bytes import take_args
from tracekit.errors import warn
from tracekit.modules.runtime_class import runtime_classes
from tracekit.table import SourceInfo, column, matches, strings

TORCH_PREFIX = "nn.Module: "
_VIZ_FORWARD = re.compile(r"^(?:(?P<cls>[\w.<>]+)\.)?forward \((?P<path>.+):(?P<line>\d+)\)$")
_VIZ_CALL_IMPL = re.compile(r"^(?:Module\.)?_(?:wrapped_)?call_impl \(")
_CLASS_LINE = re.compile(r"^(\s*)class\s+(\w+)")
# Traces without module events fall back to the record_function annotation hierarchy
RECORD_FUNCTION = "record_function"
_NOT_A_LAYER = re.compile(r"^(Optimizer\.|ProfilerStep#|## .*(wait|publish))")


@dataclass(frozen=True)
class ModuleSpans:
    """Rows that are module forward calls, with the instance name and type of each, and how the type
    is known (`type_from`: torch, subclass_method, defining_class, unknown_name, record_function)."""

    rows: np.ndarray
    instance: np.ndarray  # object: "Linear_4"
    module_type: np.ndarray  # object: "Linear"
    type_from: np.ndarray | None = None  # object, aligned with rows

    def __len__(self) -> int:
        return len(self.rows)


TYPE_FROM_TORCH = "torch"  # torch.profiler names the runtime class itself
UNKNOWN = "unknown"  # Kineto writes a module span whose class name is not ASCII as `unknown`
TYPE_FROM_UNKNOWN = "unknown_name"
_MODULE_ID = b'"Python module id"'


def find_module_spans(events: pd.DataFrame, sources: list[SourceInfo], args: pa.Array | None = None) -> ModuleSpans:
    """Module spans of every source, torch-named or VizTracer-derived."""
    names = strings(column(events, "name"))
    kind = events["kind"].to_numpy()
    rows_out, inst_out, type_out, from_out = [], [], [], []
    slashed = 0
    for row in np.flatnonzero(kind == "module").tolist():
        instance = str(names[row])[len(TORCH_PREFIX):].strip()
        slashed += "/" in instance
        rows_out.append(row)
        inst_out.append(instance.replace("/", "|"))
        type_out.append(_type_of(instance))
        from_out.append(TYPE_FROM_TORCH)
    for part in (_unknown_spans(events, names, kind, args, sources), _viztracer_spans(events, names, kind, sources)):
        rows_out.extend(part.rows.tolist())
        inst_out.extend(part.instance.tolist())
        type_out.extend(part.module_type.tolist())
        from_out.extend(part.type_from.tolist())
    if slashed:
        warn(sources[0].path if len(sources) == 1 else "modules",
             f"{slashed} module spans have a '/' in their class name; it is written as '|' in module paths")
    src = column(events, "source_index")
    with_modules = set(src[np.asarray(rows_out, dtype=np.int64)].tolist())
    cat = strings(column(events, "cat"))
    for row in np.flatnonzero((kind == "annotation") & (cat == "user_annotation")).tolist():
        name = str(names[row])
        if int(src[row]) not in with_modules and not _NOT_A_LAYER.match(name):
            rows_out.append(row)
            inst_out.append(name.replace("/", "|"))
            type_out.append(RECORD_FUNCTION)
            from_out.append(RECORD_FUNCTION)
    long_names = sum(len(x) > MAX_MODULE_NAME for x in inst_out)
    if long_names:
        inst_out = [_shorten(x) for x in inst_out]
        type_out = [_shorten(x) for x in type_out]
        warn(sources[0].path if len(sources) == 1 else "modules",
             f"{long_names} module names are longer than {MAX_MODULE_NAME} characters; module paths and types "
             "keep their first characters and say how many were left out (the events keep their full names)")
    order = np.argsort(np.asarray(rows_out, dtype=np.int64), kind="stable")
    return ModuleSpans(
        np.asarray(rows_out, dtype=np.int64)[order],
        np.asarray(inst_out, dtype=object)[order],
        np.asarray(type_out, dtype=object)[order],
        np.asarray(from_out, dtype=object)[order],
    )


# Module paths repeat every ancestor's name, and each module's path is stored: a name this long is
# shortened in paths (not in the events) so that a hostile 10 MB name cannot cost name x modules x copies.
MAX_MODULE_NAME = 1024


def _shorten(name: str) -> str:
    if not isinstance(name, str) or len(name) <= MAX_MODULE_NAME:
        return name
    return f"{name[:MAX_MODULE_NAME]}...(+{len(name) - MAX_MODULE_NAME} chars)"


def _empty() -> ModuleSpans:
    return ModuleSpans(np.zeros(0, np.int64), np.zeros(0, object), np.zeros(0, object), np.zeros(0, object))


def _unknown_spans(events: pd.DataFrame, names: np.ndarray, kind: np.ndarray, args: pa.Array | None,
                   sources: list[SourceInfo]) -> ModuleSpans:
    """Kineto `unknown` python events that carry a `Python module id`: module calls of a class whose
    name was not ASCII. Kept as a tree level named `unknown_N` (numbered like VizTracer instances)."""
    rows = np.flatnonzero((kind == "python") & (names == UNKNOWN))
    if not len(rows) or args is None:
        return _empty()
    raw = take_args(args, rows).to_pylist()
    rows = np.array([r for r, a in zip(rows.tolist(), raw) if a and _MODULE_ID in a], dtype=np.int64)
    if not len(rows):
        return _empty()
    src = column(events, "source_index")
    for s in np.unique(src[rows]).tolist():
        warn(sources[int(s)].path, f"{int((src[rows] == s).sum())} module spans are named 'unknown' (Kineto writes "
             "non-ASCII class names so): kept as tree levels 'unknown_N', their class is not known")
    ts = column(events, "ts_ns")
    is_span = (kind == "module")
    is_span[rows] = True
    enclosing = nearest_marked(column(events, "parent"), is_span, include_self=False)
    torch_names = {int(r): str(names[r])[len(TORCH_PREFIX):].strip() for r in np.flatnonzero(kind == "module")}
    instance = _number_instances(rows[np.lexsort((rows, ts[rows], src[rows]))], dict.fromkeys(rows.tolist(), UNKNOWN),
                                 enclosing, src, torch_names)
    return ModuleSpans(rows, np.array([instance[r] for r in rows.tolist()], dtype=object),
                       np.full(len(rows), UNKNOWN, dtype=object), np.full(len(rows), TYPE_FROM_UNKNOWN, dtype=object))


def _type_of(instance: str) -> str:
    head, sep, tail = instance.rpartition("_")
    return head if sep and tail.isdigit() else instance


def _viztracer_spans(events: pd.DataFrame, names: np.ndarray, kind: np.ndarray,
                     sources: list[SourceInfo]) -> ModuleSpans:
    """`X.forward` frames whose caller is `Module._call_impl`, numbered per class in first-call order."""
    python = np.flatnonzero((kind == "python") & matches(column(events, "name"), _VIZ_FORWARD))
    if not len(python):
        return _empty()
    parent = column(events, "parent")
    src = column(events, "source_index")
    ts = column(events, "ts_ns")
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
        return _empty()
    rows = np.array([r for r, _ in candidates], dtype=np.int64)
    runtime = runtime_classes(rows, dict(candidates), names, kind, parent, src, sources)
    classes = {r: c for r, (c, _) in runtime.items()}
    is_span = np.zeros(len(events), dtype=bool)
    is_span[rows] = True
    enclosing = nearest_marked(parent, is_span, include_self=False)
    instance = _number_instances(rows[np.lexsort((rows, ts[rows], src[rows]))], classes, enclosing, src)
    out_rows = np.array(sorted(instance), dtype=np.int64)
    return ModuleSpans(
        out_rows,
        np.array([instance[r] for r in out_rows.tolist()], dtype=object),
        np.array([classes[r] for r in out_rows.tolist()], dtype=object),
        np.array([runtime[r][1] for r in out_rows.tolist()], dtype=object),
    )


def _number_instances(rows_in_time: np.ndarray, classes: dict[int, str], enclosing: np.ndarray,
                      src: np.ndarray, named: dict[int, str] | None = None) -> dict[int, str]:
    """Instance name per span: key (source, parent instance, class, ordinal under that parent call).
    `named`: spans whose instance name is already known (torch's), used as parents."""
    instance: dict[int, str] = dict(named or {})
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
