"""The merge job: inputs -> one table on one clock (aligned, verified, duplicates merged) -> chrome
trace (+ Parquet tables and summary.json)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tracekit.convert import build_summary
from tracekit.errors import TraceError
from tracekit.merge.clocks import FileClock, align_files, file_priority
from tracekit.merge.dedupe import DUPLICATE, drop_rows, duplicate_rows
from tracekit.merge.groups import file_groups, host_pids, merged_sources, track_keys, track_source
from tracekit.merge.match import DISPATCH
from tracekit.pipeline import process, read_inputs
from tracekit.table import EventTable
from tracekit.writers.atomic import check_output_file, check_output_folder, staged_dir, staged_file
from tracekit.writers.chrome import write_chrome_trace
from tracekit.writers.parquet import write_parquet_tables


def resolve_offsets(offsets: dict[str, int], inputs: Sequence[str | Path]) -> dict[int, int]:
    """Map each `--offset SOURCE=NS` to an input index. SOURCE is the path as given, a path to the same
    file, a file name naming exactly one input, or the input's 0-based position."""
    out: dict[int, int] = {}
    paths = [Path(p) for p in inputs]
    for key, ns in offsets.items():
        hits = [i for i, p in enumerate(paths) if key == str(p)]
        hits = hits or [i for i, p in enumerate(paths) if Path(key).exists() and p.exists() and Path(key).samefile(p)]
        hits = hits or [i for i, p in enumerate(paths) if p.name == key]
        if not hits and key.isdigit() and int(key) < len(paths):
            hits = [int(key)]
        if len(hits) != 1:
            why = "names no input" if not hits else "names several inputs"
            raise TraceError(key, f"--offset {why}; give the path as on the command line or its position "
                                  f"(0..{len(paths) - 1}): " + ", ".join(map(str, paths)))
        out[hits[0]] = ns
    return out


def apply_offsets(table: EventTable, clocks: list[FileClock]) -> EventTable:
    """Shift each file's timestamps by its offset."""
    per_file = np.zeros(len(table.sources), dtype=np.int64)
    for c in clocks:
        per_file[c.file] = c.offset_ns
    shift = per_file[table.events["source_index"].to_numpy()]
    return table.with_columns(ts_ns=table.events["ts_ns"].to_numpy() + shift)


def nested_share(parent: np.ndarray, outer: np.ndarray, inner: np.ndarray, max_up: int = 256) -> float:
    """Share of pairs where `outer` is an ancestor of `inner` in the merged call tree."""
    if not len(inner):
        return 0.0
    found = np.zeros(len(inner), dtype=bool)
    current = parent[inner]
    for _ in range(max_up):
        live = current >= 0
        if not live.any():
            break
        found |= live & (current == outer)
        current = np.where(live & ~found, parent[np.maximum(current, 0)], -1)
    return float(found.mean())


def merge(inputs: Sequence[str | Path], out: str | Path, parquet_dir: str | Path | None = None,
          offsets: dict[str, int] | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Merge the inputs into one chrome trace at `out` (gzip when it ends in .gz); returns the summary."""
    step = progress or (lambda _msg: None)
    check_output_file(out)  # a bad -o or --parquet is refused before any input is read
    if parquet_dir is not None:
        check_output_folder(parquet_dir)
    forced = resolve_offsets(offsets or {}, inputs)
    table = read_inputs(inputs, on_file=lambda p: step(f"reading {p}"), unique=False)
    step("aligning clocks")
    priority = file_priority(table.sources)
    pids = host_pids(table.events, len(table.sources))
    rep = file_groups(table.sources, pids, priority)
    track = track_source(table.events, rep)
    clocks = align_files(table.events, table.sources, track, priority, forced)
    table = apply_offsets(table, clocks)
    step("merging duplicate events")
    dups = duplicate_rows(table.events, track_keys(table.events, table.sources, rep), priority)
    new_row = np.cumsum(np.isin(np.arange(len(table.events)), dups, invert=True)) - 1
    table = drop_rows(table, dups, DUPLICATE)
    keep = np.ones(len(track), dtype=bool)
    keep[dups] = False
    table = EventTable(table.events.assign(track_source=track[keep]), table.args,
                       merged_sources(table.sources, rep, pids))
    step("building call tree and links")
    processed = process(table)
    report = merge_report(clocks, processed.table.events["parent"].to_numpy(), new_row, keep, rep, table)
    out = Path(out)
    with ExitStack() as stack:
        trace_tmp = stack.enter_context(staged_file(out))
        stage = stack.enter_context(staged_dir(parquet_dir)) if parquet_dir is not None else None
        step("writing chrome trace")
        chrome = write_chrome_trace(processed.table, trace_tmp, gzip_output=out.name.endswith(".gz"),
                                    meta={"merge": report})
        _readable(trace_tmp)
        counts = {}
        if stage is not None:
            step("writing parquet")
            counts = write_parquet_tables(processed.table, stage)
        summary = {**build_summary(processed, chrome, counts, out.name), "merge": report}
        if stage is not None:
            (stage / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _readable(path: Path) -> None:
    """Give the staged file (created private by mkstemp) the usual permissions of a new file."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def merge_report(clocks: list[FileClock], parent: np.ndarray, new_row: np.ndarray, keep: np.ndarray,
                 rep: list[int], table: EventTable) -> dict[str, Any]:
    """Per file: offset, method, pairs, containment, residuals, and the share of dispatch pairs that
    nest in the merged call tree; plus the process groups and duplicates merged."""
    files = []
    for c in sorted(clocks, key=lambda c: c.file):
        entry = c.to_dict()
        pairs = c.pairs.get(DISPATCH, pd.DataFrame())
        if len(pairs):
            o, i = pairs["row_o"].to_numpy(np.int64), pairs["row_i"].to_numpy(np.int64)
            ok = keep[o] & keep[i]
            entry["dispatch_nested_share"] = round(nested_share(parent, new_row[o[ok]], new_row[i[ok]]), 6)
        files.append(entry)
    groups: dict[int, list[str]] = {}
    for f, r in enumerate(rep):
        groups.setdefault(r, []).append(table.sources[f].path)
    return {
        "files": files,
        "processes": [members for members in groups.values()],
        "duplicates_merged": {s.path: s.skipped[DUPLICATE] for s in table.sources if s.skipped.get(DUPLICATE)},
    }
