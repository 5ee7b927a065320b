"""Assign each event the profiler step (`ProfilerStep#N`) it ran in; the steps table (host and device extents)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from tracekit.table import DEVICE_KINDS

_STEP_NUMBER = re.compile(r"#(\d+)$")


def assign_steps(events: pd.DataFrame, launch: np.ndarray) -> np.ndarray:
    """Step number per row (-1 outside any step); device events take the step of their launch."""
    n = len(events)
    step = np.full(n, -1, dtype=np.int32)
    kind = events["kind"].to_numpy()
    src = events["source_index"].to_numpy()
    ts = events["ts_ns"].to_numpy()
    when = np.where(launch >= 0, ts[np.maximum(launch, 0)], ts)
    step_rows = np.flatnonzero(kind == "step")
    for source in np.unique(src[step_rows]):
        mine = step_rows[src[step_rows] == source]
        numbers = np.array(
            [int(m.group(1)) if (m := _STEP_NUMBER.search(str(nm))) else -1
             for nm in events["name"].to_numpy()[mine]], dtype=np.int32)
        starts = ts[mine]
        ends = starts + np.maximum(events["dur_ns"].to_numpy()[mine], 0)
        order = np.argsort(starts, kind="stable")
        starts, ends, numbers = starts[order], ends[order], numbers[order]
        rows = np.flatnonzero(src == source)
        pos = np.searchsorted(starts, when[rows], side="right") - 1
        inside = (pos >= 0) & (when[rows] < ends[np.maximum(pos, 0)])
        step[rows[inside]] = numbers[pos[inside]]
    return step


DEVICE_COPY_CAT = "gpu_user_annotation"  # Kineto's device-side copy of a ProfilerStep annotation
STEP_COLUMNS = ("source_index", "source", "rank", "step", "start_ns", "dur_ns", "device_start_ns", "device_dur_ns",
                "device_from")


def step_table(events: pd.DataFrame) -> pd.DataFrame:
    """One row per (source, step): the host extent of its ProfilerStep annotation (`start_ns`, `dur_ns`) and
    its device extent: the annotation's GPU copy where Kineto wrote one (`device_from = gpu_user_annotation`),
    else the first start to last end of the device events launched in the step (`device_events`), else none."""
    rows = events[events["kind"] == "step"]
    if not len(rows):
        return pd.DataFrame({c: [] for c in STEP_COLUMNS})
    frame = pd.DataFrame({
        "source_index": rows["source_index"].to_numpy() if "source_index" in rows else 0,
        "source": rows["source"].astype(str).to_numpy(), "rank": rows["rank"].to_numpy(),
        "step": rows["name"].astype(str).str.extract(_STEP_NUMBER, expand=False).astype("Int64").to_numpy(),
        "start": rows["ts_ns"].to_numpy(), "end": rows["ts_ns"].to_numpy() + np.maximum(rows["dur_ns"].to_numpy(), 0),
        "device_copy": (rows["cat"].astype(str) == DEVICE_COPY_CAT).to_numpy(),
    })
    key = ["source_index", "step"]
    host = frame[~frame["device_copy"]].groupby(key, dropna=False).agg(
        source=("source", "first"), rank=("rank", "first"), start=("start", "min"), end=("end", "max"))
    copy = frame[frame["device_copy"]].groupby(key, dropna=False).agg(
        source=("source", "first"), rank=("rank", "first"), start=("start", "min"), end=("end", "max"))
    host, copy = (f.astype({"start": "Int64", "end": "Int64"}) for f in (host, copy))  # no float: ns need 19 digits
    out = host.join(copy, how="outer", rsuffix="_dev")
    out["source"] = out["source"].fillna(out["source_dev"])
    out["rank"] = out["rank"].fillna(out["rank_dev"])
    launched = _device_extents(events)
    out = out.join(launched, how="left")
    has_copy = out["start_dev"].notna()
    out["device_start_ns"] = out["start_dev"].where(has_copy, out["kernel_start"])
    out["device_end"] = out["end_dev"].where(has_copy, out["kernel_end"])
    launched_from = np.where(out["kernel_start"].notna(), "device_events", None)
    out["device_from"] = np.where(has_copy, DEVICE_COPY_CAT, launched_from)
    out = out.reset_index()
    return pd.DataFrame({
        "source_index": out["source_index"].astype(np.int32), "source": out["source"].astype(str),
        "rank": out["rank"].astype(np.int64), "step": out["step"].astype("Int64"),
        "start_ns": out["start"].astype("Int64"), "dur_ns": (out["end"] - out["start"]).astype("Int64"),
        "device_start_ns": out["device_start_ns"].astype("Int64"),
        "device_dur_ns": (out["device_end"] - out["device_start_ns"]).astype("Int64"),
        "device_from": out["device_from"].astype(object),
    }).sort_values(["source_index", "start_ns", "device_start_ns"], na_position="last").reset_index(drop=True)


def _device_extents(events: pd.DataFrame) -> pd.DataFrame:
    """Per (source_index, step): first start and last end of the device events that ran in the step."""
    device = events[events["kind"].isin(DEVICE_KINDS) & (events["step"] >= 0)] if "step" in events else events[:0]
    frame = pd.DataFrame({"source_index": device["source_index"].to_numpy(),
                          "step": device["step"].astype("Int64").to_numpy(),
                          "kernel_start": device["ts_ns"].to_numpy(),
                          "kernel_end": device["ts_ns"].to_numpy() + np.maximum(device["dur_ns"].to_numpy(), 0)})
    out = frame.groupby(["source_index", "step"]).agg(kernel_start=("kernel_start", "min"),
                                                      kernel_end=("kernel_end", "max"))
    return out.astype("Int64")
