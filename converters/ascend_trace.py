"""torch_npu trace_view.json: a bare chrome-event list whose `ts` are strings of epoch us with ns digits."""

from __future__ import annotations

import numpy as np

from tracekit.table import EventTable, SourceInfo

from .ascend_meta import AscendMeta
from .chrome_json import ChromeColumns
from .chrome_table import build_table
from .str_column import StrColumn

NPU_PROCESS_NAMES = frozenset({"Ascend Hardware", "CANN", "HCCL", "Overlap Analysis"})
NPU_FLOW_CATS = frozenset({"async_npu", "HostToDevice"})
BASE_FROM = "none: ts are epoch us (torch_npu)"


def looks_like_npu(cols: ChromeColumns) -> bool:
    """torch_npu output: its process names (M events) or its flow categories."""
    if any(key == "process_name" and b'"name"' in raw and _meta_name(raw) in NPU_PROCESS_NAMES
           for key, _pid, _tid, raw in cols.meta):
        return True
    return _any_category_in(cols.cat, NPU_FLOW_CATS, 20000)


def _any_category_in(column: StrColumn, wanted: frozenset[str], rows: int) -> bool:
    """Whether one of the first `rows` values of `column` is in `wanted` (each distinct code looked at once)."""
    codes = np.unique(column.codes[:rows])
    return any(column.categories[c] in wanted for c in codes[codes >= 0].tolist())


def _meta_name(raw: bytes) -> str | None:
    import msgspec

    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    return value.get("name") if isinstance(value, dict) else None


def read_trace_view(cols: ChromeColumns, path: str, meta: AscendMeta) -> EventTable:
    """The event table of a decoded trace_view.json (chrome_json already parsed the ts strings exactly)."""
    info = SourceInfo(
        path=path,
        format="npu",
        source="npu",
        base_ns=0,
        base_from=BASE_FROM,
        rank=meta.rank,
        rank_from=meta.rank_from,
        distributed=meta.distributed,
        top=dict(meta.top),
        input_events=cols.input_events,
        metadata_folded=cols.metadata_folded,
        skipped=dict(cols.skipped),
        damage=list(cols.damage),
    )
    return build_table(cols, info)
