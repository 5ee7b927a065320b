"""kernel_details.csv of torch_npu: read it (three column sets) and join its rows to device kernels.

Column sets: level0 (no Task ID / Stream ID / shapes), level1/2 (ids, shapes, dtypes, formats,
PMU metrics) and CANN 8.3 (level1/2 plus `Device_id`). `Start Time(us)` ends with a tab; shapes
are quoted (`"32,3,224,224;64,3,11,11"` once the CSV quoting is undone) with `;` between inputs.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from tracekit.errors import TraceError, warn
from tracekit.limits import max_input_bytes
from tracekit.timeconv import us_to_ns

from .loading import regular_file_size, too_big

SHAPE_COLUMNS = ("Input Shapes", "Output Shapes")
LIST_COLUMNS = ("Input Data Types", "Input Formats", "Output Data Types", "Output Formats")
KEY_COLUMNS = ("Name", "Start Time(us)", "Duration(us)", "Stream ID", "Task ID", "Device_id")
MISSING = ("", "N/A")
NEAR_NS = 1000  # rows without ids are matched by name to the nearest kernel start within 1 us


@dataclass
class KernelDetails:
    """The rows of one kernel_details.csv as columns; `details` holds each row's other fields."""

    path: Path
    column_set: str  # "level0" | "level1/2" | "CANN 8.3 (Device_id)"
    name: list[str]
    stream: np.ndarray  # int64, -1 where N/A or absent
    task: np.ndarray
    device: np.ndarray
    ts_ns: np.ndarray
    dur_ns: np.ndarray
    details: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.name)


def read_kernel_details(path: Path) -> KernelDetails:
    """Parse kernel_details.csv; a row without a valid start time is an error naming its line."""
    header, rows = read_csv_rows(path)
    if "Name" not in header or "Start Time(us)" not in header:
        raise TraceError(path, "not a kernel_details.csv: no 'Name' / 'Start Time(us)' columns")
    col = {h: i for i, h in enumerate(header)}
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    bad = [line for line, r in enumerate(rows, start=2) if len(r) != len(header)]
    if bad:
        warn(path, f"{len(bad)} rows do not have the header's {len(header)} fields and were skipped "
                   f"(first at line {bad[0]})")
        rows = [r for r in rows if len(r) == len(header)]

    def cells(name: str) -> list[str]:
        i = col.get(name)
        return [r[i].strip().strip('"').strip() for r in rows] if i is not None else [""] * len(rows)

    ts_ns, ok = us_to_ns(cells("Start Time(us)"), path, "Start Time(us)")
    if not ok.all():
        bad = int(np.flatnonzero(~ok)[0])
        raise TraceError(path, f"line {bad + 2}: 'Start Time(us)' is not a number")
    dur_ns, dur_ok = us_to_ns(cells("Duration(us)"), path, "Duration(us)")
    if "Duration(us)" in col and not dur_ok.all():
        warn(path, f"{int((~dur_ok).sum())} rows have no valid 'Duration(us)' (not a number or beyond int64 ns); "
                   f"their kernels keep duration 0 (first at line {int(np.flatnonzero(~dur_ok)[0]) + 2})")
    dur_ns[~dur_ok] = 0
    if "Device_id" in col:
        column_set = "CANN 8.3 (Device_id)"
    elif "Task ID" in col:
        column_set = "level1/2"
    else:
        column_set = "level0"
    others = [h for h in header if h not in KEY_COLUMNS]
    details = [_details(dict(zip(others, (r[col[h]] for h in others)))) for r in rows]
    return KernelDetails(path, column_set, [r[col["Name"]].strip() for r in rows], _ids(cells("Stream ID")),
                         _ids(cells("Task ID")), _ids(cells("Device_id")), ts_ns, dur_ns, details)


# The largest cell read from a CSV; the csv module's default limit (128 KiB) is raised to this.
MAX_CSV_CELL = 16 << 20


