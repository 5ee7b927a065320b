"""Which ranks go into the merged trace: `--ranks 0-7,64`, and the size above which Perfetto UI cannot open a
merged trace (kept apart from tracekit.ranks so that the CLI can parse its options without pandas)."""

from __future__ import annotations

import re

PERFETTO_MAX_BYTES = 1 << 30  # Perfetto UI fails on JSON traces above about 1-2 GB


def parse_ranks(text: str) -> list[int]:
    """`0-7,64` -> [0, 1, ..., 7, 64]."""
    out: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m or (m.group(2) and int(m.group(2)) < int(m.group(1))):
            raise ValueError(f"{part!r}: expected a rank or a range such as 0-7")
        out.extend(range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1))
    return sorted(set(out))
