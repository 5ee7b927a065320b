"""Where the commands print: a rich Console that does not wrap tables when the output is piped or saved."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click

from tracekit.writers.atomic import check_output_file, staged_file

if TYPE_CHECKING:
    from rich.console import Console

PIPED_WIDTH = 400  # wide enough for every table the commands print; tables keep their natural width


def out_console(file: IO[str] | None = None) -> Console:
    """The terminal's width on a terminal; otherwise wide, so `tracekit info X > info.txt` keeps whole rows."""
    from rich.console import Console

    stream = file or sys.stdout
    tty = stream.isatty() if hasattr(stream, "isatty") else False
    return Console(file=file, width=None if tty else PIPED_WIDTH, soft_wrap=not tty)


def format_from_suffix(out: Path | None, known: tuple[str, ...], default: str) -> str:
    """The format a file name asks for (report.html -> html), else `default`."""
    suffix = out.suffix.lower().lstrip(".") if out else ""
    return suffix if suffix in known else default


def check_outputs(*paths: Path | None) -> None:
    """Refuse an output file that cannot be written (a folder, a path under a file, an unwritable folder)
    before any input is read, as `staged_file` would after the work."""
    for path in paths:
        if path is not None:
            check_output_file(path)


def emit(text: str, out: Path | None) -> None:
    """Print `text`, or write it to `out` (atomically) and say so."""
    if out is None:
        click.echo(text, nl=False)
        return
    with staged_file(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    click.echo(f"wrote {out}")
