"""Process groups (from distributedInfo.pg_config and event args), their parallel dimension, and the group of
each collective call where the trace does not state it (inferred across ranks, and marked so)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tracekit.parallel.call_groups import Candidate, infer_call_groups

# pandas copies a frame's columns lazily (copy-on-write: always from pandas 3, an option in 2.x): a shallow copy
# is then a copy as far as the caller can tell, without holding every column twice.
LAZY_COPY = int(pd.__version__.split(".")[0]) >= 3 or pd.options.mode.copy_on_write is True
_MESH = re.compile(r"(?:^|_)mesh_([a-z_]+)$", re.IGNORECASE)
_MESH_DIMS = {"tp": "TP", "dp": "DP", "cp": "CP", "pp": "PP", "ep": "EP", "sp": "SP", "fsdp": "DP", "ddp": "DP",
              "dp_shard": "DP", "dp_replicate": "DP", "dp_shard_cp": "DP", "dp_cp": "DP", "etp": "TP"}
# Megatron / MindSpeed style descriptions: first keyword that appears wins.
_KEYWORDS = (("EXPERT", "EP"), ("TENSOR", "TP"), ("PIPELINE", "PP"), ("EMBEDDING", "PP"), ("CONTEXT", "CP"),
             ("DATA", "DP"))


@dataclass(frozen=True)
class Group:
    """A process group: torch's pg_name, its description, global ranks and parallel dimension."""

    name: str
    desc: str
    ranks: tuple[int, ...]
    dim: str | None
    dim_inferred: bool
    source: str


def parallel_dim(desc: str | None, ranks: tuple[int, ...], world: int | None,
                 blocks: int | None = None) -> tuple[str | None, bool]:
    """(dimension, inferred) of a group from its description, else from its rank set.

    `world` group -> "world"; unnamed groups: a contiguous block smaller than the world -> TP (innermost
    dimension by the usual rank order), an evenly strided set -> DP; anything else -> None.
    """
    text = (desc or "").strip()
    if text == "default_pg":
        return "world", False
    mesh = _MESH.search(text)
    if mesh:
        key = mesh.group(1).lower()
        return _MESH_DIMS.get(key, key.upper()), False
    upper = text.upper()
    for word, dim in _KEYWORDS:
        if word in upper:
            return dim, False
    if not ranks:
        return None, True
    if world and len(ranks) == world:
        return "world", True
    steps = np.diff(sorted(ranks))
    if len(ranks) > 1 and (steps == 1).all():
        return "TP", True
    if len(ranks) > 1 and (steps == steps[0]).all():
        return "DP", True
    return None, True


def group_evidence(distributed: Iterable[Any]) -> list[dict[str, Any]]:
    """What groups_from_ranks reads of the ranks' distributedInfo, each distinct thing once: the first world size
    and every distinct pg_config entry (in order of appearance), as one distributedInfo. Every rank lists the
    groups it is in, so the whole list holds the world group's members once per rank (ranks² integers: 10,000
    ranks, 10^8); this holds it once. groups_from_ranks gives the same groups from it as from the whole list."""
    world = None
    entries: dict[str, Any] = {}
    for dist in distributed:
        if not isinstance(dist, dict):
            continue
        if world is None and dist.get("world_size"):
            world = dist["world_size"]
        pgs = dist.get("pg_config")
        for pg in pgs if isinstance(pgs, list) else []:
            entries.setdefault(json.dumps(pg, sort_keys=True, default=str), pg)
    out: dict[str, Any] = {"pg_config": list(entries.values())}
    if world is not None:
        out["world_size"] = world
    return [out]


def groups_from_ranks(distributed: list[dict[str, Any]], calls: pd.DataFrame) -> dict[tuple[str, tuple], Group]:
    """Every group named by any rank's pg_config or by any collective's args, keyed by (name, ranks)."""
    stated = calls[calls["group_from"] == "event args"] if len(calls) else calls
    return groups_from_stated(distributed, zip(stated.get("group", []), stated.get("group_desc", []),
                                               stated.get("group_ranks", [])))


def groups_from_stated(distributed: list[dict[str, Any]],
                       stated: Iterable[tuple[Any, Any, Any]]) -> dict[tuple[str, tuple], Group]:
    """groups_from_ranks from the (group, group_desc, group_ranks) of the calls whose args name their group, in
    call order (each distinct group once is enough: a stream of them, as the cross-rank stage gathers them)."""
    world = next((d.get("world_size") for d in distributed if d.get("world_size")), None)
    if isinstance(world, str) and world.strip().isdigit() and len(world.strip()) < 8:
        world = int(world)  # older torch writes distributedInfo values as text
    world = world if type(world) is int and 0 < world <= 1 << 20 else None  # readers warn about others
    found: dict[tuple[str, tuple], tuple[str, str]] = {}
    for dist in distributed:
        pgs = dist.get("pg_config")
        for pg in pgs if isinstance(pgs, list) else []:
            if not isinstance(pg, dict) or not isinstance(pg.get("ranks") or [], list):
                continue
            if not all(type(r) is int and 0 <= r < 1 << 20 for r in pg.get("ranks") or []):
                continue
            ranks = tuple(int(r) for r in pg.get("ranks") or [])
            desc = str(pg.get("pg_desc") or "")
            found.setdefault((str(pg.get("pg_name")), ranks), (desc, "distributedInfo.pg_config"))
    for name, desc, ranks in stated:
        key = (str(name), tuple(ranks) if ranks is not None else ())
        found.setdefault(key, (str(desc or ""), "event args"))
    if world and not any(len(ranks) == world for _name, ranks in found):
        found[("default_pg", tuple(range(world)))] = ("default_pg", "implied by distributedInfo.world_size")
    out = {}
    for (name, ranks), (desc, source) in found.items():
        dim, inferred = parallel_dim(desc, ranks, world)
        out[(name, ranks)] = Group(name, desc, ranks, dim, inferred, source)
    return out


