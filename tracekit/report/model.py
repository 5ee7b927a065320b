"""The model drawing's data: the module tree of one source in forward order, repeated blocks folded.

Forward order is first-call order (the modules table's row order). Consecutive siblings with the same
structure (type, shapes, parameter count and, recursively, the same children) fold into one repeat node
("Qwen2DecoderLayer x 24") that keeps every member, so the page can unfold it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracekit.report.fmt import missing, shapes
from tracekit.writers.modules_text import RowView, view_rows

if TYPE_CHECKING:
    import pandas as pd

    from tracekit.modules.view import Row


def _num(value: Any) -> float | None:
    return None if missing(value) else float(value)


def _node(row: Any, has_device: bool, has_backward: bool) -> dict[str, Any]:
    per_call = row.steady_ns if not missing(row.steady_ns) else row.first_call_ns
    return {
        "name": str(row.module_path).rsplit("/", 1)[-1], "path": str(row.module_path), "type": str(row.module_type),
        "in": shapes(row.input_shapes), "out": shapes(row.output_shapes),
        "last_in": shapes(getattr(row, "last_input_shapes", None)), "params": _num(row.params),
        "flops": _num(row.flops_fwd) or None, "flops_bwd": _num(row.flops_bwd) or None, "calls": int(row.calls),
        "first_ms": _ms(row.first_call_ns), "steady_ms": _ms(row.steady_ns), "call_ms": _ms(per_call),
        "total_ms": _ms(row.total_ns), "backward_ms": _ms(row.backward_ns) if has_backward else None,
        "device_fwd_ms": _ms(row.device_ns_fwd) if has_device else None,
        "device_bwd_ms": _ms(row.device_ns_bwd) if has_device and has_backward else None,
        "tflops": _num(getattr(row, "achieved_tflops", None)), "share": _num(row.share), "children": [],
        # why params or FLOPs are inferred, unsure or unknown (params_from / flops_from)
        "params_from": _text(getattr(row, "params_from", None)), "flops_from": _text(getattr(row, "flops_from", None)),
    }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _ms(ns: Any) -> float | None:
    return None if missing(ns) else round(float(ns) / 1e6, 6)


def _signature(node: dict[str, Any], memo: dict[Any, int]) -> int:
    key = (node["type"], str(node["in"]), str(node["out"]), node["params"],
           tuple(_signature(c, memo) for c in node["children"]))
    return memo.setdefault(key, len(memo))


def _fold(children: list[dict[str, Any]], memo: dict[Any, int]) -> list[dict[str, Any]]:
    """Runs of 2+ structurally identical consecutive siblings become one repeat node."""
    for child in children:
        child["children"] = _fold(child["children"], memo)
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(children):
        sig = _signature(children[i], memo)
        j = i + 1
        while j < len(children) and _signature(children[j], memo) == sig:
            j += 1
        run = children[i:j]
        out.append(_repeat(run) if len(run) > 1 else run[0])
        i = j
    return out


def _sum(run: list[dict[str, Any]], key: str) -> float | None:
    values = [m[key] for m in run if m[key] is not None]
    return sum(values) if values else None


def _repeat(run: list[dict[str, Any]]) -> dict[str, Any]:
    first = run[0]
    return {
        "repeat": len(run), "name": f"{first['name']} … {run[-1]['name']}", "path": first["path"],
        "type": first["type"], "in": first["in"], "out": run[-1]["out"], "params": _sum(run, "params"),
        "flops": _sum(run, "flops"), "calls": first["calls"], "call_ms": _sum(run, "call_ms"),
        "total_ms": _sum(run, "total_ms"), "backward_ms": _sum(run, "backward_ms"),
        "device_fwd_ms": _sum(run, "device_fwd_ms"), "device_bwd_ms": _sum(run, "device_bwd_ms"),
        "share": _sum(run, "share"), "members": run, "children": first["children"],
        "params_from": first["params_from"], "flops_from": first["flops_from"],
    }


def model_graph(view: list[Row] | pd.DataFrame) -> dict[str, Any]:
    """{'roots': [node...], 'modules': n, 'max_share': s} for the first source of tree_rows (or a tree_view frame)."""
    rows = view_rows(view)
    if not rows:
        return {"roots": [], "modules": 0, "max_share": 0.0, "source_index": None}
    source = int(rows[0]["source_index"])
    frame = [r for r in rows if r["source_index"] == source]
    has_device = any(not missing(r.get("kernel_count")) and r["kernel_count"] > 0 for r in frame)
    has_backward = any(not missing(r["backward_ns"]) and r["backward_ns"] > 0 for r in frame)
    nodes: dict[str, dict[str, Any]] = {}
    roots: list[dict[str, Any]] = []
    for row in map(RowView, frame):
        node = _node(row, has_device, has_backward)
        nodes[node["path"]] = node
        parent = row.parent_path if isinstance(row.parent_path, str) else None
        (nodes[parent]["children"] if parent in nodes else roots).append(node)
    shares = [n["share"] for n in nodes.values() if n["share"] is not None and n["path"].count("/") > 0]
    whole = [n["share"] for n in roots if n["share"] is not None]
    return {"roots": _fold(roots, {}), "modules": len(nodes), "source_index": source,
            "max_share": max(shares or whole or [0.0]), "has_device": has_device, "has_backward": has_backward}
