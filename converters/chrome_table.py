"""Turn decoded chrome-trace columns into the normalized event table (shared by torch and VizTracer).

The table's events are a pandas DataFrame, or for `cols.columns_only` (tracekit info) a tracekit.columns.Columns
of the columns the info stages read, built without pandas."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
import numpy as np

from tracekit.columns import Coded, Columns
from tracekit.kinds import classify_one
from tracekit.table import KINDS, EventTable, SourceInfo

if TYPE_CHECKING:
    import pandas as pd

    from .chrome_json import ChromeColumns, StrColumn


def build_table(cols: ChromeColumns, info: SourceInfo) -> EventTable:
    """Build the event table of one chrome-format source (times made absolute with info.base_ns)."""
    # Tracks with text names ("Spans", "Traces") keep their text as the process/thread name.
    for (p, t), text in cols.track_names.items():
        if t is None:
            info.process_names.setdefault(p, text)
        else:
            info.thread_names.setdefault((p, t), text)
    _collect_metadata(cols, info)
    if getattr(cols, "columns_only", False):
        return _columns_table(cols, info)
    import pandas as pd

    ph, cat, name = cols.ph.categorical(), cols.cat.categorical(), cols.name.categorical()
    n = len(cols.pid)
    columns = {
        "source": pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), dtype=_one_category(info.source)),
        **_common_columns(cols, info, ph, name, cat),
        "kind": _classify(ph, cat, name),
        "flow_id": cols.flow_id.categorical(),
        "bp": cols.bp.categorical(),
        "scope": cols.scope.categorical(),
        "input_index": cols.index,
        **cols.link,
    }
    events = pd.DataFrame(columns, copy=False)  # the columns are new arrays: no second copy of them
    return EventTable(events, cols.args, [info])


def _common_columns(cols: ChromeColumns, info: SourceInfo, ph, name, cat) -> dict:
    """The columns both tables have, with ph/name/cat in the table's own string form."""
    return {"rank": np.full(len(cols.pid), info.rank, dtype=np.int32), "pid": cols.pid, "tid": cols.tid,
            "ts_ns": cols.ts_ns + info.base_ns, "dur_ns": cols.dur_ns, "ph": ph, "name": name, "cat": cat}


def _columns_table(cols: ChromeColumns, info: SourceInfo) -> EventTable:
    """The table `tracekit info` reads: the columns of build_table that its stages use, numpy and Coded, no
    args (see tracekit.columns)."""
    ph, cat, name = _coded(cols.ph), _coded(cols.cat), _coded(cols.name)
    n = len(cols.pid)
    columns = {
        **_common_columns(cols, info, ph, name, cat),
        "kind": Coded(_kind_codes(ph, cat, name), list(KINDS)),
        "correlation": cols.link["correlation"],
        "external_id": cols.link["external_id"],
    }
    return EventTable(Columns(columns, n), None, [info])


def _coded(values: StrColumn) -> Coded:
    return Coded(values.codes, values.categories)


def _triple_key(ph, cat, name) -> np.ndarray:
    """One int64 per row for its (ph, cat, name) codes (-1: missing), equal where the triple is."""
    cats, names = len(cat.categories) + 1, len(name.categories) + 1
    key = np.asarray(ph.codes, dtype=np.int64) + 1
    key *= cats
    key += cat.codes
    key += 1
    key *= names
    key += name.codes
    key += 1
    return key


def _kind_codes(ph: Coded, cat: Coded, name: Coded) -> np.ndarray:
    """Per row, the position in KINDS of kinds.classify_one(ph, cat, name), decided once per distinct triple
    (what _classify gives, without pandas)."""
    if not len(ph.codes):
        return np.zeros(0, dtype=np.int8)
    cats, names = len(cat.categories) + 1, len(name.categories) + 1
    key = _triple_key(ph, cat, name)
    distinct, inverse = np.unique(key, return_inverse=True)
    del key
    name_c, rest = distinct % names - 1, distinct // names
    cat_c, ph_c = rest % cats - 1, rest // cats - 1
    kind_code = {k: i for i, k in enumerate(KINDS)}
    per_triple = np.array([
        kind_code.get(classify_one(ph.categories[p] if p >= 0 else "", cat.categories[c] if c >= 0 else None,
                                   name.categories[m] if m >= 0 else ""), -1)
        for p, c, m in zip(ph_c.tolist(), cat_c.tolist(), name_c.tolist())
    ], dtype=np.int8)
    return per_triple[inverse.ravel()]


def _one_category(value: str) -> pd.CategoricalDtype:
    import pandas as pd

    return pd.CategoricalDtype(pd.Index([value], dtype=object))


def _classify(ph: pd.Categorical, cat: pd.Categorical, name: pd.Categorical) -> pd.Categorical:
    """kinds.classify, run once per distinct (ph, cat, name) and spread to the rows.

    The triple is one int64 key per row, built in place and factorized by hashing (no sort of the
    rows, no per-row copies of the three code columns); each distinct key is decoded back into its
    (ph, cat, name) codes."""
    import pandas as pd

    from tracekit.kinds import classify

    if not len(ph):
        return classify(ph, cat, name)
    cats, names = len(cat.categories) + 1, len(name.categories) + 1
    key = _triple_key(ph, cat, name)
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
