"""Limits on what tracekit reads: the most bytes one input may hold once decompressed.

The limit travels in the environment (TRACEKIT_MAX_INPUT_BYTES) so that worker processes see the
value the command line set.
"""

from __future__ import annotations

import os
import re

ENV = "TRACEKIT_MAX_INPUT_BYTES"
DEFAULT_MAX_INPUT_BYTES = 8 << 30  # 8 GiB decompressed per input file
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """A byte count such as 123, 512M, 8G or 1.5T (binary units; a trailing B or iB is allowed)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise ValueError(f"not a size: {text!r} (use bytes, or a number with K, M, G or T)")
    value = int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    if value <= 0:
        raise ValueError(f"size must be positive: {text!r}")
    return value


def max_input_bytes() -> int:
    """The decompressed size one input may have (TRACEKIT_MAX_INPUT_BYTES, else 8 GiB)."""
    text = os.environ.get(ENV)
    if not text:
        return DEFAULT_MAX_INPUT_BYTES
    try:
        return parse_size(text)
    except ValueError:
        return DEFAULT_MAX_INPUT_BYTES


def set_max_input_bytes(value: int | None) -> None:
    """Set the limit for this process and the worker processes it starts."""
    if value is not None:
        os.environ[ENV] = str(int(value))
