"""pyarrow as a module attribute that imports it on first use.

`import pyarrow` costs ~0.1 s, and its first `pa.array` of a Python list imports pandas too (~0.25 s more).
The readers name it at module level (`from tracekit.lazy import pa, pc`) and so load it only when a function
that needs it runs: `tracekit info` on a torch or VizTracer trace never does (see tracekit/columns.py).
"""

from __future__ import annotations

import importlib
import types
from typing import Any


class _LazyModule(types.ModuleType):
    """Stands for the module `target`: the first attribute read imports it; each attribute is then kept here."""

    def __init__(self, target: str) -> None:
        super().__init__(f"lazy {target}")
        self._target = target

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value = getattr(importlib.import_module(self._target), name)
        self.__dict__[name] = value
        return value


pa: Any = _LazyModule("pyarrow")
pc: Any = _LazyModule("pyarrow.compute")
