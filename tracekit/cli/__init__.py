"""Command line: each command wires readers -> stages -> writers."""

from __future__ import annotations

import os
import warnings

# tracekit does no linear algebra: one OpenBLAS thread instead of one per core saves ~0.1 s of CPU at
# `import numpy` in the command and in every worker it starts (they inherit the environment). The CLI only:
# the Python API leaves the user's process alone. A value the user set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# Arrow's own allocator (mimalloc in the pip wheels) keeps freed pages: a 256-rank convert's parent peaked at
# 191 MB with it and 151 MB with the system allocator, at the same CPU (BENCHMARKS.md, "Scale"). Read when
# pyarrow loads, so set here, before any import of it; workers inherit it. A value the user set is kept.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

import click

from tracekit import __version__
from tracekit.cli.compare import compare_cmd
from tracekit.cli.convert import convert_cmd
from tracekit.cli.guard import add_force, add_input_limit, debug_requested, guarded
from tracekit.cli.info import info_cmd
from tracekit.cli.merge import merge_cmd
from tracekit.cli.modules import modules_cmd
from tracekit.cli.parallel import parallel_cmd
from tracekit.cli.report import report_cmd
from tracekit.cli.sql import sql_cmd
from tracekit.errors import TraceWarning
from tracekit.memory_budget import set_command


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        debug = bool(ctx.params.get("debug")) or debug_requested()
        return guarded(lambda: super(_Group, self).invoke(ctx), debug)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tracekit")
@click.option("--debug", is_flag=True, help="Show the Python traceback of an unexpected error (a tracekit bug).")
def main(debug: bool) -> None:
    """Post-process AI model traces: torch.profiler (Kineto) JSON, VizTracer JSON and Ascend torch_npu profiler
    folders in; clean chrome traces, Parquet tables, terminal tables and HTML reports out."""
    warnings.simplefilter("always", TraceWarning)
    set_command(click.get_current_context().invoked_subcommand or "")  # the memory an input may need
    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"


main.add_command(convert_cmd)
main.add_command(info_cmd)
main.add_command(modules_cmd)
main.add_command(merge_cmd)
main.add_command(compare_cmd)
main.add_command(parallel_cmd)
main.add_command(report_cmd)
main.add_command(sql_cmd)
for _cmd in (convert_cmd, info_cmd, modules_cmd, merge_cmd, compare_cmd, parallel_cmd, report_cmd):
    add_input_limit(_cmd)
for _cmd in (convert_cmd, compare_cmd, merge_cmd):
    add_force(_cmd)
