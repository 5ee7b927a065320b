"""Convert the ranks of a job in parallel worker processes: each reads ONE rank, writes its Parquet
partitions (events/rank=N/part-I.parquet, ...), its collective calls (.calls/rank=N/part-I.parquet) and a
chrome-trace fragment, and returns only a small record (summary, source, distributedInfo). The cross-rank
stage (tracekit.parallel.crossrank) then reads the call partitions, so the parent holds a few KB per rank and
a narrow table of the calls, and memory per worker stays that of one rank."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from tracekit.executors import Executor, LocalPool, make_executor, run_on, sized_for
from tracekit.memory import every, release_freed_memory
from tracekit.rankrecords import RankIndex, RankRecords, dump_streamed
from tracekit.rankset import PERFETTO_MAX_BYTES, parse_ranks
from tracekit.writers.partition import SMALL_PARTITION_ROWS, partition_options, write_partition

HOUR_NS = 3_600_000_000_000
# What convert_rank imports: loaded once by the local pool's fork server, not by every worker.
WORKER_MODULES = ("tracekit.convert", "tracekit.converters", "tracekit.inputs", "tracekit.modules.table",
                  "tracekit.parallel.collectives", "tracekit.parallel.crossrank", "tracekit.parallel.pipeline",
                  "tracekit.parallel.report", "tracekit.pipeline", "tracekit.steps", "tracekit.writers.chrome",
                  "tracekit.writers.parquet", "tracekit.dataset.manifest", "tracekit.ranks")
__all__ = ["PERFETTO_MAX_BYTES", "parse_ranks", "partition_options"]  # re-exported (rankset, writers.partition)


@dataclass
class RankJob:
    """One input to convert: its position, path and where to write."""

    index: int
    path: str
    stage: str
    slot: int = 0
    parquet: bool = True
    chrome: bool = True
    calls: str = ""  # folder for the rank's collective calls (rank=N/part-I.parquet); "": sent back in the result
    splits: bool = True  # compute the per-step split (tracekit parallel); convert does not need it


@dataclass(slots=True)
class RankResult:
    """What a worker sends back: small tables and the summary of its rank. Slotted: the parent keeps one per rank
    until the merged trace is written (~0.6 KB less each than with an attribute dict)."""

    index: int
    path: str
    rank: int
    rank_from: str
    worker_pid: int
    summary: dict[str, Any]
    distributed: dict[str, Any]
    collectives: pd.DataFrame | None  # None once written to the calls partition (by the worker or the parent)
    skipped_collectives: dict[str, int]
    steps: pd.DataFrame | None  # None without job.splits
    fragment: str | None = None
    fragment_base_ns: int = 0
    devices: list = field(default_factory=list)
    input: dict[str, Any] = field(default_factory=dict)  # fingerprint for the dataset manifest
    source: dict[str, Any] = field(default_factory=dict)  # SourceInfo record for the dataset manifest


def partition_path(stage: Path, table: str, rank: int, index: int) -> Path:
    """`<table>/rank=<rank>/part-<index>.parquet` (Hive layout: pandas, pyarrow, DuckDB, Spark read the folder)."""
    return stage / table / f"rank={rank}" / f"part-{index:05d}.parquet"


def _write_partition(frame: pa.Table | pd.DataFrame, path: Path) -> int:
    from tracekit.writers.parquet import frame_to_arrow

    table = frame if isinstance(frame, pa.Table) else frame_to_arrow(frame)
    if "rank" in table.column_names:  # the partition folder holds it
        table = table.drop_columns(["rank"])
    return write_partition(table, path, SMALL_PARTITION_ROWS)


def _hour_base(ev: pd.DataFrame) -> int:
    """The hour (in ns) of the first span: the base of the rank's chrome fragment (0 without spans)."""
    from tracekit.table import column, is_in

    ph, kind = column(ev, "ph"), column(ev, "kind")
    is_meta = is_in(ph, ("M",)) if isinstance(ph, pd.Categorical) else (ev["ph"] == "M").to_numpy()
    ts = column(ev, "ts_ns")[~is_meta & ~is_in(kind, ("flow",))]
    return int(ts.min()) // HOUR_NS * HOUR_NS if len(ts) else 0


