"""Link device events to the runtime call that launched them and to the cpu op around that call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from tracekit.ancestry import nearest_marked
from tracekit.table import DEVICE_KINDS, NO_ROW, column, first_match, kind_in

if TYPE_CHECKING:
    import pandas as pd

    from tracekit.columns import Columns

OP_KINDS = ("cpu_op", "collective")


@dataclass(frozen=True)
class Links:
    """launch: runtime row of each device event; launcher: cpu-op row; unlinked counts by cause."""

    launch: np.ndarray
    launcher: np.ndarray
    unlinked: dict[str, int] = field(default_factory=dict)


def link_launches(events: pd.DataFrame | Columns, parent: np.ndarray) -> Links:
    """Join device events to launches by (source file, correlation id), then up the call tree to the op."""
    n = len(events)
    launch = np.full(n, NO_ROW, dtype=np.int64)
    launcher = np.full(n, NO_ROW, dtype=np.int64)
    corr = column(events, "correlation")
    src = column(events, "source_index")
    device = kind_in(events, DEVICE_KINDS)
    runtime = kind_in(events, ("runtime",))
    rt_rows = np.flatnonzero(runtime & (corr >= 0))
    dev_rows = np.flatnonzero(device)
    at = first_match((src[dev_rows], corr[dev_rows]), (src[rt_rows], corr[rt_rows]))
    launch[dev_rows[at >= 0]] = rt_rows[at[at >= 0]]
    op_of_row = nearest_marked(parent, kind_in(events, OP_KINDS), include_self=False)
    has_launch = launch >= 0
    launcher[has_launch] = op_of_row[launch[has_launch]]
    _external_id_fallback(events, src, device, launcher)
    return Links(launch, launcher, unlinked_counts(events, corr, launch, launcher))


def unlinked_counts(events: pd.DataFrame | Columns, corr: np.ndarray, launch: np.ndarray,
                    launcher: np.ndarray) -> dict[str, int]:
    """Device events without a launching op, by cause (only causes that occur); from the correlation, launch and
    launcher columns, so a dataset's stored columns give the counts the links had."""
    device = kind_in(events, DEVICE_KINDS)
    unlinked = {
        "no_correlation_id": int((device & (corr < 0)).sum()),
        "launch_not_in_trace": int((device & (corr >= 0) & (launch < 0)).sum()),
        "launch_outside_any_op": int((device & (launch >= 0) & (launcher < 0)).sum()),
    }
    return {k: v for k, v in unlinked.items() if v}


def _external_id_fallback(events, src, device, launcher) -> None:
    """Device events whose launch sits outside any op: join the op by External id (legacy schema)."""
    ext = column(events, "external_id")
    need = np.flatnonzero(device & (launcher < 0) & (ext >= 0))
    if not len(need):
        return
    ops = np.flatnonzero(kind_in(events, OP_KINDS) & (ext >= 0))
    at = first_match((src[need], ext[need]), (src[ops], ext[ops]))
    launcher[need[at >= 0]] = ops[at[at >= 0]]
