"""Bad and damaged input: clear errors (file, problem, event index), exit 2, no half-written output;
recoverable damage recovered with a warning that counts the loss; every input event accounted for."""

from __future__ import annotations

import bisect
import gzip
import json
import re
import subprocess
import sys
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import chrome_checks as cc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import shared
from tracekit.converters import read_trace

from tracekit.cli import main
from tracekit.convert import convert
from tracekit.errors import TraceError, TraceWarning

SAMPLES = Path(__file__).resolve().parents[1] / "sample_traces"
PROF = SAMPLES / "gpt" / "prof.json.gz"
VIZ = SAMPLES / "gpt" / "viz.json.gz"
NCCL = "gpu/hta/nccl_data.json.gz"  # under ../shared/traces, resolved with conftest.shared
BASE_NS = 1_700_000_000_000_000_000

OUTPUT_FILES = ("trace.json", "events.parquet", "kernels.parquet", "ops.parquet", "steps.parquet", "summary.json")


# ---------------------------------------------------------------------------------------------------------------
# helpers


def torch_doc(events: list[Any], **top: Any) -> dict[str, Any]:
    """A minimal torch.profiler-style document around `events`."""
    return {"schemaVersion": 1, "baseTimeNanoseconds": BASE_NS, **top, "traceEvents": events}


def op(name: str, ts: Any = 10, dur: Any = 5, pid: Any = 1, tid: Any = 1, ph: str = "X", **extra: Any) -> dict:
    """One cpu_op event; pass ts=None / dur=None to leave the field out."""
    ev: dict[str, Any] = {"ph": ph, "cat": "cpu_op", "name": name, "pid": pid, "tid": tid}
    if ts is not None:
        ev["ts"] = ts
    if dur is not None:
        ev["dur"] = dur
    ev.update(extra)
    return ev


def write_json(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc))
    return path


def _show_on_stderr(message, category, filename, lineno, file=None, line=None) -> None:
    """What the stdlib does outside pytest: write the (CLI-formatted) warning to sys.stderr."""
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def cli(*args: str):
    """Run the CLI; warnings reach its stderr as in a real process (pytest would otherwise record them)."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_on_stderr
        result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def leftovers(out: Path) -> list[str]:
    """Staging folders/files left beside `out` (they are named .<out.name>.tmp-*)."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.tmp"))


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its bytes (None for folders)."""
    return {str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes()) for p in sorted(folder.rglob("*"))}


def assert_no_output(out: Path, before: dict[str, bytes | None] | None = None) -> None:
    """`out` does not exist (or is exactly as it was) and no staging folder is left beside it."""
    if before is None:
        assert not out.exists(), sorted(p.name for p in out.iterdir())
    else:
        assert snapshot(out) == before
    assert leftovers(out) == []


def assert_message(msg: str, path: Path | str, problem: str, index: int | None = None) -> None:
    """The message names the file, says what is wrong (regex `problem`) and, if given, the event index."""
    assert str(path) in msg, msg
    assert re.search(problem, msg, re.IGNORECASE), f"{problem!r} not in {msg!r}"
    if index is not None:
        assert re.search(rf"\bevent {index}\b|traceEvents\[{index}\]", msg), f"event {index} not in {msg!r}"


def trace_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, TraceWarning)]


def find(messages: list[str], *patterns: str) -> str:
    """The first message matching every regex in `patterns` (case-insensitive)."""
    for m in messages:
        if all(re.search(p, m, re.IGNORECASE) for p in patterns):
            return m
    raise AssertionError(f"no warning matches {patterns}: {messages}")


def convert_ok(inputs: list[Path], out: Path) -> tuple[dict, list[str]]:
    """Library convert that must succeed; returns the summary and the TraceWarnings it emitted."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        summary = convert([str(p) for p in inputs], out)
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["conserved"] is True
    assert summary["accounted"] == summary["input_events"]
    assert leftovers(out) == []
    return summary, trace_warnings(record)


def check_written_trace(out: Path) -> dict:
    doc = cc.load_trace(out / "trace.json")
    problems = cc.check_trace(doc)
    assert problems == [], problems[:10]
    return doc


def by_name(doc: dict) -> dict[str, dict]:
    return {e["name"]: e for e in doc["traceEvents"] if e.get("ph") != "M"}