def convert_rank(job: RankJob) -> RankResult:
    """Read, process and write one rank (runs in a worker process)."""
    from tracekit.convert import build_summary
    from tracekit.converters import read_trace
    from tracekit.inputs import with_name_rank
    from tracekit.modules.table import module_columns, module_frame
    from tracekit.parallel.collectives import collective_calls
    from tracekit.parallel.pipeline import with_compute_spans
    from tracekit.parallel.report import step_split
    from tracekit.pipeline import process
    from tracekit.steps import step_table
    from tracekit.writers.chrome import write_chrome_trace
    from tracekit.writers.module_rows import write_module_rows
    from tracekit.writers.parquet import events_frame, frame_to_arrow, kernels_frame, ops_frame

    table = with_name_rank(read_trace(job.path), job.path)
    table.events["source_index"] = 0
    processed = process(table)
    src = processed.table.sources[0]
    rank = src.rank if src.rank >= 0 else job.index
    rank_from = src.rank_from or f"input order (no distributedInfo.rank, no rank in the file name): {job.index}"
    if src.rank < 0:
        processed.table.events["rank"] = rank
        src.rank, src.rank_from = rank, rank_from
    stage = Path(job.stage)
    ev = processed.table.events
    base = _hour_base(ev)
    chrome, fragment = None, None
    if job.chrome:
        fragment = str(stage / ".fragments" / f"{job.index:05d}.json")
        Path(fragment).parent.mkdir(parents=True, exist_ok=True)
        chrome = write_chrome_trace(processed.table, Path(fragment), base_ns=base, slot=job.slot)
    counts = {}
    fingerprint_, source = {}, {}
    if job.parquet:
        from tracekit.dataset.manifest import fingerprint, source_record

        fingerprint_, source = fingerprint(job.path), source_record(src, job.index)
        from tracekit.writers.direct_arrow import columns_to_arrow

        columns = module_columns(processed.table, processed.modules)
        modules = (frame_to_arrow(module_frame(None)) if columns is None
                   else columns_to_arrow(columns, lambda: module_frame(columns)))
        for name, frame in (("events", events_frame(processed.table)), ("kernels", kernels_frame(processed.table)),
                            ("ops", ops_frame(processed.table)), ("steps", step_table(ev)), ("modules", modules)):
            counts[name] = _write_partition(frame, partition_path(stage, name, rank, job.index))
        write_module_rows(processed.table, stage, rank, job.index, modules)  # modules_json/: `modules DATASET` reads
    calls, skipped = collective_calls(processed.table)
    calls["rank"] = rank
    summary = build_summary(processed, chrome, counts, "") if chrome else {}
    steps = with_compute_spans(step_split(ev, calls), ev, calls).assign(rank=rank) if job.splits else None
    if job.calls:
        from tracekit.parallel.crossrank import write_part

        write_part(calls, Path(job.calls), rank, job.index)
    return RankResult(
        index=job.index, path=job.path, rank=rank, rank_from=rank_from, worker_pid=os.getpid(), summary=summary,
        distributed=dict(src.distributed), collectives=None if job.calls else calls, skipped_collectives=skipped,
        steps=steps, fragment=fragment, fragment_base_ns=base, devices=list(src.devices), input=fingerprint_,
        source=source,
    )


@dataclass(slots=True)
class _Outcome:
    """A worker's result or its TraceError, and the TraceWarnings it raised (re-emitted by the parent)."""

    result: RankResult | None
    warnings: list[str]
    error: tuple[str, str, int | None] | None = None


def _convert_rank_relayed(job: RankJob) -> _Outcome:
    import warnings

    from tracekit.errors import TraceError, TraceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TraceWarning)
        try:
            result, error = convert_rank(job), None
        except TraceError as exc:
            prefix = f"{exc.path}: " + (f"event {exc.index}: " if exc.index is not None else "")
            result, error = None, (exc.path, str(exc).removeprefix(prefix), exc.index)
        except Exception as exc:  # not an input problem: relayed as a bug, naming the rank's file
            raise RuntimeError(f"{job.path}: {type(exc).__name__}: {exc}") from exc
    return _Outcome(result, [str(w.message) for w in caught if issubclass(w.category, TraceWarning)], error)


def _unwrap(outcome: _Outcome) -> RankResult:
    import warnings

    from tracekit.errors import TraceError, TraceWarning

    for message in outcome.warnings:
        warnings.warn(message, TraceWarning, stacklevel=2)
    if outcome.error is not None:
        raise TraceError(*outcome.error)
    assert outcome.result is not None
    return outcome.result


