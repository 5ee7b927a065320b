"""Sampled device metrics and the overlap analysis of a torch_npu .db export, as trace_view.json shows them.

Counters (one chrome `C` event per value, in the process trace_view.json uses for them):

| table | process | counters (per row) |
|---|---|---|
| AICORE_FREQ | AI Core Freq | `AI Core Freq` {MHz} (the session-start row is left out when a measured
  row exists, as in trace_view.json) |
| HBM | HBM | `HBM {hbmId}/Read` or `/Write` {Read(MB/s)} (bandwidth B/s / 1e6) |
| LLC | LLC | `LLC {llcId} Read/Hit Rate` {Hit Rate(%)}, `LLC {llcId} Read/Throughput` {Throughput(MB/s)} |
| NPU_MEM | NPU MEM | `APP/DDR`, `APP/HBM`, `APP/Memory` or `Device/...` {KB} (bytes / 1024; Memory = DDR + HBM) |
| ACC_PMU | Acc PMU | `read_bandwidth`, `write_band_width`, `read_ost`, `write_ost` {value, acc_id} |
| SOC_BANDWIDTH_LEVEL | Stars Soc Info | `L2 Buffer Bw Level`, `Mata Bw Level` |

QoS samples have no table in the .db export, so a .db gives no `QoS` counters (trace_view.json does).

Overlap Analysis: the OVERLAP_ANALYSIS table when the export has it; otherwise the same four tracks are
derived from the device timeline (Computing = union of compute tasks, Communication = union of HCCL
ops, Communication(Not Overlapped) = communication outside compute, Free = gaps between the first and
last device activity), with `derived` in each event's args naming the evidence.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import numpy as np

OVERLAP_NAMES = ("Computing", "Communication", "Communication(Not Overlapped)", "Free")
SKIP_FREQ_AT_START = "db_aicore_freq_row_at_session_start"
DERIVED = "no OVERLAP_ANALYSIS table: derived from TASK (compute kernels) and COMMUNICATION_OP (HCCL ops)"


def add_counters(con: sqlite3.Connection, tables: set[str], ev: Any, names: dict, hw_pid: int,
                 select: Callable[[sqlite3.Connection, str, str], sqlite3.Cursor], s: Callable[[Any], str]) -> None:
    """Every sampled-metric table the export has, as counter events in its own process."""
    def process(offset: int, name: str) -> int:
        pid = hw_pid + offset
        names["process"][pid] = name
        return pid

    if "AICORE_FREQ" in tables:
        pid = process(20, "AI Core Freq")
        start, end = _session(con, tables, select)
        rows = list(select(con, "AICORE_FREQ", "timestampNs, freq"))
        measured = any(int(ts) not in (start, end) for ts, _f in rows)
        for ts, freq in rows:
            if measured and int(ts) == start:
                ev.skipped[SKIP_FREQ_AT_START] = ev.skipped.get(SKIP_FREQ_AT_START, 0) + 1
                continue
            ev.add("C", "AI Core Freq", None, pid, 0, int(ts), args={"MHz": freq})
    if "HBM" in tables:
        pid = process(21, "HBM")
        for ts, bw, hbm, kind in select(con, "HBM", "timestampNs, bandwidth, hbmId, type"):
            label = s(kind).capitalize() or str(kind)
            ev.add("C", f"HBM {hbm}/{label}", None, pid, 0, int(ts), args={f"{label}(MB/s)": _mb(bw)})
    if "LLC" in tables:
        pid = process(22, "LLC")
        for ts, llc, hit, throughput, mode in select(con, "LLC", "timestampNs, llcId, hitRate, throughput, mode"):
            label = s(mode).capitalize() or str(mode)
            ev.add("C", f"LLC {llc} {label}/Hit Rate", None, pid, 0, int(ts), args={"Hit Rate(%)": hit})
            ev.add("C", f"LLC {llc} {label}/Throughput", None, pid, 0, int(ts),
                   args={"Throughput(MB/s)": _mb(throughput)})
    if "NPU_MEM" in tables:
        pid = process(23, "NPU MEM")
        for ts, kind, ddr, hbm in select(con, "NPU_MEM", "timestampNs, type, ddr, hbm"):
            label = {"app": "APP", "device": "Device"}.get(s(kind), s(kind) or str(kind))
            ddr_kb, hbm_kb = (ddr or 0) / 1024, (hbm or 0) / 1024
            for part, value in (("DDR", ddr_kb), ("HBM", hbm_kb), ("Memory", ddr_kb + hbm_kb)):
                ev.add("C", f"{label}/{part}", None, pid, 0, int(ts), args={"KB": value})
    if "ACC_PMU" in tables:
        pid = process(24, "Acc PMU")
        columns = "timestampNs, accId, readBwLevel, writeBwLevel, readOstLevel, writeOstLevel"
        for ts, acc, read_bw, write_bw, read_ost, write_ost in select(con, "ACC_PMU", columns):
            for name, value in (("read_bandwidth", read_bw), ("write_band_width", write_bw),
                                ("read_ost", read_ost), ("write_ost", write_ost)):
                ev.add("C", name, None, pid, 0, int(ts), args={"value": value, "acc_id": acc})
    if "SOC_BANDWIDTH_LEVEL" in tables:
        pid = process(25, "Stars Soc Info")
        for ts, l2, mata in select(con, "SOC_BANDWIDTH_LEVEL", "timestampNs, l2BufferBwLevel, mataBwLevel"):
            ev.add("C", "Mata Bw Level", None, pid, 0, int(ts), args={"Mata Bw Level": mata})
            ev.add("C", "L2 Buffer Bw Level", None, pid, 0, int(ts), args={"L2 Buffer Bw Level": l2})


def _mb(value: Any) -> Any:
    return value / 1e6 if isinstance(value, (int, float)) else value


def _session(con: sqlite3.Connection, tables: set[str], select) -> tuple[int | None, int | None]:
    if "SESSION_TIME_INFO" not in tables:
        return None, None
    row = select(con, "SESSION_TIME_INFO", "startTimeNs, endTimeNs").fetchone()
    return tuple(int(v) if v is not None else None for v in row) if row else (None, None)


def add_overlap(con: sqlite3.Connection, tables: set[str], ev: Any, names: dict, pid: int,
                compute: list[tuple[int, int]], comm: list[tuple[int, int]],
                select: Callable[[sqlite3.Connection, str, str], sqlite3.Cursor]) -> None:
    """Overlap Analysis spans from OVERLAP_ANALYSIS, or derived from compute and communication intervals."""
    if "OVERLAP_ANALYSIS" in tables:
        rows = [(int(a), int(b), int(k)) for a, b, k in select(con, "OVERLAP_ANALYSIS", "startNs, endNs, type")]
        args = None
    else:
        rows = derive_overlap(compute, comm)
        args = {"derived": DERIVED}
    if not rows:
        return
    names["process"][pid] = "Overlap Analysis"
    for start, end, kind in rows:
        name = OVERLAP_NAMES[kind] if 0 <= kind < len(OVERLAP_NAMES) else str(kind)
        ev.add("X", name, None, pid, kind, start, end - start, args)
        names["thread"][(pid, kind)] = name


def _union(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(a, b) for a, b in out]


def _minus(spans: list[tuple[int, int]], cut: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Parts of the disjoint sorted `spans` outside the disjoint sorted `cut`."""
    out = []
    starts = np.array([a for a, _ in cut], dtype=np.int64)
    for start, end in spans:
        cur = start
        i = max(int(np.searchsorted(starts, start, side="right")) - 1, 0)
        while i < len(cut) and cut[i][0] < end:
            a, b = cut[i]
            if b > cur:
                if a > cur:
                    out.append((cur, min(a, end)))
                cur = max(cur, b)
            i += 1
        if cur < end:
            out.append((cur, end))
    return out


def derive_overlap(compute: list[tuple[int, int]], comm: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """(start, end, type) rows like OVERLAP_ANALYSIS: 0 Computing, 1 Communication, 2 Not Overlapped, 3 Free."""
    computing, communication = _union(compute), _union(comm)
    busy = _union(computing + communication)
    if not busy:
        return []
    free = _minus([(busy[0][0], busy[-1][1])], busy)
    rows = [(a, b, 0) for a, b in computing] + [(a, b, 1) for a, b in communication]
    rows += [(a, b, 2) for a, b in _minus(communication, computing)] + [(a, b, 3) for a, b in free]
    return sorted(rows, key=lambda r: (r[2], r[0]))
