"""Errors and warnings that name the file (and event) they are about."""

from __future__ import annotations

import warnings
from pathlib import Path


class TraceError(Exception):
    """Unrecoverable input problem: names the file, and the event index where it applies."""

    def __init__(self, path: str | Path, message: str, index: int | None = None, *, row: int | None = None,
                 table: str | None = None):
        self.path = str(path)
        self.index = index
        where = f"{self.path}: " + (f"table {table}: " if table else "") + (
            f"row {row}: " if row is not None else "") + (f"event {index}: " if index is not None else "")
        super().__init__(where + message)


class TraceWarning(UserWarning):
    """Recovered damage in an input file (truncated JSON, missing dur, unmatched B/E...)."""


def warn(path: str | Path, message: str) -> None:
    """Emit a TraceWarning prefixed with the file name."""
    warnings.warn(f"{path}: {message}", TraceWarning, stacklevel=2)


_CURRENT: list[str] = []


def set_current_input(path: str | Path) -> None:
    """Record the input being read, so that an unexpected failure can still name it."""
    _CURRENT[:] = [str(path)]


def current_input() -> str | None:
    """The input file read last (None before any)."""
    return _CURRENT[0] if _CURRENT else None
