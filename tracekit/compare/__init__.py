"""Two profiles aligned module by module and op by op (`tracekit compare`).

Called as a function, `tracekit.compare(base, target)` is tracekit.api.compare."""

from tracekit.callmodule import make_callable

make_callable(__name__)
