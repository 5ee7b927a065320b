"""The convert job: inputs -> processed table -> chrome trace + Parquet + summary.json."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tracekit.accounting import summarize_status
from tracekit.dataset.manifest import fingerprint, source_record, write_manifest
from tracekit.heap import low_memory
from tracekit.inputs import expand_inputs
from tracekit.parallel.collectives import build_collectives, collective_calls
from tracekit.pipeline import process, read_inputs
from tracekit.ranks import PERFETTO_MAX_BYTES, convert_ranks
from tracekit.table import time_span
from tracekit.writers.atomic import check_output_folder, staged_dir
from tracekit.writers.chrome import flow_status_first, serial_writers, write_chrome_trace
from tracekit.writers.collectives import write_collectives
from tracekit.writers.memory import releaser
from tracekit.writers.module_rows import write_module_rows
from tracekit.writers.parquet import write_module_table, write_parquet_tables


def convert(inputs: Sequence[str | Path], outdir: str | Path, gzip_trace: bool = False,
            parquet: bool = True, progress: Callable[[str], None] | None = None,
            workers: int | None = None, executor: Any = None, max_trace_bytes: int = PERFETTO_MAX_BYTES,
            trace_ranks: Sequence[int] | None = None) -> dict[str, Any]:
    """Convert input traces into OUTDIR; returns the summary (also written as summary.json).

    Several inputs (files, a folder of rank files, a glob) are converted as ranks in worker processes
    (tracekit.ranks) on `executor` (a local process pool by default; "dask" or a tracekit.executors.Executor):
    one merged trace (per-rank traces plus a merged subset above `max_trace_bytes`, or of `trace_ranks`),
    Parquet partitioned by rank, collectives.parquet. Every output folder is a dataset (tracekit.json).
    """
    check_output_folder(outdir)  # a bad -o is refused before any input is read
    paths = expand_inputs(inputs)
    if len(paths) > 1:
        return convert_ranks(paths, outdir, gzip_trace, parquet, progress, workers, executor, max_trace_bytes,
                             trace_ranks)
    step = progress or (lambda _msg: None)
    table = read_inputs(paths, on_file=lambda p: step(f"reading {p}"))
    step("building call tree and links")
    processed = process(table)
    del table  # the table before `process`: its columns are shared with the processed one
    releaser(len(processed.table.events))()  # the stages' freed temporaries, before the two writers allocate
    trace_name = "trace.json.gz" if gzip_trace else "trace.json"
    with staged_dir(outdir) as stage, ThreadPoolExecutor(max_workers=1) as pool:
        # The Parquet tables are written in a second thread while this one writes the chrome trace: both only
        # read the processed table, and arrow encodes and compresses without the GIL. A large table's
        # (chrome.SERIAL_FLOW_ROWS rows and more) are written one after the other, for ~10% more wall time, as are
        # all tables in low-memory mode (tracekit.heap).
        table = processed.table
        tables = None
        if parquet and (serial_writers(table) or low_memory()):
            # A large table's Parquet tables first, alone, while the heap is at its lowest; then the flow status
            # and the chrome trace: side by side their peaks add (BENCHMARKS.md "narrow23").
            step("writing parquet")
            tables = pool.submit(write_tables, processed, stage)
            tables.result()
            releaser(len(table.events))()
        step("writing chrome trace")
        flows = flow_status_first(table)
        if parquet and tables is None:
            tables = pool.submit(write_tables, processed, stage)
            step("writing parquet")
        chrome = write_chrome_trace(table, stage / trace_name, gzip_output=gzip_trace, flows=flows)
        del flows
        counts = tables.result() if tables is not None else {}
        summary = build_summary(processed, chrome, counts, trace_name)
        (stage / "summary.json").write_text(json.dumps(summary, indent=2))
        write_manifest(stage, [fingerprint(p) for p in paths],
                       [source_record(s, i) for i, s in enumerate(processed.table.sources)], summary["ranks"],
                       counts, [trace_name])
    return summary


def write_tables(processed, stage: Path) -> dict[str, int]:
    """The Parquet tables (events, kernels, ops, steps, modules, collectives); returns their row counts."""
    counts = write_parquet_tables(processed.table, stage)
    counts["modules"] = write_module_table(processed, stage)
    write_module_rows(processed.table, stage)  # modules.json: the rows `tracekit modules DATASET` reads
    calls, _left_out = collective_calls(processed.table)
    coll = build_collectives([calls], [s.distributed for s in processed.table.sources])
    counts["collectives"] = write_collectives(coll, stage / "collectives.parquet")
    return counts


def build_summary(processed, chrome, counts: dict[str, int], trace_name: str) -> dict[str, Any]:
    """Input count, written count, skipped counts by reason, sources, ranks, time span."""
    table = processed.table
    ev = table.events
    status = summarize_status(chrome.status, table.skipped, table.metadata_folded)
    accounted = status["written"] + status["metadata_folded"] + status["flows_redrawn"] + sum(
        status["skipped"].values())
    start, end = time_span(ev)
    return {
        "input_events": table.input_events,
        "written_events": status["written"],
        "metadata_events_folded": status["metadata_folded"],
        "launch_flows_redrawn": status["flows_redrawn"],
        "skipped": status["skipped"],
        "accounted": accounted,
        "conserved": accounted == table.input_events,
        "trace": {"file": trace_name, "events": chrome.events_written, "flows": chrome.flows_written,
                  "baseTimeNanoseconds": chrome.base_ns, "overlap_lanes_events": processed.overlapped,
                  "module_track_events": chrome.module_track_events},
        "parquet": counts,
        "unlinked_device_events": processed.unlinked,
        "sources": [
            {"path": s.path, "format": s.format, "rank": s.rank, "rank_from": s.rank_from, "events": s.input_events,
             "base_ns": s.base_ns, "base_from": s.base_from, "damage": s.damage,
             **({"details": s.details} if s.details else {})}
            for s in table.sources
        ],
        "ranks": sorted({s.rank for s in table.sources if s.rank >= 0}),
        "time_span_ns": {"start": start, "end": end, "duration": end - start},
    }
