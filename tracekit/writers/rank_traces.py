"""Splice the chrome-trace fragments of several ranks (written by tracekit.writers.chrome with their own
`slot`, so pids, flow ids and sort indices never collide) into one trace on one time base."""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

_HEAD = b'{"traceEvents":['
_TAIL = b'],"displayTimeUnit"'


class _Event(msgspec.Struct, omit_defaults=True, gc=False):
    ph: str
    pid: int
    tid: int
    name: str = ""
    cat: str | None = None
    ts: msgspec.Raw = msgspec.Raw(b"")  # Raw cannot sit in a union; the empty default is omitted
    dur: msgspec.Raw = msgspec.Raw(b"")
    id: int | None = None
    bp: str | None = None
    s: str | None = None
    args: msgspec.Raw = msgspec.Raw(b"")


def fragment_events(data: bytes) -> bytes:
    """The bytes between `[` and `]` of a fragment's traceEvents (no parsing)."""
    if not data.startswith(_HEAD):
        raise ValueError("not a tracekit chrome fragment")
    end = data.rfind(_TAIL)
    return data[len(_HEAD):end]


def _shift(raw: bytes, delta_ns: int) -> msgspec.Raw:
    whole, _, frac = raw.decode().partition(".")
    ns = int(whole) * 1000 + int((frac + "000")[:3]) + delta_ns
    return msgspec.Raw(f"{ns // 1000}.{ns % 1000:03d}".encode())


def rebase(events: bytes, delta_ns: int) -> bytes:
    """Events moved `delta_ns` later on the time axis, exactly (ts digits -> integer ns -> digits)."""
    if not delta_ns or not events.strip():
        return events
    decoded = msgspec.json.decode(b"[" + events + b"]", type=list[_Event])
    for ev in decoded:
        if bytes(ev.ts):
            ev.ts = _shift(bytes(ev.ts), delta_ns)
    return msgspec.json.encode(decoded)[1:-1]


def splice(fragments: Sequence[tuple[str, int]], path: Path, meta: dict[str, Any], gzip_output: bool = False) -> int:
    """Write one trace from (fragment path, fragment base ns) pairs; returns the common base ns.

    Fragments on another base (ranks whose clocks straddle an hour) are rebased exactly; each fragment is
    read, copied and deleted in turn, so memory holds one fragment at a time.
    """
    base = min(b for _, b in fragments) if fragments else 0
    with (gzip.open(path, "wb", compresslevel=3) if gzip_output else path.open("wb")) as out:
        out.write(_HEAD)
        first = True
        for frag, frag_base in fragments:
            body = rebase(fragment_events(Path(frag).read_bytes()), frag_base - base)
            if body.strip():
                out.write(body if first else b"," + body)
                first = False
            Path(frag).unlink()
        out.write(b"]," + msgspec.json.encode({**meta, "baseTimeNanoseconds": base})[1:])
    return base
