"""HCCL (Ascend) collectives as rows of the collectives table, with the same columns as NCCL and gloo rows.

Each HCCL op (`hcom_allReduce__586_0_1`, `hcom_batchSendRecv__128_4_1`, ...) is a span on the device:
on the HCCL process of trace_view.json and the .db export, a `COMMUNICATION` row of kernel_details.csv,
or (ranks that exported only communication.json) an entry of communication.json. The readers put its
facts into its args: `count` and `data_type` (trace_view, db), `group` (the communicator, the same on every
member), `group size` and `group rank` (communication_matrix.json or the db's task info), `peers`, and the
communication.json times (`wait_ns`: time spent waiting for the other members).

`with_hccl` (one rank): an HCCL op launched under a host collective call (`c10d::allreduce_` ->
HcclAllreduce -> hcom_allReduce) becomes that call's execution (device start and duration, bytes from
count x data type, its group); an op without a host call (kernel_details or communication.json only)
is a row of its own. `label_hccl_groups` (all ranks): the HCCL group of each row is matched to the
process groups of `parallel_group_info` by size, members and this rank's place in it, marked inferred.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from tracekit.converters.args_bytes import take_args
from tracekit.table import DEVICE_KINDS, EventTable, kind_in, strings

_HCOM = re.compile(r"^hcom_([A-Za-z]+)_")
HCCL_OPS = {
    "allreduce": "all_reduce", "allgather": "all_gather", "allgatherv": "all_gather", "reducescatter": "reduce_scatter",
    "reducescatterv": "reduce_scatter", "alltoall": "all_to_all", "alltoallv": "all_to_all",
    "alltoallvc": "all_to_all", "broadcast": "broadcast", "send": "send", "receive": "recv", "recv": "recv",
    "batchsendrecv": "send_recv", "reduce": "reduce", "scatter": "scatter", "gather": "gather", "barrier": "barrier",
}
HCCL_DTYPE_BYTES = {
    "INT8": 1, "UINT8": 1, "INT16": 2, "UINT16": 2, "INT32": 4, "UINT32": 4, "INT64": 8, "UINT64": 8,
    "FP16": 2, "BFP16": 2, "BF16": 2, "FP32": 4, "FP64": 8, "HIF8": 1, "FP8E4M3": 1, "FP8E5M2": 1,
}
P2P = ("send", "recv", "send_recv")
GROUP_FROM = "HCCL op args (communicator id; its members are matched across ranks)"
NO_COUNT = ("HCCL op without count and data type (kernel_details.csv / communication.json only); "
            "hccl_transit_bytes has what it moved over the links")
EXTRA = ("group_size", "group_rank", "hccl_wait_ns", "hccl_transit_bytes", "hccl_bandwidth_GBps")


def hccl_collective(name: str) -> str | None:
    """all_reduce, send_recv, ... of an HCCL op name; None when the name is not an HCCL op."""
    m = _HCOM.match(name)
    return HCCL_OPS.get(m.group(1).lower(), m.group(1).lower()) if m else None


def _decode(raw: bytes | None) -> dict[str, Any]:
    try:
        return msgspec.json.decode(raw) if raw else {}
    except msgspec.DecodeError:
        return {}


def hccl_rows(table: EventTable) -> np.ndarray:
    """Rows of the HCCL ops (device spans named hcom_*)."""
    ev = table.events
    if not len(ev) or not any(src.format == "npu" for src in table.sources):
        return np.zeros(0, dtype=np.int64)
    names = ev["name"].astype(str)
    return np.flatnonzero(kind_in(ev, DEVICE_KINDS) & names.str.startswith("hcom_").to_numpy()
                          & (ev["ph"] == "X").to_numpy())


def _facts(name: str, a: dict[str, Any]) -> dict[str, Any]:
    """Collective, bytes, group and HCCL extras of one op from its args."""
    comm = a.get("communication.json") or {}
    elem = HCCL_DTYPE_BYTES.get(str(a.get("data_type", "")).upper())
    count = a.get("count")
    nbytes = count * elem if isinstance(count, int) and elem else None
    kind = hccl_collective(name) or "unknown"
    group_size = a.get("group size")
    group_rank = a.get("group rank")
    peers = a.get("peers") or []
    peer = None
    if kind in P2P:
        if len(peers) == 1:
            peer = int(peers[0])
        elif group_size == 2 and group_rank in (0, 1):
            peer = 1 - int(group_rank)
    return {
        "collective": kind, "group": a.get("group"), "group_from": GROUP_FROM if a.get("group") else None,
        "peer": peer, "dtype": a.get("data_type") if elem else None, "bytes": nbytes,
        "bytes_from": "count x data_type of the HCCL op" if nbytes is not None else NO_COUNT,
        "group_size": group_size, "group_rank": group_rank, "hccl_wait_ns": comm.get("wait_ns"),
        "hccl_transit_bytes": comm.get("transit_bytes"), "hccl_bandwidth_GBps": comm.get("bandwidth_GBps"),
        "_step": comm.get("step", a.get("Step Id")),
    }


def with_hccl(table: EventTable, frame: pd.DataFrame) -> pd.DataFrame:
    """The collective calls of one rank with its HCCL ops: merged into their host call, or rows of their own."""
    rows = hccl_rows(table)
    if not len(rows):
        return frame
    ev = table.events
    names = strings(ev["name"])
    args = take_args(table.args, rows).to_pylist()
    parent, launcher = ev["parent"].to_numpy(), ev["launcher"].to_numpy()
    ts, dur, tid = ev["ts_ns"].to_numpy(), np.maximum(ev["dur_ns"].to_numpy(), 0), ev["tid"].to_numpy()
    step, rank = ev["step"].to_numpy(), ev["rank"].to_numpy()
    module = strings(ev["module_path"]) if "module_path" in ev else None
    out = frame.copy()
    for col in EXTRA:
        out[col] = pd.Series([None] * len(out), index=out.index, dtype=object)
    by_call = {int(r): i for i, r in zip(out.index, out["call_row"])}
    merged, new = set(), []
    for row, raw in zip(rows.tolist(), args):
        facts = _facts(str(names[row]), _decode(raw))
        host, cur = None, int(launcher[row])
        while cur >= 0:
            if cur in by_call and by_call[cur] not in merged:
                host = by_call[cur]
                break
            cur = int(parent[cur])
        values = {k: v for k, v in facts.items() if not k.startswith("_")}
        values.update(start_ns=int(ts[row]), dur_ns=int(dur[row]), exec_row=row)
        if host is not None:
            merged.add(host)
            keep_bytes = pd.notna(out.at[host, "bytes"]) and values["bytes"] is None
            for key, value in values.items():
                if key in ("bytes", "bytes_from", "dtype") and keep_bytes:
                    continue
                if key == "group_from" and value is None:
                    continue
                out.at[host, key] = value
            continue
        s = int(step[row]) if step[row] >= 0 else (facts["_step"] if isinstance(facts["_step"], int) else -1)
        new.append({**values, "rank": int(rank[row]), "step": s, "name": str(names[row]), "group_desc": None,
                    "group_ranks": None, "call_ns": None, "call_row": row, "thread": int(tid[row]),
                    "module_path": module[row] if module is not None else None,
                    "module_from": "tracekit.modules" if module is not None else None,
                    "_elems": None, "_exec": None})
    if new:
        out = pd.concat([out, pd.DataFrame(new)], ignore_index=True)
    return out


def compute_free(table: EventTable) -> bool:
    """True when a rank has HCCL ops but no compute events at all (communication.json only): its exposed
    communication cannot be told."""
    ev = table.events
    return bool(len(hccl_rows(table))) and not (kind_in(ev, DEVICE_KINDS | {"cpu_op"}).sum() > len(hccl_rows(table)))


def label_hccl_groups(calls: pd.DataFrame, groups: dict) -> pd.DataFrame:
    """Members, description and parallel dimension of each HCCL group, matched to the known process groups.

    The group's size is the largest any member saw (a rank's communication_matrix.json may show only its
    own links). A candidate process group has that size, holds every rank on which the HCCL group was
    seen, and puts each of them at its group rank. When candidates agree on the members (and on the
    dimension), those are the group's; the row says which candidates matched. Without any process
    group (no parallel_group_info), a rank whose every HCCL op is in one group of n whose group ranks
    equal the global ranks is taken to be in the default group of n ranks (inferred).
    """
    hccl = calls["group_from"] == GROUP_FROM
    if not hccl.any():
        return calls
    out = calls.copy()
    known = [g for g in groups.values() if len(g.ranks) > 0]
    for gid, rows in out[hccl].groupby("group"):
        seen = sorted(set(rows["rank"].astype(int)))
        sizes = {int(v) for v in rows["group_size"].dropna()}
        size = max(sizes) if sizes else None
        place = {int(r): int(p) for r, p in zip(rows["rank"], rows["group_rank"]) if pd.notna(p)}
        cands = [g for g in known if (size is None or len(g.ranks) == size) and set(seen) <= set(g.ranks)
                 and all(g.ranks.index(r) == p for r, p in place.items() if r in g.ranks)]
        label = _label(gid, seen, size, place, cands, out[out["rank"].isin(seen)])
        for key, value in label.items():
            if key == "group_ranks":
                out.loc[rows.index, key] = pd.Series([value] * len(rows), index=rows.index, dtype=object)
            else:
                out.loc[rows.index, key] = value
    return out


def _label(gid: str, seen: list[int], size: int | None, place: dict[int, int], cands: list,
           rank_rows: pd.DataFrame) -> dict[str, Any]:
    where = f"HCCL group {gid} (size {size if size else '?'}, seen on ranks {','.join(map(str, seen))})"
    if cands:
        rank_sets = {g.ranks for g in cands}
        dims = {g.dim for g in cands}
        names = " | ".join(dict.fromkeys(g.desc or g.name for g in cands))
        how = f"inferred: {where} matches {len(cands)} process group(s): {names}"
        if len(dims) > 1:
            how += f"; they differ in dimension ({', '.join(sorted(map(str, dims)))}), so none is given"
        members = list(next(iter(rank_sets))) if len(rank_sets) == 1 else None
        return {"group_desc": names, "group_ranks": members, "group_size": len(members) if members else size,
                "group_from": how, "parallel_dim": next(iter(dims)) if len(dims) == 1 else None,
                "parallel_dim_inferred": True}
    one_group = rank_rows[rank_rows["group_from"] == GROUP_FROM]["group"].nunique() == 1
    if size and one_group and place and all(p == r for r, p in place.items()):
        return {"group_desc": "default_pg (inferred)", "group_ranks": list(range(size)), "group_size": size,
                "parallel_dim": "world",
                "parallel_dim_inferred": True,
                "group_from": f"inferred: {where} is the only HCCL group of these ranks and each sits at its global "
                              f"rank: taken as the default group of {size} ranks (no parallel_group_info)"}
    return {"group_from": f"unknown: {where} matches no known process group", "parallel_dim": None,
            "parallel_dim_inferred": None}


def hccl_groups(coll: pd.DataFrame, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Process-group rows (as analyse_ranks lists them) for HCCL groups that no listed group stands for:
    the default group inferred from the ops, or a group whose members are unknown."""
    if not len(coll) or "group_from" not in coll:
        return []
    known = {tuple(g.get("ranks") or ()) for g in groups}
    rows = coll[coll["group_from"].astype(str).str.contains("HCCL group")]
    out = []
    for gid, frame in rows.groupby("group"):
        first = frame.iloc[0]
        ranks = tuple(first["group_ranks"]) if first["group_ranks"] is not None else ()
        if ranks and ranks in known:
            continue
        out.append({"group": str(gid), "desc": first["group_desc"], "ranks": list(ranks),
                    "parallel_dim": first["parallel_dim"], "dim_inferred": True,
                    "from": "HCCL ops: " + str(first["group_from"])})
    return out
