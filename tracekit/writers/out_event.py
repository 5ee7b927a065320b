"""The event struct every chrome-trace writer encodes (fields left at their default are omitted)."""

from __future__ import annotations

from typing import Any

import msgspec


class OutEvent(msgspec.Struct, omit_defaults=True, gc=False):
    """One event as written (fields left at their default are omitted)."""

    ph: str
    pid: int
    tid: int
    name: str = ""
    cat: str | None = None
    ts: float | None = None
    dur: float | None = None
    id: int | None = None
    bp: str | None = None
    s: str | None = None
    args: msgspec.Raw | None = None


def raw_args(args: dict[str, Any]) -> msgspec.Raw:
    """An args dict as the raw JSON OutEvent carries."""
    return msgspec.Raw(msgspec.json.encode(args))
