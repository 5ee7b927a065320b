"""The --executor/--scheduler options of the commands that run work per rank (convert, parallel)."""

from __future__ import annotations

from collections.abc import Callable

import click

from tracekit.executors import EXECUTORS, Executor, make_executor


def executor_options(fn: Callable) -> Callable:
    """Add --executor and --scheduler to a command."""
    fn = click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
                      help="Dask scheduler address (implies --executor dask).")(fn)
    return click.option("--executor", type=click.Choice(EXECUTORS), default=None,
                        help="Where per-rank work runs: a local process pool (default) or a Dask cluster.")(fn)


def chosen_executor(executor: str | None, scheduler: str | None, workers: int | None) -> Executor:
    """The executor the options name (a UsageError when dask has no scheduler)."""
    if executor == "dask" and not scheduler:
        raise click.UsageError("--executor dask needs --scheduler tcp://HOST:PORT")
    return make_executor(executor, workers, scheduler)
