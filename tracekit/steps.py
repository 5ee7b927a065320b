"""Assign each event the profiler step (`ProfilerStep#N`) it ran in; the steps table (host and device extents)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np

from tracekit.table import DEVICE_KINDS, column, kind_in, strings

if TYPE_CHECKING:
    import pandas as pd

    from tracekit.columns import Columns

_STEP_NUMBER = re.compile(r"#(\d+)$")
DEVICE_COPY_CAT = "gpu_user_annotation"  # Kineto's device-side copy of a ProfilerStep annotation


def assign_steps(events: pd.DataFrame | Columns, launch: np.ndarray) -> np.ndarray:
    """Step number per row (-1 outside any step); device events take the step of their launch.

    Host rows (and device rows through their launch) are placed by the host `ProfilerStep#N` ranges only:
    Kineto's device copy of a step (`gpu_user_annotation`) starts inside the host range and ends long before
    it, so looking it up with the host ranges sent every host event after the copy's end (the backward and
    optimizer of a training step) to no step. Device rows without a launch in the trace are placed by the
    device copies where the trace has them (the device runs behind the host), and where no copy holds
    them by the host ranges."""
    n = len(events)
    step = np.full(n, -1, dtype=np.int32)
    src = column(events, "source_index")
    ts = column(events, "ts_ns")
    dur = column(events, "dur_ns")
    when = np.where(launch >= 0, ts[np.maximum(launch, 0)], ts)
    step_rows = np.flatnonzero(kind_in(events, ("step",)))
    is_copy = strings(column(events, "cat"), step_rows) == DEVICE_COPY_CAT
    unlinked_device = kind_in(events, DEVICE_KINDS) & (launch < 0)
    unlinked_device[step_rows[is_copy]] = True  # a device copy is in its own range
    for source in sorted(set(src[step_rows].tolist())):
        in_source = src[step_rows] == source
        host, copies = step_rows[in_source & ~is_copy], step_rows[in_source & is_copy]
        rows = np.flatnonzero(src == source)
        if not len(host) or not len(copies):  # one kind of range only: every row by it
            _place(events, step, rows, when, step_rows[in_source], ts, dur)
            continue
        on_device = unlinked_device[rows]
        _place(events, step, rows[~on_device], when, host, ts, dur)
        _place(events, step, rows[on_device], when, copies, ts, dur)
        outside = rows[on_device][step[rows[on_device]] < 0]  # ROCm's copies can be a few us long
        _place(events, step, outside, when, host, ts, dur)
    return step


def _place(events: pd.DataFrame | Columns, step: np.ndarray, rows: np.ndarray, when: np.ndarray, ranges: np.ndarray,
           ts: np.ndarray, dur: np.ndarray) -> None:
    """Set `step` of the rows whose time falls in one of the step ranges (the latest one started before it)."""
    numbers = np.array([-1 if (n := _step_number(nm)) is None else n for nm in strings(column(events, "name"), ranges)],
                       dtype=np.int32)
    starts = ts[ranges]
    ends = starts + np.maximum(dur[ranges], 0)
    order = np.argsort(starts, kind="stable")
    starts, ends, numbers = starts[order], ends[order], numbers[order]
    pos = np.searchsorted(starts, when[rows], side="right") - 1
    inside = (pos >= 0) & (when[rows] < ends[np.maximum(pos, 0)])
    step[rows[inside]] = numbers[pos[inside]]


STEP_COLUMNS = ("source_index", "source", "rank", "step", "start_ns", "dur_ns", "device_start_ns", "device_dur_ns",
                "device_from")


def step_table(events: pd.DataFrame) -> pd.DataFrame:
    """One row per (source, step): the host extent of its ProfilerStep annotation (`start_ns`, `dur_ns`) and
    its device extent: the annotation's GPU copy where Kineto wrote one (`device_from = gpu_user_annotation`),
    else the first start to last end of the device events launched in the step (`device_events`), else none.

    In numpy: a trace has few steps, and pandas groupby/join on a handful of rows costs more than the events."""
    import pandas as pd

    rows = np.flatnonzero(kind_in(events, ("step",)))
    if not len(rows):
        return pd.DataFrame({c: [] for c in STEP_COLUMNS})
    si = column(events, "source_index")[rows] if "source_index" in events else np.zeros(len(rows), np.int64)
    numbers = [_step_number(name) for name in strings(column(events, "name"), rows)]
    has_number = np.array([n is not None for n in numbers], dtype=bool)
    number = np.array([-1 if n is None else n for n in numbers], dtype=np.int64)
    start = column(events, "ts_ns")[rows]
    end = start + np.maximum(column(events, "dur_ns")[rows], 0)
    is_copy = strings(column(events, "cat"), rows) == DEVICE_COPY_CAT
    source = strings(column(events, "source"), rows)
    rank = column(events, "rank")[rows]
    # groups (source_index, step) in sorted order, a step without a number last in its source
    keys = sorted({(int(s), not h, int(n)) for s, h, n in zip(si, has_number, number)})
    key_of = {k: i for i, k in enumerate(keys)}
    group = np.array([key_of[(int(s), not h, int(n))] for s, h, n in zip(si, has_number, number)], dtype=np.int64)
    host, copy = _extents(group, ~is_copy, start, end, len(keys)), _extents(group, is_copy, start, end, len(keys))
    first_host, first_copy = host[2], copy[2]
    first = np.where(first_host >= 0, first_host, first_copy)  # the row that names the group's source and rank
    kernel_start, kernel_end, has_kernels = _device_extents(events, keys)
    has_copy = copy[2] >= 0
    dev_start = np.where(has_copy, copy[0], kernel_start)
    dev_end = np.where(has_copy, copy[1], kernel_end)
    has_dev = has_copy | has_kernels
    has_host = first_host >= 0
    device_from = np.where(has_copy, DEVICE_COPY_CAT, np.where(has_kernels, "device_events", None)).astype(object)
    out_si = np.array([k[0] for k in keys], dtype=np.int64)
    out_step = np.array([k[2] for k in keys], dtype=np.int64)
    step_known = np.array([not k[1] for k in keys], dtype=bool)
    # sort by (source_index, start_ns, device_start_ns), missing values last, ties in key order
    order = np.lexsort((dev_start, ~has_dev, host[0], ~has_host, out_si))
    return _frame({
        "source_index": out_si[order].astype(np.int32),
        "source": pd.Series(source[first[order]], dtype=object).astype(str).array,
        "rank": rank[first[order]].astype(np.int64),
        "step": _nullable(out_step, step_known)[order],
        "start_ns": _nullable(host[0], has_host)[order],
        "dur_ns": _nullable(host[1] - host[0], has_host)[order],
        "device_start_ns": _nullable(dev_start, has_dev)[order],
        "device_dur_ns": _nullable(dev_end - dev_start, has_dev)[order],
        "device_from": device_from[order],
    })


def _frame(columns: dict[str, Any]) -> pd.DataFrame:
    """`pd.DataFrame(columns)` of arrays that keep their dtypes (numpy, or pandas extension arrays; an object array
    stays object), made with pandas' `_from_arrays`: no dtype inference, no index alignment (~0.5 ms less a rank)."""
    import pandas as pd

    make = getattr(pd.DataFrame, "_from_arrays", None)
    if make is None:  # a pandas without it
        return pd.DataFrame({name: pd.Series(a, dtype=a.dtype, copy=False) for name, a in columns.items()})
    arrays = list(columns.values())
    return make(arrays, columns=pd.Index(list(columns)), index=pd.RangeIndex(len(arrays[0])), verify_integrity=False)


