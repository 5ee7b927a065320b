"""gunzip_ahead: a trace gunzipped in a forked process while `tracekit info` imports the rest gives read_bytes exactly
what it would make itself; anything unusual (damage, limits, not gzip, small) is read again in-process, with the
same warnings and errors."""

from __future__ import annotations

import gzip
import json
import mmap
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from conftest import shared
from tracekit.converters import loading

from tracekit.errors import TraceError

BERT = "gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz"
VIZ = "cpu/gpt/viz.json.gz"


def read(path: Path, ahead: bool) -> tuple[object, list[str], bool]:
    """(data as bytes or the error text, warnings, whether the ahead result was taken)."""
    if ahead:
        loading.gunzip_ahead(path)
    used = []
    real = loading._take_ahead

    def spy(*args):
        result = real(*args)
        used.append(result is not None)
        return result

    loading._take_ahead = spy
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            raw = loading.read_bytes(path)
            assert not any(used) or isinstance(raw.data, mmap.mmap)
            data = bytes(raw.data[:])
            damage = raw.damage
            raw.close()
        except TraceError as exc:
            data, damage = f"TraceError: {exc}", []
        finally:
            loading._take_ahead = real
    assert str(path) not in loading._AHEAD  # read_bytes took it, used or not
    return (data, damage), [str(w.message) for w in caught], any(used)


@pytest.mark.parametrize("rel", [BERT, VIZ])
def test_ahead_gives_the_same_bytes(rel, monkeypatch) -> None:
    monkeypatch.setenv("TRACEKIT_SCRATCH", "on")  # every input mapped: the ahead result is taken even when small
    path = shared(rel)
    plain, plain_warnings, _ = read(path, ahead=False)
    got, caught, used = read(path, ahead=True)
    assert used
    assert got == plain and caught == plain_warnings
    assert got[0][:1] == b"{" and len(got[0]) > 1_000_000


def test_small_input_is_read_here(monkeypatch) -> None:
    """Below the scratch threshold read_bytes keeps bytes in memory: no process is started (the gzip trailer
    says the size), and none would be used."""
    monkeypatch.delenv("TRACEKIT_SCRATCH", raising=False)
    path = shared(BERT)
    loading.gunzip_ahead(path)
    assert not loading._AHEAD
    got, _, used = read(path, ahead=True)
    assert not used and got == read(path, ahead=False)[0]


def test_trailer_that_lies(tmp_path, monkeypatch) -> None:
    """A trailer claiming a large size starts the process; the small (and damaged) result is read here again."""
    monkeypatch.delenv("TRACEKIT_SCRATCH", raising=False)
    blob = bytearray(gzip.compress(json.dumps({"traceEvents": [{"ph": "X", "ts": 1}]}).encode()))
    blob[-4:] = (1 << 30).to_bytes(4, "little")
    path = tmp_path / "lies.json.gz"
    path.write_bytes(bytes(blob))
    loading.gunzip_ahead(path)
    assert str(path) in loading._AHEAD
    plain, plain_warnings, _ = read(path, ahead=False)
    got, caught, used = read(path, ahead=True)
    assert not used and got == plain and caught == plain_warnings


def test_scratch_off_starts_nothing(monkeypatch) -> None:
    monkeypatch.setenv("TRACEKIT_SCRATCH", "off")
    loading.gunzip_ahead(shared(BERT))
    assert not loading._AHEAD


