"""HCCL facts of one torch_npu rank: communication.json and communication_matrix.json.

communication.json: `{"step13": {"p2p"|"collective": {"<op>@<group hash>": {"Communication Time Info":
{...}, "Communication Bandwidth Info": {"HCCS"|"SDMA"|"RDMA"|...: {"Transit Size(MB)", ...}}}}}}` -- one
entry per HCCL op with its group (a hash of the communicator, the same on every member), start,
elapsed, wait and synchronization time, and the bytes it moved per link type (SDMA covers the on-chip
links HCCS/PCIE/SIO; RDMA is across hosts).

communication_matrix.json: per op family (`allreduce-top1@<group>`), links `"src-dst"` in group-local
ranks with the op name: they give each group's size, this rank's place in it and the peer of a p2p op.

These facts are added to the args of the HCCL ops (`hcom_*`) of the event table, and a rank whose
output holds nothing else (no trace_view.json, .db or kernel_details.csv) gets its HCCL ops as events.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from tracekit.errors import TraceError
from tracekit.table import EventTable

COMM_FILE, MATRIX_FILE = "communication.json", "communication_matrix.json"
_STEP = re.compile(r"(\d+)$")
_LINK = re.compile(r"^(\d+)-(\d+)$")
NEAR_NS = 2000  # an op of communication.json joins the event of the same name starting within 2 us
TRANSIT_LINKS = ("SDMA", "RDMA")  # SDMA already sums HCCS, PCIE and SIO


@dataclass
class CommOp:
    """One HCCL op of communication.json."""

    name: str
    group: str
    step: int
    family: str  # "p2p" | "collective"
    start_ns: int
    elapse_ns: int
    wait_ns: int
    sync_ns: int
    idle_ns: int
    transit_ns: int
    transit_bytes: int
    bandwidth_gbps: float | None


@dataclass
class GroupLinks:
    """What communication_matrix.json says about one group on this rank."""

    local_ranks: set[int] = field(default_factory=set)
    own_rank: int | None = None
    peers: dict[str, set[int]] = field(default_factory=dict)  # op name -> group-local peers


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(), parse_float=Decimal)
    except (OSError, ValueError) as exc:
        raise TraceError(path, f"unreadable JSON: {exc}") from None


def _num(value: Any, path: Path, where: str) -> Decimal:
    """A number of communication.json (None/absent: 0); anything else is an error naming the entry."""
    if value is None:
        return Decimal(0)
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise TraceError(path, f"{where}: not a number ({value!r})")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise TraceError(path, f"{where}: not a number ({value!r})") from None


def read_communication(path: Path) -> list[CommOp]:
    """Every op of communication.json; an entry that is not an object is an error naming its key."""
    data = _load(path)
    if not isinstance(data, dict):
        raise TraceError(path, "communication.json is not an object of steps")
    ops = []
    for step_key, families in data.items():
        m = _STEP.search(str(step_key))
        step = int(m.group(1)) if m else -1
        if not isinstance(families, dict):
            raise TraceError(path, f"step {step_key!r} is not an object")
        for family, entries in families.items():
            if not isinstance(entries, dict):
                raise TraceError(path, f"{step_key}/{family} is not an object of ops")
            for key, entry in entries.items():
                if key == "Total Op Info":
                    continue
                if not isinstance(entry, dict):
                    raise TraceError(path, f"{step_key}/{family}/{key} is not an object")
                ops.append(_op(key, entry, step, family, path, f"{step_key}/{family}/{key}"))
    return ops


def _op(key: str, entry: dict[str, Any], step: int, family: str, path: Path, where: str) -> CommOp:
    name, _, group = key.partition("@")
    times = entry.get("Communication Time Info") or {}
    links = entry.get("Communication Bandwidth Info") or {}
    if not isinstance(times, dict) or not isinstance(links, dict):
        raise TraceError(path, f"{where}: Communication Time/Bandwidth Info is not an object")

    def link(kind: str, field: str) -> Decimal:
        facts = links.get(kind) or {}
        return _num(facts.get(field) if isinstance(facts, dict) else facts, path, f"{where}/{kind}/{field}")

    def ns(field: str, scale: int) -> int:
        return int(_num(times.get(field), path, f"{where}/{field}") * scale)

    transit_mb = sum((link(k, "Transit Size(MB)") for k in TRANSIT_LINKS), Decimal(0))
    transit_ms = sum((link(k, "Transit Time(ms)") for k in TRANSIT_LINKS), Decimal(0))
    bandwidth = float(transit_mb / transit_ms) if transit_ms > 0 else None  # MB/ms = GB/s
    if "Start Timestamp(us)" not in times:
        raise TraceError(path, f"{where}: no Start Timestamp(us)")
    return CommOp(
        name=name, group=group, step=step, family=family, start_ns=ns("Start Timestamp(us)", 1000),
        elapse_ns=ns("Elapse Time(ms)", 10**6), wait_ns=ns("Wait Time(ms)", 10**6),
        sync_ns=ns("Synchronization Time(ms)", 10**6), idle_ns=ns("Idle Time(ms)", 10**6),
        transit_ns=int(transit_ms * 10**6), transit_bytes=int(transit_mb * 10**6), bandwidth_gbps=bandwidth,
    )


def read_matrix(path: Path) -> dict[str, GroupLinks]:
    """Group hash -> the group-local ranks seen in links, this rank's own rank (its LOCAL link), p2p peers."""
    data = _load(path)
    groups: dict[str, GroupLinks] = {}
    if not isinstance(data, dict):
        raise TraceError(path, "communication_matrix.json is not an object of steps")
    for step_key, families in data.items():
        if not isinstance(families, dict):
            raise TraceError(path, f"step {step_key!r} is not an object")
        for family, entries in families.items():
            if not isinstance(entries, dict):
                raise TraceError(path, f"{step_key}/{family} is not an object of op families")
            for key, links in entries.items():
                if not isinstance(links, dict):
                    raise TraceError(path, f"{step_key}/{family}/{key} is not an object of links")
                group = key.partition("@")[2]
                info = groups.setdefault(group, GroupLinks())
                for link, facts in (links or {}).items():
                    m = _LINK.match(str(link))
                    if not m or not isinstance(facts, dict):
                        continue
                    src, dst = int(m.group(1)), int(m.group(2))
                    info.local_ranks.update((src, dst))
                    if src == dst or facts.get("Transport Type") == "LOCAL":
                        info.own_rank = src
                    elif facts.get("Op Name"):
                        info.peers.setdefault(str(facts["Op Name"]), set()).update((src, dst))
    for info in groups.values():
        if info.own_rank is not None:
            for peers in info.peers.values():
                peers.discard(info.own_rank)
    return groups


