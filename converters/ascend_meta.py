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
    meta.top = {k: v for k, v in info.items() if k != "rank_id"}
    meta.top.update({k: v for k, v in extra.items() if k not in DIST_KEYS})
    return meta


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