def _step_number(name: object) -> int | None:
    found = _STEP_NUMBER.search(str(name))
    return int(found.group(1)) if found else None


def _nullable(values: np.ndarray, known: np.ndarray) -> pd.arrays.IntegerArray:
    """An Int64 array (missing where not known)."""
    import pandas as pd

    return pd.arrays.IntegerArray(np.where(known, values, 0).astype(np.int64), ~known)


def _extents(group: np.ndarray, pick: np.ndarray, start: np.ndarray, end: np.ndarray, groups: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group over the picked rows: min start, max end, and the first picked row (-1: none)."""
    lo = np.full(groups, np.iinfo(np.int64).max, dtype=np.int64)
    hi = np.full(groups, np.iinfo(np.int64).min, dtype=np.int64)
    first = np.full(groups, len(group), dtype=np.int64)
    at = np.flatnonzero(pick)
    np.minimum.at(lo, group[at], start[at])
    np.maximum.at(hi, group[at], end[at])
    np.minimum.at(first, group[at], at)
    return lo, hi, np.where(first < len(group), first, -1)


def _device_extents(events: pd.DataFrame, keys: list[tuple[int, bool, int]]
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per step key: first start and last end of the device events that ran in the step, and whether any did."""
    lo = np.full(len(keys), np.iinfo(np.int64).max, dtype=np.int64)
    hi = np.full(len(keys), np.iinfo(np.int64).min, dtype=np.int64)
    if "step" not in events:
        return lo, hi, np.zeros(len(keys), dtype=bool)
    step = column(events, "step")
    rows = np.flatnonzero(kind_in(events, DEVICE_KINDS) & (step >= 0))
    si = column(events, "source_index")[rows]
    known = [i for i, (_, missing, n) in enumerate(keys) if not missing and n < 2**31]
    key_code = np.array([(keys[i][0] << 32) | keys[i][2] for i in known], dtype=np.int64)
    row_code = (si.astype(np.int64) << 32) | step[rows].astype(np.int64)
    at = np.minimum(np.searchsorted(key_code, row_code), max(len(known) - 1, 0))
    hit = np.flatnonzero(key_code[at] == row_code) if len(known) else np.zeros(0, dtype=np.int64)
    group = np.asarray(known, dtype=np.int64)[at[hit]]
    ts = column(events, "ts_ns")[rows[hit]]
    np.minimum.at(lo, group, ts)
    np.maximum.at(hi, group, ts + np.maximum(column(events, "dur_ns")[rows[hit]], 0))
    has = np.zeros(len(keys), dtype=bool)
    has[group] = True
    return lo, hi, has