def comm_facts(out_dir: Path | None) -> tuple[list[CommOp], dict[str, GroupLinks]]:
    """The ops of communication.json and the groups of communication_matrix.json in an output folder."""
    if out_dir is None:
        return [], {}
    comm, matrix = out_dir / COMM_FILE, out_dir / MATRIX_FILE
    return (read_communication(comm) if comm.is_file() else [],
            read_matrix(matrix) if matrix.is_file() else {})


def op_args(op: CommOp | None, group: str | None, links: dict[str, GroupLinks], name: str) -> dict[str, Any]:
    """The HCCL facts of one op, as args keys (only those known)."""
    out: dict[str, Any] = {}
    group = group or (op.group if op else None)
    if group:
        out["group"] = group
    if op is not None:
        out.update({"communication.json": {
            "step": op.step, "type": op.family, "elapse_ns": op.elapse_ns, "wait_ns": op.wait_ns,
            "synchronization_ns": op.sync_ns, "idle_ns": op.idle_ns, "transit_ns": op.transit_ns,
            "transit_bytes": op.transit_bytes, "bandwidth_GBps": op.bandwidth_gbps}})
    info = links.get(group or "")
    if info is not None and info.local_ranks:
        out["group size"] = max(info.local_ranks) + 1
        if info.own_rank is not None:
            out["group rank"] = info.own_rank
        peers = info.peers.get(name)
        if peers:
            out["peers"] = sorted(peers)
    return out


def annotate_hccl(table: EventTable, out_dir: Path | None) -> EventTable:
    """Add group, group size/rank, peers and communication.json times to the args of each `hcom_*` span."""
    ops, links = comm_facts(out_dir)
    if not ops and not links:
        return table
    ev = table.events
    rows = np.flatnonzero(ev["name"].astype(str).str.startswith("hcom_").to_numpy() & (ev["ph"] == "X").to_numpy())
    if not len(rows):
        return table
    by_name: dict[str, list[CommOp]] = {}
    for op in ops:
        by_name.setdefault(op.name, []).append(op)
    values = table.args.to_pylist()
    ts = ev["ts_ns"].to_numpy()
    names = ev["name"].astype(str).to_numpy()
    for row in rows.tolist():
        current = msgspec.json.decode(values[row]) if values[row] else {}
        cands = [o for o in by_name.get(names[row], []) if abs(o.start_ns - int(ts[row])) <= NEAR_NS]
        op = min(cands, key=lambda o: abs(o.start_ns - int(ts[row]))) if cands else None
        extra = {k: v for k, v in op_args(op, current.get("group"), links, names[row]).items() if k not in current}
        if extra:
            body = (values[row] or b"{}").rstrip()
            values[row] = body[:-1] + (b"," if current else b"") + msgspec.json.encode(extra)[1:]
    return EventTable(ev, pa.array(values, type=pa.large_binary()), table.sources)
