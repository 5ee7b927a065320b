"""Classify events into kinds from (ph, cat, name): one decision per distinct combination."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from tracekit.table import KINDS, first_of_group, group_codes

if TYPE_CHECKING:  # pandas is imported where it is used: `tracekit info` on raw traces runs classify_one only
    import pandas as pd

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
    """Vectorized classify_one over categorical columns: one call per distinct (ph, cat, name)."""
    import pandas as pd

    from tracekit.table import KIND_DTYPE

    code, groups = group_codes(ph.codes, cat.codes, name.codes)
    first = first_of_group(code, groups)
    ph_v, cat_v, name_v = ph.categories.tolist(), cat.categories.tolist(), name.categories.tolist()
    triples = [(ph_v[p] if p >= 0 else "", cat_v[c] if c >= 0 else None, name_v[n] if n >= 0 else "")
               for p, c, n in zip(ph.codes[first].tolist(), cat.codes[first].tolist(), name.codes[first].tolist())]
    if len(_KIND_CODES) >= _KIND_CODES_KEPT:
        _KIND_CODES.clear()
    combo = [_KIND_CODES.get(t) for t in triples]
    if None in combo:
        for i, (triple, found) in enumerate(zip(triples, combo)):
            if found is None:
                combo[i] = _KIND_CODES[triple] = _KIND_CODE.get(classify_one(*triple), -1)
    return pd.Categorical.from_codes(np.array(combo, dtype=np.int8)[code], dtype=KIND_DTYPE)


_KIND_CODE = {k: i for i, k in enumerate(KINDS)}
# Per process: the kind code of each (ph, cat, name) classified (classify_one is a pure function of the three): the
# ranks of a job a worker converts record the same few hundred triples. Cleared when it reaches _KIND_CODES_KEPT.
_KIND_CODES: dict[tuple, int] = {}
_KIND_CODES_KEPT = 65_536


# --- Ascend NPU (torch_npu) -------------------------------------------------------------------
# trace_view.json leaves device and CANN events without a category: their kind comes from the
# process they sit in and, on the device, from the task type. HCCL collectives appear twice on
# the device: as one span per collective on the HCCL "Group N Communication" track (the
# counterpart of an NCCL kernel, kind "kernel") and as its steps (Notify Wait, Write Value,
# SDMA, Reduce_Inline...) on the HCCL planes and on the Ascend Hardware comm stream; the steps
# are kind "other" so that kernel time is not counted twice.
NPU_HARDWARE, NPU_HCCL, NPU_CANN, NPU_OVERLAP = "Ascend Hardware", "HCCL", "CANN", "Overlap Analysis"
NPU_PROCESSES = frozenset({NPU_HARDWARE, NPU_HCCL, NPU_CANN, NPU_OVERLAP})
NPU_COMPUTE_TASKS = frozenset({
    "AI_CORE", "AI_VECTOR_CORE", "AI_CPU", "MIX_AIC", "MIX_AIV", "DSA_SQE", "FFTS_PLUS", "HCCL",
    "KERNEL_AICORE", "KERNEL_AIVEC", "KERNEL_AICPU", "KERNEL_MIX_AIC", "KERNEL_MIX_AIV",
})
_NPU_MEMCPY = frozenset({"MEMCPY_ASYNC", "PCIE_DMA_SQE", "SDMA_SQE"})
_NPU_STEPS = frozenset({"Notify Wait", "Notify Record", "Write Value", "SDMA", "RDMA", "Reduce Inline",
                        "Reduce_Inline", "EVENT_RECORD", "EVENT_WAIT", "EVENT_RECORD_SQE", "EVENT_WAIT_SQE",
                        "PLACE_HOLDER_SQE", "STARS_COMMON"})
_HOST_COLLECTIVE = re.compile(r"^(Hccl[A-Z]|hcom_)")


def classify_npu(base: str, process: str | None, thread: str | None, name: str, task_type: str | None) -> str:
    """Kind of one torch_npu event; `base` is its kind from (ph, cat, name) (see classify_one)."""
    if base in ("metadata", "flow", "counter", "memory", "instant"):
        return base
    if process == NPU_CANN:
        return "runtime"
    if process == NPU_OVERLAP:
        return "other"
    if process == NPU_HCCL:
        on_group = (thread or "").startswith("Group") or name.startswith("hcom_")
        return "kernel" if on_group else "other"
    if process == NPU_HARDWARE:
        if name == "MEMCPY_ASYNC" or task_type in _NPU_MEMCPY:
            return "memcpy"
        if task_type in _NPU_STEPS or name in _NPU_STEPS:
            return "other"
        if task_type in NPU_COMPUTE_TASKS:
            return "kernel"
        # Sync and comm-step tasks are named by their task type (EVENT_RECORD, Notify Wait, SDMA);
        # compute tasks by their op (Conv2D4, aclnnMuls_MulAiCore_Mul), whatever the task type says.
        return "other" if name.upper() == name or " " in name else "kernel"
    if base == "cpu_op" and _HOST_COLLECTIVE.match(name):
        return "collective"
    return base


def classify_npu_rows(kind: pd.Categorical, process: list, thread: list, name: list, task_type: list) -> pd.Categorical:
    """classify_npu over all rows, one decision per distinct combination."""
    import pandas as pd

    from tracekit.table import KIND_DTYPE

    frame = pd.DataFrame({"k": np.asarray(kind, dtype=object), "p": process, "t": thread, "n": name, "y": task_type})
    frame = frame.fillna("")  # missing process/thread/task type: "" (merge keys must not be null)
    combos = frame.drop_duplicates().copy()
    combos["out"] = [classify_npu(*row) for row in combos.itertuples(index=False)]
    merged = frame.merge(combos, on=["k", "p", "t", "n", "y"], how="left")["out"]
    return pd.Categorical(merged.to_numpy(), dtype=KIND_DTYPE)