def read_csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV export. Invalid UTF-8 becomes "?" (warned, counted); a cell over
    MAX_CSV_CELL or a broken quote is a TraceError naming the line."""
    size, limit = regular_file_size(path), max_input_bytes()
    if size > limit:
        raise TraceError(path, too_big(size, limit))
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("utf-8-sig", "replace")
        bad = text.count("\ufffd")
        text = text.replace("\ufffd", "?")
        warn(path, f"{bad} invalid UTF-8 sequences replaced by '?'")
    del data
    old = csv.field_size_limit()
    csv.field_size_limit(MAX_CSV_CELL)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader, [])]
        rows = list(reader)
    except csv.Error as exc:
        raise TraceError(path, f"line {reader.line_num}: unreadable CSV ({exc})") from None
    finally:
        csv.field_size_limit(old)
    return header, rows


def _ids(values: list[str]) -> np.ndarray:
    return np.array([int(v) if v.lstrip("-").isdigit() and len(v) < 19 else -1 for v in values], dtype=np.int64)


def _details(raw: dict[str, str]) -> dict[str, Any]:
    """One row's fields: shapes as lists of int lists, dtypes/formats as lists, numbers as numbers."""
    out: dict[str, Any] = {}
    for key, text in raw.items():
        value = text.strip().strip('"').strip()
        if value in MISSING:
            continue
        if key in SHAPE_COLUMNS:
            out[key] = [_dims(part) for part in value.split(";")]
        elif key in LIST_COLUMNS:
            out[key] = value.split(";")
        else:
            out[key] = _number(value)
    return out


def _dims(text: str) -> list[int] | str:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if all(p.lstrip("-").isdigit() and len(p) < 19 for p in parts):
        return [int(p) for p in parts]
    return text


def _number(text: str) -> Any:
    if text.lstrip("-").isdigit():
        return int(text) if len(text) < 19 else text
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else text


@dataclass(frozen=True)
class JoinResult:
    """Row of kernel_details joined to each kernel (-1: none), and the counts."""

    match: np.ndarray
    counts: dict[str, Any]


def join_kernel_details(kd: KernelDetails, name: list[str], stream: np.ndarray, task: np.ndarray,
                        ts_ns: np.ndarray) -> JoinResult:
    """Join kernels to rows on (stream id, task id, start ns); rows without ids by (name, nearest start).

    Each row joins at most one kernel.
    """
    n = len(name)
    match = np.full(n, -1, dtype=np.int64)
    rows = pd.DataFrame({"stream": kd.stream, "task": kd.task, "ts": kd.ts_ns, "krow": np.arange(len(kd))})
    rows = rows[(rows["stream"] >= 0) & (rows["task"] >= 0)].drop_duplicates(["stream", "task", "ts"])
    ev = pd.DataFrame({"stream": stream, "task": task, "ts": ts_ns, "row": np.arange(n)})
    exact = ev.merge(rows, on=["stream", "task", "ts"], how="inner").drop_duplicates("krow")
    match[exact["row"].to_numpy()] = exact["krow"].to_numpy()
    used = np.zeros(len(kd), dtype=bool)
    used[exact["krow"].to_numpy()] = True
    _join_nearest(kd, name, ts_ns, match, used)
    joined = int((match >= 0).sum())
    counts = {"file": str(kd.path), "columns": kd.column_set, "rows": len(kd), "kernels": n, "joined": joined,
              "kernels_not_joined": n - joined, "rows_not_joined": int((~used).sum())}
    return JoinResult(match, counts)


def _join_nearest(kd: KernelDetails, name: list[str], ts_ns: np.ndarray, match: np.ndarray,
                  used: np.ndarray) -> None:
    """Unmatched kernels to unused rows of the same name whose start is within NEAR_NS."""
    left = pd.DataFrame({"name": name, "ts": ts_ns, "row": np.arange(len(name))})[match < 0]
    right = pd.DataFrame({"name": kd.name, "ts": kd.ts_ns, "krow": np.arange(len(kd))})[~used]
    if left.empty or right.empty:
        return
    near = pd.merge_asof(left.sort_values("ts"), right.sort_values("ts"), on="ts", by="name",
                         direction="nearest", tolerance=NEAR_NS)
    near = near.dropna(subset=["krow"]).drop_duplicates("krow")
    krows = near["krow"].to_numpy().astype(np.int64)
    match[near["row"].to_numpy()] = krows
    used[krows] = True


def details_json(kd: KernelDetails, krow: int) -> bytes:
    """The kernel_details fields of one row as a JSON object."""
    return msgspec.json.encode(kd.details[krow])
