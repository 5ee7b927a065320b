"""stream22: the narrow table of all ranks' calls converted to pandas with each column's arrow buffers freed as it is
converted (crossrank.narrow_calls). It must be the frame the plain conversion gave: the same columns, dtypes and
values, on the shared multi-rank sets and on partitions whose schemas differ (a group column all null in one rank,
text in another; a column missing from some ranks)."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from tracekit.parallel import crossrank, scratch
from tracekit.parallel.scratch import Part

SETS = ("gpu/param_dlrm_8ranks", "sample_traces/dist_pp_dp", "sample_traces/dist_ep_dp",
        "sample_traces/dist_dp_cp_async", "npu/msinsight_qwen3_mindspeed", "cpu/dist_tp_ddp")


def _plain(parts) -> pd.DataFrame:
    """narrow_calls' frame as the plain conversion made it (the partitions' narrow columns gathered, one to_pandas)."""
    tables = []
    for _index, rank, path in parts:
        file = Part(path)
        if not file.num_rows:
            continue
        table = file.read([c for c in file.schema.names if c not in crossrank.WIDE_ONLY])
        tables.append(table.add_column(0, "rank", pa.array([rank] * file.num_rows, pa.int64())))
    return crossrank._pandas(crossrank._concat(tables))


def _same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    assert got.dtypes.to_dict() == want.dtypes.to_dict()
    pd.testing.assert_frame_equal(got, want)
    for col in got.columns:  # missing text stays None in object columns, as the plain conversion gives it
        if got[col].dtype == object:
            assert [v is None for v in got[col]] == [v is None for v in want[col]], col


@pytest.mark.parametrize("rel", SETS)
def test_narrow_table_is_the_plain_conversion(rel, rank_calls, tmp_path, monkeypatch):
    results, _dist = rank_calls(rel)
    for i in range(3 * len(results)):  # more partitions than a gathering holds, with a small gathering
        scratch.write_part(results[i % len(results)].collectives, tmp_path / "c", i, i)
    parts = scratch.list_parts(tmp_path / "c")
    monkeypatch.setattr(crossrank, "GATHER", 5)
    got, used = crossrank.narrow_calls(parts)
    _same(got, _plain(parts))
    assert len(used) == sum(1 for r in results for _ in range(3) if len(r.collectives))


def test_narrow_table_of_partitions_with_different_schemas(rank_calls, tmp_path):
    """A rank whose calls name their group (text) beside ranks whose calls do not (all-null columns), and a rank
    without the HCCL-only column: unified as concat_tables unifies them, then converted."""
    results, _dist = rank_calls("gpu/param_dlrm_8ranks")
    frame = results[0].collectives
    named = frame.assign(group="0", group_desc="default_pg", group_from="event args")
    scratch.write_part(frame, tmp_path / "c", 0, 0)
    scratch.write_part(named, tmp_path / "c", 1, 1)
    scratch.write_part(frame.assign(hccl_wait_ns=pd.array([5] * len(frame), dtype="Int64")), tmp_path / "c", 2, 2)
    scratch.write_part(frame.iloc[:0], tmp_path / "c", 3, 3)
    parts = scratch.list_parts(tmp_path / "c")
    got, _used = crossrank.narrow_calls(parts)
    _same(got, _plain(parts))
    assert got["group"].tolist()[len(frame):2 * len(frame)] == ["0"] * len(frame)
