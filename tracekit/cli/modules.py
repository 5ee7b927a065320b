"""`tracekit modules INPUT...`: the nn.Module tree with shapes, params, FLOPs and times."""

from __future__ import annotations

import io
from pathlib import Path

import click

from tracekit.cli.console import check_outputs, format_from_suffix, out_console
from tracekit.progress import progress_steps
from tracekit.writers.atomic import staged_file

# The --sort choices (tracekit.modules.view.SORT_KEYS, checked equal by a test), here so that
# start-up does not import pandas.
SORT_CHOICES = ("order", "total", "self", "first", "steady", "device", "params", "flops", "backward")

FORMATS = ("table", "csv", "json", "html")



@click.command("modules")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--depth", type=int, default=None, help="Show modules down to this depth (root = 0).")
@click.option("--sort", type=click.Choice(SORT_CHOICES), default="order", show_default=True,
              help="Order of siblings: call order, or by a column (largest first).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="table (text), csv, json (shapes as lists) or html (model drawing + tree; needs -o). "
                   "Default: from the -o file's extension, else table.")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of the terminal (.txt, .csv, .json or .html).")
def modules_cmd(inputs: tuple[Path, ...], depth: int | None, sort: str, fmt: str | None, out: Path | None) -> None:
    """Print the module tree: type, shapes, params, first/steady time, device time, share of step."""
    check_outputs(out)
    from tracekit.dataset.load import module_inputs
    from tracekit.writers.modules_text import RECORD_FUNCTION, VIEW_COLUMNS

    fmt = fmt or format_from_suffix(out, FORMATS, "table")
    if fmt == "html" and out is None:
        raise click.UsageError("--format html needs -o FILE.html")
    with progress_steps(total=len(inputs) + 2) as advance:
        advance("attributing events to modules")
        found = module_inputs(inputs, VIEW_COLUMNS, on_file=lambda p: advance(f"reading {p}"))
        advance("building the module table")
    title = "modules of " + ", ".join(p.name for p in inputs)
    if not found.count:
        click.echo(f"{', '.join(map(str, inputs))}: no nn.Module events (record with with_modules=True or "
                   "with_stack=True, or trace the Python code with VizTracer); no module tree to show", err=True)
        return
    rows = found.rows()
    if all(r["module_type"] == RECORD_FUNCTION for r in rows):
        click.echo(f"{', '.join(map(str, inputs))}: no nn.Module events (record with with_modules=True or "
                   "with_stack=True); showing the record_function annotation hierarchy instead", err=True)
    from tracekit.modules.view import tree_rows

    view = tree_rows(rows, found.step_ns, depth=depth, sort=sort)
    if fmt == "html":
        from tracekit.writers.modules_html import render_html

        _write(render_html(view, title, found.first_step), out, len(view))
        return
    if fmt == "table" and out is None:
        from tracekit.writers.modules_text import render_table

        render_table(view, out_console(), title, found.first_step)
        return
    from tracekit.writers.modules_text import to_csv, to_json

    text = {"table": lambda: _table_text(view, title, found.first_step), "csv": lambda: to_csv(view),
            "json": lambda: to_json(view)}[fmt]()
    _write(text, out, len(view))


def _write(text: str, out: Path | None, modules: int) -> None:
    """To the terminal, or to `out` (staged: no partial file on an error)."""
    if out is None:
        click.echo(text)
        return
    with staged_file(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    click.echo(f"wrote {out} ({modules} modules)")


def _table_text(view: list[dict], title: str, first_step: int | None) -> str:
    from tracekit.writers.modules_text import render_table

    buffer = io.StringIO()
    render_table(view, out_console(buffer), title, first_step)
    return buffer.getvalue()
