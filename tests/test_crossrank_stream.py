"""The cross-rank collectives stage keeps the parent's memory flat in the number of ranks (issue 15 items 4, 6):
ranks whose calls state their group are labelled one at a time; where groups must be inferred across ranks, the
per-call state is small (one object per distinct reason, an overlap index of slice bounds). Real ranks: the shared
param_dlrm_8ranks and the recorded sample_traces/dist_ep_dp (gloo, EP and DP groups)."""

from __future__ import annotations

import gc
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import ROOT, shared

from tracekit.inputs import expand_inputs
from tracekit.parallel import crossrank
from tracekit.parallel.call_groups import _Index, _signatures
from tracekit.parallel.collectives import build_collectives, label_calls
from tracekit.parallel.crossrank import list_parts, write_collectives_from_parts, write_part
from tracekit.parallel.groups import group_evidence, groups_from_ranks
from tracekit.ranks import group_table, job_list, run_ranks
from tracekit.writers.collectives import write_collectives

SETS = {"dlrm": lambda: shared("gpu/param_dlrm_8ranks"), "ep_dp": lambda: ROOT / "sample_traces" / "dist_ep_dp"}


@pytest.fixture(scope="module", params=sorted(SETS))
def ranks(request, tmp_path_factory):
    """(per-rank call tables, distributedInfo of each rank) of a real multi-rank set."""
    paths = expand_inputs([str(SETS[request.param]())])
    tmp = tmp_path_factory.mktemp("ranks")
    results = run_ranks(job_list(paths, tmp, parquet=False, chrome=False, splits=False), 1)
    return [r.collectives for r in results], [r.distributed for r in results]


def _stated(calls: list[pd.DataFrame], distributed: list[dict]) -> list[pd.DataFrame]:
    """The calls with the groups inferred across ranks written in as if their events named them."""
    found = build_collectives(calls, distributed).set_index(["rank", "call_row"])
    out = []
    for frame in calls:
        labels = found.loc[list(zip(frame["rank"], frame["call_row"]))]
        assert labels["group"].notna().all()  # every call of these sets is decided
        stated = frame.copy()
        stated["group"] = labels["group"].to_numpy()
        stated["group_desc"] = labels["group_desc"].to_numpy()
        stated["group_ranks"] = pd.Series([list(r) for r in labels["group_ranks"]], index=frame.index, dtype=object)
        stated["group_from"] = "event args"
        out.append(stated)
    return out


def test_calls_that_name_their_group_are_labelled_rank_by_rank(ranks, tmp_path, monkeypatch):
    calls, distributed = ranks
    stated = _stated(calls, distributed)
    write_collectives(build_collectives(stated, distributed), tmp_path / "memory.parquet")
    for i, frame in enumerate(stated):
        write_part(frame, tmp_path / "calls", int(frame["rank"].iloc[0]), i)

    def refuse(*_args, **_kwargs):
        raise AssertionError("the table of all calls was built although every call names its group")

    monkeypatch.setattr(crossrank, "narrow_calls", refuse)
    monkeypatch.setattr(crossrank, "label_calls", refuse)
    rows = write_collectives_from_parts(tmp_path / "calls", distributed, tmp_path / "parts.parquet")
    memory, parts = pq.read_table(tmp_path / "memory.parquet"), pq.read_table(tmp_path / "parts.parquet")
    assert rows == memory.num_rows == sum(len(f) for f in calls) > 0
    assert parts.schema.equals(memory.schema, check_metadata=True)
    assert parts.equals(memory)
    frame = parts.to_pandas()
    assert (frame["group_from"] == "event args").all()
    assert frame["parallel_dim"].notna().all()  # each named group's dimension found (world, EP, DP)


def test_a_call_without_its_group_sends_the_stage_back_to_inference(ranks, tmp_path, monkeypatch):
    calls, distributed = ranks
    stated = _stated(calls, distributed)
    stated[-1].loc[stated[-1].index[0], ["group", "group_ranks", "group_from"]] = None  # one call names nothing
    for i, frame in enumerate(stated):
        write_part(frame, tmp_path / "calls", int(frame["rank"].iloc[0]), i)
    used = []
    monkeypatch.setattr(crossrank, "label_calls", lambda narrow, dist: used.append(len(narrow)) or label_calls(
        narrow, dist))
    write_collectives_from_parts(tmp_path / "calls", distributed, tmp_path / "parts.parquet")
    assert used == [sum(len(f) for f in calls)]
    frame = pq.read_table(tmp_path / "parts.parquet").to_pandas()
    undecided = frame[frame["group_from"] != "event args"]
    assert len(undecided) == 1 and undecided["group_from"].iloc[0].startswith(("inferred", "undecided", "unknown"))


def _copies(calls_dir: Path, n: int, out: Path, source_ranks: int) -> list[dict]:
    """n ranks' call partitions copied round robin from `calls_dir` (the folder holds the rank)."""
    parts = list_parts(calls_dir)
    for i in range(n):
        _index, _rank, path = parts[i % source_ranks]
        target = crossrank.part_path(out, i, i)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return [{"rank": i, "world_size": n} for i in range(n)]


