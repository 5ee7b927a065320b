"""Process groups (from distributedInfo.pg_config and event args), their parallel dimension, and the group of
each collective call where the trace does not state it (inferred across ranks, and marked so)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

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


def groups_from_ranks(distributed: list[dict[str, Any]], calls: pd.DataFrame) -> dict[tuple[str, tuple], Group]:
    """Every group named by any rank's pg_config or by any collective's args, keyed by (name, ranks)."""
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
    stated = calls[calls["group_from"] == "event args"] if len(calls) else calls
    for name, desc, ranks in zip(stated.get("group", []), stated.get("group_desc", []), stated.get("group_ranks", [])):
        key = (str(name), tuple(ranks) if ranks is not None else ())
        found.setdefault(key, (str(desc or ""), "event args"))
    if world and not any(len(ranks) == world for _name, ranks in found):
        found[("default_pg", tuple(range(world)))] = ("default_pg", "implied by distributedInfo.world_size")
    out = {}
    for (name, ranks), (desc, source) in found.items():
        dim, inferred = parallel_dim(desc, ranks, world)
        out[(name, ranks)] = Group(name, desc, ranks, dim, inferred, source)
    return out


def _signature(frame: pd.DataFrame) -> tuple:
    return tuple(zip(frame["collective"].tolist(), frame["bytes"].fillna(-1).tolist()))


def _score(mine: pd.DataFrame, theirs: pd.DataFrame) -> tuple[float, float]:
    """(share of call pairs whose intervals do not overlap, median |end difference|) of ordinal pairs."""
    s1, s2 = mine["start_ns"].to_numpy(), theirs["start_ns"].to_numpy()
    e1, e2 = s1 + mine["dur_ns"].to_numpy(), s2 + theirs["dur_ns"].to_numpy()
    apart = (s1 > e2) | (s2 > e1)
    return float(apart.mean()), float(np.median(np.abs(e1 - e2)))


def assign_groups(calls: pd.DataFrame, groups: dict[tuple[str, tuple], Group]) -> pd.DataFrame:
    """Fill group, group_ranks, group_from for calls whose events do not name their group.

    Calls of one rank are taken in classes (op name, calling thread, peer). A candidate group must contain
    the rank, and every other member must have a class of the same op with the same sequence of
    collectives and sizes (for send/recv: the matching recv/send naming this rank as peer). Among
    candidates the one whose paired calls overlap in time on every member wins (a collective cannot
    finish on one member before another member started it). Chosen groups are marked inferred.
    """
    out = calls.copy()
    if not len(out):
        return out
    by_rank = {r: f for r, f in out.groupby("rank")}
    todo = out[out["group"].isna()]
    for (rank, _name, _thread, peer), cls in todo.groupby(["rank", "name", "thread", out["peer"].fillna(-1)],
                                                         dropna=False):
        cands = [g for g in groups.values() if rank in g.ranks and len(g.ranks) > 1]
        best, how = None, ""
        scored = []
        for g in cands:
            score = _match(cls, g, int(rank), int(peer), by_rank)
            if score is not None:
                scored.append((score, g))
        if scored:
            scored.sort(key=lambda sg: (sg[0][0], sg[0][1], len(sg[1].ranks)))
            (apart, gap), best = scored[0]
            how = (f"inferred: {len(scored)} of {len(cands)} candidate groups have matching calls on every member; "
                   f"chosen for overlap in time (non-overlapping pairs {apart:.0%}, median end gap {gap / 1e3:.0f} us)")
        elif len(cands) == 1 or len({g.ranks for g in cands if g.dim != "world"}) == 1:
            best = next((g for g in cands if g.dim != "world"), cands[0]) if cands else None
            how = "inferred: the only process group of this rank" if best else ""
        if best is None:
            out.loc[cls.index, "group_from"] = ("unknown: the events do not name their group"
                                                + ("" if len(by_rank) > 1 else "; give all ranks to infer it"))
            continue
        out.loc[cls.index, "group"] = best.name
        out.loc[cls.index, "group_desc"] = best.desc
        out.loc[cls.index, "group_ranks"] = pd.Series([list(best.ranks)] * len(cls), index=cls.index, dtype=object)
        out.loc[cls.index, "group_from"] = how
    return out


def _match(cls: pd.DataFrame, group: Group, rank: int, peer: int, by_rank: dict) -> tuple[float, float] | None:
    """Worst (overlap, gap) score of `cls` against its counterpart on each other member, None if one has none."""
    kind = cls["collective"].iloc[0]
    if kind in ("send", "recv"):
        if peer < 0 or peer >= len(group.ranks) or group.ranks[peer] == rank:
            return None
        members = [group.ranks[peer]]
    else:
        members = [m for m in group.ranks if m != rank]
    worst = (0.0, 0.0)
    for m in members:
        other = by_rank.get(m)
        if other is None:
            return None
        if kind in ("send", "recv"):
            want = "recv" if kind == "send" else "send"
            pool = other[(other["collective"] == want) & (other["peer"] == group.ranks.index(rank))]
            if len(pool) != len(cls):
                return None
            score = _score(cls, pool)
        else:
            score = None
            sig = _signature(cls)
            for _key, theirs in other[other["name"] == cls["name"].iloc[0]].groupby(["thread"]):
                if _signature(theirs) == sig:
                    s = _score(cls, theirs)
                    score = s if score is None or s < score else score
            if score is None:
                return None
        worst = max(worst, score)
    return worst


def label_dims(calls: pd.DataFrame, groups: dict[tuple[str, tuple], Group]) -> pd.DataFrame:
    """Add parallel_dim and parallel_dim_inferred from each call's group."""
    by_key = {(g.name, g.ranks): g for g in groups.values()}
    by_name = {g.name: g for g in groups.values()}
    dims, inferred = [], []
    for name, ranks in zip(calls["group"].tolist(), calls["group_ranks"].tolist()):
        g = by_key.get((str(name), tuple(ranks) if ranks is not None else ())) or by_name.get(str(name))
        dims.append(g.dim if g else None)
        inferred.append(bool(g.dim_inferred) if g else None)
    return calls.assign(parallel_dim=dims, parallel_dim_inferred=pd.array(inferred, dtype="boolean"))
