"""Decode the few args fields the pipeline joins on, for the span events, in one msgspec call."""

from __future__ import annotations

from typing import Union

import msgspec
import numpy as np

from tracekit.table import int_column


class LinkArgs(msgspec.Struct, gc=False):
    """The few args fields the pipeline needs; everything else stays raw."""

    correlation: int | None = None
    external_id: int | None = msgspec.field(default=None, name="External id")
    legacy_external_id: int | None = msgspec.field(default=None, name="external id")
    sequence: int | None = msgspec.field(default=None, name="Sequence number")
    fwd_thread: int | None = msgspec.field(default=None, name="Fwd thread id")
    python_id: int | None = msgspec.field(default=None, name="Python id")
    python_parent: int | None = msgspec.field(default=None, name="Python parent id")
    stream: int | None = None
    device: int | None = None


_args_decoder = msgspec.json.Decoder(list[LinkArgs | None])
_INT_FIELDS = ("correlation", "sequence", "fwd_thread", "python_id", "python_parent", "stream", "device")


def _decode_link_args(raw_args: list) -> list[LinkArgs | None]:
    """Decode the needed args fields of every row in one msgspec call."""
    pieces = [r if len(r) else b"null" for r in raw_args]
    try:
        return _args_decoder.decode(b"[" + b",".join(pieces) + b"]")
    except msgspec.ValidationError:
        # Some row has a field of an unexpected type: decode row by row, tolerating it.
        return [_decode_lenient(p) for p in pieces]


def _decode_lenient(piece: bytes) -> LinkArgs | None:
    try:
        return msgspec.json.decode(piece, type=Union[LinkArgs, None])
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def link_columns(raw_args: list, rows: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """int64 columns (length n, -1 where absent) of the LinkArgs fields of `rows`."""
    decoded = _decode_link_args(raw_args)
    out = {}
    for field in (*_INT_FIELDS, "external_id"):
        full = np.full(n, -1, dtype=np.int64)
        if field == "external_id":
            values = [a.external_id if a is not None and a.external_id is not None else
                      (a.legacy_external_id if a is not None else None) for a in decoded]
        else:
            values = [getattr(a, field) if a is not None else None for a in decoded]
        full[rows] = int_column(values)
        out[field] = full
    return out
