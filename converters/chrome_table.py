"""Turn decoded chrome-trace columns into the normalized event table (shared by torch and VizTracer)."""

from __future__ import annotations

import msgspec
import numpy as np
import pandas as pd

from tracekit.kinds import classify
from tracekit.table import EventTable, SourceInfo, categorical

from .chrome_json import ChromeColumns


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
    _collect_metadata(cols, pid_map, tid_map, info)
    ph, cat, name = categorical(cols.ph), categorical(cols.cat), categorical(cols.name)
    kind = classify(ph, cat, name)
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
        "input_index": cols.index,
        **cols.link,
    }
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


def _collect_metadata(cols: ChromeColumns, pid_map: dict, tid_map: dict, info: SourceInfo) -> None:
    """Process/thread names, labels and sort indices from the distinct M events."""
    for key, raw_pid, raw_tid, raw_args in sorted(cols.meta, key=repr):
        try:
            a = msgspec.json.decode(raw_args or b"{}", type=MetaArgs)
        except (msgspec.ValidationError, msgspec.DecodeError):
            continue
        p, t = pid_map[raw_pid], tid_map[raw_tid]
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