# ---------------------------------------------------------------------------------------------------------------
# unreadable or not-a-trace input: error naming the file and the problem, exit 2, nothing written

GZ_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def _corrupt_middle(tmp: Path) -> Path:
    blob = bytearray(PROF.read_bytes())
    mid = len(blob) // 2
    blob[mid : mid + 64] = bytes((37 * i + 11) % 256 for i in range(64))
    path = tmp / "corrupt_middle.json.gz"
    path.write_bytes(bytes(blob))
    return path


def _bytes(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / name
        path.write_bytes(data)
        return path

    return make


def _doc(name: str, doc: Any) -> Callable[[Path], Path]:
    return lambda tmp: write_json(tmp / name, doc)


def _missing(tmp: Path) -> Path:
    return tmp / "does_not_exist.json"


def _folder(tmp: Path) -> Path:
    path = tmp / "a_folder.json"
    path.mkdir()
    (path / "inside.json").write_text("{}")
    return path


BAD_FILES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "empty": (_bytes("empty.json", b""), r"empty"),
    "empty_gz_name": (_bytes("empty.json.gz", b""), r"empty"),
    "whitespace": (_bytes("blank.json", b"  \n\t \r\n  "), r"empty|whitespace|blank"),
    "csv": (_bytes("table.json", b"name,ts,dur\nconv,1,2\n"), r"not (valid )?JSON|malformed|invalid"),
    "text": (_bytes("notes.txt", b"hello, this is not a trace\n"), r"not (valid )?JSON|malformed|invalid"),
    "bracket_garbage": (_bytes("junk.json", b"[not json at all]"), r"not (valid )?JSON|malformed|invalid"),
    "gz_name_not_gzip": (_bytes("plain.json.gz", json.dumps(torch_doc([op("a")])).encode()), r"gzip"),
    # no traceEvents key at all: must not claim that traceEvents is empty
    "object_not_trace": (_doc("object.json", {"a": 1}),
                         r"no 'traceEvents'|no \"traceEvents\"|no traceEvents|traceEvents.*missing|missing.*traceEvents"
                         r"|not a (chrome )?trace"),
    "list_of_ints": (_doc("ints.json", [1, 2, 3]), r"not a (chrome )?trace|expected|object"),
    "trace_events_not_list": (_doc("te.json", {"traceEvents": 5}), r"traceEvents|not a (chrome )?trace"),
    "empty_trace_events": (_doc("none.json", torch_doc([])), r"no events|empty"),
    "unknown_format": (_doc("other.json", {"traceEvents": [{"ph": "X", "name": "a", "pid": 1, "tid": 1,
                                                          "ts": 1, "dur": 1}]}),
                       r"torch|viztracer|format"),
    "missing": (_missing, r"no such file|not found|does not exist"),
    "folder": (_folder, r"folder|directory"),
    "gzip_header_then_garbage": (_bytes("garbage.json.gz", GZ_HEADER + b"\xff" * 200), r"gzip|corrupt"),
    "gzip_header_only": (_bytes("header.json.gz", GZ_HEADER), r"gzip|no data|empty"),
    "gzip_corrupt_middle": (_corrupt_middle, r"gzip|corrupt"),
    "truncated_before_first_event": (
        _bytes("cut.json", b'{"schemaVersion": 1, "traceEvents": [{"ph": "X", "name": "conv'), r"truncat"),
    "truncated_in_header": (_bytes("cut_head.json.gz", gzip.compress(gzip.decompress(PROF.read_bytes())[:200])),
                            r"truncat"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_cli_convert(tmp_path: Path, case: str) -> None:
    make, problem = BAD_FILES[case]
    path = make(tmp_path)
    out = tmp_path / "out"
    result = cli("convert", path, "-o", out)
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stderr.startswith("error: "), result.stderr
    assert_message(result.stderr, path, problem)
    assert "wrote" not in result.stdout
    assert_no_output(out)


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_cli_info(tmp_path: Path, case: str) -> None:
    make, problem = BAD_FILES[case]
    path = make(tmp_path)
    result = cli("info", path)
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert_message(result.stderr, path, problem)


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_library(tmp_path: Path, case: str) -> None:
    make, problem = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(TraceError) as info:
        read_trace(path)
    assert_message(str(info.value), path, problem)
    assert info.value.path == str(path)
    out = tmp_path / "out"
    with pytest.raises(TraceError) as info:
        convert([path], out)
    assert_message(str(info.value), path, problem)
    assert_no_output(out)


def test_bad_second_input_names_that_file(tmp_path: Path) -> None:
    good = write_json(tmp_path / "good.json", torch_doc([op("a")]))
    bad = tmp_path / "bad.json"
    bad.write_text("")
    out = tmp_path / "out"
    result = cli("convert", good, bad, "-o", out)
    assert result.exit_code == 2
    assert_message(result.stderr, bad, r"empty")
    assert str(good) not in result.stderr
    assert_no_output(out)


# ---------------------------------------------------------------------------------------------------------------
# malformed events: error naming the file and the event index


MALFORMED_EVENTS: dict[str, tuple[list[Any], int, str]] = {
    "no_ph": ([op("a"), {"name": "b", "cat": "cpu_op", "pid": 1, "tid": 1, "ts": 20, "dur": 1}, op("c", ts=30)],
              1, r"\bph\b|phase"),
    "empty_ph": ([op("a"), op("b", ts=20), {**op("c", ts=30), "ph": ""}], 2, r"\bph\b|phase"),
    "event_not_object": ([op("a"), op("b", ts=20), op("c", ts=30), 5, op("d", ts=40)], 3, r"object|event"),
    "pid_is_list": ([op("a"), op("b", ts=20), op("c", ts=30, pid=[1])], 2, r"pid|expected"),
}


@pytest.mark.parametrize("case", list(MALFORMED_EVENTS))
def test_malformed_event(tmp_path: Path, case: str) -> None:
    events, index, problem = MALFORMED_EVENTS[case]
    path = write_json(tmp_path / f"{case}.json", torch_doc(events))
    out = tmp_path / "out"
    result = cli("convert", path, "-o", out)
    assert result.exit_code == 2, result.output
    assert_message(result.stderr, path, problem, index)
    assert_no_output(out)
    with pytest.raises(TraceError) as info:
        convert([path], out)
    assert_message(str(info.value), path, problem, index)
    assert_no_output(out)


# ---------------------------------------------------------------------------------------------------------------
# truncated JSON: recovered with a warning, exactly the complete events before the cut are kept


def event_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of every traceEvents element, found by the stdlib JSON parser."""
    decoder = json.JSONDecoder()
    key = text.index('"traceEvents"')
    colon = key + len('"traceEvents"')
    assert text[colon:].lstrip().startswith(":")
    pos = text.index("[", colon) + 1
    spans = []
    while True:
        while text[pos].isspace():
            pos += 1
        if text[pos] == "]":
            return spans
        _, end = decoder.raw_decode(text, pos)
        spans.append((pos, end))
        pos = end
        while text[pos].isspace():
            pos += 1
        assert text[pos] in ",]", text[pos - 20 : pos + 20]
        if text[pos] == ",":
            pos += 1


class Source:
    """A real trace: its JSON text, events and event spans (computed once per module)."""

    def __init__(self, path: Path) -> None:
        self.text = gzip.decompress(path.read_bytes()).decode("utf-8")
        self.events = json.loads(self.text)["traceEvents"]
        self.spans = event_spans(self.text)
        assert len(self.spans) == len(self.events)
        self.ends = [end for _, end in self.spans]

    def cut_inside(self, fraction: float) -> tuple[str, int]:
        """Cut in the middle of the event at `fraction` of the event list's text.

        Returns the cut text and the number of complete events before the cut.
        """
        first, last = self.spans[0][0], self.spans[-1][1]
        pos = first + int((last - first) * fraction)
        k = bisect.bisect_right(self.ends, pos)  # first event not finished at pos
        start, end = self.spans[k]
        if not start < pos < end - 1:
            pos = (start + end) // 2
        assert start < pos < end - 1
        assert sum(e <= pos for e in self.ends) == k
        return self.text[:pos], k


@pytest.fixture(scope="module")
def prof() -> Source:
    return Source(PROF)


def write_text(path: Path, text: str) -> Path:
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data, compresslevel=1) if path.suffix == ".gz" else data)
    return path


def assert_recovered(out: Path, summary: dict, src: Source, kept: int) -> None:
    """The summary and events.parquet hold exactly the first `kept` events of `src`, and the trace is clean."""
    assert summary["input_events"] == kept
    assert summary["sources"][0]["events"] == kept
    assert any(re.search(r"truncat", d, re.IGNORECASE) for d in summary["sources"][0]["damage"])
    events = pq.read_table(out / "events.parquet", columns=["input_index", "name"]).to_pandas()
    events = events.sort_values("input_index")
    # M events are folded into process/thread names: counted, but without a row
    rows = [i for i, e in enumerate(src.events[:kept]) if e.get("ph") != "M"]
    assert summary["metadata_events_folded"] == kept - len(rows)
    assert events["input_index"].tolist() == rows
    assert events["name"].astype(str).tolist() == [str(src.events[i].get("name", "")) for i in rows]
    check_written_trace(out)


@pytest.mark.parametrize("suffix", [".json", ".json.gz"])
@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.9])
def test_truncated_json(tmp_path: Path, prof: Source, fraction: float, suffix: str) -> None:
    text, kept = prof.cut_inside(fraction)
    assert 0 < kept < len(prof.events)
    path = write_text(tmp_path / f"cut{suffix}", text)
    out = tmp_path / "out"
    summary, messages = convert_ok([path], out)
    note = find(messages, re.escape(str(path)), r"truncat")
    assert re.search(r"\d", note)  # says how much was dropped
    assert_recovered(out, summary, prof, kept)


@pytest.mark.parametrize("where", ["after_comma", "after_brace"])
def test_truncated_at_event_boundary(tmp_path: Path, prof: Source, where: str) -> None:
    """A cut right after a complete event (with or without its comma) keeps that event."""
    k = bisect.bisect_right(prof.ends, len(prof.text) // 2)
    end = prof.ends[k - 1]
    pos = prof.text.index(",", end) + 1 if where == "after_comma" else end
    path = write_text(tmp_path / "cut.json", prof.text[:pos])
    out = tmp_path / "out"
    summary, messages = convert_ok([path], out)
    find(messages, re.escape(str(path)), r"truncat")
    assert_recovered(out, summary, prof, k)


def test_truncated_json_cli(tmp_path: Path, prof: Source) -> None:
    text, kept = prof.cut_inside(0.5)
    path = write_text(tmp_path / "cut.json", text)
    out = tmp_path / "out"
    result = cli("convert", path, "-o", out)
    assert result.exit_code == 0, result.output
    assert re.search(rf"warning: {re.escape(str(path))}: .*truncat", result.stderr, re.IGNORECASE), result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["input_events"] == kept and summary["conserved"] is True
    assert f"of {kept} events" in result.stdout


@pytest.mark.parametrize(
    ("label", "fraction"),
    [
        # a cut GPU trace (flows, kernels; baseTimeNanoseconds written after traceEvents)
        ("nccl", 0.6),
        # a cut VizTracer file loses viztracer_metadata (written after traceEvents)
        ("viz", 0.5),
    ],
)
def test_truncated_real_trace_recovers(tmp_path: Path, label: str, fraction: float) -> None:
    """A trace cut mid-event still converts, warns, and conserves the complete events before the cut."""
    src = Source(shared(NCCL) if label == "nccl" else VIZ)
    text, kept = src.cut_inside(fraction)
    path = write_text(tmp_path / f"{label}_cut.json", text)
    out = tmp_path / "out"
    summary, messages = convert_ok([path], out)
    find(messages, re.escape(str(path)), r"truncat")
    assert_recovered(out, summary, src, kept)


@pytest.mark.parametrize("fraction", [0.4, 0.8])
def test_gzip_stream_cut(tmp_path: Path, prof: Source, fraction: float) -> None:
    blob = gzip.compress(prof.text.encode("utf-8"), compresslevel=6)
    cut = blob[: int(len(blob) * fraction)]
    partial = zlib.decompressobj(wbits=31).decompress(cut)
    assert partial and len(partial) < len(prof.text)
    assert prof.text.isascii()
    kept = sum(end <= len(partial) for end in prof.ends)
    path = tmp_path / "cut.json.gz"
    path.write_bytes(cut)
    out = tmp_path / "out"
    summary, messages = convert_ok([path], out)
    find(messages, re.escape(str(path)), r"gzip", r"cut|truncat")
    assert_recovered(out, summary, prof, kept)
    result = cli("convert", path, "-o", tmp_path / "out_cli")
    assert result.exit_code == 0, result.output
    assert re.search(rf"warning: {re.escape(str(path))}: .*gzip", result.stderr, re.IGNORECASE), result.stderr


# ---------------------------------------------------------------------------------------------------------------
# recoverable event damage: missing ts / dur, string ids, unmatched B/E


def test_missing_ts_skipped_and_counted(tmp_path: Path) -> None:
    events = [op("a", ts=10), op("b", ts=20), op("no_ts_1", ts=None), op("c", ts=30), op("no_ts_2", ts=None),
              op("bad_ts", ts="soon"), {"ph": "M", "name": "process_name", "pid": 1, "tid": 0,
                                        "args": {"name": "main"}}]
    path = write_json(tmp_path / "no_ts.json", torch_doc(events))
    out = tmp_path / "out"
    summary, messages = convert_ok([path], out)
    note = find(messages, re.escape(str(path)), r"\bts\b")
    assert re.search(r"\b3\b", note), note  # how many
    assert re.search(r"event 2\b", note), note  # where the first one is
    assert summary["input_events"] == 7
    assert summary["skipped"].get("missing_ts") == 3
    names = by_name(check_written_trace(out))
    assert {"a", "b", "c"} <= names.keys()
    assert not {"no_ts_1", "no_ts_2", "bad_ts"} & names.keys()
    # the metadata event without ts is not counted as missing ts
    assert summary["metadata_events_folded"] == 1

    result = cli("convert", path, "-o", tmp_path / "out_cli")
    assert result.exit_code == 0, result.output
    assert re.search(rf"warning: {re.escape(str(path))}: .*\bts\b", result.stderr), result.stderr
    assert "missing_ts: 3" in result.stdout


def test_missing_dur_kept_with_zero(tmp_path: Path) -> None:
    events = [op("outer", ts=10, dur=100), op("no_dur_1", ts=20, dur=None), op("child", ts=30, dur=10),
              op("no_dur_2", ts=50, dur=None), op("bad_dur", ts=60, dur="long")]
    path = write_json(tmp_path / "no_dur.json", torch_doc(events))
    out = tmp_path / "out"
    summary, messages = convert_ok([path], out)
    note = find(messages, re.escape(str(path)), r"\bdur\b")
    assert re.search(r"\b3\b", note), note
    assert re.search(r"event 1\b", note), note
    assert summary["input_events"] == 5 and summary["written_events"] == 5
    assert summary["skipped"] == {}
    names = by_name(check_written_trace(out))
    for name in ("no_dur_1", "no_dur_2", "bad_dur"):
        assert names[name]["ph"] == "X" and names[name]["dur"] == 0
    assert names["child"]["dur"] == 10


def test_string_pids_and_tids(tmp_path: Path) -> None:
    events = [op("a", pid="Spans", tid="12"), op("b", pid="12", tid="stream 7"),
              op("c", pid="Spans", tid="Other thread"), op("d", pid=5, tid=5), op("e", pid="Spans", tid=" 3 ")]
    path = write_json(tmp_path / "strings.json", torch_doc(events))
    out = tmp_path / "out"
    summary, _ = convert_ok([path], out)
    assert summary["written_events"] == 5
    doc = check_written_trace(out)  # checks every pid/tid is an int and every track is named
    ev = by_name(doc)
    for e in doc["traceEvents"]:
        assert type(e["pid"]) is int and type(e["tid"]) is int, e
    assert ev["a"]["pid"] == ev["c"]["pid"] == ev["e"]["pid"]
    assert len({(ev[n]["pid"], ev[n]["tid"]) for n in "abcde"}) == 5
    assert len({ev["a"]["pid"], ev["b"]["pid"], ev["d"]["pid"]}) == 3
    meta = [e for e in doc["traceEvents"] if e["ph"] == "M"]
    assert any(m["name"] == "process_name" and m["pid"] == ev["a"]["pid"] and m["args"]["name"] == "Spans"
               for m in meta)
    assert any(m["name"] == "thread_name" and (m["pid"], m["tid"]) == (ev["c"]["pid"], ev["c"]["tid"])
               and m["args"]["name"] == "Other thread" for m in meta)
    table = pq.read_table(out / "events.parquet", columns=["pid", "tid"])
    assert str(table.schema.field("pid").type) == "int64" and str(table.schema.field("tid").type) == "int64"


def test_unmatched_begin_end(tmp_path: Path) -> None:
    events = [
        op("outer", ts=10, dur=None, ph="B"),
        op("child", ts=20, dur=5),
        op("outer", ts=50, dur=None, ph="E"),
        op("open", ts=60, dur=None, ph="B"),  # never ended: closed at the track's last timestamp (80)
        op("last", ts=70, dur=10),
        op("stray_end", ts=30, dur=None, ph="E", tid=2),  # E without B: skipped
        op("other", ts=25, dur=10, tid=2),
    ]
    path = write_json(tmp_path / "be.json", torch_doc(events))
    out = tmp_path / "out"
    summary, messages = convert_ok([path], out)
    unclosed = find(messages, re.escape(str(path)), r"\bB\b", r"\bE\b", r"clos")
    assert re.search(r"\b1\b", unclosed), unclosed
    stray = find(messages, re.escape(str(path)), r"\bE\b", r"skip")
    assert re.search(r"\b1\b", stray), stray
    assert summary["input_events"] == 7
    assert summary["skipped"].get("unmatched_end") == 1
    assert summary["written_events"] + sum(summary["skipped"].values()) == 7
    names = by_name(check_written_trace(out))
    assert names["outer"]["ph"] == "X" and names["outer"]["dur"] == 40
    assert names["open"]["ph"] == "X" and names["open"]["dur"] == 20
    assert "stray_end" not in names

    result = cli("convert", path, "-o", tmp_path / "out_cli")
    assert result.exit_code == 0, result.output
    assert result.stderr.count(f"warning: {path}:") >= 2, result.stderr
    assert "unmatched_end: 1" in result.stdout


def test_real_cli_process(tmp_path: Path, prof: Source) -> None:
    """The installed `tracekit` command: warnings and errors on stderr, exit codes 0 and 2."""
    exe = Path(sys.executable).with_name("tracekit")
    assert exe.exists(), f"console script missing beside {sys.executable}: is tracekit installed (pip install -e .)?"
    text, kept = prof.cut_inside(0.3)
    cut = write_text(tmp_path / "cut.json.gz", text)
    empty = tmp_path / "empty.json"
    empty.write_text("")
    ok = subprocess.run([str(exe), "convert", str(cut), "-o", str(tmp_path / "ok")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert re.search(rf"^warning: {re.escape(str(cut))}: .*truncat", ok.stderr, re.I | re.M), ok.stderr
    assert json.loads((tmp_path / "ok" / "summary.json").read_text())["input_events"] == kept
    bad = subprocess.run([str(exe), "convert", str(cut), str(empty), "-o", str(tmp_path / "bad")],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert f"error: {empty}: " in bad.stderr and "Traceback" not in bad.stderr
    assert_no_output(tmp_path / "bad")


# ---------------------------------------------------------------------------------------------------------------
# output folders


def _good(tmp: Path) -> Path:
    return write_json(tmp / "good.json", torch_doc([op("a", ts=10, dur=50), op("b", ts=20, dur=5)]))


@pytest.mark.parametrize("case", ["empty", "no_ph_event", "missing"])
def test_failed_convert_leaves_existing_folder_unchanged(tmp_path: Path, case: str) -> None:
    out = tmp_path / "out"
    assert cli("convert", _good(tmp_path), "-o", out).exit_code == 0
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    if case == "empty":
        bad = tmp_path / "bad.json"
        bad.write_text("")
    elif case == "no_ph_event":
        bad = write_json(tmp_path / "bad.json", torch_doc([op("a"), {"name": "x", "pid": 1, "tid": 1, "ts": 2}]))
    else:
        bad = tmp_path / "nope.json"
    result = cli("convert", bad, "-o", out)
    assert result.exit_code == 2
    assert str(bad) in result.stderr
    assert_no_output(out, before)
    with pytest.raises(TraceError):
        convert([bad], out)
    assert_no_output(out, before)
