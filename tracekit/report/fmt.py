"""Number formatting for the report: ms, MB, %, counts; blank where there is no value."""

from __future__ import annotations

import functools
import html
import json
import math
from typing import Any


def missing(value: Any) -> bool:
    """None, NaN or pandas NA."""
    kind = type(value)
    if kind is float:  # most cells: one comparison (NaN is the only float unequal to itself)
        return value != value
    if kind is str or kind is int or kind is bool:
        return False
    if value is None:
        return True
    try:
        return bool(value != value) or (isinstance(value, float) and math.isnan(value))
    except (TypeError, ValueError):
        return str(value) == "<NA>"


_HTML_SPECIAL = frozenset("&<>\"'")


def esc(value: Any) -> str:
    """HTML-escaped text; blank for a missing value."""
    if type(value) is str:  # most cells: no NaN test, and no escape where nothing needs it
        return html.escape(value, quote=True) if not _HTML_SPECIAL.isdisjoint(value) else value
    return "" if missing(value) else html.escape(str(value), quote=True)


def ms(ns: Any, digits: int = 3) -> str:
    """Nanoseconds as milliseconds ('1,234.568'), blank when missing."""
    return "" if missing(ns) else f"{float(ns) / 1e6:,.{digits}f}"


def mb(nbytes: Any) -> str:
    return "" if missing(nbytes) else f"{float(nbytes) / 1e6:,.2f}"


def pct(share: Any, digits: int = 1) -> str:
    return "" if missing(share) else f"{float(share):.{digits}%}"


def count(value: Any) -> str:
    """1.23K / 4.56M / 7.89G; blank for missing or zero."""
    if missing(value) or not value:
        return ""
    value = float(value)
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.2f}{unit}"
    return f"{int(value)}"


def shapes(value: Any) -> list:
    """Shapes column (a JSON string or a list) as a list of shapes ([] when missing)."""
    if missing(value):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [value]
    value = list(value)
    if value and not isinstance(value[0], (list, tuple, str)) and not hasattr(value[0], "__len__"):
        return [value]  # one shape, not a list of shapes
    return value


def shape_text(value: Any) -> str:
    """[[4, 3, 32, 32]] -> '[4,3,32,32]'; several shapes joined by spaces."""
    if type(value) is str:  # a column repeats a few shapes texts: each parsed once
        return _shape_text_of(value)
    return _shape_text(value)


@functools.lru_cache(maxsize=4096)
def _shape_text_of(text: str) -> str:
    return _shape_text(text)


def _shape_text(value: Any) -> str:
    return " ".join("[" + ",".join(str(d) for d in s) + "]" if isinstance(s, list) else str(s) for s in shapes(value))


def json_script(element_id: str, data: Any) -> str:
    """Data for the page's scripts: a JSON <script> block safe to inline in HTML."""
    text = json.dumps(_clean(data), separators=(",", ":"), allow_nan=False, default=str)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f"<script type='application/json' id='{element_id}'>{text}</script>"


def _clean(data: Any) -> Any:
    """NaN and NA become null; numpy scalars become Python numbers."""
    if isinstance(data, dict):
        return {str(k): _clean(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_clean(v) for v in data]
    if hasattr(data, "item") and not isinstance(data, (str, bytes)):
        data = data.item()
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if data is not None and not isinstance(data, (str, int, float, bool)) and missing(data):
        return None
    return data
