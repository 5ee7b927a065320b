"""The args column of a large input spilled to a scratch file as it is decoded (converters/args_bytes).

The spilled column is the in-memory one byte for byte; its pages leave the process's resident memory once a
stage has read them (drop_args_pages), in-memory columns are never touched by that, and the map goes with the
table. Every output of convert is the same whether the args were spilled or held."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from conftest import SAMPLES, shared
from test_perf_decode import damaged_doc
from test_scratch_read import read, scratch_fds, scratch_maps, tmpdir_env  # noqa: F401 (tmpdir_env: a fixture)
from tracekit.converters import args_bytes, scratch

from tracekit.convert import convert

TRACE = shared("gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz")


def mapping_rss_kb(address: int) -> int:
    """Resident kB of this process's map that holds `address` (/proc/self/smaps)."""
    with open("/proc/self/smaps") as fh:
        inside = False
        for line in fh:
            head = line.split()[0]
            if "-" in head and ":" not in head:
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= address < hi
            elif inside and line.startswith("Rss:"):
                return int(line.split()[1])
    raise AssertionError("no map holds the address")


spilled = args_bytes.is_spilled


def test_spilled_args_are_the_in_memory_args(monkeypatch, tmpdir_env: Path) -> None:  # noqa: F811
    memory, memory_warnings = read(TRACE, "off", monkeypatch, chunk=311)
    held, held_warnings = read(TRACE, "on", monkeypatch, chunk=311)
    assert not spilled(memory.args) and spilled(held.args)
    assert held.args.equals(memory.args) and held_warnings == memory_warnings
    assert held.args.nbytes > 400_000  # many pages
    # the file has no name, and only the args map is left once the input is read
    assert list(tmpdir_env.iterdir()) == [] and len(scratch_maps(tmpdir_env)) == len(scratch_fds(tmpdir_env)) == 1
    del held
    gc.collect()
    assert scratch_maps(tmpdir_env) == scratch_fds(tmpdir_env) == [] and not args_bytes._MAPS


def test_read_pages_leave_resident_memory(monkeypatch, tmpdir_env: Path) -> None:  # noqa: F811
    table, _ = read(TRACE, "on", monkeypatch)
    data = table.args.buffers()[2]
    first = table.args.to_pylist()  # every page read
    assert mapping_rss_kb(data.address) * 1024 >= 0.9 * data.size
    args_bytes.drop_args_pages(table.args)
    assert mapping_rss_kb(data.address) * 1024 < 0.1 * data.size
    assert table.args.to_pylist() == first  # read back from the file, the same bytes
    # a slice drops only its own range
    args_bytes.drop_args_pages(table.args)
    middle = len(first) // 2
    half = table.args.slice(middle)
    assert half.to_pylist() == first[middle:]
    args_bytes.drop_args_pages(table.args.slice(0, middle))
    second_bytes = sum(map(len, first[middle:]))
    assert 0.2 * data.size < second_bytes < 0.8 * data.size
    assert second_bytes - 8192 <= mapping_rss_kb(data.address) * 1024 <= second_bytes + 8192
    rows = np.arange(0, len(table.args), 7)
    expected = table.args.take(pa.array(rows))
    args_bytes.drop_args_pages(table.args)
    taken = args_bytes.take_args(table.args, rows)
    assert mapping_rss_kb(data.address) * 1024 < 0.1 * data.size
    assert taken.equals(expected)


def test_in_memory_args_are_never_dropped(monkeypatch) -> None:
    table, _ = read(TRACE, "off", monkeypatch)
    before = table.args.to_pylist()
    args_bytes.drop_args_pages(table.args)
    args_bytes.drop_args_pages(table.args.slice(5, 100))
    args_bytes.drop_args_pages(None)
    assert table.args.to_pylist() == before
    # nor a copy of spilled args (take: new memory)
    spilled_table, _ = read(TRACE, "on", monkeypatch)
    copy = spilled_table.args.take(pa.array(np.arange(200)))
    args_bytes.drop_args_pages(copy)
    assert copy.to_pylist() == before[:200] and not spilled(copy)


