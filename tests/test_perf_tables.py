"""Table-level shortcuts of the performance work: code masks, folded metadata, flow pairing, row columns."""

from __future__ import annotations

import gzip
import json
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import shared
from tracekit.converters import read_trace
from tracekit.converters.row_columns import columns_from_rows

from tracekit.accounting import flow_status
from tracekit.pipeline import process, read_inputs
from tracekit.table import DEVICE_KINDS, kind_in

REAL = ["cpu/gpt/prof_stack_modules.json.gz", "gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz",
        "gpu/kineto_legacy/worker0.1623143089861.pt.trace.json.gz"]


def _processed(rel: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return process(read_inputs([shared(rel)]))


@pytest.mark.parametrize("rel", REAL)
def test_kind_in_matches_isin_and_columns_hold_objects(rel: str) -> None:
    ev = _processed(rel).table.events
    as_objects = ev["kind"].astype(object).to_numpy()
    for kinds in (DEVICE_KINDS, ("cpu_op", "collective"), ("flow", "metadata"), ()):
        assert (kind_in(ev, kinds) == np.isin(as_objects, list(kinds))).all()
    for col in ("kind", "source", "module_path", "phase"):
        assert ev[col].cat.categories.dtype == object, col


@pytest.mark.parametrize("rel", REAL)
def test_metadata_events_are_counted_not_kept(rel: str) -> None:
    path = shared(rel)
    raw = json.loads(gzip.decompress(path.read_bytes()))["traceEvents"]
    n_meta = sum(1 for e in raw if e.get("ph") == "M")
    table = read_trace(path)
    assert n_meta > 0
    assert table.metadata_folded == n_meta
    assert "M" not in set(table.events["ph"].astype(str))
    # the names they carried are still there
    names = {e["args"]["name"] for e in raw if e.get("ph") == "M" and e.get("name") == "thread_name"}
    assert {n.strip() for n in names} <= set(table.sources[0].thread_names.values())


def _reference_flow_status(events: pd.DataFrame, launch: np.ndarray) -> tuple[dict, list]:
    """The per-row Python version flow_status replaced: pair by (source, cat, id text) and bind by exact ts."""
    kind = events["kind"].astype(object).to_numpy()
    device = np.isin(kind, list(DEVICE_KINDS)) & (launch >= 0)
    linked = set(zip(events["source_index"].to_numpy()[device].tolist(),
                     events["correlation"].to_numpy()[device].astype(str).tolist()))
    slices: dict[tuple, tuple[int, int]] = {}
    for row in np.flatnonzero((events["ph"] == "X").to_numpy()).tolist():
        key = tuple(int(events[c].iat[row]) for c in ("source_index", "pid", "tid", "ts_ns"))
        dur = int(events["dur_ns"].iat[row])
        if key not in slices or dur > slices[key][0]:
            slices[key] = (dur, row)
    status, starts, ends = {}, {}, []
    for row in np.flatnonzero(kind == "flow").tolist():
        src = int(events["source_index"].iat[row])
        cat, fid = str(events["cat"].iat[row]), str(events["flow_id"].iat[row])
        if cat in ("ac2g", "async_cpu_to_gpu", "async", "async_npu", "HostToDevice") and (src, fid) in linked:
            status[row] = "flow_replaced_by_launch_link"
            continue
        key = tuple(int(events[c].iat[row]) for c in ("source_index", "pid", "tid", "ts_ns"))
        if key not in slices:
            status[row] = "flow_without_slice"
            continue
        if events["ph"].iat[row] == "s":
            starts.setdefault((src, cat, fid), (row, slices[key][1]))
        else:
            ends.append(((src, cat, fid), row, slices[key][1]))
    pairs = [(starts[k][1], s, cat) for k, _row, s in ends if k in starts for cat in [k[1]]]
    paired = {starts[k][0] for k, _r, _s in ends if k in starts} | {r for k, r, _s in ends if k in starts}
    for row in np.flatnonzero(kind == "flow").tolist():
        status.setdefault(row, "written" if row in paired else "flow_unmatched")
    return status, pairs


@pytest.mark.parametrize("rel", REAL)
def test_flow_status_matches_row_by_row_pairing(rel: str) -> None:
    table = _processed(rel).table
    ev = table.events
    launch = ev["launch"].to_numpy()
    status, pairs = flow_status(ev, launch)
    want_status, want_pairs = _reference_flow_status(ev, launch)
    assert {r: status[r] for r in want_status} == want_status
    assert sorted(zip(pairs["start"].tolist(), pairs["end"].tolist(), pairs["cat"].tolist())) == sorted(want_pairs)


def test_row_columns_number_text_tracks_and_read_join_ids() -> None:
    args = [b'{"correlation": 7, "External id": 3}', b"", b'{"correlation": 9}']
    cols = columns_from_rows(
        ["X", "X", "X"], ["a", "b", "c"], ["cpu_op", None, "kernel"], [5, 5, 0], [5, "HCCL", "HCCL"],
        np.array([1, 2, 3]), np.array([1, 1, 1]), [None, None, None], [None, None, None], args, {},
        np.array([0, 2]),
    )
    assert cols.tid.tolist() == [5, -1, -1]  # one id per text, by first appearance
    assert cols.track_names == {(5, -1): "HCCL", (0, -1): "HCCL"}
    assert cols.link["correlation"].tolist() == [7, -1, 9]  # row 1 is not read
    assert cols.link["external_id"].tolist() == [3, -1, -1]
    assert cols.cat.tolist() == ["cpu_op", None, "kernel"]
    assert isinstance(cols.args, pa.LargeBinaryArray) and cols.args[1].as_py() == b""
