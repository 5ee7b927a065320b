"""Compare a module table with what torch itself said about each module (`tests/oracle_record.py`'s truth.json)."""

from __future__ import annotations

import json
import re

import pandas as pd


def _json(text):
    return json.loads(text) if isinstance(text, str) else None


def _tied(row: pd.Series, params: int) -> bool:
    """Whether the module says it may count a tied weight twice, by the amount it is off."""
    said = re.findall(r"the count is ([\d,]+) lower", str(row.get("params_from") or ""))
    return any(row["params"] - int(n.replace(",", "")) == params for n in said)


def _lower_bound(row: pd.Series, params: int) -> bool:
    """Whether the module says its params are a lower bound (an operand of its own matrix product may be a parameter),
    and they are not above torch's count."""
    return "a lower bound" in str(row.get("params_from") or "") and row["params"] <= params


def mismatches(truth: dict[str, dict], modules: pd.DataFrame) -> list[str]:
    """Every module whose params, input/output shapes or forward/backward FLOPs differ from torch's. A figure
    tracekit leaves unknown (null/NaN) is not a mismatch, nor params that say by how much a tied weight may be
    counted twice, or that they are a lower bound and are not above torch's (`params_from`); a different number is."""
    wrong = []
    for path, true in truth.items():
        if path not in modules.index:
            continue
        row = modules.loc[path]
        if pd.notna(row["params"]) and row["params"] != true["params"] and not _tied(row, true["params"]) \
                and not _lower_bound(row, true["params"]):
            wrong.append(f"{path}: params {row['params']} != {true['params']}")
        shapes = _json(row["input_shapes"])
        unsure = "registered buffer" in str(row.get("input_from") or "")  # tracekit says the op may read a buffer
        if shapes is not None and not unsure and shapes != true["in"][:len(shapes)]:
            wrong.append(f"{path}: input {shapes} != {true['in']}")
        out = _json(row["output_shapes"])
        if out is not None and out[0] not in true["out"]:
            wrong.append(f"{path}: output {out} not among {true['out']}")
        if true["flops_fwd"] is not None and pd.notna(row["flops_fwd"]) and row["flops_fwd"] != true["flops_fwd"]:
            wrong.append(f"{path}: flops_fwd {row['flops_fwd']} != {true['flops_fwd']}")
        if "flops_bwd" in true and pd.notna(row["flops_bwd"]) and row["flops_bwd"] != true["flops_bwd"]:
            wrong.append(f"{path}: flops_bwd {row['flops_bwd']} != {true['flops_bwd']}")
    return wrong
