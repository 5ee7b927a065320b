"""`tracekit convert INPUT... -o OUTDIR`."""

from __future__ import annotations

from pathlib import Path

import click

from tracekit.progress import progress_steps


@click.command("convert")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", "outdir", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--gzip", "gzip_trace", is_flag=True, help="Write trace.json.gz instead of trace.json.")
@click.option("--no-parquet", is_flag=True, help="Skip the Parquet tables.")
@click.option("--workers", type=int, default=None, help="Worker processes for several ranks (default: cores).")
def convert_cmd(inputs: tuple[Path, ...], outdir: Path, gzip_trace: bool, no_parquet: bool,
                workers: int | None) -> None:
    """Convert traces into a clean chrome trace, Parquet tables and summary.json."""
    from tracekit.convert import convert

    with progress_steps(total=len(inputs) + 3) as advance:
        summary = convert(inputs, outdir, gzip_trace=gzip_trace, parquet=not no_parquet, progress=advance,
                          workers=workers)
    skipped = ", ".join(f"{k}: {v}" for k, v in summary["skipped"].items()) or "none"
    click.echo(
        f"wrote {outdir}/{summary['trace']['file']}: {summary['written_events']} of "
        f"{summary['input_events']} events ({summary['metadata_events_folded']} metadata folded, "
        f"{summary['launch_flows_redrawn']} launch flows redrawn; skipped {skipped})"
    )
    if "workers" in summary:
        click.echo(f"ranks {summary['ranks']} in {summary['workers']['processes']} worker processes; Parquet "
                   "tables are folders partitioned by rank")
    for src in summary["sources"]:
        if src.get("rank_from", "").startswith(("file name", "input order")):
            click.echo(f"rank {src['rank']} of {src['path']} from its {src['rank_from']}")
    if summary["parquet"]:
        tables = ", ".join(f"{k}.parquet ({v} rows)" for k, v in summary["parquet"].items())
        click.echo(f"wrote {tables} and summary.json")