def _python_peak(folder: Path, distributed: list[dict], out: Path) -> int:
    write_collectives_from_parts(folder, distributed, out)  # warm: imports and caches
    gc.collect()
    tracemalloc.start()
    try:
        write_collectives_from_parts(folder, distributed, out)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_of_named_groups_does_not_grow_with_ranks(ranks, tmp_path, monkeypatch):
    """Python objects at the peak of the stage: each added rank (8 calls) costs less than 6 KB (its path and
    position, and pandas garbage not yet collected: measured 2.5 KB; the table of all calls with group inference
    took 14 KB a rank). Finished rows are held up to a batch (BATCH_BYTES, made small here so that both runs fill
    batches)."""
    monkeypatch.setattr(crossrank, "BATCH_BYTES", 32 << 10)
    calls, distributed = ranks
    stated = _stated(calls, distributed)
    for frame in stated:  # one world group of any size: the copies below are ranks of a larger world
        frame["group_ranks"] = None
        frame["group"] = frame["group_desc"] = "default_pg"
    for i, frame in enumerate(stated):
        write_part(frame, tmp_path / "calls", int(frame["rank"].iloc[0]), i)
    small = _copies(tmp_path / "calls", 8, tmp_path / "c8", len(stated))
    large = _copies(tmp_path / "calls", 64, tmp_path / "c64", len(stated))
    peak8 = _python_peak(tmp_path / "c8", small, tmp_path / "o8.parquet")
    peak64 = _python_peak(tmp_path / "c64", large, tmp_path / "o64.parquet")
    assert pq.read_metadata(tmp_path / "o64.parquet").num_rows == 8 * pq.read_metadata(tmp_path / "o8.parquet").num_rows
    assert peak64 - peak8 < (64 - 8) * 6_000, (peak8, peak64)


def test_inference_reasons_are_one_object_each(ranks):
    calls, distributed = ranks
    narrow = pd.concat(calls, ignore_index=True)
    labelled = label_calls(narrow, distributed)
    texts = labelled["group_from"].tolist()
    assert labelled["group_from"].dtype == object
    assert len({id(t) for t in texts}) == len(set(texts)) < len(texts)


def test_overlap_index_answers_as_a_scan_of_the_calls(ranks):
    calls, _distributed = ranks
    table = pd.concat(calls, ignore_index=True)
    table = table.assign(_sig=_signatures(table), _end=table["start_ns"] + table["dur_ns"])
    index = _Index(table, tolerance_ns=0)
    rng = np.random.default_rng(15)
    lo, hi = int(table["start_ns"].min()), int(table["_end"].max())
    checked = 0
    for (rank, sig), group in table.groupby(["rank", "_sig"], sort=False):
        starts = rng.integers(lo, hi, 20)
        ends = starts + rng.integers(0, (hi - lo) // 20 + 1, 20)
        got = index.overlaps(int(rank), sig, starts, ends)
        s, e = group["start_ns"].to_numpy(), group["_end"].to_numpy()
        want = [bool(((s <= b) & (e >= a)).any()) for a, b in zip(starts.tolist(), ends.tolist())]
        assert got.tolist() == want
        for a, b in zip(starts.tolist(), ends.tolist()):
            rows = index.overlapping(int(rank), sig, a, b)
            assert sorted(rows.tolist()) == sorted(group.index[(s <= b) & (e >= a)].tolist())
            checked += len(rows)
    assert checked > 0
    assert not index.overlaps(-1, ("all_reduce", 1, -1), np.array([lo]), np.array([hi])).any()


@pytest.mark.parametrize("case", ["dist_ep_dp", "dist_dp_cp", "dist_pp_dp"])
def test_group_evidence_holds_each_group_once_and_gives_the_same_groups(case, tmp_path):
    """Each rank's distributedInfo lists every group it is in (the world group on all ranks): the parent keeps
    each distinct entry once, and the groups found from it are those found from every rank's list."""
    paths = expand_inputs([str(ROOT / "sample_traces" / case)])
    results = run_ranks(job_list(paths, tmp_path, parquet=False, chrome=False, splits=False), 1)
    distributed = [r.distributed for r in results]
    calls = build_collectives([r.collectives for r in results], distributed)
    evidence = group_evidence(iter(distributed))
    listed = [pg for d in distributed for pg in d["pg_config"]]
    distinct = {(pg["pg_name"], tuple(pg["ranks"])) for pg in listed}
    assert len(evidence) == 1 and len(evidence[0]["pg_config"]) == len(distinct) < len(listed)
    assert evidence[0]["world_size"] == len(results)
    assert groups_from_ranks(evidence, calls) == groups_from_ranks(distributed, calls)
    assert group_table(evidence, calls) == group_table(distributed, calls)
