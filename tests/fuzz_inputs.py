"""Seeded damage of real traces for the fuzz suite (tests/test_fuzz.py) and bench/fuzz.py.

Each case is a damaged copy of a small shared trace (or a torch_npu output folder) written under a work
folder, plus the command line to run on it. The classes are those of issue 11: truncation at many
offsets, byte flips, field type changes, huge values, decompression bombs, deep nesting, bad UTF-8,
special files, damaged Ascend .db/CSV/trace_view.json, hostile module names and bad output paths.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TRACEKIT_SHARED", ROOT.parent / "shared")) / "traces"
BERT = SHARED / "gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz"
GPT_CPU = SHARED / "cpu/gpt/prof_stack_modules.json.gz"
VIZ = SHARED / "cpu/gpt/viz.json.gz"
NCCL = SHARED / "gpu/hta/nccl_data.json.gz"
NPU_TEXT = SHARED / "npu/msinsight_alexnet_dp/text/level0/rank0_ascend_pt"
NPU_DB = SHARED / "npu/msinsight_alexnet_dp/db/level0/rank0_ascend_pt"

# The limit the fuzz runs pass as --max-input-bytes: bombs must stop there.
FUZZ_MAX_INPUT = 64 << 20

# The .db tables the reader uses (converters/ascend_db.py).
DB_TABLES = ("PYTORCH_API", "CANN_API", "TASK", "COMPUTE_TASK_INFO", "COMMUNICATION_OP", "COMMUNICATION_TASK_INFO",
             "STRING_IDS", "CONNECTION_IDS", "META_DATA", "RANK_DEVICE_MAP", "AICORE_FREQ", "HBM",
             "ENUM_HCCL_DATA_TYPE")
HOSTILE_VALUES: list = [
    2**70, -(2**70), 2**63, -(2**63) - 1, 1e308, -1e308, 1e-320, "1e400", "-1e400", "NaN", "inf", "",
    "12abc", [], [1, 2], {}, {"a": 1}, True, False, None, 0, -1, "x" * 300, 1.5, "ü\u0000\ud800"[0:2],
]
FIELDS = ("ts", "dur", "pid", "tid", "name", "cat", "ph", "id", "args", "s", "bp")
ARG_FIELDS = ("correlation", "External id", "Sequence number", "Input Dims", "Input type", "Collective name",
              "In msg nelems", "Out msg nelems", "Group size", "Process Group Ranks", "Process Group Name",
              "Fwd thread id", "Python id", "Python parent id", "stream", "device", "Record function id",
              "dtype", "pg_config")


@dataclass
class Case:
    """One damaged input and how to run it."""

    name: str
    argv: list[str]  # tracekit arguments; "{out}" is replaced by the output folder
    inputs: list[Path] = field(default_factory=list)
    expect: str = "any"  # "any": exit 0 (conserved) or 2; "error": exit 2; "ok": exit 0
    input_bytes: int = 0  # decompressed size, for the memory bound


def _events_doc(path: Path) -> dict:
    with gzip.open(path, "rb") as fh:
        return json.load(fh)


def small_doc(path: Path, keep: int, rng: random.Random | None = None) -> dict:
    """The top of a trace with its first `keep` events (metadata events kept): a small real input."""
    doc = _events_doc(path)
    events = doc["traceEvents"]
    meta = [e for e in events if e.get("ph") == "M"]
    rest = [e for e in events if e.get("ph") != "M"][:keep]
    doc["traceEvents"] = meta + rest
    return doc


def _dump(doc) -> bytes:
    return json.dumps(doc).encode()


def _write(work: Path, name: str, data: bytes) -> Path:
    path = work / name
    path.write_bytes(data)
    return path


def _convert(path: Path | str, expect: str = "any", extra: tuple = ()) -> list[str]:
    return ["convert", str(path), "-o", "{out}", "--max-input-bytes", str(FUZZ_MAX_INPUT), *extra]


def _set_path(doc_event: dict, key: str, value) -> None:
    if key.startswith("args."):
        args = doc_event.get("args")
        if not isinstance(args, dict):
            args = doc_event["args"] = {}
        args[key[5:]] = value
    else:
        doc_event[key] = value


def json_cases(work: Path, rng: random.Random, n: int, source: Path = BERT, keep: int = 400) -> list[Case]:
    """Truncations, byte flips, type changes, huge values, nesting and bad UTF-8 of one chrome trace."""
    doc = small_doc(source, keep)
    base = _dump(doc)
    cases: list[Case] = []

    def truncate(i: int) -> Case:
        cut = rng.randrange(len(base) // 3, len(base))
        data = base[:cut]
        if rng.random() < 0.5:
            return Case(f"truncate@{cut}", _convert(_write(work, f"trunc{i}.json", data)), input_bytes=len(base))
        return Case(f"truncate-gz@{cut}", _convert(_write(work, f"trunc{i}.json.gz", gzip.compress(data))),
                    input_bytes=len(base))

    def flip(i: int) -> Case:
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(data))
            data[pos] = rng.choice(b'{}[]",:0123456789.eE-x\xff\x80\xc3 ')
        return Case(f"flip{i}", _convert(_write(work, f"flip{i}.json", bytes(data))), input_bytes=len(base))

    def retype(i: int) -> Case:
        mutated = json.loads(base)
        evs = mutated["traceEvents"]
        changes = []
        for _ in range(rng.randint(1, 3)):
            ev = evs[rng.randrange(len(evs))]
            key = rng.choice(FIELDS + tuple(f"args.{a}" for a in ARG_FIELDS))
            value = rng.choice(HOSTILE_VALUES)
            _set_path(ev, key, value)
            changes.append(f"{key}={str(value)[:12]}")
        data = json.dumps(mutated, allow_nan=True).encode()
        return Case(f"retype{i}:{','.join(changes)}", _convert(_write(work, f"retype{i}.json", data)),
                    input_bytes=len(data))

    makers: list[Callable[[int], Case]] = [truncate, flip, retype]
    for i in range(n):
        cases.append(makers[i % len(makers)](i))
    return cases


def fixed_json_cases(work: Path) -> list[Case]:
    """The specific classes of issue 11 on a small real trace, each once."""
    doc = small_doc(BERT, 300)
    base = _dump(doc)
    events = doc["traceEvents"]
    first = next(i for i, e in enumerate(events) if e.get("ph") == "X")
    cases: list[Case] = []

    def with_event(name: str, mutate: Callable[[dict], None], raw: bytes | None = None) -> None:
        mutated = json.loads(base)
        mutate(mutated["traceEvents"][first])
        data = raw if raw is not None else json.dumps(mutated, allow_nan=True).encode()
        cases.append(Case(name, _convert(_write(work, f"{name}.json", data)), input_bytes=len(data)))

    for key in ("ts", "dur", "pid", "tid", "id", "args.correlation", "args.External id", "args.In msg nelems"):
        with_event(f"int-beyond-int64-{key}", lambda e, k=key: _set_path(e, k, 2**70))
        with_event(f"str-1e400-{key}", lambda e, k=key: _set_path(e, k, "1e400"))
    for key in ("ts", "dur"):
        with_event(f"huge-{key}", lambda e, k=key: _set_path(e, k, 1e308))
        with_event(f"nan-{key}", lambda e, k=key: _set_path(e, k, float("nan")))
        with_event(f"neg-huge-{key}", lambda e, k=key: _set_path(e, k, -1e308))
    with_event("args-list", lambda e: e.__setitem__("args", [1, 2, 3]))
    with_event("args-string", lambda e: e.__setitem__("args", "text"))
    with_event("input-dims-strings", lambda e: _set_path(e, "args.Input Dims", ["a", ["b"], {"c": 1}]))
    with_event("collective-name-int", lambda e: _set_path(e, "args.Collective name", 7))
    with_event("pg-config-not-list", lambda e: _set_path(e, "args.Process Group Ranks", "zz"))
    # bad UTF-8 in name, cat and an args value
    for key in ("name", "cat", "args.note"):
        marker = "BADUTF8MARKER"
        mutated = json.loads(base)
        _set_path(mutated["traceEvents"][first], key, marker)
        data = json.dumps(mutated).encode().replace(marker.encode(), b"ab\xff\xfe\xc3cd")
        cases.append(Case(f"bad-utf8-{key}", _convert(_write(work, f"badutf8-{key.replace('.', '_')}.json", data)),
                          input_bytes=len(data)))
    # deep nesting in args
    for depth, opener, closer in ((1500, b"[", b"]"), (5000, b'{"a":', b"}")):
        mutated = json.loads(base)
        _set_path(mutated["traceEvents"][first], "args.deep", "DEEPMARKER")
        data = json.dumps(mutated).encode().replace(b'"DEEPMARKER"', opener * depth + b"1" + closer * depth)
        cases.append(Case(f"nested-{depth}", _convert(_write(work, f"nested{depth}.json", data)),
                          input_bytes=len(data)))
        deep_at = data.find(opener * 10)
        for cut_depth in (500, 1200):
            cut = data[: deep_at + len(opener) * cut_depth]
            cases.append(Case(f"nested-{depth}-cut-at-depth-{cut_depth}",
                              _convert(_write(work, f"nested{depth}-cut{cut_depth}.json", cut)), input_bytes=len(data)))
    # truncations at the places a cut can fall: inside a number, a string, a key
    text = base
    anchors = {
        "in-number": text.find(b'"dur": ', len(text) // 2) + len(b'"dur": ') + 2,
        "after-dot": None,
        "in-string": text.find(b'"name": "', len(text) // 2) + len(b'"name": "') + 3,
        "in-key": text.find(b'"args": {', len(text) // 2) + len(b'"args": {') + 3,
        "after-colon": text.find(b'"ts": ', len(text) // 2) + len(b'"ts": '),
    }
    dot = text.find(b".", text.find(b'"dur": ', len(text) // 2))
    anchors["after-dot"] = dot + 1
    for label, cut in anchors.items():
        cases.append(Case(f"truncate-{label}", _convert(_write(work, f"cut-{label}.json", text[:cut])),
                          expect="ok", input_bytes=len(text)))
    cases.append(Case("truncate-dur-42.", _convert(_write(
        work, "cut-dur42.json", text[: text.find(b'"dur": ', len(text) // 2)] + b'"dur": 42.')),
        expect="ok", input_bytes=len(text)))
    # module names: slash inside, and a long one
    for label, module in (("slash", "nn.Module: Enc/oder_0"), ("long", "nn.Module: " + "M" * 1_000_000)):
        mutated = json.loads(base)
        evs = mutated["traceEvents"]
        ops = [e for e in evs if e.get("cat") == "cpu_op" and e.get("ph") == "X"]
        if ops:
            outer = min(ops, key=lambda e: e["ts"])
            span = dict(outer, name=module, cat="python_function", args={})
            span["ts"] = outer["ts"] - 1
            span["dur"] = max(e["ts"] + e.get("dur", 0) for e in ops) - span["ts"] + 1
            evs.append(span)
        data = json.dumps(mutated).encode()
        cases.append(Case(f"module-name-{label}", _convert(_write(work, f"module-{label}.json", data)),
                          expect="ok", input_bytes=len(data)))
    return cases


def collective_doc() -> dict:
    """nccl_data.json.gz cut to the window of its first six collectives (record_param_comms with
    Collective name, Process Group Ranks, msg nelems), with its distributedInfo (pg_config)."""
    doc = _events_doc(NCCL)
    events = doc["traceEvents"]
    calls = sorted((e for e in events if "Collective name" in e.get("args", {})), key=lambda e: e["ts"])
    start, end = calls[0]["ts"] - 2000, calls[5]["ts"] + calls[5].get("dur", 0) + 2000
    doc["traceEvents"] = [e for e in events if e.get("ph") == "M" or (
        isinstance(e.get("ts"), (int, float)) and start <= e["ts"] <= end)]
    return doc


COLLECTIVE_ARGS = {
    "Collective name": [7, None, ["x"]], "In msg nelems": [2**70, "x", -1, 1.5], "Out msg nelems": ["12", 2**64],
    "dtype": [3, {}], "Process Group Ranks": ["zz", [1.5, 2], {"a": 1}, [2**70]], "Process Group Name": [[], {}],
    "Input Dims": [["a", ["b"]], "x", [[2**70]]], "Concrete Inputs": [5, "x"], "Group size": ["two", 2**70],
}
DIST_VALUES = {
    "rank": [2**70, "x", -1, 1.5], "world_size": [1e308, 10**12, "four", 0], "pg_config": ["zz", [1], [{"ranks": "x"}],
                                                                                            5, [{"ranks": [2**70]}]],
}


def collective_cases(work: Path, rng: random.Random) -> list[Case]:
    """Wrong types in collective args and in distributedInfo, run through convert and `parallel`."""
    doc = collective_doc()
    base = _dump(doc)
    cases = []
    for i, (key, values) in enumerate(sorted(COLLECTIVE_ARGS.items())):
        mutated = json.loads(base)
        for ev in mutated["traceEvents"]:
            if "Collective name" in ev.get("args", {}):
                ev["args"][key] = rng.choice(values)
        path = _write(work, f"coll{i}.json", json.dumps(mutated).encode())
        cases.append(Case(f"collective-{key}", _convert(path), input_bytes=len(base)))
    mutated = json.loads(base)
    for ev in mutated["traceEvents"]:
        if "Collective name" in ev.get("args", {}):
            ev["args"] = [1, 2]
    path = _write(work, "coll-args-list.json", json.dumps(mutated).encode())
    cases.append(Case("collective-args-list", _convert(path), input_bytes=len(base)))
    for key, values in sorted(DIST_VALUES.items()):
        for j, value in enumerate(values):
            mutated = json.loads(base)
            mutated["distributedInfo"][key] = value
            path = _write(work, f"dist-{key}{j}.json", json.dumps(mutated).encode())
            command = ["parallel", str(path), "--max-input-bytes", str(FUZZ_MAX_INPUT)] if j % 2 else _convert(path)
            cases.append(Case(f"distributed-{key}={str(value)[:12]}", command, input_bytes=len(base)))
    for j, value in enumerate(([], "text", 5)):
        mutated = json.loads(base)
        mutated["distributedInfo"] = value
        path = _write(work, f"dist-whole{j}.json", json.dumps(mutated).encode())
        cases.append(Case(f"distributed-whole={value!r}", _convert(path), input_bytes=len(base)))
    for j, (key, value) in enumerate((("baseTimeNanoseconds", 2**70), ("baseTimeNanoseconds", "x"),
                                      ("deviceProperties", "x"), ("deviceProperties", [1, "a"]))):
        mutated = json.loads(base)
        mutated[key] = value
        path = _write(work, f"top{j}.json", json.dumps(mutated).encode())
        cases.append(Case(f"top-{key}={str(value)[:12]}", _convert(path), input_bytes=len(base)))
    return cases


def viztracer_cases(work: Path) -> list[Case]:
    """Damaged VizTracer top-level keys (viztracer_metadata, file_info)."""
    doc = small_doc(VIZ, 800)
    base = _dump(doc)
    some_file = next(iter((doc.get("file_info") or {}).get("files") or {"x.py": 0}))
    damage = [("viztracer_metadata", []), ("viztracer_metadata", {"baseTimeNanoseconds": 2**70}),
              ("viztracer_metadata", {"baseTimeNanoseconds": "12"}), ("file_info", []),
              ("file_info", {"files": []}), ("file_info", {"files": {some_file: 5}}),
              ("file_info", {"files": {some_file: [7]}})]
    cases = []
    for i, (key, value) in enumerate(damage):
        mutated = json.loads(base)
        mutated[key] = value
        path = _write(work, f"viz-top{i}.json", json.dumps(mutated).encode())
        cases.append(Case(f"viztracer-{key}={str(value)[:20]}", _convert(path), expect="ok", input_bytes=len(base)))
    return cases


def other_command_cases(work: Path) -> list[Case]:
    """The same damage through `info` and `modules` (which read Input Dims for shapes)."""
    doc = _events_doc(BERT)  # whole (2,551 events): its nn.Module spans give `modules` a tree
    ops = [e for e in doc["traceEvents"] if e.get("cat") == "cpu_op"]
    for op in ops[:: max(1, len(ops) // 40)]:
        op.setdefault("args", {})["Input Dims"] = ["a", [2**70], {"b": 1}, [[1, "x"]]]
        op["args"]["Input type"] = 5
    path = _write(work, "dims-bad.json", _dump(doc))
    limit = ["--max-input-bytes", str(FUZZ_MAX_INPUT)]
    return [Case("command-modules-bad-dims", ["modules", str(path), *limit], expect="ok"),
            Case("command-info-bad-dims", ["info", str(path), *limit], expect="ok"),
            Case("command-info-fifo", ["info", str(work / "fifo.json"), *limit], expect="error")]


def compression_cases(work: Path) -> list[Case]:
    """Bombs, lying trailers, multi-member gzip, gzip garbage."""
    doc = small_doc(BERT, 300)
    base = _dump(doc)
    cases = []
    bomb = work / "bomb.json.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as fh:
        fh.write(b'{"traceEvents": [')
        chunk = b" " * (1 << 20)
        for _ in range((FUZZ_MAX_INPUT >> 20) + 8):
            fh.write(chunk)
    cases.append(Case("gzip-bomb", _convert(bomb), expect="error"))
    comp = gzip.compress(base)
    liar = _write(work, "trailer-liar.json.gz", comp[:-4] + (0xFFFFFFF0).to_bytes(4, "little"))
    cases.append(Case("gzip-trailer-4GiB", _convert(liar), input_bytes=len(base)))
    half = len(base) // 2
    cut = base.rfind(b"}, {", 0, half) + 1
    two = _write(work, "two-member.json.gz", gzip.compress(base[:cut]) + gzip.compress(base[cut:]))
    cases.append(Case("gzip-two-members", _convert(two), expect="ok", input_bytes=len(base)))
    cases.append(Case("gzip-garbage-tail", _convert(_write(work, "garbage-tail.json.gz", comp + b"\x00junk")),
                      input_bytes=len(base)))
    cases.append(Case("gzip-cut", _convert(_write(work, "cut.json.gz", comp[: len(comp) * 2 // 3])),
                      input_bytes=len(base)))
    plain_big = work / "big-plain.json"
    with open(plain_big, "wb") as fh:
        fh.write(base[:-2])
        fh.write(b" " * (FUZZ_MAX_INPUT + 1024))
        fh.write(b"]}")
    cases.append(Case("plain-over-limit", _convert(plain_big), expect="error"))
    return cases


def special_file_cases(work: Path) -> list[Case]:
    """Inputs that are not regular files."""
    fifo = work / "fifo.json"
    if not fifo.exists():
        os.mkfifo(fifo)
    cases = [Case("fifo", _convert(fifo), expect="error"), Case("dev-zero", _convert("/dev/zero"), expect="error"),
             Case("dev-null", _convert("/dev/null"), expect="error")]
    return cases


def _copy_npu(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, dirs_exist_ok=True)
    for p in dest.rglob("*"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    os.chmod(dest, 0o755)
    return dest


def npu_cases(work: Path, rng: random.Random, n_db: int = 12) -> list[Case]:
    """Damaged Ascend inputs: trace_view.json truncated/unreadable, CSV cells, .db NULL/text columns."""
    cases = []
    tv_size = (NPU_TEXT / "ASCEND_PROFILER_OUTPUT" / "trace_view.json").stat().st_size
    # truncated trace_view.json
    for frac in (0.5, 0.93):
        d = _copy_npu(NPU_TEXT, work / f"npu-tv-trunc{int(frac * 100)}_ascend_pt")
        tv = d / "ASCEND_PROFILER_OUTPUT" / "trace_view.json"
        data = tv.read_bytes()
        tv.write_bytes(data[: int(len(data) * frac)])
        cases.append(Case(f"npu-trace-view-truncated-{frac}", _convert(d), expect="ok", input_bytes=tv_size))
    # unreadable trace_view.json (a folder in its place: unreadable even for root)
    d = _copy_npu(NPU_TEXT, work / "npu-tv-unreadable_ascend_pt")
    tv = d / "ASCEND_PROFILER_OUTPUT" / "trace_view.json"
    tv.unlink()
    tv.mkdir()
    cases.append(Case("npu-trace-view-unreadable", _convert(d), expect="error", input_bytes=tv_size))
    # kernel_details.csv: huge cell, bad UTF-8, 1e400
    for label, cell in (("huge-cell", b"x" * 300_000), ("bad-utf8", b"ab\xff\xfecd"), ("1e400", b"1e400"),
                        ("int-beyond", str(2**70).encode())):
        d = _copy_npu(NPU_TEXT, work / f"npu-kd-{label}_ascend_pt")
        kd = d / "ASCEND_PROFILER_OUTPUT" / "kernel_details.csv"
        lines = kd.read_bytes().split(b"\n")
        row = 1 + rng.randrange(max(1, len([x for x in lines if x]) - 1))
        cells = lines[row].split(b",")
        col = rng.randrange(len(cells))
        cells[col] = cell
        lines[row] = b",".join(cells)
        kd.write_bytes(b"\n".join(lines))
        cases.append(Case(f"npu-kernel-details-{label}-col{col}", _convert(d), input_bytes=tv_size + 300_000))
    # profiler_info / metadata damaged
    d = _copy_npu(NPU_TEXT, work / "npu-info-bad_ascend_pt")
    (d / "profiler_info_0.json").write_text('{"config": [1, 2], "rank_id": "x", "end_info": 5}')
    (d / "profiler_metadata.json").write_text('{"distributed_args": {"world_size": 1e400}, "pg_config": 3')
    cases.append(Case("npu-meta-bad-types", _convert(d), input_bytes=tv_size))
    # .db: NULL, text, huge numbers and BLOBs in the columns the reader uses
    db_src = NPU_DB / "ASCEND_PROFILER_OUTPUT" / "ascend_pytorch_profiler_0.db"
    con = sqlite3.connect(f"file:{db_src}?mode=ro", uri=True)
    targets = []
    for table in DB_TABLES:
        for _cid, column, *_ in con.execute(f'PRAGMA table_info("{table}")'):
            if con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]:
                targets.append((table, column))
    con.close()
    for i in range(n_db):
        table, column = rng.choice(targets)
        value = rng.choice([None, "text", 2**63 - 1, -1, 1e308, b"\xff\xfe", "12"])
        d = _copy_npu(NPU_DB, work / f"npu-db{i}_ascend_pt")
        db = d / "ASCEND_PROFILER_OUTPUT" / "ascend_pytorch_profiler_0.db"
        con = sqlite3.connect(db)
        try:
            con.execute(f'UPDATE "{table}" SET "{column}" = ? WHERE rowid IN '
                        f'(SELECT rowid FROM "{table}" ORDER BY rowid LIMIT 3)', (value,))
            con.commit()
        except sqlite3.IntegrityError:  # an INTEGER PRIMARY KEY takes integers only
            value = "refused by sqlite"
        con.close()
        cases.append(Case(f"npu-db-{table}.{column}={str(value)[:10]}", _convert(d), input_bytes=4 << 20))
    return cases


def output_cases(work: Path) -> list[Case]:
    """Bad -o targets: each must be a clear error (exit 2) with nothing written."""
    good = small_doc(BERT, 100)
    src = _write(work, "good.json", _dump(good))
    afile = _write(work, "afile", b"user data")
    dangling = work / "dangling"
    if not dangling.is_symlink():
        dangling.symlink_to(work / "nowhere" / "x")
    user = work / "user-folder"
    user.mkdir(exist_ok=True)
    (user / "notes.txt").write_text("mine")
    cases = [
        Case("out-is-file", ["convert", str(src), "-o", str(afile)], expect="error"),
        Case("out-dangling-symlink", ["convert", str(src), "-o", str(dangling)], expect="error"),
        Case("out-under-file", ["convert", str(src), "-o", str(afile / "sub")], expect="error"),
        Case("out-root", ["convert", str(src), "-o", "/"], expect="error"),
        Case("out-empty", ["convert", str(src), "-o", ""], expect="error"),
        Case("out-cwd", ["convert", str(src), "-o", "."], expect="error"),
        Case("out-user-folder", ["convert", str(src), "-o", str(user)], expect="error"),
    ]
    return cases


def all_cases(work: Path, seed: int, n_random: int) -> list[Case]:
    """The fixed classes plus `n_random` seeded random mutations (spread over two traces)."""
    rng = random.Random(seed)
    work.mkdir(parents=True, exist_ok=True)
    cases = fixed_json_cases(work) + compression_cases(work) + special_file_cases(work)
    cases += npu_cases(work, rng) + output_cases(work) + collective_cases(work, rng) + other_command_cases(work)
    cases += viztracer_cases(work)
    gpt_n = viz_n = n_random // 4
    cases += json_cases(work, rng, n_random - gpt_n - viz_n)
    for label, source, n in (("gpt", GPT_CPU, gpt_n), ("viz", VIZ, viz_n)):
        if n:
            sub = work / label
            sub.mkdir(exist_ok=True)
            cases += json_cases(sub, rng, n, source=source, keep=600)
    return cases
