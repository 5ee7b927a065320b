"""Attribute kernels whose launch is not in the trace by the repeating per-step kernel sequence.

A kernel launched before the profiling window opened has no launch event, but a model runs the
same kernel sequence every step. Each run of consecutive unattributed kernels on a stream is
aligned against the stream's whole kernel-name sequence; where one offset matches best (at least
90% of the run's names equal, against attributed kernels, and no other offset as good), each
kernel takes the module and phase of the kernel it aligns with, marked
`module_from = "step_pattern"` (inferred). Runs that repeat (a run inside identical layers)
match several offsets equally and stay unattributed (the trace cannot tell them apart), except a
run that opens the trace and matches the stream's end: it is the tail of the step before the window,
and the tail of the last step is its twin.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tracekit.table import DEVICE_KINDS, column, kind_in
from tracekit.tree import track_codes

MIN_MATCH = 0.9
MAX_CANDIDATES = 5000


def infer_from_step_pattern(ev: pd.DataFrame, module: np.ndarray, module_from: np.ndarray,
                            phase: np.ndarray, recompute: np.ndarray) -> int:
    """Fill module/phase of unattributed device rows in place; returns how many were inferred."""
    device = np.flatnonzero(kind_in(ev, DEVICE_KINDS))
    if not len(device) or not (module[device] < 0).any() or not (module[device] >= 0).any():
        return 0
    track = track_codes(ev)[device]
    order = np.lexsort((column(ev, "ts_ns")[device], track))
    rows, track = device[order], track[order]
    codes = column(ev, "name").codes[rows].astype(np.int64)
    inferred = 0
    for code in np.unique(track).tolist():
        lo, hi = np.searchsorted(track, code, side="left"), np.searchsorted(track, code, side="right")
        stream_rows, stream_codes = rows[lo:hi], codes[lo:hi]
        known = module[stream_rows] >= 0
        if not known.any():
            continue
        for start, stop in _runs(~known):
            like = _best_alignment(stream_codes, known, start, stop)
            if like is None:
                continue
            target = stream_rows[start:stop]
            source = stream_rows[like]
            ok = (module[source] >= 0) & (stream_codes[like] == stream_codes[start:stop])
            target, source = target[ok], source[ok]
            module[target] = module[source]
            module_from[target] = "step_pattern"
            phase[target] = phase[source]
            recompute[target] = recompute[source]
            inferred += len(target)
    return inferred


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of every run of True."""
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def _best_alignment(codes: np.ndarray, known: np.ndarray, start: int, stop: int) -> np.ndarray | None:
    """Positions (aligned with codes[start:stop]) of the unique best-matching attributed stretch."""
    run = codes[start:stop]
    length = len(run)
    n = len(codes)
    candidates = np.flatnonzero(known[: n - length + 1] & (codes[: n - length + 1] == run[0]))
    candidates = candidates[(candidates + length <= start) | (candidates >= stop)][:MAX_CANDIDATES]
    if not len(candidates):
        return None
    window = candidates[:, None] + np.arange(length)[None, :]
    scores = ((codes[window] == run[None, :]) & known[window]).sum(axis=1)
    best = int(scores.max())
    if best < MIN_MATCH * length:
        return None
    tied = candidates[scores == best]
    if len(tied) == 1:
        return window[int(np.argmax(scores))]
    if start == 0 and tied[-1] + length == n:
        # the run opens the trace: the tail of the step before the window; the last step's tail is its twin
        return window[len(candidates) - 1 - int(np.argmax(scores[::-1]))]
    return None