def damaged(tmp_path: Path, case: str) -> Path:
    text = json.dumps({"schemaVersion": 1, "traceEvents": [
        {"ph": "X", "cat": "cpu_op", "name": f"op{i}", "pid": 1, "tid": 1, "ts": i, "dur": 1} for i in range(5000)]})
    blob = gzip.compress(text.encode())
    path = tmp_path / f"{case}.json.gz"
    if case == "truncated":
        blob = blob[: len(blob) // 2]
    elif case == "corrupt":
        blob = blob[:100] + bytes(b ^ 0xFF for b in blob[100:140]) + blob[140:]
    elif case == "two_members":
        blob = blob + gzip.compress(b" ")
    elif case == "trailing_garbage":
        blob = blob + b"garbage"
    elif case == "plain":
        blob = text.encode()
    path.write_bytes(blob)
    return path


@pytest.mark.parametrize("case", ["truncated", "corrupt", "two_members", "trailing_garbage", "plain", "clean"])
def test_damaged_gzip_reads_as_without(case, tmp_path, monkeypatch) -> None:
    """Damage is reported by read_bytes itself, as without the ahead process; clean streams use it."""
    monkeypatch.setenv("TRACEKIT_SCRATCH", "on")
    path = damaged(tmp_path, case)
    plain, plain_warnings, _ = read(path, ahead=False)
    got, caught, used = read(path, ahead=True)
    assert got == plain and caught == plain_warnings
    assert used == (case in ("clean", "two_members"))
    if case in ("truncated", "trailing_garbage"):
        assert caught


def test_limit_is_checked_as_without(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TRACEKIT_SCRATCH", "on")
    path = damaged(tmp_path, "clean")
    monkeypatch.setenv("TRACEKIT_MAX_INPUT_BYTES", "10K")
    plain, _, _ = read(path, ahead=False)
    got, _, used = read(path, ahead=True)
    assert not used and got == plain and "input limit" in got[0]
    # a limit lowered after the start: read_bytes reads again and says so
    monkeypatch.setenv("TRACEKIT_MAX_INPUT_BYTES", "64M")
    loading.gunzip_ahead(path)
    monkeypatch.setenv("TRACEKIT_MAX_INPUT_BYTES", "10K")
    with pytest.raises(TraceError, match="input limit"):
        loading.read_bytes(path)


def test_unread_children_are_stopped(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TRACEKIT_SCRATCH", "on")
    path = damaged(tmp_path, "clean")
    loading.gunzip_ahead(path)
    pid = loading._AHEAD[str(path)][0]
    loading._stop_ahead()
    assert not loading._AHEAD
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, 0)


@pytest.mark.parametrize("rel", ["gpu/hta/v100_large.json.gz", VIZ])
def test_info_cli_same_output(rel) -> None:
    """`tracekit info` with the ahead process (default, and every input mapped) and without it (no scratch)."""
    outputs = []
    for scratch_mode in ("off", "auto", "on"):
        env = {k: v for k, v in os.environ.items() if k != "TRACEKIT_SCRATCH"} | {"TRACEKIT_SCRATCH": scratch_mode}
        done = subprocess.run([sys.executable, "-c", "from tracekit.cli import main; main(prog_name='tracekit')",
                               "info", "--json", str(shared(rel))], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
        outputs.append((done.stdout, done.stderr))
    assert outputs[0] == outputs[1] == outputs[2]
    assert json.loads(outputs[0][0])["sources"]


_CONVERT_SPY = """
import sys
from tracekit.converters import loading
real, used = loading._take_ahead, []
def spy(*args):
    result = real(*args)
    used.append(result is not None)
    return result
loading._take_ahead = spy
from tracekit.cli import main
try:
    main(prog_name="tracekit")
finally:
    print("ahead used:", any(used), file=sys.stderr)
"""


@pytest.mark.parametrize("rel", ["cpu/gpt/prof_stack_modules.json.gz", VIZ])
def test_convert_cli_gunzips_ahead_with_the_same_output(rel, tmp_path) -> None:
    """`tracekit convert` of one gzip input starts the ahead process before it imports pandas and takes its result
    (every input mapped), with the same trace, tables and summary as without it (no scratch)."""
    written = {}
    for scratch_mode in ("off", "on"):
        env = {k: v for k, v in os.environ.items() if k != "TRACEKIT_SCRATCH"} | {"TRACEKIT_SCRATCH": scratch_mode}
        out = tmp_path / scratch_mode
        done = subprocess.run([sys.executable, "-c", _CONVERT_SPY, "convert", str(shared(rel)), "-o", str(out)],
                              capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
        assert f"ahead used: {scratch_mode == 'on'}" in done.stderr
        written[scratch_mode] = {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.name != "tracekit.json"}
    assert written["off"].keys() == written["on"].keys() and "trace.json" in written["on"]
    for name, data in written["off"].items():
        assert data == written["on"][name], name
