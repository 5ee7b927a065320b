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

import importlib

import click

from tracekit import __version__
from tracekit.cli.guard import add_force, add_input_limit, debug_requested, guarded
from tracekit.errors import TraceWarning
from tracekit.memory_budget import set_command

# name -> (module, command object, the first paragraph of its help). A command's module is imported only when
# that command runs (or its --help is asked): `tracekit --help` lists these short helps without importing any
# (tests check each against the command's own docstring).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "convert": ("tracekit.cli.convert", "convert_cmd",
                "Convert traces into a clean chrome trace, Parquet tables and summary.json: a dataset (tracekit.json) "
                "that info, modules, compare, parallel and sql read without parsing the traces again."),
    "info": ("tracekit.cli.info", "info_cmd", "Format, devices, ranks, steps, event counts, time span, top ops and "
                                              "kernels (of traces or a dataset)."),
    "modules": ("tracekit.cli.modules", "modules_cmd", "Print the module tree: type, shapes, params, first/steady "
                                                       "time, device time, share of step."),
    "merge": ("tracekit.cli.merge", "merge_cmd", "Merge VizTracer and torch.profiler traces of one run into one "
                                                 "aligned, verified timeline."),
    "compare": ("tracekit.cli.compare", "compare_cmd", "Compare BASE and TARGET: compare_modules/ops/steps.parquet, "
                                                       "report.html, summary.json [, trace.json]."),
    "parallel": ("tracekit.cli.parallel", "parallel_cmd", "Process groups, collectives per parallel dimension, "
                                                          "per-rank compute/exposed-comm/idle, stragglers."),
    "report": ("tracekit.cli.report", "report_cmd", "Write one HTML report: overview, model drawing, module tree, "
                                                    "top ops and kernels; with several ranks the parallel view; with "
                                                    "--base the comparison."),
    "sql": ("tracekit.cli.sql", "sql_cmd", "Run a SQL STATEMENT on DATASET (a `tracekit convert` output folder). "
                                           "Views: events, kernels, ops, steps, modules, collectives, group_members; "
                                           "rank-partitioned tables are one view with a `rank` column."),
}
READS_INPUTS = ("convert", "info", "modules", "merge", "compare", "parallel", "report")  # get --max-input-bytes
REPLACES_OUTPUT = ("convert", "compare", "merge")  # get --force


def load_command(name: str) -> click.Command:
    """Import a command's module and give the command its shared options (once per process)."""
    module, attribute, _help = COMMANDS[name]
    cmd = getattr(importlib.import_module(module), attribute)
    if not getattr(cmd, "_tracekit_options", False):
        if name in READS_INPUTS:
            add_input_limit(cmd)
        if name in REPLACES_OUTPUT:
            add_force(cmd)
        cmd._tracekit_options = True
    return cmd


class _Group(click.Group):
    """The tracekit command group: commands loaded when used; every failure through tracekit.cli.guard."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.add_command(load_command(cmd_name), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from COMMANDS' helps: click's own layout, no command module imported."""
        listed = click.Group(commands=[click.Command(name, help=text) for name, (_m, _a, text) in COMMANDS.items()])
        click.Group.format_commands(listed, ctx, formatter)

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
    os.environ.setdefault("TRACEKIT_LOW_MEMORY", "auto")  # tracekit.heap: frugal where an input needs over half of it
    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
