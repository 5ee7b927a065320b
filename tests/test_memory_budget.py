"""An input the machine has clearly too little memory for is refused before the work, with one line naming it
(exit 2, nothing written), instead of being killed by the kernel part-way; the limit follows the command's
measured memory multiple and the cgroup a container puts the process in."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, shared

from tracekit import memory_budget
from tracekit.errors import TraceError
from tracekit.memory_budget import DEFAULT_FACTOR, FACTORS, _room, available_bytes

BERT = "gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz"


def tracekit(*args: str, available: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACEKIT_MEMORY")}
    if available is not None:
        env["TRACEKIT_MEMORY_AVAILABLE"] = available
    return subprocess.run([sys.executable, "-c", "from tracekit.cli import main; main(prog_name='tracekit')", *args],
                          capture_output=True, text=True, env=env, timeout=300)


def test_convert_is_refused_without_the_memory_and_writes_nothing(tmp_path) -> None:
    path = shared(BERT)
    done = tracekit("convert", str(path), "-o", str(tmp_path / "out"), available="1M")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: not enough memory")
    assert "TRACEKIT_MEMORY_AVAILABLE=off" in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists() and not list(tmp_path.iterdir())
    done = tracekit("convert", str(path), "-o", str(tmp_path / "out"), available="off")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "trace.json").is_file()


def test_each_command_uses_its_own_multiple(tmp_path) -> None:
    """info needs less memory per input byte than the commands that run the whole pipeline, and convert and
    modules less than compare (two traces' tables): between two needs, the cheaper commands run and the others
    are refused."""
    path = shared(BERT)
    size = len(gzip.decompress(path.read_bytes()))
    assert FACTORS["info"] < FACTORS["convert"] == FACTORS["modules"] < FACTORS["compare"] < DEFAULT_FACTOR
    assert FACTORS["report"] == FACTORS["parallel"] == FACTORS["convert"] and "merge" not in FACTORS
    between = str(memory_budget.FIXED_BYTES + int(size * (FACTORS["info"] + FACTORS["convert"]) / 2))
    assert tracekit("info", "--json", str(path), available=between).returncode == 0
    for args in (["convert", str(path), "-o", str(tmp_path / "c")], ["modules", str(path)],
                 ["compare", str(path), str(path), "-o", str(tmp_path / "cmp")]):
        done = tracekit(*args, available=between)
        assert done.returncode == 2 and "not enough memory" in done.stderr, args
    assert not list(tmp_path.iterdir())
    above = str(memory_budget.FIXED_BYTES + int(size * (FACTORS["convert"] + FACTORS["compare"]) / 2))
    assert tracekit("modules", str(path), available=above).returncode == 0
    done = tracekit("compare", str(path), str(path), "-o", str(tmp_path / "cmp"), available=above)
    assert done.returncode == 2 and "not enough memory" in done.stderr
    assert not list(tmp_path.iterdir())


def test_the_need_is_a_fixed_part_plus_the_multiple(monkeypatch) -> None:
    """A small trace needs at least FIXED_BYTES (its peak is mostly fixed costs); a large one its multiple."""
    fixed = memory_budget.FIXED_BYTES
    _fake_system(monkeypatch, [fixed + 2 * 1000])
    monkeypatch.setattr(memory_budget, "FIXED_BYTES", fixed)
    memory_budget.check_memory("fits.json", 1000)  # 2 x 1000 + FIXED_BYTES: just fits
    with pytest.raises(TraceError, match=r"big\.json: not enough memory.*\(2x \+ 128\.0 MiB\)"):
        memory_budget.check_memory("big.json", 1001)


def test_rank_workers_refuse_their_rank(tmp_path) -> None:
    """Several ranks in worker processes: the limit travels with them and the error names a rank's file."""
    ranks = sorted((ROOT / "sample_traces" / "dist_dp_cp").glob("rank-*.json.gz"))
    done = tracekit("convert", *map(str, ranks), "-o", str(tmp_path / "out"), "--workers", "2", available="64K")
    assert done.returncode == 2, done.stderr
    assert "not enough memory" in done.stderr and "rank-" in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())


