"""Type checks of the top-level fields readers take from a trace (distributedInfo, baseTimeNanoseconds,
deviceProperties): a field of the wrong type or out of range is dropped with a warning naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tracekit.errors import warn

MAX_RANKS = 1 << 20  # a world size or rank beyond this is not a real job
MAX_NS = 1 << 62


def _int_in(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value < high


def _rank_list(value: Any) -> bool:
    return isinstance(value, list) and all(_int_in(r, 0, MAX_RANKS) for r in value)


def clean_pg_config(value: Any) -> tuple[list[dict[str, Any]] | None, int]:
    """pg_config entries that are objects with a list of int ranks; (kept list or None, entries dropped)."""
    if not isinstance(value, list):
        return None, 1
    kept = [pg for pg in value if isinstance(pg, dict) and _rank_list(pg.get("ranks", []))]
    return kept, len(value) - len(kept)


def clean_distributed(path: str | Path, dist: Any, where: str = "distributedInfo") -> dict[str, Any]:
    """distributedInfo with rank/world_size ints in range and pg_config a list of groups (else dropped)."""
    if dist is None:
        return {}
    if not isinstance(dist, dict):
        warn(path, f"{where} is a {type(dist).__name__}, not an object; ignored")
        return {}
    out = dict(dist)
    dropped = []
    for key in ("rank", "world_size", "pg_count"):
        value = out.get(key)
        if value is None:
            continue
        if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) < 8:
            continue  # older torch writes these as text; kept as written
        if not _int_in(value, 0, MAX_RANKS + 1):
            dropped.append(key)
            out.pop(key)
    if "pg_config" in out:
        kept, bad = clean_pg_config(out["pg_config"])
        if kept is None:
            if not isinstance(out["pg_config"], str):  # text form: left to readers that parse it
                dropped.append("pg_config")
                out.pop("pg_config")
        elif bad:
            dropped.append(f"{bad} pg_config entries")
            out["pg_config"] = kept
    if dropped:
        warn(path, f"{where}: {', '.join(dropped)} of the wrong type or out of range; ignored")
    return out


def clean_base_ns(path: str | Path, value: Any) -> int | None:
    """baseTimeNanoseconds as an int in range, else None (warned when present but unusable)."""
    if value is None:
        return None
    if _int_in(value, 0, MAX_NS):
        return value
    warn(path, f"baseTimeNanoseconds {str(value)[:40]!r} is not a time in ns (int within 2**62); ignored")
    return None


def clean_devices(path: str | Path, value: Any) -> list[dict[str, Any]]:
    """deviceProperties entries that are objects."""
    if value is None:
        return []
    if not isinstance(value, list):
        warn(path, "deviceProperties is not a list; ignored")
        return []
    kept = [d for d in value if isinstance(d, dict)]
    if len(kept) < len(value):
        warn(path, f"{len(value) - len(kept)} deviceProperties entries are not objects; ignored")
    return kept
