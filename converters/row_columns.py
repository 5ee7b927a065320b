"""ChromeColumns from events that a reader builds row by row (the NPU .db and kernel_details.csv readers)."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from .chrome_json import _TEMP_ID, ChromeColumns, StrColumn, _Codes, _IdMap
from .link_args import empty_link_columns, link_chunk


def _str_column(values: list[str | None]) -> StrColumn:
    codes = _Codes()
    codes.add(pa.array(values, type=pa.string()))
    return codes.column()


def columns_from_rows(ph: list[str], name: list[str], cat: list[str | None], pid: list[int | str],
                      tid: list[int | str], ts_ns: np.ndarray, dur_ns: np.ndarray, flow_id: list[str | None],
                      bp: list[str | None], args: list[bytes], top: dict[str, Any], link_rows: np.ndarray,
                      skipped: dict[str, int] | None = None, input_events: int | None = None) -> ChromeColumns:
    """The columns of events given as parallel lists, like `decode_chrome` makes them from JSON.

    pids/tids may be text ("HCCL"): such tracks get negative ids and keep the text as their name.
    `link_rows` are the rows whose args are read for the join ids (correlation, External id...).
    """
    n = len(ph)
    ids = _IdMap()
    pid_arr = np.fromiter(map(ids, pid), dtype=np.int64, count=n)
    tid_arr = np.fromiter(map(ids, tid), dtype=np.int64, count=n)
    text_tracks: dict[tuple, str] = {}
    for i in np.flatnonzero((pid_arr <= _TEMP_ID) | (tid_arr <= _TEMP_ID)).tolist():
        p, t = int(pid_arr[i]), int(tid_arr[i])
        if p <= _TEMP_ID:
            text_tracks.setdefault((p, None), str(pid[i]))
        if t <= _TEMP_ID:
            text_tracks.setdefault((p, t), str(tid[i]))
    ids.renumber(pid_arr, tid_arr)
    span = np.zeros(n, dtype=bool)
    span[link_rows] = True
    if span.any():
        events_json = msgspec.json.encode([{"args": msgspec.Raw(a) if len(a) else None} for a in args])
        link = link_chunk(events_json, args, span)
    else:
        link = empty_link_columns(n)
    cols = ChromeColumns(
        index=np.arange(n, dtype=np.int64), ph=_str_column(ph), name=_str_column(name), cat=_str_column(cat),
        pid=pid_arr, tid=tid_arr, ts_ns=np.asarray(ts_ns, dtype=np.int64), dur_ns=np.asarray(dur_ns, dtype=np.int64),
        flow_id=_str_column(flow_id), bp=_str_column(bp), scope=_str_column([None] * n),
        args=pa.array(args, pa.large_binary()), link=link, meta=[], top=top, ids=ids.final_id,
        skipped=dict(skipped or {}), input_events=n if input_events is None else input_events,
    )
    cols.track_names = {(ids.final.get(p, p), None if t is None else ids.final.get(t, t)): text
                        for (p, t), text in text_tracks.items()}
    return cols
