"""`tracekit convert INPUT... -o OUTDIR`."""

from __future__ import annotations

from pathlib import Path

import click

from tracekit.cli.executor_opts import chosen_executor, executor_options
from tracekit.progress import progress_steps
from tracekit.rankset import PERFETTO_MAX_BYTES, parse_ranks


@click.command("convert")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", "outdir", required=True, type=click.Path(path_type=Path),
              help="Output folder (created): trace.json, the Parquet tables and summary.json.")
@click.option("--gzip", "gzip_trace", is_flag=True, help="Write trace.json.gz instead of trace.json.")
@click.option("--no-parquet", is_flag=True, help="Skip the Parquet tables.")
@click.option("--workers", type=int, default=None, help="Worker processes for several ranks (default: cores).")
@executor_options
@click.option("--max-trace-gb", type=float, default=PERFETTO_MAX_BYTES / 2**30, show_default=True,
              help="Above this much JSON for all ranks, write traces/rank-N.json per rank plus a merged trace of "
                   "the ranks that fit (what Perfetto UI opens).")
@click.option("--ranks", "trace_ranks", default=None, metavar="0-7,64",
              help="Ranks in the merged trace (the others go to traces/rank-N.json); default: all, if they fit.")
def convert_cmd(inputs: tuple[Path, ...], outdir: Path, gzip_trace: bool, no_parquet: bool,
                workers: int | None, executor: str | None, scheduler: str | None, max_trace_gb: float,
                trace_ranks: str | None) -> None:
    """Convert traces into a clean chrome trace, Parquet tables and summary.json: a dataset (tracekit.json)
    that info, modules, compare, parallel and sql read without parsing the traces again."""
    try:
        ranks = parse_ranks(trace_ranks) if trace_ranks else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ranks") from None
    if len(inputs) == 1 and inputs[0].is_file():  # decompressed in a second process while this one imports pandas
        from tracekit.converters.loading import gunzip_ahead

        gunzip_ahead(inputs[0])
    from tracekit.convert import convert

    with progress_steps(total=len(inputs) + 3) as advance:
        summary = convert(inputs, outdir, gzip_trace=gzip_trace, parquet=not no_parquet, progress=advance,
                          workers=workers, executor=chosen_executor(executor, scheduler, workers),
                          max_trace_bytes=int(max_trace_gb * 2**30), trace_ranks=ranks)
    skipped = ", ".join(f"{k}: {v}" for k, v in summary["skipped"].items()) or "none"
    click.echo(
        f"wrote {outdir}/{summary['trace']['file']}: {summary['written_events']} of "
        f"{summary['input_events']} events ({summary['metadata_events_folded']} metadata folded, "
        f"{summary['launch_flows_redrawn']} launch flows redrawn; skipped {skipped})"
    )
    if "split_because" in summary["trace"]:
        click.echo(f"{summary['trace']['split_because']}: wrote one trace per rank under {outdir}/traces/ and "
                   f"ranks {summary['trace']['ranks']} merged in {outdir}/{summary['trace']['file']}")
    if "workers" in summary:
        click.echo(f"ranks {summary['ranks']} in {summary['workers']['processes']} worker processes; Parquet "
                   "tables are folders partitioned by rank")
    for src in summary["sources"]:
        if src.get("rank_from", "").startswith(("file name", "input order")):
            click.echo(f"rank {src['rank']} of {src['path']} from its {src['rank_from']}")
    if summary["parquet"]:
        tables = ", ".join(f"{k}.parquet ({v} rows)" for k, v in summary["parquet"].items())
        click.echo(f"wrote {tables} and summary.json")
    from tracekit.heap import MODE_ENV, low_memory

    if low_memory():
        click.echo("low-memory mode (the input needs over half the memory available): freed memory went back to the "
                   f"system at once and the outputs were written one after the other, which is slower ({MODE_ENV}=off "
                   "turns it off)")
