"""Decode the few args fields the pipeline joins on (correlation, External id, ...), chunk by chunk."""

from __future__ import annotations

from typing import Annotated, Union

import msgspec
import numpy as np

from tracekit.table import int_column

# An id beyond int64 does not fit the int64 link columns: the row's ids are then ignored (and counted).
Id = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


class LinkArgs(msgspec.Struct, gc=False):
    """The few args fields the pipeline needs; everything else stays raw."""

    correlation: Id | None = None
    external_id: Id | None = msgspec.field(default=None, name="External id")
    legacy_external_id: Id | None = msgspec.field(default=None, name="external id")
    sequence: Id | None = msgspec.field(default=None, name="Sequence number")
    fwd_thread: Id | None = msgspec.field(default=None, name="Fwd thread id")
    python_id: Id | None = msgspec.field(default=None, name="Python id")
    python_parent: Id | None = msgspec.field(default=None, name="Python parent id")
    stream: Id | None = None
    device: Id | None = None


class LinkEvent(msgspec.Struct, gc=False):
    """An event seen only through the LinkArgs fields of its args (the rest is skipped)."""

    args: Union[LinkArgs, None] = None


LINK_FIELDS = ("correlation", "sequence", "fwd_thread", "python_id", "python_parent", "stream", "device",
               "external_id")
_events_decoder = msgspec.json.Decoder(list[LinkEvent])
_args_decoder = msgspec.json.Decoder(list[Union[LinkArgs, None]])
_NONE = LinkArgs()


def empty_link_columns(n: int) -> dict[str, np.ndarray]:
    """Link columns of n rows with nothing found (-1)."""
    return {f: np.full(n, -1, dtype=np.int64) for f in LINK_FIELDS}


def link_chunk(events_json: bytes, raw_args: list, span: np.ndarray) -> dict[str, np.ndarray]:
    """int64 LinkArgs columns (-1 where absent) of one chunk of events; rows not in `span` stay -1.

    `events_json` is the chunk's JSON array of events; `raw_args` the raw args of each of its
    events and `span` the mask of rows whose args are decoded. One msgspec call decodes the
    fields for the whole chunk; if some row has a field of an unexpected type, the span rows are
    decoded one by one instead, and a row that does not fit gets nothing (-1).
    """
    return link_columns_of(lambda: [e.args for e in _events_decoder.decode(events_json)], raw_args, span)


def link_chunk_args(raw_args: list, span: np.ndarray) -> dict[str, np.ndarray]:
    """What `link_chunk` gives, read from the raw args alone (their JSON list is shorter than the events')."""
    return link_columns_of(lambda: decode_args(raw_args), raw_args, span)


def decode_args(raw_args: list) -> list:
    """LinkArgs (None: no args) of each raw args, in one msgspec call; raises msgspec.ValidationError or
    RecursionError where one does not fit."""
    return _args_decoder.decode(b"[" + b",".join([a or b"null" for a in raw_args]) + b"]")  # (empty Raw: false)


def link_columns_of(decode, raw_args: list, span: np.ndarray, columns=None) -> dict[str, np.ndarray]:
    """`columns(decoded, span)` (link_columns by default) of the rows' LinkArgs from `decode()`; where that raises
    (a field of an unexpected type), the span rows decoded one by one, a row that does not fit counted in
    "bad_rows" and given nothing."""
    n = len(raw_args)
    if not span.any():
        return empty_link_columns(n)
    bad_rows = 0
    try:
        decoded = decode()
    except (msgspec.ValidationError, RecursionError):
        decoded = [_NONE] * n
        for i in np.flatnonzero(span).tolist():
            piece = raw_args[i]
            one = _decode_lenient(piece if len(piece) else b"null")
            if one is _BAD:
                bad_rows += 1
            decoded[i] = one if isinstance(one, LinkArgs) else _NONE
    out = (columns or link_columns)(decoded, span)
    if bad_rows:
        out["bad_rows"] = bad_rows  # popped by the caller, which counts and reports them
    return out


def link_fits(events_json: bytes) -> bool:
    """Whether the link fields of every event in `events_json` (a JSON array of events) have the expected
    types, so that one msgspec call decodes them (columns_chunk's full_links asks)."""
    try:
        _events_decoder.decode(events_json)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return False
    return True


def link_columns(decoded: list, span: np.ndarray) -> dict[str, np.ndarray]:
    """int64 columns (-1 where absent) of decoded LinkArgs (None: no args); rows not in `span` get -1."""
    if None in decoded:
        decoded = [_NONE if a is None else a for a in decoded]
    out = {
        "correlation": int_column([a.correlation for a in decoded]),
        "sequence": int_column([a.sequence for a in decoded]),
        "fwd_thread": int_column([a.fwd_thread for a in decoded]),
        "python_id": int_column([a.python_id for a in decoded]),
        "python_parent": int_column([a.python_parent for a in decoded]),
        "stream": int_column([a.stream for a in decoded]),
        "device": int_column([a.device for a in decoded]),
        "external_id": int_column([a.legacy_external_id if a.external_id is None else a.external_id
                                   for a in decoded]),
    }
    if not span.all():
        out = {k: np.where(span, v, -1) for k, v in out.items()}
    return out


_BAD = object()  # args whose link fields do not fit (wrong type, beyond int64, args not an object)


def _decode_lenient(piece: bytes) -> LinkArgs | object | None:
    try:
        return msgspec.json.decode(piece, type=Union[LinkArgs, None])
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return _BAD
