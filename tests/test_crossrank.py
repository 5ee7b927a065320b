"""The cross-rank collectives stage reads the rank-partitioned call tables the workers wrote, and gives the same
collectives table as the in-memory build over the same calls; the parent keeps no per-rank call tables."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import shared

from tracekit.cli import main
from tracekit.group_members import collectives_table
from tracekit.inputs import expand_inputs
from tracekit.parallel.collectives import build_collectives
from tracekit.parallel.crossrank import (
    collectives_frame,
    list_parts,
    ranks_text,
    shared_lists,
    write_collectives_from_parts,
    write_part,
)
from tracekit.parallel.scratch import Part
from tracekit.ranks import job_list, run_ranks
from tracekit.writers.collectives import write_collectives

SETS = ["gpu/param_dlrm_8ranks", "npu/msinsight_qwen3_mindspeed"]


def _inputs(rel: str) -> list[Path]:
    path = shared(rel)
    if rel.startswith("npu/"):
        return expand_inputs([str(p) for p in sorted(path.iterdir())])
    return expand_inputs([str(path)])


@pytest.mark.parametrize("rel", SETS)
def test_collectives_from_parts_equal_the_in_memory_build(rel, tmp_path):
    results = run_ranks(job_list(_inputs(rel), tmp_path, parquet=False, chrome=False, splits=False), 1)
    distributed = [r.distributed for r in results]
    assert all(r.collectives is not None for r in results)
    write_collectives(build_collectives([r.collectives for r in results], distributed), tmp_path / "memory.parquet")
    for r in results:
        write_part(r.collectives, tmp_path / "calls", r.rank, r.index)
    rows = write_collectives_from_parts(tmp_path / "calls", distributed, tmp_path / "parts.parquet")
    memory, parts = pq.read_table(tmp_path / "memory.parquet"), pq.read_table(tmp_path / "parts.parquet")
    assert rows == memory.num_rows > 0
    assert parts.schema.remove_metadata().equals(memory.schema.remove_metadata())
    assert parts.equals(memory)
    frame = parts.to_pandas()
    assert frame["group"].notna().all()  # every call's group decided (stated by HCCL, or inferred across ranks)
    assert frame.groupby("rank")["start_ns"].apply(lambda s: s.is_monotonic_increasing).all()


def test_convert_workers_write_calls_and_the_parent_keeps_none(tmp_path):
    paths = _inputs("gpu/param_dlrm_8ranks")
    results = run_ranks(job_list(paths, tmp_path, parquet=False, chrome=False, calls=str(tmp_path / "calls"),
                                 splits=False), 1)
    assert all(r.collectives is None and r.steps is None for r in results)
    parts = list_parts(tmp_path / "calls")
    assert [(i, rank) for i, rank, _p in parts] == [(r.index, r.rank) for r in results]
    assert all(Part(p).num_rows == 8 for _i, _r, p in parts)  # 8 NCCL collectives per rank


def test_convert_leaves_no_scratch_and_parallel_raw_equals_dataset(tmp_path):
    inputs = [str(p) for p in _inputs("npu/msinsight_qwen3_mindspeed")]
    out = tmp_path / "ds"
    assert CliRunner().invoke(main, ["convert", *inputs, "-o", str(out), "--workers", "1"]).exit_code == 0
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != ".tracekit-output"]
    raw = CliRunner().invoke(main, ["parallel", *inputs, "--json", "--workers", "1"])
    ds = CliRunner().invoke(main, ["parallel", str(out), "--json"])
    assert raw.exit_code == ds.exit_code == 0
    assert json.loads(raw.output) == json.loads(ds.output)  # one cross-rank path: same tables, same types
    assert json.loads(ds.output)["by_group"]


def test_shared_lists_share_one_object_per_member_list():
    column = pa.array([[0, 1, 2, 3], None, [0, 1, 2, 3], [0, 2], [0, 1, 2, 3]], pa.list_(pa.int64()))
    out = shared_lists(column)
    assert out == [[0, 1, 2, 3], None, [0, 1, 2, 3], [0, 2], [0, 1, 2, 3]]
    assert out[0] is out[2] is out[4] and out[3] is not out[0]
    assert ranks_text(collectives_frame(pa.table({"group_ranks": column}))["group_ranks"]) == [
        "0,1,2,3", "?", "0,1,2,3", "0,2", "0,1,2,3"]


def test_sixteen_synthetic_ranks_one_world_group(tmp_path):
    """16 ranks made from the 8 dlrm files (rank ids rewritten, as bench/bench_scale.py does): every all_to_all
    is matched in the world group of 16 across ranks, and the member lists read back are one shared object."""
    files = sorted(shared("gpu/param_dlrm_8ranks").glob("*.json.gz"))
    folder = tmp_path / "ranks"
    folder.mkdir()
    for i in range(16):
        with gzip.open(files[i % 8], "rb") as fh:
            doc = orjson.loads(fh.read())
        doc["distributedInfo"] = {**doc.get("distributedInfo", {}), "rank": i, "world_size": 16}
        (folder / f"rank-{i}.json").write_bytes(orjson.dumps(doc))
    out = tmp_path / "ds"
    assert CliRunner().invoke(main, ["convert", str(folder), "-o", str(out), "--workers", "1"]).exit_code == 0
    coll = collectives_frame(collectives_table(out / "collectives.parquet"))
    assert len(coll) == 16 * 8 and sorted(coll["rank"].unique()) == list(range(16))
    assert (coll["group_ranks"].map(len) == 16).all() and (coll["parallel_dim"] == "world").all()
    assert coll["group_from"].str.startswith("inferred").all()
    assert len({id(r) for r in coll["group_ranks"]}) == 1


def test_worker_start_method(monkeypatch):
    """spawn by default; TRACEKIT_WORKER_START=forkserver starts workers from a fork server that preloads
    modules, and the pool still gives results in job order."""
    from tracekit.executors import LocalPool, worker_context

    monkeypatch.delenv("TRACEKIT_WORKER_START", raising=False)
    assert worker_context().get_start_method() == "spawn"
    monkeypatch.setenv("TRACEKIT_WORKER_START", "forkserver")
    assert worker_context(["tracekit.executors"]).get_start_method() == "forkserver"
    assert LocalPool(2, preload=["tracekit.executors"]).run(abs, [-3, -1, -2]) == [3, 1, 2]
