"""Large inputs read through a memory map (converters/scratch): gzip decompressed in blocks into an unnamed
scratch file, plain JSON copied into one. The table, warnings and errors are those of the in-memory read;
the scratch file never has a name in TMPDIR and is closed after success, errors and SIGTERM."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import pytest
from conftest import SAMPLES, shared
from test_perf_decode import assert_same_table, damaged_doc, read_with_chunk
from tracekit.converters import chrome_json, loading, read_trace, scratch

from tracekit.errors import TraceError, warn

RUN = [sys.executable, "-c", "from tracekit.cli import main; main()"]
GZ_TRACES = [
    "gpu/hta/mi250_minitoy_train_ROCm6_2_kineto.json.gz",  # text pids, bad link ids
    "cpu/gpt/viz.json.gz",  # VizTracer
    "gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz",
]


def read(path: Path, mode: str, monkeypatch, chunk: int | None = None, keep_args: bool = True):
    """(table, warnings) of `path` read with TRACEKIT_SCRATCH=mode."""
    return read_with_chunk(path, chunk, monkeypatch, {scratch.ENV: mode}, keep_args)


def error_of(path: Path, mode: str, monkeypatch) -> str:
    with monkeypatch.context() as m:
        m.setenv(scratch.ENV, mode)
        with pytest.raises(TraceError) as info:
            read_trace(path)
    return str(info.value)


def _links_into(folder: Path, *where: str) -> list[str]:
    """Targets of the /proc links in the `where` folders (fds, map_files) that are files in `folder`."""
    found = []
    for place in where:
        try:
            names = os.listdir(place)
        except OSError:
            continue
        for name in names:
            try:
                target = os.readlink(f"{place}/{name}")
            except OSError:
                continue
            if target.startswith(str(folder)):
                found.append(target)
    return found


def scratch_fds(folder: Path) -> list[str]:
    """Open fds of this process that are files in `folder` with no name ("(deleted)", O_TMPFILE's "/#N")."""
    return _links_into(folder, "/proc/self/fd")


def scratch_maps(folder: Path) -> list[str]:
    """Maps of this process of files in `folder`."""
    with open("/proc/self/maps") as fh:
        return [line for line in fh if str(folder) in line]


@pytest.fixture
def tmpdir_env(tmp_path: Path, monkeypatch) -> Path:
    """TMPDIR set to an empty folder of this test (tempfile's cached choice reset)."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr("tempfile.tempdir", None)
    return folder


@pytest.mark.parametrize("rel", GZ_TRACES)
def test_mapped_gzip_gives_the_in_memory_table(rel: str, monkeypatch, tmpdir_env: Path) -> None:
    raw = loading.read_bytes(shared(rel))
    assert not raw.mapped  # small: in memory by default
    with monkeypatch.context() as m:
        m.setenv(scratch.ENV, "on")
        raw = loading.read_bytes(shared(rel))
        assert raw.mapped and raw.data[:] == gzip.decompress(shared(rel).read_bytes())
        raw.close()
    memory, memory_warnings = read(shared(rel), "off", monkeypatch, chunk=37)
    mapped, mapped_warnings = read(shared(rel), "on", monkeypatch, chunk=37)
    assert_same_table(memory, mapped)
    assert mapped_warnings == memory_warnings
    lean_memory, _ = read(shared(rel), "off", monkeypatch, chunk=37, keep_args=False)
    lean_mapped, _ = read(shared(rel), "on", monkeypatch, chunk=37, keep_args=False)
    assert_same_table(lean_memory, lean_mapped)
    assert len(mapped.events) >= 160
    # the args of `mapped` are in a scratch map (converters/args_bytes; none where skipped events made the
    # reader take a copy), which goes with the table
    assert list(tmpdir_env.iterdir()) == [] and len(scratch_fds(tmpdir_env)) == len(scratch_maps(tmpdir_env)) <= 1
    del mapped
    assert scratch_fds(tmpdir_env) == [] and scratch_maps(tmpdir_env) == []


def test_plain_json_is_copied_to_a_mapped_scratch_file(tmp_path: Path, monkeypatch) -> None:
    """A plain trace is copied, not mapped in place: emptied by another program while tracekit reads it (a
    profiler writing the same name again), the read goes on (a map of the file itself would SIGBUS)."""
    path = tmp_path / "prof.json"
    text = gzip.decompress((SAMPLES / "gpt" / "prof.json.gz").read_bytes())
    path.write_bytes(text)
    monkeypatch.setenv(scratch.ENV, "on")
    raw = loading.read_bytes(path)
    assert raw.mapped and not raw.compressed and raw.data[:] == text
    path.write_bytes(b"")  # the file is rewritten while the read holds it
    assert raw.data[:] == text
    raw.close()
    path.write_bytes(text)
    assert raw.data == b""
    memory, memory_warnings = read(path, "off", monkeypatch, chunk=50)
    mapped, mapped_warnings = read(path, "on", monkeypatch, chunk=50)
    assert_same_table(memory, mapped)
    assert mapped_warnings == memory_warnings and len(mapped.events) > 100


@pytest.mark.parametrize("form", ["json", "gz"])
@pytest.mark.parametrize("cut", [0.5, 0.97])
def test_truncated_input_recovered_the_same(tmp_path: Path, monkeypatch, tmpdir_env: Path, form: str,
                                            cut: float) -> None:
    """A real trace cut mid-file (JSON cut; gzip stream cut): same events kept, same warnings."""
    text = gzip.decompress((SAMPLES / "gpt" / "prof.json.gz").read_bytes())
    if form == "json":
        path = tmp_path / "cut.json"
        path.write_bytes(text[: int(len(text) * cut)])
    else:
        path = tmp_path / "cut.json.gz"
        blob = gzip.compress(text)
        path.write_bytes(blob[: int(len(blob) * cut)])
    memory, memory_warnings = read(path, "off", monkeypatch, chunk=40)
    mapped, mapped_warnings = read(path, "on", monkeypatch, chunk=40)
    assert_same_table(memory, mapped)
    assert mapped_warnings == memory_warnings
    assert any("JSON is truncated" in w for w in mapped_warnings)
    assert form == "json" or any("gzip stream is cut off" in w for w in mapped_warnings)
    # the table's args map (and the fd it holds) are the only scratch left, and go with the table
    assert list(tmpdir_env.iterdir()) == [] and len(scratch_fds(tmpdir_env)) == len(scratch_maps(tmpdir_env)) == 1
    del mapped
    assert scratch_fds(tmpdir_env) == [] and scratch_maps(tmpdir_env) == []


def test_damaged_events_same_when_mapped(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "damaged.json.gz"
    path.write_bytes(gzip.compress(json.dumps(damaged_doc()).encode()))
    memory, memory_warnings = read(path, "off", monkeypatch, chunk=3)
    mapped, mapped_warnings = read(path, "on", monkeypatch, chunk=3)
    assert_same_table(memory, mapped)
    assert mapped_warnings == memory_warnings and mapped.sources[0].skipped["unmatched_end"] == 1


@pytest.mark.parametrize("case", ["bad_event", "malformed_json", "not_json", "no_events", "empty", "gz_name"])
def test_errors_same_when_mapped(tmp_path: Path, monkeypatch, tmpdir_env: Path, case: str) -> None:
    doc = damaged_doc()
    if case == "bad_event":
        doc["traceEvents"].insert(5, {"ph": "X", "pid": [1], "ts": 1})
        blob = json.dumps(doc).encode()
    elif case == "malformed_json":
        blob = json.dumps(doc).encode().replace(b'"ts": 30', b'"ts": 30,,', 1)
    elif case == "not_json":
        blob = b"hello, this is not a trace\n" * 10
    elif case == "no_events":
        blob = b'{"schemaVersion": 1, "traceEvents": []}'
    elif case == "empty":
        blob = b" \n\t\n" * 100
    else:
        blob = json.dumps(doc).encode()
    path = tmp_path / ("trace.json.gz" if case == "gz_name" else "trace.json")
    path.write_bytes(blob)
    assert error_of(path, "off", monkeypatch) == error_of(path, "on", monkeypatch)
    if case not in ("empty", "gz_name"):  # gzip content is not "empty", nor a bad name
        gz = tmp_path / "trace.json.gz"
        gz.write_bytes(gzip.compress(blob))
        assert error_of(gz, "off", monkeypatch) == error_of(gz, "on", monkeypatch)
    assert list(tmpdir_env.iterdir()) == [] and scratch_fds(tmpdir_env) == [] and scratch_maps(tmpdir_env) == []


def _members(*parts: bytes) -> bytes:
    return b"".join(parts)


def _corrupt(blob: bytes) -> bytes:
    mid = bytearray(blob)
    for i in range(len(mid) // 3, len(mid) // 3 + 40):
        mid[i] ^= 0x5A
    return bytes(mid)


TEXT = json.dumps(damaged_doc()).encode() * 50
GZIP_CASES = {
    "one_member": gzip.compress(TEXT),
    "two_members": _members(gzip.compress(TEXT), gzip.compress(TEXT[:999])),
    "cut_stream": gzip.compress(TEXT)[:-300],
    "cut_second_member": _members(gzip.compress(TEXT), gzip.compress(TEXT)[:500]),
    "corrupt_first": _corrupt(gzip.compress(TEXT)),
    "corrupt_second": _members(gzip.compress(TEXT), _corrupt(gzip.compress(TEXT))),
    "garbage_after": gzip.compress(TEXT) + b"garbage after the member",
    "zeros_after": gzip.compress(TEXT) + b"\0" * 5000,
    "one_byte_after": gzip.compress(TEXT) + b"x",
    "nothing_inside": gzip.compress(b""),
    "header_only": gzip.compress(TEXT)[:10],
}


def _gunzip_whole(path: Path, blob: bytes, limit: int) -> tuple[bytes, list[str]]:
    """The reference: main's whole-blob decompression (one call per member), before streaming."""
    pieces, total, rest, members, damage = [], 0, memoryview(blob), 0, []
    while rest:
        inflater = zlib.decompressobj(wbits=31)
        try:
            while True:
                piece = inflater.decompress(rest, limit + 1 - total)
                pieces.append(piece)
                total += len(piece)
                if total > limit:
                    raise TraceError(path, loading.too_big(total, limit, compressed=True))
                rest = inflater.unconsumed_tail
                if inflater.eof or not rest:
                    break
            if not inflater.eof:
                tail = inflater.flush()
                pieces.append(tail)
                total += len(tail)
        except zlib.error as exc:
            if members == 0 and not total:
                raise TraceError(path, f"corrupt gzip data: {exc}") from None
            damage.append(f"gzip member {members + 1} is corrupt ({exc}) after {total} decompressed bytes; "
                          "kept the bytes before it")
            break
        members += 1
        if not inflater.eof:
            damage.append(f"gzip stream is cut off after {len(blob)} compressed bytes; recovered {total} bytes")
            break
        rest = memoryview(inflater.unused_data)
        if rest and bytes(rest[:2]) != loading.GZIP_MAGIC:
            if bytes(rest).strip(b"\x00"):
                damage.append(f"{len(rest)} bytes after the last gzip member are not gzip; ignored")
            break
    if not total:
        raise TraceError(path, "gzip stream holds no data")
    for note in damage:
        warn(path, note)
    return b"".join(pieces), damage


def _outcome(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            data, damage = fn()
            data = data[:]
        except TraceError as exc:
            data, damage = None, [str(exc)]
    return data, damage, sorted(str(w.message) for w in caught if "scratch" not in str(w.message))


@pytest.mark.parametrize("case", sorted(GZIP_CASES))
@pytest.mark.parametrize("blocks", [(7, 13), (4096, 1 << 15), (1 << 20, 1 << 22)])
@pytest.mark.parametrize("mode", ["on", "off"])
def test_streamed_gunzip_matches_the_whole_file_read(tmp_path: Path, monkeypatch, tmpdir_env: Path, case: str,
                                                     blocks: tuple[int, int], mode: str) -> None:
    """Every damage case gives the bytes, damage notes and errors of main's whole-blob read, whatever the
    block sizes (members and magic bytes split across reads), in memory or in the scratch file."""
    path = tmp_path / "t.json.gz"
    path.write_bytes(GZIP_CASES[case])
    monkeypatch.setattr(loading, "_READ_BLOCK", blocks[0])
    monkeypatch.setattr(loading, "_OUT_BLOCK", blocks[1])
    monkeypatch.setenv(scratch.ENV, mode)
    limit = 1 << 30

    def streamed():
        raw = loading.read_bytes(path, limit)
        return raw.data, raw.damage

    expected = _outcome(lambda: _gunzip_whole(path, GZIP_CASES[case], limit))
    got = _outcome(streamed)
    assert got == expected
    assert expected[0] is None or expected[0] == b"" or case != "one_member" or expected[0] == TEXT


def test_over_the_limit_same_error(tmp_path: Path, monkeypatch, tmpdir_env: Path) -> None:
    path = tmp_path / "t.json.gz"
    path.write_bytes(gzip.compress(TEXT))
    monkeypatch.setattr(loading, "_OUT_BLOCK", 4096)
    for mode in ("on", "off"):
        monkeypatch.setenv(scratch.ENV, mode)
        with pytest.raises(TraceError) as info:
            loading.read_bytes(path, 10_000)
        assert "decompresses to more than the input limit of 10000 bytes" in str(info.value)
    assert scratch_fds(tmpdir_env) == []


def test_full_scratch_folder_falls_back_to_memory(tmp_path: Path, monkeypatch, tmpdir_env: Path) -> None:
    """A scratch file that cannot be written (disk full) is given up: the input is read into memory, same table."""
    path = shared(GZ_TRACES[0])
    memory, memory_warnings = read(path, "off", monkeypatch)
    real_write, written = os.write, [0]

    def write(fd: int, data) -> int:
        if written[0] > 20_000:
            raise OSError(28, "No space left on device")
        written[0] += len(data)
        return real_write(fd, data)

    monkeypatch.setattr(scratch.os, "write", write)
    monkeypatch.setattr(loading, "_OUT_BLOCK", 4096)
    mapped, mapped_warnings = read(path, "on", monkeypatch)
    assert_same_table(memory, mapped)
    assert any("cannot write the scratch file" in w and "No space left" in w for w in mapped_warnings)
    assert [w for w in mapped_warnings if "scratch" not in w] == memory_warnings
    assert written[0] > 20_000 and scratch_fds(tmpdir_env) == [] and list(tmpdir_env.iterdir()) == []


def test_scratch_file_has_no_name_while_read(tmp_path: Path, monkeypatch, tmpdir_env: Path) -> None:
    """While the input is mapped, TMPDIR holds no file; the open scratch file lives in TMPDIR (no name)."""
    monkeypatch.setenv(scratch.ENV, "on")
    raw = loading.read_bytes(shared(GZ_TRACES[0]))
    open_now = scratch_fds(tmpdir_env)
    assert raw.mapped and list(tmpdir_env.iterdir()) == []
    assert len(open_now) <= 1 and all("(deleted)" in t for t in open_now)  # (the map's own fd)
    assert len(scratch_maps(tmpdir_env)) == 1 and "(deleted)" in scratch_maps(tmpdir_env)[0]
    chrome_json.decode_chrome(raw)
    assert scratch_fds(tmpdir_env) == [] and scratch_maps(tmpdir_env) == [] and raw.data == b""


def _scratch_files_of(pid: int, folder: Path) -> list[str]:
    return _links_into(folder, f"/proc/{pid}/fd", f"/proc/{pid}/map_files")


@pytest.mark.parametrize("sig", [signal.SIGTERM])
def test_signal_while_mapped_leaves_nothing(tmp_path: Path, tmpdir_env: Path, sig: int) -> None:
    """SIGTERM while the scratch file is mapped: exit 128+sig, no output, nothing left in TMPDIR."""
    big = shared("gpu/hta/v100_large.json.gz")  # 54 MB decompressed: mapped for a second or more
    out = tmp_path / "out"
    env = dict(os.environ, TRACEKIT_SCRATCH="on", TMPDIR=str(tmpdir_env), TRACEKIT_DECODE_PROCESSES="1")
    proc = subprocess.Popen([*RUN, "convert", str(big), "-o", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    seen: list[str] = []
    while time.monotonic() < deadline and proc.poll() is None and not seen:
        seen = _scratch_files_of(proc.pid, tmpdir_env)
        time.sleep(0.01)
    assert seen, "the run ended before its scratch file was seen"
    assert list(tmpdir_env.iterdir()) == []
    proc.send_signal(sig)
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, stderr
    assert "Traceback" not in stderr
    assert list(tmpdir_env.iterdir()) == [] and not out.exists()
