"""Make a large synthetic trace from a shared one: K back-to-back copies with every id kept unique.

Usage::

    .venv/bin/python bench/scale.py SOURCE.json[.gz] TARGET_MB OUT.json

Copy k (k = 0, 1, ...) has its timestamps moved past the end of copy k-1, and its ids (flow `id`,
`correlation`, `External id`, `Ev Idx`, `Sequence number`) and `ProfilerStep#N` numbers offset by
k x (largest value + 1), so that launches, flows and steps still pair within their copy only.
Metadata (`M`) events are written once. Copies are written one at a time (memory: about one copy).
"""

from __future__ import annotations

import gzip
import re
import sys
from pathlib import Path

import orjson

ID_ARGS = ("correlation", "External id", "Ev Idx", "Sequence number")
_STEP = re.compile(r"^ProfilerStep#(\d+)$")


def _load(path: Path) -> dict:
    raw = path.read_bytes()
    return orjson.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)


def _spans(events: list[dict]) -> tuple[dict[str, int], int, int, int]:
    """(id stride per arg, flow id stride, step stride, time stride in us)."""
    top = {k: 0 for k in ID_ARGS}
    flow, step, start, end = 0, 0, None, None
    for ev in events:
        args = ev.get("args") or {}
        for k in ID_ARGS:
            v = args.get(k)
            if isinstance(v, int) and v > top[k]:
                top[k] = v
        if isinstance(ev.get("id"), int):
            flow = max(flow, ev["id"])
        match = _STEP.match(str(ev.get("name", "")))
        if match:
            step = max(step, int(match.group(1)))
        ts = ev.get("ts")
        if isinstance(ts, int | float) and ev.get("ph") != "M":
            start = ts if start is None else min(start, ts)
            end_ts = ts + (ev.get("dur") or 0)
            end = end_ts if end is None else max(end, end_ts)
    return {k: v + 1 for k, v in top.items()}, flow + 1, step + 1, int((end or 0) - (start or 0)) + 1000


def _shifted(ev: dict, k: int, strides: dict[str, int], flow: int, step: int, dt: int) -> dict:
    out = dict(ev)
    if "ts" in out and isinstance(out["ts"], int | float):
        out["ts"] = out["ts"] + k * dt
    if isinstance(out.get("id"), int):
        out["id"] = out["id"] + k * flow
    args = out.get("args")
    if args:
        args = dict(args)
        for key, stride in strides.items():
            if isinstance(args.get(key), int) and args[key] >= 0:
                args[key] = args[key] + k * stride
        out["args"] = args
    match = _STEP.match(str(out.get("name", "")))
    if match:
        out["name"] = f"ProfilerStep#{int(match.group(1)) + k * step}"
    return out


def scale(source: Path, target_mb: float, out: Path) -> tuple[int, int]:
    """Write OUT; returns (copies, events)."""
    doc = _load(source)
    events = doc.pop("traceEvents")
    strides, flow, step, dt = _spans(events)
    meta = [e for e in events if e.get("ph") == "M"]
    body = [e for e in events if e.get("ph") != "M"]
    copy_bytes = len(orjson.dumps(body))
    copies = max(1, round(target_mb * 1e6 / copy_bytes))
    count = 0
    with open(out, "wb") as fh:
        fh.write(orjson.dumps(doc)[:-1] + b',"traceEvents":[')
        fh.write(b",".join(orjson.dumps(e) for e in meta))
        count += len(meta)
        for k in range(copies):
            fh.write(b"," + b",".join(orjson.dumps(_shifted(e, k, strides, flow, step, dt)) for e in body))
            count += len(body)
        fh.write(b"]}")
    return copies, count


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__)
        return 2
    copies, count = scale(Path(argv[0]), float(argv[1]), Path(argv[2]))
    print(f"{argv[2]}: {copies} copies, {count} events, {Path(argv[2]).stat().st_size / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
