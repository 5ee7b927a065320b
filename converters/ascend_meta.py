"""Rank and parallel groups of one torch_npu rank: profiler_info_{rank}.json and profiler_metadata.json."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracekit.errors import TraceError

DIST_KEYS = ("distributed_args", "parallel_group_info")


@dataclass
class AscendMeta:
    """What the metadata files say about the run."""

    rank: int = -1
    rank_from: str = ""
    distributed: dict[str, Any] = field(default_factory=dict)
    top: dict[str, Any] = field(default_factory=dict)


def read_meta(profiler_info: Path | None, metadata: Path | None, db_meta: dict[str, Any] | None = None) -> AscendMeta:
    """Rank from profiler_info's `rank_id` (else distributed_args.rank); groups from the metadata.

    `db_meta` is the META_DATA table of a .db export (same keys as profiler_metadata.json).
    """
    meta = AscendMeta()
    info = _load(profiler_info) if profiler_info else {}
    extra = dict(db_meta or {})
    if metadata:
        extra.update(_load(metadata))
    dist = {k: extra[k] for k in DIST_KEYS if isinstance(extra.get(k), dict)}
    rank = _int(info.get("rank_id"))
    if rank is not None and rank >= 0 and profiler_info is not None:
        meta.rank, meta.rank_from = rank, f"{profiler_info.name} rank_id"
    elif _int(dist.get("distributed_args", {}).get("rank")) is not None:
        meta.rank = _int(dist["distributed_args"]["rank"])
        meta.rank_from = "profiler_metadata.json distributed_args.rank"
    if dist:
        args = dist.get("distributed_args", {})
        meta.distributed = {"rank": meta.rank, **({"world_size": args["world_size"]} if "world_size" in args else {}),
                            **dist}
        pg_config = pg_config_from_group_info(dist.get("parallel_group_info") or {}, args)
        if pg_config:
            meta.distributed["pg_config"] = pg_config
    meta.top = {k: v for k, v in info.items() if k != "rank_id"}
    meta.top.update({k: v for k, v in extra.items() if k not in DIST_KEYS})
    return meta


# MindSpeed / Megatron group names in parallel_group_info -> a description naming the dimension the way
# Megatron's group descriptions do (tracekit.parallel.groups reads PIPELINE, DATA, TENSOR... from them)
GROUP_DESC = {
    "dp": "DATA_PARALLEL", "dp_cp": "DATA_PARALLEL x CP", "dp_modulo_exp": "DATA_PARALLEL modulo EP",
    "tp": "TENSOR_MODEL_PARALLEL", "pp": "PIPELINE_MODEL_PARALLEL", "embd": "EMBEDDING",
    "pos_embd": "POSITION_EMBEDDING", "cp": "CONTEXT_PARALLEL", "ep": "EXPERT_MODEL_PARALLEL",
    "exp": "EXPERT_MODEL_PARALLEL", "tp_ep": "EXPERT_TENSOR_PARALLEL", "tp_dp": "TENSOR_AND_DATA_PARALLEL",
}


def pg_config_from_group_info(info: dict[str, Any], args: dict[str, Any]) -> list[dict[str, Any]]:
    """distributedInfo-style pg_config entries (pg_name = the parallel_group_info key, pg_desc = its name and
    dimension, global ranks) from profiler_metadata.json's parallel_group_info."""
    out = []
    for key, group in info.items():
        if not isinstance(group, dict) or not isinstance(group.get("global_ranks"), list):
            continue
        name = str(group.get("group_name", key))
        out.append({"pg_name": str(key), "pg_desc": _group_desc(name, args),
                    "ranks": [int(r) for r in group["global_ranks"] if isinstance(r, int)]})
    return out


def _group_desc(name: str, args: dict[str, Any]) -> str:
    if name == "default_group":
        return "default_pg"
    if name == "mp":  # model parallel = TP x PP: one of them when the other is 1
        tp, pp = args.get("tensor_model_parallel_size"), args.get("pipeline_model_parallel_size")
        if tp == 1 and pp and pp > 1:
            return "mp (PIPELINE_MODEL_PARALLEL: model parallel with TP=1)"
        if pp == 1 and tp and tp > 1:
            return "mp (TENSOR_MODEL_PARALLEL: model parallel with PP=1)"
        return "mp (model parallel TP x PP)"
    return f"{name} ({GROUP_DESC[name]})" if name in GROUP_DESC else name


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TraceError(path, f"unreadable metadata JSON: {exc}") from None
    if not isinstance(data, dict):
        raise TraceError(path, "metadata JSON is not an object")
    return data


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None
