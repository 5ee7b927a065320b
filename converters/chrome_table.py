"""Turn decoded chrome-trace columns into the normalized event table (shared by torch and VizTracer)."""

from __future__ import annotations

import msgspec
import numpy as np
import pandas as pd

from tracekit.kinds import classify
from tracekit.table import EventTable, SourceInfo

from .chrome_json import ChromeColumns


def build_table(cols: ChromeColumns, info: SourceInfo) -> EventTable:
    """Build the event table of one chrome-format source (times made absolute with info.base_ns)."""
    # Tracks with text names ("Spans", "Traces") keep their text as the process/thread name.
    for (p, t), text in cols.track_names.items():
        if t is None:
            info.process_names.setdefault(p, text)
        else:
            info.thread_names.setdefault((p, t), text)
    _collect_metadata(cols, info)
    ph, cat, name = cols.ph.categorical(), cols.cat.categorical(), cols.name.categorical()
    n = len(cols.pid)
    columns = {
        "source": pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), dtype=_one_category(info.source)),
        "rank": np.full(n, info.rank, dtype=np.int32),
        "pid": cols.pid,
        "tid": cols.tid,
        "ts_ns": cols.ts_ns + info.base_ns,
        "dur_ns": cols.dur_ns,
        "ph": ph,
        "name": name,
        "cat": cat,
        "kind": _classify(ph, cat, name),
        "flow_id": cols.flow_id.categorical(),
        "bp": cols.bp.categorical(),
        "scope": cols.scope.categorical(),
        "input_index": cols.index,
        **cols.link,
    }
    events = pd.DataFrame(columns, copy=False)  # the columns are new arrays: no second copy of them
    return EventTable(events, cols.args, [info])


def _one_category(value: str) -> pd.CategoricalDtype:
    return pd.CategoricalDtype(pd.Index([value], dtype=object))


def _classify(ph: pd.Categorical, cat: pd.Categorical, name: pd.Categorical) -> pd.Categorical:
    """kinds.classify, run once per distinct (ph, cat, name) and spread to the rows.

    The triple is one int64 key per row, built in place and factorized by hashing (no sort of the
    rows, no per-row copies of the three code columns); each distinct key is decoded back into its
    (ph, cat, name) codes."""
    if not len(ph):
        return classify(ph, cat, name)
    cats, names = len(cat.categories) + 1, len(name.categories) + 1
    key = np.asarray(ph.codes, dtype=np.int64) + 1
    key *= cats
    key += cat.codes
    key += 1
    key *= names
    key += name.codes
    key += 1
    inverse, distinct = pd.factorize(key)
    del key
    distinct = np.asarray(distinct, dtype=np.int64)
    name_c, rest = distinct % names - 1, distinct // names
    cat_c, ph_c = rest % cats - 1, rest // cats - 1
    kinds = classify(pd.Categorical.from_codes(ph_c, dtype=ph.dtype), pd.Categorical.from_codes(cat_c, dtype=cat.dtype),
                     pd.Categorical.from_codes(name_c, dtype=name.dtype))
    return pd.Categorical.from_codes(np.asarray(kinds.codes)[inverse], dtype=kinds.dtype)


class MetaArgs(msgspec.Struct):
    """args of an M (metadata) event."""

    name: str | None = None
    labels: str | None = None
    sort_index: int | None = None


def _collect_metadata(cols: ChromeColumns, info: SourceInfo) -> None:
    """Process/thread names, labels and sort indices from the distinct M events."""
    for key, raw_pid, raw_tid, raw_args in sorted(cols.meta, key=repr):
        try:
            a = msgspec.json.decode(raw_args or b"{}", type=MetaArgs)
        except (msgspec.ValidationError, msgspec.DecodeError):
            continue
        p, t = cols.ids(raw_pid), cols.ids(raw_tid)
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
