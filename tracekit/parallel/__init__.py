"""Process groups, collectives and per-rank splits (`tracekit parallel`).

Called as a function, `tracekit.parallel(trace)` is tracekit.api.parallel."""

from tracekit.callmodule import make_callable

make_callable(__name__)
