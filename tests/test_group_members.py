"""Member lists stored once (group_members.parquet), put back by every reader; format-2 datasets still read."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import SAMPLES

import tracekit
from tracekit.cli import main
from tracekit.dataset.manifest import MANIFEST
from tracekit.errors import TraceError
from tracekit.group_members import ID, LIST, collectives_table, members_path
from tracekit.parallel import crossrank, scratch
from tracekit.parallel.collectives import build_collectives
from tracekit.parallel.groups import group_evidence
from tracekit.writers.collectives import collectives_arrow

DLRM = "gpu/param_dlrm_8ranks"


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_a_world_group_of_64_ranks_is_stored_once(rank_calls, tmp_path):
    """DLRM copied to 64 ranks, every call inferred into the world group: each call names the list by id, the list
    of 64 ranks is stored once, and the table read back is the in-memory one."""
    results, _dist = rank_calls(DLRM)
    frames = []
    for i in range(64):
        frames.append(results[i % len(results)].collectives.assign(rank=i))
        scratch.write_part(frames[-1], tmp_path / "calls", i, i)
    dist = group_evidence([{**results[i % len(results)].distributed, "rank": i, "world_size": 64}
                           for i in range(64)])
    out = tmp_path / "collectives.parquet"
    rows = crossrank.write_collectives_from_parts(tmp_path / "calls", dist, out)
    stored = pq.read_schema(out)
    assert LIST not in stored.names and stored.field(ID).type == pa.int32()
    members = pq.read_table(members_path(out))
    assert members[LIST].to_pylist() == [list(range(64))] and members[ID].to_pylist() == [0]
    assert pq.read_table(out, columns=[ID])[ID].to_pylist() == [0] * rows
    memory = build_collectives(frames, dist)
    assert rows == len(memory) == 64 * 8
    assert collectives_table(out).equals(collectives_arrow(memory))
    frame = crossrank.read_collectives(out)
    assert len({id(m) for m in frame[LIST]}) == 1  # one shared list object for every call


@pytest.fixture(scope="module")
def pp_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("pp") / "ds"
    result = CliRunner().invoke(main, ["convert", str(SAMPLES / "dist_pp_dp"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_every_reader_gives_the_lists_back(pp_dataset):
    """API, SQL view and the parallel reader give each call its member list; the manifest lists `group_ranks`."""
    frame = crossrank.read_collectives(pp_dataset / "collectives.parquet")
    lists = [tuple(m) if m is not None else None for m in frame[LIST]]
    assert len(set(lists)) > 2  # send/recv pairs, data-parallel groups: several lists
    t = tracekit.open(pp_dataset)
    assert [tuple(m) if m is not None else None for m in t.collectives[LIST]] == lists
    via_sql = t.sql("SELECT group_ranks FROM collectives")[LIST]
    assert [tuple(m) if m is not None else None for m in via_sql] == lists
    stored = t.sql("SELECT group_ranks FROM group_members ORDER BY group_members_id")[LIST]
    assert sorted(tuple(m) for m in stored) == sorted({m for m in lists if m is not None})
    columns = {c["name"]: c["type"] for c in t.dataset.manifest["tables"]["collectives"]["columns"]}
    assert columns[LIST].startswith("list<") and ID not in columns
    assert t.dataset.read("collectives", columns=["rank", LIST])[LIST].map(
        lambda m: tuple(m) if m is not None else None).tolist() == lists


def _as_format_2(dataset, target):
    """The dataset as format 2 wrote it: each call's list in collectives.parquet, no group_members table."""
    shutil.copytree(dataset, target)
    table = collectives_table(target / "collectives.parquet")
    pq.write_table(table, target / "collectives.parquet", compression="zstd")
    (target / "group_members.parquet").unlink()
    manifest = json.loads((target / MANIFEST).read_text())
    manifest["format_version"] = 2
    del manifest["tables"]["group_members"]
    (target / MANIFEST).write_text(json.dumps(manifest))


def test_a_format_2_dataset_reads_as_before(pp_dataset, tmp_path):
    old = tmp_path / "old"
    _as_format_2(pp_dataset, old)
    new_json, old_json = (_run("parallel", ds, "--json") for ds in (pp_dataset, old))
    assert new_json.exit_code == old_json.exit_code == 0, old_json.output
    assert json.loads(new_json.stdout) == json.loads(old_json.stdout)
    pd.testing.assert_frame_equal(tracekit.open(old).collectives, tracekit.open(pp_dataset).collectives)
    sql = "SELECT rank, collective, group_ranks FROM collectives"
    pd.testing.assert_frame_equal(tracekit.open(old).sql(sql), tracekit.open(pp_dataset).sql(sql))


def test_member_lists_gone_or_damaged_are_input_errors(pp_dataset, tmp_path):
    gone = tmp_path / "gone"
    shutil.copytree(pp_dataset, gone)
    (gone / "group_members.parquet").unlink()
    for args in (("parallel", gone), ("sql", gone, "SELECT count(*) FROM collectives"), ("report", gone, "-o",
                                                                                         tmp_path / "r.html")):
        result = _run(*args)
        assert result.exit_code == 2, (args[0], result.output)
        assert "group_members.parquet" in result.output and "Traceback" not in result.output, result.output
    assert not (tmp_path / "r.html").exists()
    with pytest.raises(TraceError, match=r"group_members\.parquet"):
        tracekit.open(gone).collectives  # noqa: B018
    bad = tmp_path / "bad"
    shutil.copytree(pp_dataset, bad)
    table = pq.read_table(bad / "collectives.parquet")
    ids = np.array(table[ID].fill_null(0).to_numpy())
    ids[3] = 99
    pq.write_table(table.set_column(table.column_names.index(ID), ID, pa.array(ids, pa.int32())),
                   bad / "collectives.parquet")
    result = _run("parallel", bad)
    assert result.exit_code == 2 and "collectives.parquet" in result.output, result.output
    assert "row 3: group_members_id 99 names no member list" in result.output
    result = _run("sql", bad, "SELECT rank, group_ranks FROM collectives")  # not a silent NULL
    assert result.exit_code == 2 and "group_members_id 99 names no member list" in result.output, result.output
    assert _run("sql", bad, "SELECT count(*) FROM collectives").exit_code == 0  # the lists not asked for
