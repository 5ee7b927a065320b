"""Let `tracekit.compare(a, b)` and `tracekit.parallel(t)` be calls although tracekit.compare and
tracekit.parallel are also subpackages: the subpackage module itself forwards a call to tracekit.api."""

from __future__ import annotations

import sys
import types
from typing import Any


class _ApiModule(types.ModuleType):
    """A package module that, when called, calls the tracekit.api function of the same name."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from tracekit import api

        return getattr(api, self.__name__.rpartition(".")[2])(*args, **kwargs)


def make_callable(module_name: str) -> None:
    """Make the package `module_name` (tracekit.compare, tracekit.parallel) callable as its API function."""
    sys.modules[module_name].__class__ = _ApiModule
