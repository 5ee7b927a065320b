"""Reader for torch.profiler / Kineto chrome traces (current, async_cpu_to_gpu and 2021 legacy schemas)."""

from __future__ import annotations

from tracekit.errors import warn
from tracekit.table import EventTable, SourceInfo

from .chrome_json import ChromeColumns
from .chrome_table import build_table
from .top_fields import clean_base_ns, clean_devices, clean_distributed

# Kineto writes ts in us relative to baseTimeNanoseconds; traces before ~2022 write epoch us.
EPOCH_US_2001 = 1e15


def looks_like_torch(top: dict, cols: ChromeColumns) -> bool:
    """True for Kineto output: its top-level keys, or its categories when those are gone."""
    if {"schemaVersion", "deviceProperties", "baseTimeNanoseconds", "distributedInfo"} & top.keys():
        return True
    torch_cats = {"cpu_op", "Operator", "cuda_runtime", "Runtime", "kernel", "Kernel", "python_function",
                  "user_annotation", "gpu_memcpy", "ac2g"}
    return any(c in torch_cats for c in cols.cat[:2000])


def read_torch(cols: ChromeColumns, path: str) -> EventTable:
    """Normalize a decoded Kineto trace."""
    top = cols.top
    base = clean_base_ns(path, top.get("baseTimeNanoseconds"))
    if base is not None:
        base_ns, base_from = base, "baseTimeNanoseconds"
    else:
        base_ns = 0
        epoch = len(cols.ts_ns) and cols.ts_ns.max() >= EPOCH_US_2001 * 1000
        base_from = "none: ts are epoch us" if epoch else "none: ts are relative (no baseTimeNanoseconds)"
        if not epoch:
            warn(path, "no baseTimeNanoseconds and ts are not epoch times: timestamps stay relative")
    dist = clean_distributed(path, top.get("distributedInfo"))
    rank = dist.get("rank") if isinstance(dist.get("rank"), int) else -1
    info = SourceInfo(
        path=path,
        format="torch",
        source="torch",
        base_ns=base_ns,
        base_from=base_from,
        rank=rank,
        rank_from="distributedInfo.rank" if rank >= 0 else "",
        devices=clean_devices(path, top.get("deviceProperties")),
        distributed=dist,
        top={k: v for k, v in top.items() if k not in ("deviceProperties", "distributedInfo")},
        input_events=cols.input_events,
        metadata_folded=cols.metadata_folded,
        skipped=dict(cols.skipped),
        damage=list(cols.damage),
    )
    return build_table(cols, info)
