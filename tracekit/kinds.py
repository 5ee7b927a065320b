"""Classify events into kinds from (ph, cat, name): one decision per distinct combination."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from tracekit.table import KINDS as _ALL_KINDS

_CAT_KIND = {
    "cpu_op": "cpu_op", "operator": "cpu_op",
    "python_function": "python", "fee": "python",
    "cuda_runtime": "runtime", "cuda_driver": "runtime", "runtime": "runtime",
    "mtia_runtime": "runtime", "hip_runtime": "runtime", "privateuse1_runtime": "runtime",
    "kernel": "kernel", "mtia_ccp_events": "kernel", "gpu_op": "kernel",
    "gpu_memcpy": "memcpy", "memcpy": "memcpy",
    "gpu_memset": "memset", "memset": "memset",
    "user_annotation": "annotation", "gpu_user_annotation": "annotation", "trace": "annotation",
    "cpu_instant_event": "instant",
}
_STEP = re.compile(r"^ProfilerStep#\d+$")
_COLLECTIVE = re.compile(
    r"^(record_param_comms$|c10d::|_c10d_functional::|c10d_functional::|gloo:|nccl:|hccl:|"
    r"torch\.distributed\.)"
)


def classify_one(ph: str, cat: str | None, name: str) -> str:
    """The kind of one event (see tracekit.table.KINDS)."""
    if ph == "M":
        return "metadata"
    if ph in ("s", "t", "f"):
        return "flow"
    if ph == "C":
        return "counter"
    if name == "[memory]":
        return "memory"
    if ph in ("i", "I", "n") or (ph == "X" and cat is None and name.startswith("Iteration Start")):
        return "instant"
    kind = _CAT_KIND.get((cat or "").lower())
    if kind == "kernel" and name == "dma_request":
        return "memcpy"
    if kind in ("annotation", "cpu_op") and _STEP.match(name):
        return "step"
    if kind == "python" and name.startswith("nn.Module: "):
        return "module"
    if kind in ("cpu_op", "annotation") and _COLLECTIVE.match(name):
        return "collective"
    if kind is None:
        return "other"
    return kind


def classify(ph: pd.Categorical, cat: pd.Categorical, name: pd.Categorical) -> pd.Categorical:
    """Vectorized classify_one over categorical columns."""
    frame = pd.DataFrame(
        {"ph": ph.codes.astype(np.int64), "cat": cat.codes.astype(np.int64), "name": name.codes.astype(np.int64)}
    )
    combos = frame.drop_duplicates()
    ph_v, cat_v, name_v = ph.categories, cat.categories, name.categories
    combo_kind = [
        classify_one(
            ph_v[p] if p >= 0 else "",
            cat_v[c] if c >= 0 else None,
            name_v[n] if n >= 0 else "",
        )
        for p, c, n in combos.itertuples(index=False)
    ]
    combos = combos.assign(kind=combo_kind)
    kinds = frame.merge(combos, on=["ph", "cat", "name"], how="left")["kind"]
    return pd.Categorical(kinds.to_numpy(), categories=list(_ALL_KINDS))

