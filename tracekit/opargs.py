"""Input shapes and types of cpu ops, decoded from their raw args only for the rows asked for."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import numpy as np
import pyarrow as pa

from tracekit.converters.args_bytes import take_args


class _Inputs(msgspec.Struct, gc=False):
    dims: msgspec.Raw = msgspec.field(default=msgspec.Raw(b""), name="Input Dims")
    types: msgspec.Raw = msgspec.field(default=msgspec.Raw(b""), name="Input type")


@dataclass(frozen=True)
class OpInputs:
    """JSON text of `Input Dims` and `Input type` per requested row ("" where absent)."""

    rows: np.ndarray
    dims: list[str]
    types: list[str]

    def lookup(self) -> dict[int, tuple[str, str]]:
        return dict(zip(self.rows.tolist(), zip(self.dims, self.types)))


def op_inputs(args: pa.LargeBinaryArray, rows: np.ndarray) -> OpInputs:
    """Decode `Input Dims`/`Input type` of `rows` in one msgspec call."""
    rows = np.asarray(rows, dtype=np.int64)
    if not len(rows):
        return OpInputs(rows, [], [])
    picked = take_args(args, rows)
    pieces = [p if p else b"null" for p in picked.to_pylist()]
    decoder = msgspec.json.Decoder(list[_Inputs | None])
    try:
        decoded = decoder.decode(b"[" + b",".join(pieces) + b"]")
    except (msgspec.ValidationError, msgspec.DecodeError):
        decoded = [_lenient(p) for p in pieces]
    dims = [bytes(d.dims).decode() if d is not None else "" for d in decoded]
    types = [bytes(d.types).decode() if d is not None else "" for d in decoded]
    return OpInputs(rows, dims, types)


def _lenient(piece: bytes) -> _Inputs | None:
    try:
        return msgspec.json.decode(piece, type=_Inputs | None)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
