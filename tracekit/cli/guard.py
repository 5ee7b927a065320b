"""The CLI's one error path: input problems exit 2 with one line; SIGTERM/SIGHUP clean up like SIGINT;
anything else is reported in one line as a tracekit bug naming the input (--debug shows the traceback)."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any

import click

from tracekit.errors import TraceError, current_input
from tracekit.limits import parse_size, set_max_input_bytes
from tracekit.signals import Terminated, clear, raise_if_terminated, terminate
from tracekit.writers.atomic import allow_replacing_any_folder


def _on_signal(signum: int, _frame: Any) -> None:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # one unwind; the cleanup itself is not interrupted again
    terminate(signum)  # recorded too: raised again if Python swallows this one (tracekit.signals)


def install_signal_handlers() -> dict[int, Any]:
    """SIGTERM and SIGHUP raise Terminated in the main thread (SIGINT already raises KeyboardInterrupt).

    Returns the handlers they replace (for restore_signal_handlers)."""
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError, OSError):  # not the main thread (e.g. an embedding host)
            previous[sig] = signal.signal(sig, _on_signal)
    return previous


def restore_signal_handlers(previous: dict[int, Any]) -> None:
    """Put back the handlers a command replaced (the CLI may run inside another program, e.g. tests)."""
    for sig, handler in previous.items():
        with contextlib.suppress(ValueError, OSError, TypeError):
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def guarded(invoke: Callable[[], Any], debug: bool) -> Any:
    """Run the command; turn every failure into one line on stderr and an exit code."""
    previous = install_signal_handlers()
    try:
        return _guarded(invoke, debug)
    finally:
        restore_signal_handlers(previous)
        clear()


def _invoke_checked(invoke: Callable[[], Any]) -> Any:
    result = invoke()
    raise_if_terminated()  # a signal whose exception was swallowed still ends the command with its exit code
    return result


def _guarded(invoke: Callable[[], Any], debug: bool) -> Any:
    try:
        return _invoke_checked(invoke)
    except TraceError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
        raise
    except Terminated as exc:
        click.echo(f"interrupted by {signal.Signals(exc.signum).name}: nothing was written", err=True)
        sys.exit(128 + exc.signum)
    except KeyboardInterrupt:
        click.echo("interrupted: nothing was written", err=True)
        sys.exit(130)
    except OSError as exc:
        if debug:
            traceback.print_exc()
        where = exc.filename or current_input() or "output"
        why = "disk full" if exc.errno == errno.ENOSPC else exc.strerror or str(exc)
        click.echo(f"error: {where}: {why}", err=True)
        sys.exit(2)
    except MemoryError:
        if debug:
            traceback.print_exc()
        click.echo(f"error: {current_input() or 'input'}: out of memory; see the limits in the README "
                   "('Bad input')", err=True)
        sys.exit(2)
    except Exception as exc:
        if debug:
            traceback.print_exc()
        where = current_input()
        click.echo(f"error: {where + ': ' if where else ''}tracekit bug ({type(exc).__name__}: {exc}); "
                   "please report it with this input" + ("" if debug else "; --debug shows the traceback"),
                   err=True)
        sys.exit(1)


def _set_limit(_ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is None:
        return
    try:
        set_max_input_bytes(parse_size(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _set_force(_ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    allow_replacing_any_folder(value)


def add_input_limit(cmd: click.Command) -> None:
    """--max-input-bytes on a command that reads traces."""
    cmd.params.append(click.Option(
        ["--max-input-bytes"], metavar="SIZE", expose_value=False, callback=_set_limit, is_eager=True,
        help="Largest input (after decompression) to read, e.g. 512M, 64G [default: 8G, or "
             "TRACEKIT_MAX_INPUT_BYTES]."))


def add_force(cmd: click.Command) -> None:
    """--force on a command that writes an output folder."""
    cmd.params.append(click.Option(
        ["--force"], is_flag=True, expose_value=False, callback=_set_force,
        help="Replace the output folder even if it is not an earlier tracekit output (its files are removed)."))


def debug_requested() -> bool:
    return os.environ.get("TRACEKIT_DEBUG", "") not in ("", "0")