def assign_groups(calls: pd.DataFrame, groups: dict[tuple[str, tuple], Group], tolerance_ns: int = 0) -> pd.DataFrame:
    """Fill group, group_desc, group_ranks, group_from and group_candidates for each call whose events do not
    name its group, call by call across ranks (`tracekit.parallel.call_groups`). With one rank only, a rank
    that belongs to a single multi-rank group takes it; otherwise the group stays empty."""
    out = calls.copy(deep=not LAZY_COPY)  # copy-on-write: the columns set below are copied, the others shared
    if "exec_thread" not in out:  # tables from readers that know no execution thread
        out["exec_thread"] = pd.array([None] * len(out), dtype="Int64")
    out["group_candidates"] = pd.Series(np.full(len(out), None, dtype=object), index=out.index, dtype=object)
    if not len(out):
        return out
    todo = np.flatnonzero(out["group"].isna().to_numpy())
    if not len(todo):
        return out
    cands = [Candidate(g.name, g.ranks) for g in groups.values()]
    # the whole table, not a subset of MATCH_COLUMNS and `group`: selecting them copies 5 int64 columns
    found = infer_call_groups(out, todo, cands, tolerance_ns)
    chosen = found["group"].to_numpy()
    if out["rank"].nunique() == 1:
        chosen, reasons = _single_rank(out.iloc[todo], list(groups.values()), found)
        found = found.assign(group_from=reasons)
    glist = list(groups.values())
    idx = out.index[todo]
    out.loc[idx, "group_from"] = found["group_from"].to_numpy()
    out.loc[idx, "group_candidates"] = pd.Series([c or None for c in found["candidates"]], index=idx, dtype=object)
    del found
    hit = chosen >= 0
    if hit.any():
        picked = chosen[hit]
        names, descs, members = (np.empty(len(glist), dtype=object) for _ in range(3))
        for g in np.unique(picked).tolist():  # one name, description and member list per group, shared by rows
            names[g], descs[g], members[g] = glist[g].name, glist[g].desc, list(glist[g].ranks)
        out.loc[idx[hit], "group"] = names[picked]
        out.loc[idx[hit], "group_desc"] = descs[picked]
        out.loc[idx[hit], "group_ranks"] = pd.Series(members[picked], index=idx[hit], dtype=object)
    return out


def _single_rank(todo: pd.DataFrame, groups: list[Group], found: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Without other ranks there is no per-call evidence: only a rank that belongs to a single multi-rank group
    (pg_config lists every group of the rank) gets it."""
    rank = int(todo["rank"].iloc[0])
    mine = [i for i, g in enumerate(groups) if rank in g.ranks and len(g.ranks) > 1]
    if len(mine) == 1:
        why = "inferred: the only process group of this rank with other members (other ranks not given)"
        return np.full(len(todo), mine[0]), [why] * len(todo)
    why = (f"unknown: the events do not name their group and the rank belongs to {len(mine)} groups; "
           "give all ranks to match the calls")
    return np.full(len(todo), -1), [why] * len(todo)


def label_dims(calls: pd.DataFrame, groups: dict[tuple[str, tuple], Group]) -> pd.DataFrame:
    """Add parallel_dim and parallel_dim_inferred from each call's group. The dimension counts as stated only
    where the trace states the call's group (`group_from` not `inferred: ...`) and that group's description
    names the dimension."""
    by_key = {(g.name, g.ranks): g for g in groups.values()}
    by_name = {g.name: g for g in groups.values()}
    dims, inferred = [], []
    found: dict[tuple[str, int], Group | None] = {}  # rows of one group share its member list: look it up once
    for name, ranks, how in zip(calls["group"].tolist(), calls["group_ranks"].tolist(), calls["group_from"].tolist()):
        key = (str(name), id(ranks))
        if key not in found:
            found[key] = by_key.get((str(name), tuple(ranks) if ranks is not None else ())) or by_name.get(str(name))
        g = found[key]
        dims.append(g.dim if g else None)
        inferred.append((bool(g.dim_inferred) or str(how).startswith("inferred")) if g else None)
    return calls.assign(parallel_dim=dims, parallel_dim_inferred=pd.array(inferred, dtype="boolean"))
