"""Low-memory mode (tracekit.heap): entered where an input needs over half the memory available, and only then;
the same outputs as without it; the Python API never enters it unless asked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SAMPLES, shared

from tracekit import heap, memory_budget
from tracekit.errors import TraceError

BERT = "gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz"
NOTE = "low-memory mode"


@pytest.fixture
def entered(monkeypatch) -> list[int]:
    """heap.enter recorded, not run (the test process's allocator stays as it is); the mode starts off."""
    calls: list[int] = []

    def enter() -> None:
        calls.append(1)
        heap._state["low"] = True

    monkeypatch.setitem(heap._state, "low", False)
    monkeypatch.setattr(heap, "enter", enter)
    return calls


@pytest.mark.parametrize(("value", "mode"), [(None, "off"), ("auto", "auto"), (" ON ", "on"), ("off", "off"),
                                             ("sometimes", "off")])
def test_mode_reads_the_variable(monkeypatch, value, mode) -> None:
    if value is None:
        monkeypatch.delenv(heap.MODE_ENV, raising=False)
    else:
        monkeypatch.setenv(heap.MODE_ENV, value)
    assert heap.mode() == mode


def test_auto_enters_above_half_of_the_memory_available_only(monkeypatch, entered) -> None:
    monkeypatch.setenv(heap.MODE_ENV, "auto")
    assert not heap.consider(50, 100) and not entered  # exactly half: not yet
    assert not heap.consider(99, None) and not entered  # nothing known about the machine: not guessed
    assert heap.consider(51, 100) and entered == [1]
    assert heap.low_memory()


def test_on_always_and_off_never(monkeypatch, entered) -> None:
    monkeypatch.setenv(heap.MODE_ENV, "off")
    assert not heap.consider(99, 100) and not entered
    monkeypatch.delenv(heap.MODE_ENV)  # unset, as in the Python API: off
    assert not heap.consider(99, 100) and not entered
    monkeypatch.setenv(heap.MODE_ENV, "on")
    assert heap.consider(1, None) and entered == [1]


def test_the_memory_check_decides_it(monkeypatch, entered, tmp_path) -> None:
    """check_memory, which every read input passes, enters the mode where the input fits in less than twice its
    estimated need, and never where it is refused."""
    monkeypatch.setenv(heap.MODE_ENV, "auto")
    monkeypatch.setenv(memory_budget.FACTOR_ENV, "1.5")
    size = 100 << 20
    need = int(1.5 * size) + memory_budget.FIXED_BYTES
    monkeypatch.setenv(memory_budget.AVAILABLE_ENV, str(need * 3))
    memory_budget.check_memory(tmp_path / "t.json", size)
    assert not entered
    monkeypatch.setenv(memory_budget.AVAILABLE_ENV, str(need - 1))
    with pytest.raises(TraceError, match="not enough memory"):
        memory_budget.check_memory(tmp_path / "t.json", size)
    assert not entered
    monkeypatch.setenv(memory_budget.AVAILABLE_ENV, str(int(need * 1.5)))
    memory_budget.check_memory(tmp_path / "t.json", size)
    assert entered == [1] and heap.low_memory()


def test_enter_runs_on_this_libc() -> None:
    """The real call (mallopt), in a process of its own: it takes and the process goes on allocating."""
    code = ("from tracekit import heap; import numpy as np; heap.enter(); "
            "print(heap.low_memory(), sum(int(np.ones(n).sum()) for n in (1 << 16, 1 << 18, 1 << 20, 1 << 22)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", str((1 << 16) + (1 << 18) + (1 << 20) + (1 << 22))]


def convert(path: Path, out: Path, available: str, mode: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACEKIT_")}
    env[memory_budget.AVAILABLE_ENV] = available
    if mode is not None:
        env[heap.MODE_ENV] = mode
    done = subprocess.run([sys.executable, "-c", "from tracekit.cli import main; main(prog_name='tracekit')",
                           "convert", str(path), "-o", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("trace", [BERT, "sample_traces/gpt/prof.json.gz"])
def test_convert_in_low_memory_mode_writes_the_same_files(tmp_path, trace) -> None:
    """The CLI turns the mode on by itself where the input needs over half the memory available (here: between
    half and all of it), says so, and writes every file byte for byte as without it."""
    path = SAMPLES.parent / trace if trace.startswith("sample_traces/") else shared(trace)
    need = int(memory_budget.FACTORS["convert"] * _decompressed(path)) + memory_budget.FIXED_BYTES
    low = convert(path, tmp_path / "low", available=str(int(need * 1.4)))
    plain = convert(path, tmp_path / "plain", available=str(need * 4))
    assert NOTE in low.stdout and NOTE not in plain.stdout
    forced_off = convert(path, tmp_path / "off", available=str(int(need * 1.4)), mode="off")
    assert NOTE not in forced_off.stdout
    low_files, plain_files = _files(tmp_path / "low"), _files(tmp_path / "plain")
    assert "trace.json" in low_files and "events.parquet" in low_files
    assert low_files.keys() == plain_files.keys()
    assert [name for name in low_files if low_files[name] != plain_files[name]] == []


def _decompressed(path: Path) -> int:
    import gzip

    with gzip.open(path, "rb") as fh:
        return len(fh.read())


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ranks_in_low_memory_mode_write_the_same_files(tmp_path, workers) -> None:
    """A rank set with the mode forced on (in the parent with one worker, in each worker process with two) writes
    the same files as with it off."""
    folder = SAMPLES / "dist_pp_dp"
    outs = {}
    for mode in ("on", "off"):
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRACEKIT_")}
        env[heap.MODE_ENV] = mode
        done = subprocess.run([sys.executable, "-c", "from tracekit.cli import main; main(prog_name='tracekit')",
                               "convert", str(folder), "-o", str(tmp_path / mode), "--workers", workers],
                              capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        outs[mode] = _files(tmp_path / mode)
    assert len(outs["on"]) > 5 and outs["on"].keys() == outs["off"].keys()
    differ = [name for name in outs["on"] if outs["on"][name] != outs["off"][name]]
    assert differ in ([], ["summary.json"])
    # summary.json names the worker processes' pids, which differ from run to run: all else is the same
    summaries = [json.loads(outs[mode]["summary.json"]) for mode in ("on", "off")]
    for summary in summaries:
        summary["workers"].pop("pids")
    assert summaries[0] == summaries[1]
