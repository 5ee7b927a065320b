"""`tracekit sql DATASET "SELECT ..."`: SQL over the tables of a dataset (DuckDB), one view per table."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tracekit.cli.console import check_outputs
from tracekit.sql import FORMATS, query, result_text, write_result
from tracekit.writers.atomic import staged_file


@click.command("sql")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.argument("statement")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("-o", "--out", type=click.Path(path_type=Path), default=None,
              help="Write the result to this file (required for parquet).")
@click.option("--max-rows", default=100, show_default=True, help="Rows shown in the terminal table.")
def sql_cmd(dataset: Path, statement: str, fmt: str, out: Path | None, max_rows: int) -> None:
    """Run a SQL STATEMENT on DATASET (a `tracekit convert` output folder). Views: events, kernels, ops, steps,
    modules, collectives, group_members; rank-partitioned tables are one view with a `rank` column.

    Example: tracekit sql out/ "SELECT rank, name, sum(dur_ns) t FROM kernels GROUP BY ALL ORDER BY t DESC LIMIT 5"
    """
    check_outputs(out)
    from tracekit.dataset.load import dataset_of

    if fmt == "parquet" and out is None:
        raise click.UsageError("--format parquet needs -o FILE.parquet")
    ds = dataset_of([dataset])
    if ds is None:
        from tracekit.errors import TraceError

        raise TraceError(dataset, "not a tracekit dataset (no tracekit.json): convert it first with "
                                  f"`tracekit convert {dataset} -o DIR`, then query DIR")
    result = query(ds, statement)
    if out is not None:
        with staged_file(out) as tmp:
            write_result(result, "csv" if fmt == "table" else fmt, tmp)
        click.echo(f"wrote {out} ({result.num_rows} rows)")
    elif fmt == "table":
        _print_table(result, max_rows)
    else:
        click.echo(result_text(result, fmt), nl=False)


def _print_table(result, max_rows: int) -> None:
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    frame = result.slice(0, max_rows).to_pandas()
    tab = Table()
    for i, col in enumerate(frame.columns):
        tab.add_column(str(col), justify="right" if pd.api.types.is_numeric_dtype(frame.iloc[:, i]) else "left")
    for row in frame.itertuples(index=False):
        tab.add_row(*("" if v is None else str(v) for v in row))
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(tab)
    if result.num_rows > max_rows:
        console.print(f"{max_rows} of {result.num_rows} rows shown (--max-rows, or --format csv/json/parquet -o FILE)")
