"""tracekit: post-processing toolkit for AI model traces.

Python API (imported on first use, so `import tracekit` stays cheap): tracekit.open, tracekit.compare,
tracekit.parallel, tracekit.Trace; see tracekit.api.
"""

from __future__ import annotations

__version__ = "0.1.0"
_API = ("Trace", "compare", "open", "parallel")


def __getattr__(name: str) -> object:
    if name in ("compare", "parallel"):  # subpackages that are callable as tracekit.api.compare/parallel
        import importlib

        return importlib.import_module(f"tracekit.{name}")
    if name in _API:
        from tracekit import api

        return getattr(api, name)
    raise AttributeError(f"module 'tracekit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
