"""Per-rank records of a multi-rank job, spilled to a JSON-lines file in the stage folder as ranks finish.

What a worker sends back for summary.json, the dataset manifest and the merged trace's metadata (its summary,
source record with process/thread names, input fingerprint, distributedInfo, deviceProperties) is written to
disk as it arrives and dropped from the result, so the parent keeps a few fields per rank (index, rank, path,
fragment) however many ranks there are. summary.json and tracekit.json are then written from the file with
their per-rank lists streamed (`dump_streamed`), byte for byte as `json.dumps` of the whole object would be.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

import msgspec

# The fields of a RankResult that go to the spill file (and are emptied in the result the parent keeps).
SPILLED = ("summary", "distributed", "devices", "input", "source", "skipped_collectives")
_EMPTY: dict[str, Callable[[], Any]] = {"summary": dict, "distributed": dict, "devices": list, "input": dict,
                                        "source": dict, "skipped_collectives": dict}


class RankRow(tuple[int, int, str | None, int]):
    """What the parent needs of a rank after the rank loop: (index, rank, fragment, fragment_base_ns), made
    on use out of a RankIndex's columns."""

    __slots__ = ()

    @property
    def index(self) -> int:
        return self[0]

    @property
    def rank(self) -> int:
        return self[1]

    @property
    def fragment(self) -> str | None:
        return self[2]

    @property
    def fragment_base_ns(self) -> int:
        return self[3]


class RankIndex:
    """The ranks of a job as columns (arrival = job order): index, rank, chrome fragment and its base ns, ~40 bytes
    a rank and no Python object per rank (each kept object would also pin the heap pages the rank's convert
    used). A sequence of RankRow, each made when asked for."""

    def __init__(self) -> None:
        self.indexes, self.ranks, self.bases = array("q"), array("q"), array("q")
        self._text = bytearray()  # the fragments' paths, UTF-8, one after another
        self._ends = array("q")  # where each rank's path ends in _text (it starts where the previous one ended)
        self._has = bytearray()  # 1 where the rank has a fragment

    def add(self, index: int, rank: int, fragment: str | None, base_ns: int) -> None:
        self.indexes.append(index)
        self.ranks.append(rank)
        self.bases.append(base_ns)
        if fragment is not None:
            self._text += fragment.encode("utf-8", "surrogateescape")
        self._ends.append(len(self._text))
        self._has.append(fragment is not None)

    def __len__(self) -> int:
        return len(self.indexes)

    def __getitem__(self, i: int) -> RankRow:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        fragment = None
        if self._has[i]:
            fragment = self._text[self._ends[i - 1] if i else 0:self._ends[i]].decode("utf-8", "surrogateescape")
        return RankRow((self.indexes[i], self.ranks[i], fragment, self.bases[i]))

    def __iter__(self) -> Iterator[RankRow]:
        return (self[i] for i in range(len(self)))


