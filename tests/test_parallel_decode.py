"""Decoding on two processes (converters/chrome_parallel) and the lean read of `info` give the same table."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pandas as pd
import pytest
from conftest import SAMPLES, shared
from test_perf_decode import assert_same_table, damaged_doc, read_with_chunk
from tracekit.converters import chrome_parallel

from tracekit.errors import TraceError


def read(path: Path, procs: str, monkeypatch, chunk: int | None = None, keep_args: bool = True):
    """The table and warnings of `path` read with TRACEKIT_DECODE_PROCESSES=procs (and chunk size)."""
    return read_with_chunk(path, chunk, monkeypatch, {chrome_parallel.ENV: procs}, keep_args)


@pytest.mark.parametrize("rel,chunk", [
    ("gpu/hta/v100_large.json.gz", None),  # 14 chunks of the default size
    ("gpu/hta/mi250_minitoy_train_ROCm6_2_kineto.json.gz", 20),  # text pids, bad link ids (160 rows)
    ("cpu/gpt/viz.json.gz", 500),  # VizTracer
])
def test_two_processes_give_the_serial_table(rel: str, chunk: int | None, monkeypatch) -> None:
    serial, serial_warnings = read(shared(rel), "1", monkeypatch, chunk)
    both, both_warnings = read(shared(rel), "2", monkeypatch, chunk)
    assert_same_table(serial, both)
    assert both_warnings == serial_warnings
    assert len(both.events) >= 160


def test_damaged_trace_same_on_two_processes(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "damaged.json"
    path.write_text(json.dumps(damaged_doc()))
    serial, serial_warnings = read(path, "1", monkeypatch, chunk=3)
    both, both_warnings = read(path, "2", monkeypatch, chunk=3)
    assert_same_table(serial, both)
    assert both_warnings == serial_warnings and serial.sources[0].skipped["unmatched_end"] == 1


@pytest.mark.parametrize("bad_at", [1, 3, 14])  # in a chunk of the parent, of the child, near the end
def test_malformed_event_reported_from_either_half(tmp_path: Path, bad_at: int, monkeypatch) -> None:
    doc = damaged_doc()
    doc["traceEvents"].insert(bad_at, {"ph": "X", "pid": [1], "ts": 1})
    path = tmp_path / "bad.json.gz"
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))
    messages = []
    for procs in ("1", "2"):
        with pytest.raises(TraceError) as info:
            read(path, procs, monkeypatch, chunk=2)
        messages.append(str(info.value))
        assert info.value.index == bad_at
    assert messages[0] == messages[1]
    assert f"traceEvents[{bad_at}]" in messages[1] and f"event {bad_at}" in messages[1]


def test_child_that_dies_is_replaced_by_the_parent(monkeypatch) -> None:
    """A child that sends nothing (killed, out of memory): the parent decodes its chunks itself."""
    path = SAMPLES / "gpt" / "prof.json.gz"
    serial, _ = read(path, "1", monkeypatch, chunk=64)
    monkeypatch.setattr(chrome_parallel, "_send", lambda fd, *args: os.close(fd))
    both, _ = read(path, "2", monkeypatch, chunk=64)
    assert_same_table(serial, both)


def test_no_child_left_behind(monkeypatch) -> None:
    forked = []
    real_fork = os.fork

    def fork():
        pid = real_fork()
        if pid:
            forked.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    read(shared("gpu/hta/mi250_minitoy_train_ROCm6_2_kineto.json.gz"), "2", monkeypatch, chunk=50)
    assert len(forked) == 1
    with pytest.raises(ChildProcessError):
        os.waitpid(forked[0], os.WNOHANG)  # the decoder was reaped (not a zombie, not running)


@pytest.mark.parametrize("rel", [
    "gpu/hta/v100_large.json.gz",
    "gpu/hta/mi250_minitoy_train_ROCm6_2_kineto.json.gz",
    "cpu/gpt/viz.json.gz",
    "npu/msinsight_alexnet_dp/text/level0/rank0_ascend_pt/ASCEND_PROFILER_OUTPUT/trace_view.json",
])
def test_lean_read_keeps_every_column_but_args(rel: str, monkeypatch) -> None:
    full, full_warnings = read(shared(rel), "1", monkeypatch)
    lean, lean_warnings = read(shared(rel), "1", monkeypatch, keep_args=False)
    pd.testing.assert_frame_equal(full.events, lean.events, check_exact=True)
    assert lean_warnings == full_warnings
    if "npu" in rel:  # torch_npu's reader uses args: they are kept
        assert lean.args.equals(full.args)
    else:
        assert lean.args.null_count == 0 and sum(len(a) for a in lean.args.to_pylist()) == 0
        if "gpu" in rel:
            assert sum(len(a) for a in full.args.to_pylist()) > 0


def test_lean_read_of_damaged_links_counts_them_once(tmp_path: Path, monkeypatch) -> None:
    """A chunk whose link ids do not fit the lean decode is decoded the full way: same ids, same warning."""
    path = tmp_path / "damaged.json"
    path.write_text(json.dumps(damaged_doc()))
    full, full_warnings = read(path, "1", monkeypatch)
    lean, lean_warnings = read(path, "1", monkeypatch, keep_args=False)
    pd.testing.assert_frame_equal(full.events, lean.events, check_exact=True)
    assert lean_warnings == full_warnings
    assert any("link ids" in w for w in lean_warnings)


def test_no_fork_to_spare_decodes_alone(monkeypatch) -> None:
    """fork refused (memory, process limits): one process decodes everything, with no error."""
    path = shared("gpu/hta/mi250_minitoy_train_ROCm6_2_kineto.json.gz")
    serial, _ = read(path, "1", monkeypatch, chunk=20)

    def refuse():
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(os, "fork", refuse)
    alone, _ = read(path, "2", monkeypatch, chunk=20)
    assert_same_table(serial, alone)
