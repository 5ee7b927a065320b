"""`tracekit merge`: several traces of one run (VizTracer, torch.profiler) on one clock, verified from
their events, with duplicates merged and each process's Python frames and ops on shared tracks."""

from tracekit.merge.job import merge

__all__ = ["merge"]
