"""rank10: cheaper per-rank convert work with the same outputs. Each faster path is checked against the way it
replaced (pandas inference, from_pandas, json.loads) on real ranks: the shared DLRM ranks, the recorded gloo
`sample_traces/dist_*` ranks and the Ascend Qwen3 ranks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import rank_set_paths
from tracekit.converters import read_trace

import tracekit.parallel.collectives as coll_mod
from tracekit.inputs import with_name_rank
from tracekit.parallel.collectives import collective_calls
from tracekit.parallel.crossrank import finished_ranks, write_part
from tracekit.parallel.groups import group_evidence
from tracekit.pipeline import process
from tracekit.rankrecords import RankRecords
from tracekit.ranks import job_list, run_ranks
from tracekit.writers.collectives import collectives_arrow
from tracekit.writers.parquet import frame_to_arrow

RANK_INPUTS = [
    "gpu/param_dlrm_8ranks",  # NCCL kernels, inferred groups
    "sample_traces/dist_dp_cp_async",  # gloo: calls linked to their gloo work, async link sets
    "sample_traces/dist_ep_dp",
    "npu/msinsight_qwen3_mindspeed",  # HCCL ops merged into their host calls
]


_paths = rank_set_paths


def _processed(path: Path):
    table = with_name_rank(read_trace(path), path)
    table.events["source_index"] = 0
    return process(table).table


@pytest.mark.parametrize("rel", RANK_INPUTS)
def test_calls_frame_has_the_dtypes_pandas_infers_from_the_rows(rel, monkeypatch):
    """collective_calls builds its frame column by column; pandas' own inference from the row dicts (what it
    did before) gives the same values and dtypes, and the calls come sorted by start."""
    seen: list[tuple[list, list[str]]] = []
    real = coll_mod._rows_frame

    def spy(rows, names):
        seen.append(([dict(r) for r in rows], list(names)))
        return real(rows, names)

    monkeypatch.setattr(coll_mod, "_rows_frame", spy)
    calls_seen = 0
    for path in _paths(rel)[:2]:
        calls, _skipped = collective_calls(_processed(path))
        calls_seen += len(calls)
        assert calls["start_ns"].is_monotonic_increasing and isinstance(calls.index, pd.RangeIndex)
        assert calls["bytes"].dtype == "Int64" and calls["exec_link_set"].dtype == "Int64"
    assert calls_seen > 0 and seen
    for rows, names in seen:
        made = real(rows, names)
        want = pd.DataFrame(rows, columns=names)
        for col in ("bytes", "peer", "exec_thread"):
            want[col] = want[col].astype("Int64")
            if not rows:  # no calls: pandas' own empty frame, cast by collective_calls as before
                made[col] = made[col].astype("Int64")
        # exec_link_set is set by the gloo linking; _elems/_exec (linking helpers, dropped) stay Python objects
        compared = [c for c in names if c not in ("exec_link_set", "_elems", "_exec")]
        pd.testing.assert_frame_equal(made[compared], want[compared], check_dtype=True)
        for helper in ("_elems", "_exec"):
            assert [None if pd.isna(v) else int(v) for v in made[helper]] == [
                None if pd.isna(v) else int(v) for v in want[helper]]
        assert all(made.at[i, "group_ranks"] is rows[i]["group_ranks"] for i in range(len(rows)))  # no copies
        if rows:  # a value of another type than the column's (numpy int, number as text): pandas' own inference
            odd = [dict(r) for r in rows]
            odd[0]["start_ns"], odd[-1]["module_path"] = np.int64(odd[0]["start_ns"]), 7
            pd.testing.assert_frame_equal(real(odd, names), pd.DataFrame(odd, columns=names), check_dtype=True)


@pytest.mark.parametrize("rel", ["gpu/param_dlrm_8ranks", "sample_traces/dist_dp_cp_async"])
def test_finished_ranks_convert_as_from_pandas(rel, tmp_path):
    """Each rank's finished collectives (frame made from the column arrays) turn into the arrow table that
    from_pandas makes of them, member lists as list<int64>; call partitions are uncompressed scratch files."""
    results = run_ranks(job_list(_paths(rel), tmp_path, parquet=False, chrome=False, splits=False), 1)
    for r in results:
        write_part(r.collectives, tmp_path / "calls", r.rank, r.index)
    part = next((tmp_path / "calls").rglob("part-*"))  # scratch: an uncompressed Arrow IPC file (rank12)
    assert part.suffix == ".arrow" and pa.ipc.open_file(pa.py_buffer(part.read_bytes())).read_all().num_rows
    frames = list(finished_ranks(tmp_path / "calls", group_evidence([r.distributed for r in results])))
    assert len(frames) == len(results)
    for frame in frames:
        assert isinstance(frame.index, pd.RangeIndex) and frame["start_ns"].is_monotonic_increasing
        got = collectives_arrow(frame)
        lists = [None if m is None else [int(x) for x in m] for m in frame["group_ranks"]]
        want = pa.Table.from_pandas(frame.assign(group_ranks=lists), preserve_index=False)
        assert got.schema.equals(want.schema, check_metadata=True)
        assert got.equals(want)


def test_parquet_metadata_follows_the_column_index_dtype():
    """The cached pandas metadata is told apart by the column index's dtype (object or str), which from_pandas
    writes into column_indexes: frames that differ only there, asked in turn, each get their own."""
    plain = pd.DataFrame({"x": [1, 2], "t": ["a", None]})
    objects = plain.copy()
    objects.columns = pd.Index(["x", "t"], dtype=object)
    for frame in (plain, objects, plain, objects):
        want = pa.Table.from_pandas(frame, preserve_index=False)
        assert frame_to_arrow(frame).schema.equals(want.schema, check_metadata=True)
    lists = pd.DataFrame({"g": pd.Series([[0, 1], None], dtype=object), "n": [1, 2]})
    replaced = frame_to_arrow(lists, replace={"g": np.array([[2], None], dtype=object)})
    want = pa.Table.from_pandas(lists.assign(g=[[2], None]), preserve_index=False)
    assert replaced.equals(want) and replaced.schema.equals(want.schema, check_metadata=True)


def test_records_read_back_what_json_wrote(tmp_path):
    """The spill file is read with msgspec, and with json.loads where msgspec refuses what json.dumps wrote."""

    class Result:
        def __init__(self, index, summary):
            self.index, self.rank, self.rank_from, self.path, self.worker_pid = index, index, "test", "p", 1
            self.summary, self.distributed, self.devices, self.input, self.source = summary, {}, [], {}, {}
            self.skipped_collectives = {}

    odd = [{"a": 1.5e-7, "b": -0.0, "big": 2**70, "text": "é\u0000\n线程"}, {"nan": float("nan")},
           {"inf": float("inf")}, {"lone": "\ud800"}, {}]
    records = RankRecords(tmp_path / "r.jsonl")
    for i, summary in enumerate(odd):
        records.add(Result(i, summary))
    back = list(records)
    assert [r["index"] for r in back] == list(range(len(odd)))
    assert back[0]["summary"] == odd[0] and back[2]["summary"] == odd[2] and back[3]["summary"] == odd[3]
    assert math.isnan(back[1]["summary"]["nan"])
    assert list(records.field("rank")) == list(range(len(odd)))
    assert json.dumps(back[0]["summary"]) == json.dumps(odd[0])


def test_empty_collectives_table_keeps_its_schema():
    """A trace without collective calls writes the empty table as before (pandas makes the empty member-list
    column float64: `double` in collectives.parquet and in the manifest's schema)."""
    from tracekit.parallel.collectives import build_collectives

    empty = build_collectives([], [])
    got = collectives_arrow(empty)
    want = pa.Table.from_pandas(empty.assign(group_ranks=[]), preserve_index=False)
    assert got.schema.equals(want.schema, check_metadata=True) and got.num_rows == 0
    assert got.schema.field("group_ranks").type == pa.float64()


@pytest.mark.parametrize("rel", ["gpu/param_dlrm_8ranks", "sample_traces/dist_ep_dp", "npu/msinsight_qwen3_mindspeed"])
def test_processed_small_table_is_the_concat_one(rel, monkeypatch):
    """pipeline.process builds a small table from the column arrays; the concat way (large tables) gives the
    same frame: columns, order, dtypes, values."""
    import tracekit.pipeline as pipeline_mod

    path = _paths(rel)[0]
    fast = _processed(path)
    assert len(fast.events) < pipeline_mod.SMALL_TABLE_ROWS
    monkeypatch.setattr(pipeline_mod, "SMALL_TABLE_ROWS", 0)
    slow = _processed(path)
    pd.testing.assert_frame_equal(fast.events, slow.events, check_dtype=True, check_column_type=True)
    assert fast.args.equals(slow.args)
