"""Exact conversion of chrome-trace microsecond timestamps to integer nanoseconds."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np

from tracekit.errors import warn
from tracekit.lazy import pa  # imported on first use: us_to_ns_numpy (tracekit info) does without it

# Below 2**43 us a float64 has a spacing under 1 ns, so the 3-decimal value written by the
# profiler is recovered exactly by rounding the fraction (see us_to_ns).
EXACT_FLOAT_US = float(2**43)
# Times (and durations) are int64 ns; values this large or larger (146 years) are out of range, so that
# sums of a time and a duration cannot overflow. They are skipped and counted, never clamped.
MAX_ABS_NS = 2**62
_MAX_ABS_US = MAX_ABS_NS / 1000.0


def us_to_ns(values: list, path: str | Path, field: str) -> tuple[np.ndarray, np.ndarray]:
    """Convert a list of us values (int, float, numeric string or None) to int64 ns.

    Returns (ns, ok): ok is False where the value is missing or not a number. Floats are split
    into integer and fractional microseconds so that `4485561333650.786` gives exactly
    `4485561333650786` ns; strings are parsed as decimals, never through float.
    """
    ns, ok, lossy = us_to_ns_counted(values)
    if lossy:
        warn(path, f"{lossy} '{field}' values are beyond float precision; ns digits may be off")
    return ns, ok


def us_to_ns_counted(values: list) -> tuple[np.ndarray, np.ndarray, int]:
    """us_to_ns without the warning: (ns, ok, number of float values beyond float precision).

    Lets a caller convert a column chunk by chunk and warn once for the whole column. Values out of
    range (see MAX_ABS_NS) are not ok; `us_to_ns_ranged` tells them apart from missing ones.
    """
    ns, ok, lossy, _out = us_to_ns_ranged(values)
    return ns, ok, lossy


def us_to_ns_ranged(values: list) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """(ns, ok, lossy, out_of_range): like us_to_ns_counted, plus the mask of numbers that are valid
    but too large for int64 ns (beyond ±MAX_ABS_NS: 1e308, 2**70, "1e400"); those are not ok."""
    n = len(values)
    try:
        # Fast path: all numbers or None. Arrow refuses ints that float64 cannot hold exactly.
        arr = pa.array(values, type=pa.float64())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        arr = None
    if arr is not None:
        missing = arr.is_null().to_numpy(zero_copy_only=False)
        return _floats_to_ns(arr.fill_null(0.0).to_numpy(), ~missing)
    floats = np.zeros(n, dtype=np.float64)  # zeros: string rows must not hold garbage (overflow warnings)
    kinds = np.zeros(n, dtype=np.int8)  # 0 float/int, 1 missing, 2 string, 3 big int
    for i, v in enumerate(values):
        t = type(v)
        if t is float or t is int:
            if t is int and abs(v) >= 2**53:
                kinds[i] = 3
            else:
                floats[i] = v
        elif v is None or t is bool:
            kinds[i] = 1
        else:
            kinds[i] = 2
    ns, ok, lossy, out = _floats_to_ns(floats, kinds == 0)
    for i in np.flatnonzero(kinds >= 2):
        v = values[i]
        parsed = _parse_decimal_us(v) if isinstance(v, str) else int(v) * 1000
        if parsed is None:
            ok[i] = False
        elif abs(parsed) >= MAX_ABS_NS:
            ok[i] = False
            out[i] = True
        else:
            ns[i] = parsed
            ok[i] = True
    return ns, ok, lossy, out


def _floats_to_ns(floats: np.ndarray, regular: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """Exact ns of float us values (see us_to_ns); ok is False where not regular, not finite or out of range.

    Also returns how many values are beyond float precision (see EXACT_FLOAT_US) and the out-of-range mask."""
    n = len(floats)
    finite = np.isfinite(floats) & regular
    out = finite & (np.abs(floats, where=finite, out=np.zeros(n)) >= _MAX_ABS_US)
    finite &= ~out
    whole = np.floor(floats, where=finite, out=np.zeros(n))
    frac_ns = np.rint((floats - whole) * 1000.0, where=finite, out=np.zeros(n))
    ns = np.zeros(n, dtype=np.int64)
    ns[finite] = whole[finite].astype(np.int64) * 1000 + frac_ns[finite].astype(np.int64)
    lossy = finite & (np.abs(floats) >= EXACT_FLOAT_US) & (whole != floats)
    return ns, finite.copy(), int(lossy.sum()), out


def _parse_decimal_us(text: str) -> int | None:
    """Parse a decimal string of microseconds exactly into integer ns (None if not a number)."""
    text = text.strip()
    if len(text) > 64:  # no time is written with more digits; Decimal of a huge text is slow
        return None
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    if value.is_finite() and abs(value.adjusted()) > 30:
        return MAX_ABS_NS if value.adjusted() > 0 else 0
    if not value.is_finite():
        return None
    return int((value * 1000).to_integral_value())

