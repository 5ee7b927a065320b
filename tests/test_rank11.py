"""rank11: the cross-rank stage finishes each rank's collectives in arrow (no pandas frame per rank), with the same
tables as the pandas way; checked on the shared DLRM ranks, recorded gloo `sample_traces/dist_*` ranks and the Ascend
Qwen3 ranks (HCCL columns), and on a job where two inputs claim the same rank."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from conftest import ROOT, rank_set_paths

import tracekit.parallel.crossrank as crossrank
from tracekit.group_members import collectives_table
from tracekit.parallel.groups import group_evidence
from tracekit.parallel.scratch import Part, write_table
from tracekit.ranks import job_list, run_ranks
from tracekit.writers.collectives import collectives_arrow

RANK_INPUTS = [
    "gpu/param_dlrm_8ranks",  # NCCL kernels, inferred groups
    "sample_traces/dist_dp_cp_async",  # gloo: calls linked to their gloo work, async link sets
    "sample_traces/dist_ep_dp",
    "sample_traces/dist_pp_dp",
    "npu/msinsight_qwen3_mindspeed",  # HCCL ops merged into their host calls, HCCL columns
]


_paths = rank_set_paths


def _call_parts(paths: list[Path], folder: Path) -> list[dict]:
    """Convert the ranks (calls to `folder`, as convert does); their distributedInfo as the parent gives it."""
    results = run_ranks(job_list(paths, folder / "stage", parquet=False, chrome=False, calls=str(folder / "calls"),
                                 splits=False), 1)
    return group_evidence([r.distributed for r in results])


def _same(got: list[pa.Table], want: list[pa.Table]) -> None:
    assert len(got) == len(want) > 0
    for g, w in zip(got, want):
        assert g.schema.equals(w.schema), (g.schema, w.schema)
        assert g.equals(w)
    assert got[0].schema.equals(want[0].schema, check_metadata=True)  # the file's pandas metadata is the first's


@pytest.mark.parametrize("rel", RANK_INPUTS)
def test_finished_tables_are_the_frames_as_arrow(rel, tmp_path, monkeypatch):
    """Every rank's arrow table is what collectives_arrow makes of the pandas way's frame (types, values, order;
    the first one with its metadata), and all but the first rank are built without that frame."""
    distributed = _call_parts(_paths(rel), tmp_path)
    want = [collectives_arrow(f) for f in crossrank.finished_ranks(tmp_path / "calls", distributed)]
    ways: list[int] = []
    real = crossrank._finished_frame

    def counted(*args, **kwargs):
        ways.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(crossrank, "_finished_frame", counted)
    got = list(crossrank.finished_tables(tmp_path / "calls", distributed))
    _same(got, want)
    assert len(ways) == 1  # the first rank only: its pandas metadata is the file's


def test_collectives_file_is_the_pandas_ways(tmp_path, monkeypatch):
    """collectives.parquet written from the arrow tables equals the file written from the frames (schema with its
    pandas metadata, content), on the DLRM ranks."""
    distributed = _call_parts(_paths("gpu/param_dlrm_8ranks"), tmp_path)
    crossrank.write_collectives_from_parts(tmp_path / "calls", distributed, tmp_path / "new.parquet")
    monkeypatch.setattr(crossrank, "finished_tables", lambda folder, dist, _registry=None: (
        collectives_arrow(f) for f in crossrank.finished_ranks(folder, dist)))
    crossrank.write_collectives_from_parts(tmp_path / "calls", distributed, tmp_path / "old.parquet")
    new, old = collectives_table(tmp_path / "new.parquet"), collectives_table(tmp_path / "old.parquet")
    assert new.num_rows > 0
    assert new.schema.equals(old.schema, check_metadata=True) and new.equals(old)


def test_rank_of_two_inputs_and_unsorted_calls(tmp_path):
    """Two inputs that claim the same rank (two partitions in one rank folder) go the pandas way; a rank whose calls
    are out of start order is sorted (stable) as the frame is."""
    paths = _paths("gpu/param_dlrm_8ranks")
    distributed = _call_parts(paths, tmp_path)
    calls = tmp_path / "calls"
    first = sorted((calls / "rank=0").glob("part-*"))[0]
    shutil.copyfile(first, calls / "rank=1" / f"part-99999{first.suffix}")  # rank 1 now has two partitions
    second = sorted((calls / "rank=2").glob("part-*"))[0]
    table = Part(second).read()
    write_table(table.take(list(reversed(range(table.num_rows)))), second)  # calls in reverse start order
    want = [collectives_arrow(f) for f in crossrank.finished_ranks(calls, distributed)]
    got = list(crossrank.finished_tables(calls, distributed))
    _same(got, want)
    starts = got[2]["start_ns"].to_pylist()
    assert starts == sorted(starts) and len(starts) > 1


def test_wide_columns_of_other_types_go_the_pandas_way():
    """A wide column that the pandas round trip would change (an integer with nulls that pandas reads as float, a
    dictionary) is not taken as read."""
    ints = pa.table({"call_row": pa.array([1, None], pa.int64())})
    assert not crossrank._read_as_is(ints, {"columns": [{"name": "call_row", "numpy_type": "float64"}]})
    assert crossrank._read_as_is(ints, {"columns": [{"name": "call_row", "numpy_type": "Int64"}]})
    assert crossrank._read_as_is(pa.table({"call_row": pa.array([1, 2], pa.int64())}), None)
    coded = pa.table({"name": pa.array(["a", "b"]).dictionary_encode()})
    assert not crossrank._read_as_is(coded, None)


STEP_INPUTS = ["gpu/param_dlrm_8ranks", "sample_traces/dist_pp_dp", "sample_traces/gpt"]


@pytest.mark.parametrize("rel", STEP_INPUTS)
def test_step_table_frame_is_the_dict_frame(rel, monkeypatch):
    """step_table's frame (made from its column arrays) is the one pd.DataFrame of the columns made before: values,
    dtypes, column index, and the Parquet schema with its pandas metadata."""
    import pandas as pd
    from tracekit.converters import read_trace

    import tracekit.steps as steps_mod
    from tracekit.inputs import with_name_rank
    from tracekit.pipeline import process
    from tracekit.writers.parquet import frame_to_arrow

    def old_way(columns):
        return pd.DataFrame({k: pd.Series(v, dtype=object) if isinstance(v, np.ndarray) and v.dtype.kind == "O" else v
                             for k, v in columns.items()})

    rows = 0
    for path in _paths(rel)[:3]:
        table = with_name_rank(read_trace(path), path)
        table.events["source_index"] = 0
        events = process(table).table.events
        got = steps_mod.step_table(events)
        with monkeypatch.context() as m:
            m.setattr(steps_mod, "_frame", old_way)
            want = steps_mod.step_table(events)
        pd.testing.assert_frame_equal(got, want, check_dtype=True, check_column_type=True, check_index_type=True)
        assert got.columns.dtype == want.columns.dtype
        assert frame_to_arrow(got).schema.equals(pa.Table.from_pandas(want, preserve_index=False).schema,
                                                 check_metadata=True)
        rows += len(got)
    assert rows > 0


ODD_VALUES = [{}, [], {"a": []}, {"a": {}}, (1, 2), "s", 3, 1.0, None, {"é\n\"": "ü\t"}, {1: 2}, {"a": {None: 2}},
              [1, 2.5, None, True, False, float("nan"), float("inf"), -float("inf"), 1e-05, 1e300, 10**30, -0.0],
              {"k": [{"x": [1, [2, []]], "y": {"z": ()}}], "deep": [[[[{"q": "\u2028"}]]]]}]


@pytest.mark.parametrize("indent", [1, 2])
def test_dumps_indented_is_json_dumps(indent):
    """The indented encoder writes json.dumps' text (indent, nesting level, escapes, NaN/Infinity, key types left
    to json.dumps) and raises what json.dumps raises."""
    import json

    from tracekit.rankrecords import dumps_indented

    for value in ODD_VALUES:
        for level in (0, 2):
            want = json.dumps(value, indent=indent).replace("\n", "\n" + " " * (indent * level))
            assert dumps_indented(value, indent, level) == want
    with pytest.raises(TypeError):
        dumps_indented({"a": [object()]}, indent)


def test_summary_and_manifest_are_json_dumps_text(tmp_path):
    """summary.json and tracekit.json of a multi-rank convert (streamed per rank) are json.dumps' text of the
    whole object, byte for byte (sample_traces/dist_ep_dp: process and thread names, devices, inputs)."""
    import json

    from tracekit.convert import convert

    out = tmp_path / "out"
    convert([ROOT / "sample_traces" / "dist_ep_dp"], out, workers=1)
    summary = (out / "summary.json").read_text()
    assert summary == json.dumps(json.loads(summary), indent=2)
    manifest = (out / "tracekit.json").read_text()
    loaded = json.loads(manifest)
    assert len(loaded["sources"]) > 1 and manifest == json.dumps(loaded, indent=1)
