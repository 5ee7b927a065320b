"""`tracekit merge INPUT... -o merged.json [--parquet DIR] [--offset SOURCE=NS]`."""

from __future__ import annotations

import re
from pathlib import Path

import click

from tracekit.progress import progress_steps

_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_OFFSET = re.compile(r"^([+-]?\d+(?:\.\d+)?)\s*(ns|us|ms|s)?$")


def parse_offset(text: str) -> tuple[str, int]:
    """`SOURCE=NS` (a unit suffix ns/us/ms/s is allowed) -> (SOURCE, ns)."""
    source, sep, value = text.rpartition("=")
    m = _OFFSET.match(value.strip())
    if not sep or not source or not m:
        raise click.BadParameter(f"{text!r}: expected SOURCE=NS, e.g. viz.json=-4492800000000000 or viz.json=-52.5us")
    scaled = round(float(m.group(1)) * _UNITS[m.group(2) or "ns"]) if "." in m.group(1) else int(
        m.group(1)) * _UNITS[m.group(2) or "ns"]
    return source, scaled


def _us(ns: int | None) -> str:
    return "n/a" if ns is None else f"{ns / 1000:,.2f} us"


@click.command("merge")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path),
              help="File to write: the merged chrome trace (.json, or .json.gz to gzip it).")
@click.option("--parquet", "parquet_dir", type=click.Path(path_type=Path),
              help="Also write the Parquet tables and summary.json into this folder.")
@click.option("--offset", "offsets", multiple=True, metavar="SOURCE=NS",
              help="Force the clock offset (ns, or with a unit: us, ms, s) added to one input's times; "
                   "SOURCE is its path, file name or position. Repeatable.")
def merge_cmd(inputs: tuple[Path, ...], out: Path, parquet_dir: Path | None, offsets: tuple[str, ...]) -> None:
    """Merge VizTracer and torch.profiler traces of one run into one aligned, verified timeline."""
    from tracekit.merge import merge

    forced = dict(parse_offset(o) for o in offsets)
    with progress_steps(total=len(inputs) + 5) as advance:
        summary = merge(inputs, out, parquet_dir=parquet_dir, offsets=forced, progress=advance)
    for f in summary["merge"]["files"]:
        line = f"{f['path']}: offset {f['offset_ns']:+,} ns ({f['method']})"
        if f["total_pairs"]:
            kinds = ", ".join(f"{k} {v}" for k, v in f["pairs"].items())
            line += (f"; {f['total_pairs']} matched pairs ({kinds}), {f['contained_share']:.2%} contained; "
                     f"residual p50 {_us(f['residual_p50_ns'])}, "
                       f"p95 {_us(f['residual_p95_ns'])}")
        click.echo(line)
    for path, count in summary["merge"]["duplicates_merged"].items():
        click.echo(f"{path}: {count} events already present in another input, merged once")
    skipped = ", ".join(f"{k}: {v}" for k, v in summary["skipped"].items()) or "none"
    click.echo(f"wrote {out}: {summary['written_events']} of {summary['input_events']} events "
               f"({summary['metadata_events_folded']} metadata folded; skipped {skipped}; "
               f"conserved: {summary['conserved']})")
    if summary["parquet"]:
        tables = ", ".join(f"{k}.parquet ({v} rows)" for k, v in summary["parquet"].items())
        click.echo(f"wrote {parquet_dir}/: {tables} and summary.json")
