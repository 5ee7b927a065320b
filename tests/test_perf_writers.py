"""Columnar writer helpers give the same values as the per-row code they replace."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa

from tracekit.opargs import op_inputs
from tracekit.writers.json_rows import joined_bytes, write_rows
from tracekit.writers.parquet import op_input_columns

ARGS = [
    b'{"Input Dims": [[1, 2], []], "Input type": ["float", ""], "x": 1}',
    b"",
    b'{"Input Dims": [[3]]}',
    b"null",
    b'{"Input type": ["\\u00e9", "int"]}',
    b"{}",
]


def check(args: list[bytes], rows: list[int]) -> None:
    arr = pa.array(args, pa.large_binary())
    dims, types = op_input_columns(arr, np.array(rows, dtype=np.int64))
    expected = op_inputs(arr, np.array(rows, dtype=np.int64))
    assert dims.to_pylist() == expected.dims
    assert types.to_pylist() == expected.types


def test_op_input_columns_match_op_inputs() -> None:
    check(ARGS, [0, 1, 2, 3, 4, 5])
    check(ARGS, [4, 0, 0])
    check(ARGS, [])


def test_op_input_columns_fallback_on_odd_rows() -> None:
    # "Input Dims" of an unexpected shape is still raw JSON; args that are not an object fall back.
    check([*ARGS, b"[1, 2]", b'"text"'], [0, 6, 2, 7])


def test_write_rows_writes_the_rows_back_to_back() -> None:
    rows = pa.array([",a", ",bb", ",ccc"], pa.large_string())
    for part, skip in ((rows, 1), (rows.slice(1), 0), (pa.chunked_array([rows.slice(0, 1), rows.slice(1)]), 1)):
        fh = io.BytesIO()
        write_rows(fh, part, skip=skip)
        assert fh.getvalue() == b"".join(v.encode() for v in part.to_pylist())[skip:]
    fh = io.BytesIO()
    assert write_rows(fh, rows.slice(0, 0)) == 0 and fh.getvalue() == b""
    assert joined_bytes(pa.array(["a", "b"], pa.large_string())) == b"a,b"


def test_op_input_columns_same_for_every_chunk_size() -> None:
    arr = pa.array(ARGS * 5, pa.large_binary())
    rows = np.arange(len(ARGS) * 5)
    whole = op_input_columns(arr, rows)
    for chunk in (1, 2, 7):
        dims, types = op_input_columns(arr, rows, chunk=chunk)
        assert dims.equals(whole[0]) and types.equals(whole[1])
    odd = pa.array([*ARGS, b"[1]"] * 3, pa.large_binary())
    rows = np.arange(len(odd))
    expected = op_inputs(odd, rows)
    dims, types = op_input_columns(odd, rows, chunk=3)
    assert dims.to_pylist() == expected.dims and types.to_pylist() == expected.types