class RankRecords:
    """An append-only JSON-lines file of per-rank records (one line per rank, in arrival = job order), and the
    RankIndex of the ranks added (`ranks`)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._out: TextIO | None = self.path.open("w")  # kept open: an open and close per rank cost ~0.15 ms
        self.count = 0
        self.ranks = RankIndex()

    def add(self, result: Any) -> None:
        """Append the result's SPILLED fields (plus index, rank, rank_from, path, worker_pid) and empty them; its
        index, rank and chrome fragment go to `ranks`."""
        record = {"index": result.index, "rank": result.rank, "rank_from": result.rank_from, "path": result.path,
                  "worker_pid": result.worker_pid}
        self.ranks.add(result.index, result.rank, getattr(result, "fragment", None),
                       getattr(result, "fragment_base_ns", 0))
        for name in SPILLED:
            record[name] = getattr(result, name)
            setattr(result, name, _EMPTY[name]())
        if self._out is None:
            self._out = self.path.open("a")
        self._out.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.count += 1

    def close(self) -> None:
        """Close the file (records can still be read; a later add opens it again)."""
        if self._out is not None:
            self._out.close()
            self._out = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """The records in the order they were added, one at a time."""
        if self._out is not None:
            self._out.flush()
        with self.path.open("rb") as fh:
            for line in fh:
                if line.strip():
                    yield _loads(line)

    def field(self, name: str) -> Iterator[Any]:
        """One field of every record, in order."""
        return (rec[name] for rec in self)


_DECODER = msgspec.json.Decoder()


def _loads(line: bytes) -> Any:
    """json.loads of a line that json.dumps wrote: msgspec's decoder (~3x faster; the same values wherever it
    decodes), or json.loads where msgspec refuses the text (NaN or Infinity, numbers beyond a double, lone
    surrogates: what json.dumps may write and msgspec does not read)."""
    try:
        return _DECODER.decode(line)
    except msgspec.DecodeError:
        return json.loads(line)


def _marker(key: str) -> str:
    return f"\x00tracekit-streamed:{key}\x00"


def dump_streamed(out: TextIO, obj: dict[str, Any], indent: int,
                  streams: dict[str, Callable[[], Iterable[Any]]]) -> None:
    """Write `json.dumps(obj, indent=indent)` to `out`, where each top-level key of `streams` (present in `obj`
    with any placeholder value) is a list whose items are produced by calling its function: the items are
    encoded one by one, so the list is never held whole. The text is the same as with the list in `obj`."""
    obj = {k: (_marker(k) if k in streams else v) for k, v in obj.items()}
    text = dumps_indented(obj, indent)
    pad = " " * indent
    for key, items in streams.items():
        quoted = json.dumps(_marker(key))
        head, found, text = text.partition(quoted)
        if not found:
            raise KeyError(key)
        out.write(head)
        first = True
        for item in items():
            body = dumps_indented(item, indent, 2)
            out.write(("[\n" if first else ",\n") + pad * 2 + body)
            first = False
        out.write("[]" if first else "\n" + pad + "]")
    out.write(text)


class _Unusual(Exception):
    """A value dumps_indented leaves to json.dumps (another type, a subclass, a key that is not text)."""


def dumps_indented(obj: Any, indent: int, level: int = 0) -> str:
    """`json.dumps(obj, indent=indent)` with every line after the first indented `level` more steps (the text of a
    value nested `level` deep), the same text: json's indented output is made by its pure-Python encoder, which
    took ~0.8 ms a rank for summary.json and tracekit.json; this one calls json's C string encoder per string.
    Values other than dicts with text keys, lists, tuples, text, ints, floats, bools and None go to json.dumps."""
    out: list[str] = []
    try:
        _encode(obj, " " * indent, "\n" + " " * (indent * level), out)
    except _Unusual:
        text = json.dumps(obj, indent=indent)
        return text.replace("\n", "\n" + " " * (indent * level)) if level else text
    return "".join(out)


_STRING = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]


def _encode(obj: Any, step: str, newline: str, out: list[str]) -> None:
    kind = type(obj)
    if kind is str:
        out.append(_STRING(obj))
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif kind is int:
        out.append(int.__repr__(obj))
    elif kind is float:
        out.append(_float(obj))
    elif kind is dict:
        if not obj:
            out.append("{}")
            return
        inner = newline + step
        out.append("{")
        first = True
        for key, value in obj.items():
            if type(key) is not str:
                raise _Unusual
            out.append(inner if first else "," + inner)
            first = False
            out.append(_STRING(key))
            out.append(": ")
            _encode(value, step, inner, out)
        out.append(newline + "}")
    elif kind is list or kind is tuple:
        if not obj:
            out.append("[]")
            return
        inner = newline + step
        out.append("[")
        first = True
        for value in obj:
            out.append(inner if first else "," + inner)
            first = False
            _encode(value, step, inner, out)
        out.append(newline + "]")
    else:
        raise _Unusual


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value == float("inf"):
        return "Infinity"
    if value == -float("inf"):
        return "-Infinity"
    return float.__repr__(value)
