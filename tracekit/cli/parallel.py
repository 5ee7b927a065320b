"""`tracekit parallel INPUT...`: what each parallel dimension and group did, per rank and per module."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tracekit.cli.console import check_outputs, emit, format_from_suffix, out_console
from tracekit.cli.executor_opts import chosen_executor, executor_options
from tracekit.progress import progress_steps

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console


def _cell(value: object) -> str:
    import numpy as np
    import pandas as pd

    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _print(console: Console, title: str, frame: pd.DataFrame, top: int | None = None) -> None:
    import pandas as pd

    from tracekit.writers.box_table import print_table

    if not len(frame):
        return
    frame = frame.head(top) if top else frame
    columns = [(str(col), "right" if pd.api.types.is_numeric_dtype(frame[col]) else "left") for col in frame.columns]
    print_table(console, title, columns, [[_cell(v) for v in row] for row in frame.itertuples(index=False)])


@click.command("parallel")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--workers", type=int, default=None, help="Worker processes (default: the machine's cores).")
@click.option("--top", default=15, show_default=True, help="Rows of the per-module table.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "html"]), default=None,
              help="Tables for people, JSON for programs, or an HTML page with charts (needs -o). "
                   "Default: from the -o file's extension, else table.")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of the terminal (.html, .json or .txt).")
@click.option("--html", "html_path", type=click.Path(path_type=Path), hidden=True,
              help="Also write the HTML page here (older spelling of --format html -o FILE).")
@click.option("--json", "as_json", is_flag=True, hidden=True, help="Same as --format json.")
@executor_options
def parallel_cmd(inputs: tuple[Path, ...], workers: int | None, top: int, fmt: str | None, out: Path | None,
                 html_path: Path | None, as_json: bool, executor: str | None, scheduler: str | None) -> None:
    """Process groups, collectives per parallel dimension, per-rank compute/exposed-comm/idle, stragglers."""
    check_outputs(out, html_path)
    from tracekit.dataset.load import dataset_of, parallel_of
    from tracekit.parallel.pipeline import pipeline_view
    from tracekit.parallel.report import terminal_view
    from tracekit.parallel.tables import parallel_tables
    from tracekit.writers.parallel_html import write_html

    if (ds := dataset_of(inputs)) is not None:
        coll, steps, groups = parallel_of(ds)
    else:
        from tracekit.inputs import expand_inputs
        from tracekit.ranks import analyse_ranks

        paths = expand_inputs(inputs)
        with progress_steps(total=len(paths)) as advance:
            coll, steps, groups = analyse_ranks(paths, workers, progress=advance,
                                                executor=chosen_executor(executor, scheduler, workers))
    tables = parallel_tables(coll, steps, groups)
    fmt = fmt or ("json" if as_json else format_from_suffix(out, ("html", "json"), "table"))
    if fmt == "html" and out is None:
        raise click.UsageError("--format html needs -o FILE.html")
    if html_path:
        write_html(tables, html_path, [str(p) for p in inputs])
    if fmt == "html":
        write_html(tables, out, [str(p) for p in inputs])
        click.echo(f"wrote {out}")
        return
    if fmt == "json":
        text = json.dumps({k: json.loads(v.to_json(orient="records")) for k, v in tables.items()
                           if k != "pipeline_timeline"}, indent=2)
        emit(text + "\n", out)
        return
    buffer = io.StringIO()
    console = out_console(buffer if out else None)
    tables = terminal_view(tables)
    _print(console, "process groups", tables["groups"])
    _print(console, "collectives per parallel dimension and group (time summed over ranks)", tables["by_group"])
    _print(console, "per module: what each parallel dimension added", tables["by_module"], top)
    _print(console, "per rank: compute / exposed communication / idle", tables["by_rank"])
    _print(console, "straggler per step (most compute; the others wait for it)", tables["stragglers"])
    for title, frame in pipeline_view(tables).items():
        _print(console, title, frame)
    if out:
        emit(buffer.getvalue(), out)
    if html_path:
        click.echo(f"wrote {html_path}")