def run_ranks(jobs: Sequence[RankJob], workers: int | None = None,
              on_done: Callable[[RankResult], None] | None = None,
              executor: Executor | str | None = None, keep: bool = True) -> list[RankResult]:
    """Convert every job on the executor (default: a local pool of the machine's cores, or in-process for inputs
    under 4 MB on disk, `executors.sized_for`); results in job order.

    Workers start once per run and each takes ranks in turn. An error in one rank (TraceError naming its file)
    is raised here, and the warnings of every rank are re-emitted here. keep=False (with on_done): each result
    goes to on_done and is dropped; the list returned is empty and the parent holds nothing per rank.
    """
    runner = sized_for(make_executor(executor, workers), [job.path for job in jobs])
    if isinstance(runner, LocalPool) and not runner.preload:
        runner.preload = WORKER_MODULES
    if on_done is None:
        keep = True
    outcomes = run_on(runner, _convert_rank_relayed, list(jobs),
                      on_done=(lambda o: on_done(_unwrap(o))) if on_done else None, keep=keep)
    return [_unwrap_quiet(o) for o in outcomes] if on_done else [_unwrap(o) for o in outcomes]


def _unwrap_quiet(outcome: _Outcome) -> RankResult:
    """The result of an outcome whose warnings were already re-emitted by on_done."""
    assert outcome.result is not None
    return outcome.result


def job_list(paths: Sequence[Path], stage: Path, parquet: bool = True, chrome: bool = True, calls: str = "",
             splits: bool = True) -> list[RankJob]:
    """One job per input; the slot (pid/flow-id range in the merged trace) is the input position."""
    return [RankJob(i, str(p), str(stage), slot=i, parquet=parquet, chrome=chrome, calls=calls, splits=splits)
            for i, p in enumerate(paths)]


def collectives_of(distributed: Sequence[dict[str, Any]], calls: Path, out: Path) -> int:
    """Write the collectives table of all ranks (groups stated or inferred across ranks, from each input's
    distributedInfo in job order) to `out` from the call partitions under `calls`; returns its rows."""
    from tracekit.parallel.crossrank import write_collectives_from_parts

    return write_collectives_from_parts(calls, list(distributed), out)


def keep_calls(folder: Path) -> Callable[[RankResult], None]:
    """An on_done callback that writes the calls a worker sent back to `folder` (rank-partitioned) and drops
    them from the result (workers that cannot write where the parent reads, as on a Dask cluster)."""
    from tracekit.parallel.crossrank import write_part

    def keep(result: RankResult) -> None:
        if result.collectives is not None:
            write_part(result.collectives, folder, result.rank, result.index)
            result.collectives = None
    return keep


def check_ranks(results: Sequence[RankResult]) -> None:
    """Warn when two inputs claim the same rank (their partitions share a folder; rows keep source paths)."""
    _warn_shared_ranks((r.rank, r.path) for r in results)


def check_rank_index(ranks: RankIndex, records: RankRecords) -> None:
    """check_ranks of the ranks of a job kept as columns: the records' paths are read only where two inputs
    claim the same rank."""
    import numpy as np

    claimed = np.frombuffer(ranks.ranks, dtype=np.int64) if len(ranks) else np.empty(0, np.int64)
    if len(np.unique(claimed)) < len(claimed):
        _warn_shared_ranks(zip(ranks.ranks, records.field("path"), strict=True))


def _warn_shared_ranks(pairs: Iterable[tuple[int, str]]) -> None:
    from tracekit.errors import warn

    seen: dict[int, str] = {}
    for rank, path in pairs:
        if rank in seen:
            warn(path, f"rank {rank} also comes from {seen[rank]}")
        seen.setdefault(rank, path)


