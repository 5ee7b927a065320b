"""Command line: each command wires readers -> stages -> writers."""

from __future__ import annotations

import sys
import warnings

import click

from tracekit import __version__
from tracekit.cli.compare import compare_cmd
from tracekit.cli.convert import convert_cmd
from tracekit.cli.info import info_cmd
from tracekit.cli.merge import merge_cmd
from tracekit.cli.modules import modules_cmd
from tracekit.cli.parallel import parallel_cmd
from tracekit.cli.sql import sql_cmd
from tracekit.errors import TraceError, TraceWarning


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except TraceError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="tracekit")
def main() -> None:
    """Post-process AI model traces (torch.profiler, VizTracer)."""
    warnings.simplefilter("always", TraceWarning)
    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"


main.add_command(convert_cmd)
main.add_command(info_cmd)
main.add_command(modules_cmd)
main.add_command(merge_cmd)
main.add_command(compare_cmd)
main.add_command(parallel_cmd)
main.add_command(sql_cmd)
