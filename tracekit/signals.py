"""SIGTERM/SIGHUP as an exception, remembered until the command ends.

The CLI's handler raises `Terminated` in the main thread. Python swallows an exception raised inside a callback it
runs for itself (a weakref callback, `__del__`, importlib's module-lock cleanup: "Exception ignored in ..."), and the
handler has already set the signals to be ignored, so such a signal would be lost and the command would finish and
exit 0. The signal is therefore also recorded here, and `raise_if_terminated` raises it again at the points where an
output is about to be put in place (tracekit.writers.atomic) and when the command returns."""

from __future__ import annotations

_PENDING: list[int] = []


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwinds like KeyboardInterrupt, so staged outputs are removed."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def terminate(signum: int) -> None:
    """Record the signal and raise Terminated for it."""
    _PENDING.append(signum)
    raise Terminated(signum)


def raise_if_terminated() -> None:
    """Raise Terminated again for a signal whose first exception was swallowed (see the module docstring)."""
    if _PENDING:
        raise Terminated(_PENDING[0])


def clear() -> None:
    """Forget a recorded signal (the command that received it has ended)."""
    _PENDING.clear()