def _sum_dicts(dicts: Iterable[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        _add_into(out, d)
    return out


def _add_into(total: dict[str, int], more: dict[str, int]) -> None:
    for k, v in more.items():
        total[k] = total.get(k, 0) + v


def merged_summary(records: Iterable[dict[str, Any]], trace_name: str, base_ns: int, counts: dict[str, int],
                   coll_rows: int) -> dict[str, Any]:
    """The convert summary of a multi-rank job from the per-rank records (tracekit.rankrecords), added up in one
    pass: everything but the per-rank `sources` list, which is left empty (see summary_sources)."""
    sums = dict.fromkeys(("input_events", "written_events", "metadata_events_folded", "launch_flows_redrawn",
                          "accounted", "events", "flows", "overlap_lanes_events"), 0)
    skipped: dict[str, int] = {}
    unlinked: dict[str, int] = {}
    left_out: dict[str, int] = {}
    conserved, ranks, pids = True, set(), set()
    start = end = None
    for rec in records:
        s = rec["summary"]
        for key in ("input_events", "written_events", "metadata_events_folded", "launch_flows_redrawn", "accounted"):
            sums[key] += s[key]
        for key in ("events", "flows", "overlap_lanes_events"):
            sums[key] += s["trace"][key]
        _add_into(skipped, s["skipped"])
        _add_into(unlinked, s["unlinked_device_events"])
        _add_into(left_out, rec["skipped_collectives"])
        conserved = conserved and s["conserved"]
        ranks.add(rec["rank"])
        pids.add(rec["worker_pid"])
        span = s["time_span_ns"]
        start = span["start"] if start is None else min(start, span["start"])
        end = span["end"] if end is None else max(end, span["end"])
    if start is None or end is None:
        raise ValueError("merged_summary: no ranks")
    return {
        "input_events": sums["input_events"],
        "written_events": sums["written_events"],
        "metadata_events_folded": sums["metadata_events_folded"],
        "launch_flows_redrawn": sums["launch_flows_redrawn"],
        "skipped": skipped,
        "accounted": sums["accounted"],
        "conserved": conserved,
        "trace": {"file": trace_name, "events": sums["events"], "flows": sums["flows"], "baseTimeNanoseconds": base_ns,
                  "overlap_lanes_events": sums["overlap_lanes_events"],
                  "rank_processes": "one process group per input, named `rank N · ...`"},
        "parquet": counts,
        "parquet_layout": "events/, kernels/, ops/, steps/, modules/ are folders partitioned by rank "
                          "(rank=N/part-I.parquet)",
        "unlinked_device_events": unlinked,
        "sources": [],
        "ranks": sorted(ranks),
        "time_span_ns": {"start": start, "end": end, "duration": end - start},
        "workers": {"processes": len(pids), "pids": sorted(pids)},
        "collectives": {"rows": coll_rows, "left_out": left_out},
    }


def summary_sources(records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The `sources` of the merged summary, one at a time: each rank's sources with its rank and where it came from."""
    for rec in records:
        for src in rec["summary"]["sources"]:
            yield {**src, "rank": rec["rank"], "rank_from": rec["rank_from"]}


def _trace_meta(records: Iterable[dict[str, Any]], indices: set[int] | None = None) -> dict[str, Any]:
    """The merged trace's metadata for the ranks of `indices` (default all): its per-rank lists are encoded rank by
    rank from the records into compact JSON (msgspec.Raw), never held as Python objects. deviceProperties lists
    each distinct device once: every rank's trace lists all GPUs of its node (8 V100s, 2.7 KB, on each DLRM rank),
    and the copies are alike (no host is recorded to tell two nodes' GPU 0 apart)."""
    import msgspec

    ranks, devices = bytearray(b"["), bytearray(b"[")
    seen: set[bytes] = set()
    for rec in records:
        if indices is not None and rec["index"] not in indices:
            continue
        entry = {"rank": rec["rank"], "rank_from": rec["rank_from"], "path": rec["path"],
                 "distributedInfo": rec["distributed"]}
        ranks += (b"," if len(ranks) > 1 else b"") + msgspec.json.encode(entry)
        for device in rec["devices"]:
            encoded = msgspec.json.encode(device)
            if encoded not in seen:
                seen.add(encoded)
                devices += (b"," if len(devices) > 1 else b"") + encoded
    note = ("ts are microseconds relative to baseTimeNanoseconds (absolute ns = base + ts*1000); "
            "one process group per rank; pids, flow ids and sort indices are namespaced per rank")
    tracekit = b'{"note":' + msgspec.json.encode(note) + b',"ranks":' + bytes(ranks) + b"]}"
    return {"displayTimeUnit": "ms", "tracekit": msgspec.Raw(tracekit),
            "deviceProperties": msgspec.Raw(bytes(devices) + b"]")}


class _Fragments(Sequence[tuple[str, int]]):
    """(fragment, base ns) of each rank, made on use (splice reads them twice: no list of them per rank)."""

    def __init__(self, ranks: Sequence[Any]):
        self.ranks = ranks

    def __len__(self) -> int:
        return len(self.ranks)

    def __getitem__(self, i: int) -> tuple[str, int]:  # type: ignore[override]
        r = self.ranks[i]
        return r.fragment, r.fragment_base_ns

    def __iter__(self) -> Iterator[tuple[str, int]]:
        """The pairs in order; the memory freed with each fragment spliced is handed back every EVERY fragments
        (splice asks for the next pair once it has written and dropped the previous fragment)."""
        for count, r in enumerate(self.ranks, 1):
            yield r.fragment, r.fragment_base_ns
            every(count)


def _fit_ranks(results: Sequence[Any], sizes: dict[int, int], limit: int) -> list[int]:
    """The first ranks (in rank order) whose fragments together stay within `limit` bytes (at least one)."""
    chosen, total = [], 0
    for r in sorted(results, key=lambda r: r.rank):
        if chosen and total + sizes[r.index] > limit:
            break
        chosen.append(r.rank)
        total += sizes[r.index]
    return chosen


def write_traces(results: Sequence[Any], records: RankRecords, stage: Path, trace_name: str,
                 gzip_trace: bool, max_trace_bytes: int = PERFETTO_MAX_BYTES, trace_ranks: Sequence[int] | None = None
                 ) -> tuple[int, dict[str, Any]]:
    """The merged chrome trace of all ranks; or, above `max_trace_bytes` (what Perfetto UI can open) or when
    `trace_ranks` are chosen, one trace per rank (traces/rank-N.json) plus a merged trace of the chosen ranks
    (default: the first ranks that fit). `results`: each rank's index, rank, fragment and fragment_base_ns (a
    RankIndex, or RankResults); the metadata (distributedInfo, deviceProperties) comes from `records`.
    Returns the merged trace's base ns and what was written."""
    import gzip
    import shutil

    from tracekit.writers.rank_traces import splice

    total = sum(os.path.getsize(r.fragment) for r in results if r.fragment)
    if total <= max_trace_bytes and trace_ranks is None:
        base = splice(_Fragments(results), stage / trace_name, _trace_meta(records), gzip_trace)
        return base, {"ranks": sorted({r.rank for r in results})}
    sizes = {r.index: os.path.getsize(r.fragment) for r in results if r.fragment}
    wanted = list(trace_ranks) if trace_ranks is not None else _fit_ranks(results, sizes, max_trace_bytes)
    chosen = [r for r in results if r.rank in set(wanted)]
    if not chosen:
        from tracekit.errors import TraceError

        raise TraceError("--ranks", f"none of the ranks {wanted} is in the job (ranks: "
                                    f"{sorted({r.rank for r in results})})")
    copies = []
    for r in chosen:
        copy = f"{r.fragment}.subset"
        shutil.copyfile(r.fragment, copy)
        copies.append((copy, r.fragment_base_ns))
    base = splice(copies, stage / trace_name, _trace_meta(records, {r.index for r in chosen}), gzip_trace)
    folder = stage / "traces"
    folder.mkdir(exist_ok=True)
    per_rank = []
    for r in results:
        name = f"rank-{r.rank}.json" + (".gz" if gzip_trace else "")
        if gzip_trace:
            with open(r.fragment, "rb") as src, gzip.open(folder / name, "wb", compresslevel=3) as dst:
                shutil.copyfileobj(src, dst)
            os.unlink(r.fragment)
        else:
            os.replace(r.fragment, folder / name)
        per_rank.append(f"traces/{name}")
    why = (f"all ranks together are {total / 2**30:.2f} GiB of JSON, above the {max_trace_bytes / 2**30:.2f} GiB "
           "that Perfetto UI opens" if total > max_trace_bytes else "ranks chosen with --ranks")
    return base, {"ranks": sorted({r.rank for r in chosen}), "per_rank_traces": per_rank, "split_because": why,
                  "all_ranks_bytes": total}


def convert_ranks(paths: Sequence[Path], outdir: str | Path, gzip_trace: bool = False, parquet: bool = True,
                  progress: Callable[[str], None] | None = None, workers: int | None = None,
                  executor: Executor | str | None = None, max_trace_bytes: int = PERFETTO_MAX_BYTES,
                  trace_ranks: Sequence[int] | None = None) -> dict[str, Any]:
    """Convert several inputs (ranks) into a merged chrome trace (or per-rank traces plus a merged subset when
    too large for Perfetto UI), rank-partitioned Parquet tables, collectives.parquet, summary.json and the
    dataset manifest tracekit.json; ranks run on the executor (default: a local process pool)."""
    import shutil

    from tracekit.dataset.manifest import write_manifest
    from tracekit.group_members import members_path
    from tracekit.parallel.groups import group_evidence
    from tracekit.writers.atomic import staged_dir

    step = progress or (lambda _msg: None)
    trace_name = "trace.json.gz" if gzip_trace else "trace.json"
    with staged_dir(outdir) as stage:
        calls = stage / ".calls"
        records = RankRecords(stage / ".ranks.jsonl")  # what each rank sends back for the summary and manifest

        def done(result: RankResult) -> None:
            records.add(result)
            every(records.count)  # in-process ranks (one worker) leave freed heap pages behind
            step(f"converted rank {result.rank}: {result.path}")

        run_ranks(job_list(paths, stage, parquet, calls=str(calls), splits=False), workers, on_done=done,
                  executor=executor, keep=False)  # what later stages need is in `records` (a file and columns)
        check_rank_index(records.ranks, records)
        step("writing the merged chrome trace")
        base, traces = write_traces(records.ranks, records, stage, trace_name, gzip_trace, max_trace_bytes,
                                    trace_ranks)
        shutil.rmtree(stage / ".fragments", ignore_errors=True)
        release_freed_memory()  # what splicing the fragments freed, before the cross-rank stage allocates
        step("matching collectives across ranks")
        coll_path = stage / ("collectives.parquet" if parquet else ".collectives.parquet")
        coll_rows = collectives_of(group_evidence(records.field("distributed")), calls, coll_path)
        shutil.rmtree(calls, ignore_errors=True)
        counts = _sum_dicts(rec["summary"]["parquet"] for rec in records) if parquet else {}
        if parquet:
            counts["collectives"] = coll_rows
        else:
            coll_path.unlink(missing_ok=True)
            members_path(coll_path).unlink(missing_ok=True)
        summary = merged_summary(records, trace_name, base, counts, coll_rows)
        summary["trace"].update(traces)
        with (stage / "summary.json").open("w") as fh:
            dump_streamed(fh, summary, 2, {"sources": lambda: summary_sources(records)})
        write_manifest(stage, lambda: (i for i in records.field("input") if i),
                       lambda: (s for s in records.field("source") if s), summary["ranks"], counts,
                       [trace_name, *traces.get("per_rank_traces", [])])
        summary["sources"] = list(summary_sources(records))  # the returned summary is whole (a few fields per rank)
        records.close()
        records.path.unlink()
    return summary


def analyse_ranks(paths: Sequence[Path], workers: int | None = None,
                  progress: Callable[[str], None] | None = None,
                  executor: Executor | str | None = None) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """Collectives, per-rank step splits and process groups of the inputs (no files written but a scratch folder:
    the calls and step splits each worker sends back go to rank-partitioned Parquet there as they arrive, and
    the cross-rank stage reads them as it does during convert; the collectives table is then read back as from a
    dataset, and the step splits narrow, with compute spans only for a pipeline-parallel run: parallel.splits)."""
    import shutil
    import tempfile

    from tracekit.parallel.crossrank import read_collectives
    from tracekit.parallel.groups import group_evidence
    from tracekit.parallel.splits import keep_splits, pipeline_possible, read_splits

    step = progress or (lambda _msg: None)
    jobs = job_list(paths, Path("."), parquet=False, chrome=False)
    scratch = Path(tempfile.mkdtemp(prefix="tracekit-parallel-"))
    try:
        keep, keep_split = keep_calls(scratch / "calls"), keep_splits(scratch / "splits")
        records = RankRecords(scratch / "ranks.jsonl")

        def done(result: RankResult) -> None:
            keep(result)
            keep_split(result)
            records.add(result)
            every(records.count)
            step(f"read rank {result.rank}: {result.path}")

        run_ranks(jobs, workers, on_done=done, executor=executor, keep=False)
        check_rank_index(records.ranks, records)
        distributed = group_evidence(records.field("distributed"))
        collectives_of(distributed, scratch / "calls", scratch / "collectives.parquet")
        coll = read_collectives(scratch / "collectives.parquet")
        release_freed_memory()
        table = group_table(distributed, coll)
        steps = read_splits(scratch / "splits", spans=pipeline_possible(coll, table))
        records.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return coll, steps, table


def group_table(distributed: Sequence[dict[str, Any]], coll: pd.DataFrame) -> list[dict[str, Any]]:
    """The process groups of a job (stated in distributedInfo or inferred from the collectives) as table rows."""
    from tracekit.parallel.groups import group_evidence, groups_from_ranks

    groups = groups_from_ranks(group_evidence(distributed), coll)
    return [{"group": g.name, "desc": g.desc, "ranks": list(g.ranks), "parallel_dim": g.dim,
             "dim_inferred": g.dim_inferred, "from": g.source} for g in groups.values()]
