"""`Input Dims` / `Input type` text of the cpu ops as arrow columns, decoded once per event table for the
writers that ask.

The chrome writer (the launching op's shapes on each kernel), the kernels table and the ops table each want
the input text of some ops of the same table; the launching ops are cpu ops. For a table of up to
SHARED_ROWS rows (a rank of a multi-rank job: the decode is a fixed cost there), the first ask decodes every
cpu op (and collective) and later asks about the same args take from that (a weak reference to the args tells
whose answer it is; the text kept is that of one small table). A larger table is decoded per ask, as before:
its text is not held from the trace writer to the ops table.
"""

from __future__ import annotations

import weakref

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tracekit.converters.args_bytes import take_args
from tracekit.opargs import _Inputs, op_inputs
from tracekit.table import kind_in
from tracekit.writers.row_parts import row_bytes, row_parts

# The last answer: (weak reference to the args, rows, dims, types), replaced as one tuple.
_LAST: tuple | None = None
SHARED_ROWS = 65_536


def op_input_text(args: pa.LargeBinaryArray, events: pd.DataFrame, rows: np.ndarray
                  ) -> tuple[pa.Array, pa.Array]:
    """What `op_input_columns(args, rows)` gives (rows: ascending, unique); for a table of up to SHARED_ROWS rows
    taken from the input text of all cpu ops and collectives of `events` (and `rows`), decoded once per args."""
    global _LAST
    rows = np.asarray(rows, dtype=np.int64)
    if len(events) > SHARED_ROWS:
        return op_input_columns(args, rows)
    last = _LAST
    if last is None or last[0]() is not args:
        known = np.union1d(np.flatnonzero(kind_in(events, ("cpu_op", "collective"))), rows)
        last = (weakref.ref(args), known, *op_input_columns(args, known))
        _LAST = last
    _, known, dims, types = last
    at = np.searchsorted(known, rows)
    if len(rows) and (at.max() >= len(known) or not np.array_equal(known[at], rows)):  # rows it has not decoded
        return op_input_columns(args, rows)
    if len(rows) == len(known):
        return dims, types
    taken = pa.array(at)
    return dims.take(taken), types.take(taken)


# A chunk's args are held about three times while they are decoded (taken, joined into one JSON list, the decoded
# slices): chunks of at most CHUNK_BYTES of args keep that small when ops carry large args (owlv2's 24k ops hold
# 14.6 MB of args: in chunks of 8,192 rows alone the ops table's text peaked ~+29 MB, in 1 MB chunks +5 MB).
CHUNK_BYTES = 1 << 20


def op_input_columns(args: pa.LargeBinaryArray, rows: np.ndarray,
                     chunk: int = 8_192, chunk_bytes: int | None = None) -> tuple[pa.Array, pa.Array]:
    """`Input Dims` and `Input type` JSON text of `rows` ("" where absent), as arrow strings.

    The same values as opargs.op_inputs, without a Python str per row: per chunk of rows (at most `chunk` rows and
    about `chunk_bytes` of args, CHUNK_BYTES by default), one msgspec call over their args, and the raw slices
    joined into arrow columns.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if not len(rows):
        empty = pa.array([], pa.large_string())
        return empty, empty
    limit = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    parts = [_op_input_chunk(args, part) for part in row_parts(rows, row_bytes(args), chunk, limit)]
    if len(parts) == 1:
        return parts[0]
    return pa.concat_arrays([p[0] for p in parts]), pa.concat_arrays([p[1] for p in parts])


def _op_input_chunk(args: pa.LargeBinaryArray, rows: np.ndarray) -> tuple[pa.Array, pa.Array]:
    picked = take_args(args, rows)
    pieces = pc.if_else(pc.greater(pc.binary_length(picked), 0), picked, pa.scalar(b"null", pa.large_binary()))
    del picked
    listed = pc.binary_join_element_wise(pieces, pa.scalar(b",", pa.large_binary()), pa.scalar(b"", pa.large_binary()))
    del pieces
    offsets = np.frombuffer(listed.buffers()[1], dtype=np.int64, count=len(listed) + 1, offset=listed.offset * 8)
    body = memoryview(listed.buffers()[2])[int(offsets[0]) : int(offsets[-1]) - 1]
    text = bytearray(len(body) + 2)
    text[0:1], text[1:-1], text[-1:] = b"[", body, b"]"
    del body, listed
    try:
        decoded = _inputs_decoder.decode(text)
    except (msgspec.ValidationError, msgspec.DecodeError):
        slow = op_inputs(args, rows)
        return pa.array(slow.dims, pa.large_string()), pa.array(slow.types, pa.large_string())
    none = _Inputs()
    decoded = [none if d is None else d for d in decoded]
    return _raw_text([d.dims for d in decoded]), _raw_text([d.types for d in decoded])


_inputs_decoder = msgspec.json.Decoder(list[_Inputs | None])


def _raw_text(raws: list) -> pa.Array:
    """Raw JSON slices as one arrow string column (no per-row copies)."""
    lengths = np.fromiter(map(len, raws), dtype=np.int64, count=len(raws))
    offsets = np.zeros(len(raws) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = b"".join(raws)
    binary = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(raws), [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    return binary.cast(pa.large_string())
