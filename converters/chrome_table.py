"""Turn decoded chrome-trace columns into the normalized event table (shared by torch and VizTracer)."""

from __future__ import annotations

from typing import Union

import msgspec
import numpy as np
import pandas as pd

from tracekit.kinds import classify
from tracekit.table import EventTable, SourceInfo, categorical, int_column

from .chrome_json import ChromeColumns


class LinkArgs(msgspec.Struct, gc=False):
    """The few args fields the pipeline needs; everything else stays raw."""

    correlation: int | None = None
    external_id: int | None = msgspec.field(default=None, name="External id")
    legacy_external_id: int | None = msgspec.field(default=None, name="external id")
    sequence: int | None = msgspec.field(default=None, name="Sequence number")
    fwd_thread: int | None = msgspec.field(default=None, name="Fwd thread id")
    python_id: int | None = msgspec.field(default=None, name="Python id")
    python_parent: int | None = msgspec.field(default=None, name="Python parent id")
    stream: int | None = None
    device: int | None = None


_args_decoder = msgspec.json.Decoder(list[LinkArgs | None])
_INT_FIELDS = ("correlation", "sequence", "fwd_thread", "python_id", "python_parent", "stream", "device")


def _decode_link_args(raw_args: list) -> list[LinkArgs | None]:
    """Decode the needed args fields of every row in one msgspec call."""
    pieces = [r if len(r) else b"null" for r in raw_args]
    try:
        return _args_decoder.decode(b"[" + b",".join(pieces) + b"]")
    except msgspec.ValidationError:
        # Some row has a field of an unexpected type: decode row by row, tolerating it.
        return [_decode_lenient(p) for p in pieces]


def _decode_lenient(piece: bytes) -> LinkArgs | None:
    try:
        return msgspec.json.decode(piece, type=Union[LinkArgs, None])
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


_LINKED_KINDS = ["cpu_op", "collective", "runtime", "kernel", "memcpy", "memset", "python", "module",
                 "annotation", "step"]


class _IdMap:
    """Map pids/tids (ints, numeric strings, other strings) to ints; strings get negative ids."""

    def __init__(self) -> None:
        self.synthetic: dict[str, int] = {}

    def __call__(self, value: object) -> int:
        if isinstance(value, int):
            return value
        if value is None:
            return 0
        text = str(value).strip()
        if text.lstrip("-").isdigit():
            return int(text)
        digits = "".join(ch for ch in text if ch.isdigit())
        if text.lower().startswith("stream ") and digits:
            return int(digits)
        if text not in self.synthetic:
            self.synthetic[text] = -(len(self.synthetic) + 1)
        return self.synthetic[text]


def build_table(cols: ChromeColumns, info: SourceInfo) -> EventTable:
    """Build the event table of one chrome-format source (times made absolute with info.base_ns)."""
    ids = _IdMap()
    pid_map = {v: ids(v) for v in set(cols.pid)}
    tid_map = {v: ids(v) for v in set(cols.tid)}
    pid = np.fromiter(map(pid_map.__getitem__, cols.pid), dtype=np.int64, count=len(cols.pid))
    tid = np.fromiter(map(tid_map.__getitem__, cols.tid), dtype=np.int64, count=len(cols.tid))
    # Tracks with string names ("Spans", "stream 7") keep their text as the thread name.
    for raw_pid, raw_tid in set(zip(cols.pid, cols.tid)):
        p, t = pid_map[raw_pid], tid_map[raw_tid]
        if _text_or_none(raw_pid) is not None and p < 0:
            info.process_names.setdefault(p, raw_pid)
        if _text_or_none(raw_tid) is not None and t < 0:
            info.thread_names.setdefault((p, t), raw_tid)
    _collect_metadata(cols, pid, tid, info)
    ph, cat, name = categorical(cols.ph), categorical(cols.cat), categorical(cols.name)
    kind = classify(ph, cat, name)
    # Only span events carry the ids the pipeline joins on; metadata/flow/memory args stay raw.
    wanted = np.flatnonzero(np.isin(np.asarray(kind), _LINKED_KINDS))
    link = _decode_link_args([cols.raw_args[i] for i in wanted.tolist()])
    cols.raw_args = []
    n = len(pid)

    def column(values: list) -> np.ndarray:
        full = np.full(n, -1, dtype=np.int64)
        full[wanted] = int_column(values)
        return full

    ext = [a.external_id if a is not None and a.external_id is not None else
           (a.legacy_external_id if a is not None else None) for a in link]
    columns = {
        "source": pd.Categorical([info.source] * len(pid)),
        "rank": np.full(len(pid), info.rank, dtype=np.int32),
        "pid": pid,
        "tid": tid,
        "ts_ns": cols.ts_ns + info.base_ns,
        "dur_ns": cols.dur_ns,
        "ph": ph,
        "name": name,
        "cat": cat,
        "kind": kind,
        "flow_id": categorical(cols.flow_id),
        "bp": categorical(cols.bp),
        "scope": categorical(cols.scope),
        "external_id": column(ext),
        "input_index": cols.index,
    }
    for field in _INT_FIELDS:
        columns[field] = column([getattr(a, field) if a is not None else None for a in link])
    events = pd.DataFrame(columns)
    return EventTable(events, cols.args, [info])


def _text_or_none(value: object) -> str | None:
    if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
        return value
    return None


class MetaArgs(msgspec.Struct):
    """args of an M (metadata) event."""

    name: str | None = None
    labels: str | None = None
    sort_index: int | None = None


def _collect_metadata(cols: ChromeColumns, pid: np.ndarray, tid: np.ndarray, info: SourceInfo) -> None:
    """Process/thread names, labels and sort indices from the M events (repeats decoded once)."""
    seen: set = set()
    for i in (i for i, p in enumerate(cols.ph) if p == "M"):
        key = (cols.name[i], cols.pid[i], cols.tid[i], bytes(cols.raw_args[i]))
        if key in seen:
            continue
        seen.add(key)
        try:
            a = msgspec.json.decode(key[3] or b"{}", type=MetaArgs)
        except (msgspec.ValidationError, msgspec.DecodeError):
            continue
        key, p, t = cols.name[i], int(pid[i]), int(tid[i])
        if key == "process_name" and a.name is not None:
            info.process_names[p] = a.name
        elif key == "process_labels" and a.labels is not None:
            info.process_labels[p] = a.labels
        elif key == "process_sort_index" and a.sort_index is not None:
            info.process_sort[p] = a.sort_index
        elif key == "thread_name" and a.name is not None:
            info.thread_names[(p, t)] = a.name.strip()
        elif key == "thread_sort_index" and a.sort_index is not None:
            info.thread_sort[(p, t)] = a.sort_index
