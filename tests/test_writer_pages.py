"""The Parquet writers' work bounded in bytes (session 17): the ops' input text decoded in parts of about
op_text.CHUNK_BYTES of args, the args' UTF-8 checked a part at a time with each part's pages of a spilled column
dropped after it, and events.parquet written one row group at a time when its columns are held wide too. Each gives
what the whole-at-once code gave, byte for byte."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import shared
from test_args_spill import mapping_rss_kb
from test_perf_writers import ARGS
from test_scratch_read import read, tmpdir_env  # noqa: F401 (tmpdir_env: a fixture)

from tracekit import narrow
from tracekit.inputs import expand_inputs
from tracekit.opargs import op_inputs
from tracekit.pipeline import process, read_inputs
from tracekit.writers import op_text, parquet

OWLV2 = shared("gpu/tracelens/h100/google_owlv2-large-patch14-ensemble__1016001.json.gz")


def test_op_input_columns_same_for_every_byte_bound() -> None:
    arr = pa.array(ARGS * 7, pa.large_binary())
    rows = np.arange(len(arr))
    whole = op_text.op_input_columns(arr, rows, chunk=len(arr), chunk_bytes=1 << 30)
    for limit in (1, 40, 200):
        dims, types = op_text.op_input_columns(arr, rows, chunk_bytes=limit)
        assert dims.equals(whole[0]) and types.equals(whole[1])
    odd = pa.array([*ARGS, b"[1]", b'{"Input Dims": "x"}'] * 3, pa.large_binary())
    rows = np.arange(0, len(odd), 2)
    expected = op_inputs(odd, rows)
    dims, types = op_text.op_input_columns(odd, rows, chunk_bytes=50)
    assert dims.to_pylist() == expected.dims and types.to_pylist() == expected.types


def test_op_input_columns_parts_are_bounded_in_bytes(monkeypatch) -> None:
    """Each part decoded holds at most about chunk_bytes of args (a single larger row: a part of its own)."""
    big = b'{"Input Dims": [[1]], "Concrete Inputs": ["' + b"x" * 500 + b'"]}'
    arr = pa.array([big, *ARGS] * 10, pa.large_binary())
    seen: list[int] = []
    real = op_text._op_input_chunk

    def counted(args, rows):
        seen.append(int(sum(len(args[int(r)].as_py() or b"") for r in rows)))
        return real(args, rows)

    monkeypatch.setattr(op_text, "_op_input_chunk", counted)
    dims, _types = op_text.op_input_columns(arr, np.arange(len(arr)), chunk_bytes=600)
    assert len(seen) > 5 and max(seen) <= 600 + len(big)
    assert dims.to_pylist() == op_inputs(arr, np.arange(len(arr))).dims


def test_args_text_is_the_cast_checked_in_parts(monkeypatch) -> None:
    monkeypatch.setattr(parquet, "CHECK_BYTES", 64)
    values = [b'{"a": "\xc3\xa9"}', b"", b'{"name": "' + b"y" * 300 + b'"}', b"{}"] * 20
    args = pa.array(values, pa.large_binary())
    assert args.nbytes > 64 * 10
    text = parquet.args_text(args)
    assert text.type == pa.large_string() and text.equals(args.cast(pa.large_string()))
    assert parquet.args_text(args.slice(5, 30)).equals(args.slice(5, 30).cast(pa.large_string()))
    bad = pa.array([*values, b'{"x": "\xff"}'], pa.large_binary())  # invalid UTF-8 in the last part
    with pytest.raises(pa.ArrowInvalid):
        bad.cast(pa.large_string())
    with pytest.raises(pa.ArrowInvalid):
        parquet.args_text(bad)


def test_args_text_of_spilled_args_keeps_one_part_resident(monkeypatch, tmpdir_env) -> None:  # noqa: F811
    """Spilled args (owlv2: ~28 MB): while the UTF-8 is checked, about one part's pages of the map are resident at a
    time, not the whole column's, and none are left after."""
    table, _ = read(OWLV2, "on", monkeypatch)
    data = table.args.buffers()[2]
    monkeypatch.setattr(parquet, "CHECK_BYTES", 2 << 20)
    assert data.size > 8 * parquet.CHECK_BYTES
    resident: list[int] = []
    real_drop = parquet.drop_args_pages

    def measured(args):
        resident.append(mapping_rss_kb(data.address) * 1024)
        real_drop(args)

    monkeypatch.setattr(parquet, "drop_args_pages", measured)
    table.args.to_pylist()  # every page read
    real_drop(table.args)
    assert mapping_rss_kb(data.address) * 1024 < 0.1 * data.size
    text = parquet.args_text(table.args)
    assert len(resident) >= data.size // parquet.CHECK_BYTES
    # one part, and what the kernel maps around the pages read (fault-around, a few hundred kB at most)
    assert max(resident) <= parquet.CHECK_BYTES + (1 << 20) < data.size // 4
    assert mapping_rss_kb(data.address) * 1024 < 0.1 * data.size
    assert text.equals(table.args.cast(pa.large_string()))


def test_wide_events_in_row_groups_are_the_whole_file(tmp_path, monkeypatch) -> None:
    """Columns held wide (no narrowing) and several row groups: the file written a group at a time is the file
    written from the whole table."""
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 1000)
    monkeypatch.setattr(narrow, "NARROW_ROWS", 1 << 62)
    processed = process(read_inputs(expand_inputs([shared("cpu/gpt/prof_both.json")])))
    assert processed.table.events["parent"].dtype == np.int64
    rows = parquet.write_events(processed.table, tmp_path / "a.parquet")
    parquet.write_table(parquet.events_frame(processed.table), tmp_path / "b.parquet")
    assert rows == len(processed.table.events)
    assert pq.ParquetFile(tmp_path / "a.parquet").num_row_groups > 1
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_owlv2_events_file_is_the_whole_file(tmp_path) -> None:
    """The shared owlv2 H100 trace (132k events, args of ~27 MB: checked in several parts): events.parquet written a
    row group at a time is the file written from the whole table."""
    processed = process(read_inputs(expand_inputs([OWLV2])))
    ev = processed.table.events
    assert len(ev) > parquet.ROW_GROUP_ROWS and processed.table.args.nbytes > 4 * parquet.CHECK_BYTES
    parquet.write_events(processed.table, tmp_path / "a.parquet")
    parquet.write_table(parquet.events_frame(processed.table), tmp_path / "b.parquet")
    assert pq.ParquetFile(tmp_path / "a.parquet").num_row_groups > 1
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_op_input_columns_with_null_args_same_for_every_byte_bound() -> None:
    """Args with null rows (sized off their offsets, as any other row) give the same text whatever the parts."""
    arr = pa.array([None if i % 4 == 1 else v for i, v in enumerate(ARGS * 6)], pa.large_binary())
    assert arr.null_count
    rows = np.arange(len(arr))
    whole = op_text.op_input_columns(arr, rows, chunk=len(arr), chunk_bytes=1 << 30)
    for limit in (1, 30, 120):
        dims, types = op_text.op_input_columns(arr, rows, chunk_bytes=limit)
        assert dims.equals(whole[0]) and types.equals(whole[1])