def test_no_scratch_file_keeps_the_args_in_memory(monkeypatch, tmpdir_env: Path) -> None:  # noqa: F811
    """A scratch file that cannot be made (a read-only TMPDIR): the args stay in memory, the same bytes."""
    memory, _ = read(TRACE, "off", monkeypatch)

    def refuse() -> int:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(scratch, "open_scratch", refuse)
    monkeypatch.setenv(scratch.ENV, "on")
    writer = args_bytes.ArgsBytes(1, "trace.json")
    writer.append(b"abc")
    writer.append(b"de")
    assert writer.spill is not None and writer.spill.problem and "Read-only" in writer.spill.problem
    with pytest.warns(RuntimeWarning, match="trace.json: cannot create a scratch file .*Read-only.*args are held in"):
        assert writer.buffer().to_pybytes() == b"abcde"
    table, caught = read(TRACE, "on", monkeypatch)
    assert table.args.equals(memory.args) and not spilled(table.args)
    assert any("args are held in memory" in text for text in caught)


def test_convert_outputs_the_same_with_spilled_args(tmp_path: Path, monkeypatch) -> None:
    """Every file convert writes is the same byte for byte whether the args were spilled or held."""
    trace = SAMPLES / "gpt" / "prof.json.gz"
    outs = {}
    for mode in ("off", "on"):
        monkeypatch.setenv(scratch.ENV, mode)
        outs[mode] = tmp_path / mode
        convert([trace], outs[mode])
    names = sorted(p.name for p in outs["off"].iterdir())
    assert "events.parquet" in names and "trace.json" in names
    assert names == sorted(p.name for p in outs["on"].iterdir())
    for name in names:
        if name != "manifest.json":
            assert (outs["off"] / name).read_bytes() == (outs["on"] / name).read_bytes(), name


@pytest.mark.parametrize("size, expect", [(0, "memory"), (scratch.MIN_BYTES, "file")])
def test_spill_only_past_the_scratch_size(size: int, expect: str, monkeypatch) -> None:
    monkeypatch.delenv(scratch.ENV, raising=False)
    writer = args_bytes.ArgsBytes(size)
    assert (writer.spill is None) == (expect == "memory")
    monkeypatch.setenv(scratch.ENV, "off")
    assert args_bytes.ArgsBytes(scratch.MIN_BYTES * 4).spill is None


def test_skipped_events_keep_the_args_spilled(tmp_path: Path, monkeypatch, tmpdir_env: Path) -> None:  # noqa: F811
    """A trace whose reader drops rows (B/E pairs joined, events without ts): the kept rows' args are taken into a
    new scratch file, chunk by chunk, the same bytes as the in-memory take."""
    doc = damaged_doc()
    doc["traceEvents"] = doc["traceEvents"] * 400  # many chunks of rows to take
    path = tmp_path / "damaged.json"
    path.write_bytes(json.dumps(doc).encode())
    memory, memory_warnings = read(path, "off", monkeypatch, chunk=97)
    held, held_warnings = read(path, "on", monkeypatch, chunk=97)
    assert held.sources[0].skipped  # rows were dropped
    assert spilled(held.args) and held.args.equals(memory.args) and held_warnings == memory_warnings
    rows = np.arange(len(memory.args) - 1, -1, -3)
    for chunk_rows in (1, 7, 1_000_000):
        taken = args_bytes.take_rows(held.args, rows, chunk_rows=chunk_rows)
        assert spilled(taken) and taken.equals(memory.args.take(pa.array(rows)))
    assert args_bytes.take_rows(memory.args, rows).equals(memory.args.take(pa.array(rows)))


def test_disk_full_while_spilling_keeps_every_byte(monkeypatch, tmpdir_env: Path) -> None:  # noqa: F811
    """The scratch folder fills up part way: what was written is read back, the rest held in memory, all bytes
    kept, a warning says so, and no file is left open."""
    monkeypatch.setenv(scratch.ENV, "on")
    real_write, written = scratch.os.write, [0]

    def write(fd: int, data) -> int:
        if written[0] >= 5_000:
            raise OSError(28, "No space left on device")
        written[0] += len(data)
        return real_write(fd, data)

    monkeypatch.setattr(scratch.os, "write", write)
    writer = args_bytes.ArgsBytes(1, "big.json")
    pieces = [bytes([65 + i % 26]) * (700 + i) for i in range(40)]
    for piece in pieces:
        writer.append(piece)
    assert writer.spill.problem and "No space left" in writer.spill.problem
    with pytest.warns(RuntimeWarning, match="big.json: cannot write the scratch file.*held in memory"):
        data = writer.buffer()
    assert data.to_pybytes() == b"".join(pieces) and written[0] >= 5_000
    assert scratch_fds(tmpdir_env) == [] and scratch_maps(tmpdir_env) == []