def test_available_memory_of_this_machine() -> None:
    """MemAvailable + SwapFree (or a cgroup's room): positive and no more than the machine holds."""
    room = available_bytes()
    assert room is not None
    total = {k: int(v.split()[0]) * 1024 for k, v in
             (line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
             if k in ("MemTotal", "SwapTotal")}
    assert 0 < room[0] <= total["MemTotal"] + total["SwapTotal"]


def test_cgroup_room_is_limit_less_working_set(tmp_path) -> None:
    """v2 (memory.max, memory.current) and v1 files: usage less the inactive file cache, the kernel's first
    reclaim; no limit ("max", or v1's huge number) gives no figure."""
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "memory.max").write_text("8000000000\n")
    (v2 / "memory.current").write_text("3000000000\n")
    (v2 / "memory.stat").write_text("anon 1000000000\ninactive_file 1500000000\nactive_file 500000000\n")
    assert _room(v2, "memory.max", "memory.current", "inactive_file") == 8_000_000_000 - 1_500_000_000
    (v2 / "memory.max").write_text("max\n")
    assert _room(v2, "memory.max", "memory.current", "inactive_file") is None
    v1 = tmp_path / "v1"
    v1.mkdir()
    (v1 / "memory.limit_in_bytes").write_text(str(9223372036854771712))
    (v1 / "memory.usage_in_bytes").write_text("100")
    assert _room(v1, "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file") is None
    (v1 / "memory.limit_in_bytes").write_text("1000")
    assert _room(v1, "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file") == 900


def _fake_system(monkeypatch, rooms: list[int]) -> list[int]:
    """_meminfo answers the next of `rooms` at each read (no cgroup limit); returns the list of reads made."""
    reads: list[int] = []

    def meminfo():
        reads.append(rooms[min(len(reads), len(rooms) - 1)])
        return reads[-1], "MemAvailable + SwapFree"

    monkeypatch.setattr(memory_budget, "_meminfo", meminfo)
    monkeypatch.setattr(memory_budget, "_cgroup_room", lambda: None)
    monkeypatch.setattr(memory_budget, "_last_reading", None)
    monkeypatch.delenv(memory_budget.AVAILABLE_ENV, raising=False)
    monkeypatch.setenv(memory_budget.FACTOR_ENV, "2")
    monkeypatch.setattr(memory_budget, "FIXED_BYTES", 0)  # (these tests count in bytes)
    return reads


def test_a_recent_reading_is_reused_only_where_the_input_clearly_fits(monkeypatch) -> None:
    reads = _fake_system(monkeypatch, [1000, 100])
    memory_budget.check_memory("a.json", 10)  # needs 20 of 1000: reads once
    memory_budget.check_memory("b.json", 200)  # needs 400, at most half of 1000 read just now: no new read
    assert len(reads) == 1
    with pytest.raises(TraceError, match=r"c\.json.*not enough memory"):
        memory_budget.check_memory("c.json", 300)  # needs 600, over half: read again, and 100 is left now
    assert len(reads) == 2


def test_an_old_reading_is_read_again(monkeypatch) -> None:
    reads = _fake_system(monkeypatch, [1000, 10])
    memory_budget.check_memory("a.json", 10)
    when, room = memory_budget._last_reading
    monkeypatch.setattr(memory_budget, "_last_reading", (when - memory_budget.REUSE_SECONDS - 1, room))
    with pytest.raises(TraceError, match=r"b\.json"):
        memory_budget.check_memory("b.json", 10)  # 20 needed, 10 available now
    assert len(reads) == 2


def test_the_stated_figure_is_never_replaced_by_a_reading(monkeypatch) -> None:
    reads = _fake_system(monkeypatch, [1 << 40])
    memory_budget.check_memory("a.json", 10)
    monkeypatch.setenv(memory_budget.AVAILABLE_ENV, "100")
    with pytest.raises(TraceError, match=memory_budget.AVAILABLE_ENV):
        memory_budget.check_memory("b.json", 60)
    assert len(reads) == 1
