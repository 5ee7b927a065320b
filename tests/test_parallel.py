"""Multi-rank input, merged traces, process groups and collectives, checked on the real distributed traces."""

from __future__ import annotations

import gzip
import json
import os
import re
from collections import Counter

import chrome_checks
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import shared

from tracekit.cli import main
from tracekit.convert import convert
from tracekit.group_members import collectives_table
from tracekit.inputs import expand_inputs, is_npu_folder, rank_from_name
from tracekit.parallel.collectives import bus_factor, collective_kind
from tracekit.parallel.groups import parallel_dim
from tracekit.writers.rank_traces import rebase


def _raw(path) -> dict:
    data = path.read_bytes()
    return json.loads(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)


def _count(path, name: str) -> int:
    return sum(1 for e in _raw(path)["traceEvents"] if e.get("name") == name and e.get("ph") == "X")


@pytest.fixture(scope="module")
def ranks_out(tmp_path_factory):
    """convert(folder) -> (outdir, summary, collectives), each folder converted once."""
    cache: dict[str, tuple] = {}

    def run(rel: str):
        if rel not in cache:
            out = tmp_path_factory.mktemp(rel.replace("/", "_"))
            summary = convert([shared(rel)], out)
            cache[rel] = (out, summary, collectives_table(out / "collectives.parquet").to_pandas())
        return cache[rel]

    return run


# -- inputs -------------------------------------------------------------------------------------------------


def test_folder_expands_to_rank_files_and_skips_non_traces():
    folder = shared("cpu/dist_cp_tp")
    with pytest.warns(UserWarning, match="run_log.json: not a trace"):
        paths = expand_inputs([folder])
    assert [p.name for p in paths] == [f"rank-{i}.json.gz" for i in range(4)]


def test_glob_and_natural_order(tmp_path):
    for i in (10, 2, 1):
        (tmp_path / f"rank-{i}.json").write_text('{"traceEvents": []}')
    assert [p.name for p in expand_inputs([str(tmp_path / "rank-*.json")])] == [
        "rank-1.json", "rank-2.json", "rank-10.json"]


def test_npu_folder_is_one_input(tmp_path):
    npu = tmp_path / "rank0_ascend_pt"
    (npu / "ASCEND_PROFILER_OUTPUT").mkdir(parents=True)
    (npu / "ASCEND_PROFILER_OUTPUT" / "trace_view.json").write_text("[]")
    plain = tmp_path / "run"
    (plain / "ASCEND_PROFILER_OUTPUT").mkdir(parents=True)
    assert is_npu_folder(npu) and is_npu_folder(plain)
    assert expand_inputs([npu]) == [npu]
    assert expand_inputs([tmp_path]) == [npu, plain]


def test_rank_from_file_name():
    assert rank_from_name("traces/rank-3.json.gz") == 3
    assert rank_from_name("worker7_step_12.1694128201553.pt.trace.json.gz") == 7
    assert rank_from_name("rank_2_ascend_pt") == 2
    assert rank_from_name("prof.json.gz") is None


def test_rank_from_file_name_is_stated(tmp_path):
    """A trace without distributedInfo.rank takes the rank of its file name, and the summary says so."""
    src = _raw(shared("cpu/dist_tp_ddp/rank-1.json.gz"))
    del src["distributedInfo"]
    for i in (5, 6):
        (tmp_path / f"rank-{i}.json").write_text(json.dumps(src))
    summary = convert([tmp_path / "rank-5.json", tmp_path / "rank-6.json"], tmp_path / "out", parquet=False)
    assert summary["ranks"] == [5, 6]
    assert all(s["rank_from"].startswith("file name") for s in summary["sources"])


# -- merged multi-rank trace --------------------------------------------------------------------------------


def test_dlrm_merged_trace_has_8_rank_processes_and_no_collisions(ranks_out):
    out, summary, _ = ranks_out("gpu/param_dlrm_8ranks")
    assert summary["conserved"] and summary["ranks"] == list(range(8))
    doc = chrome_checks.load_trace(out / "trace.json")
    assert chrome_checks.check_trace(doc) == []
    names = {e["pid"]: e["args"]["name"] for e in doc["traceEvents"]
             if e.get("ph") == "M" and e["name"] == "process_name"}
    ranks_of_pid = {pid: int(re.match(r"rank (\d+) · ", n).group(1)) for pid, n in names.items()}
    assert set(ranks_of_pid.values()) == set(range(8))
    # Each rank has its own host and GPU processes; no pid is shared by two ranks.
    assert all(sum(1 for p, r in ranks_of_pid.items() if r == rank and "GPU" in names[p]) == 1 for rank in range(8))
    # Flow ids: each id has exactly one start and one end, and both ends lie in the same rank.
    ends: dict[tuple, list] = {}
    for e in doc["traceEvents"]:
        if e.get("ph") in ("s", "f"):
            ends.setdefault((e["cat"], e["id"]), []).append((e["ph"], ranks_of_pid[e["pid"]]))
    assert ends and all(sorted(p for p, _ in v) == ["f", "s"] and len({r for _, r in v}) == 1 for v in ends.values())
    # One clock: every event lies inside the span of the input traces.
    base = doc["baseTimeNanoseconds"]
    span = summary["time_span_ns"]
    ts = [round(float(e["ts"]) * 1000) + base for e in doc["traceEvents"] if e.get("ph") == "X"]
    assert span["start"] <= min(ts) and max(ts) <= span["end"]


def test_dlrm_partitions_by_rank(ranks_out):
    out, summary, _ = ranks_out("gpu/param_dlrm_8ranks")
    events = pd.read_parquet(out / "events")
    assert sorted(int(r) for r in events["rank"].unique()) == list(range(8))
    assert len(events) == summary["parquet"]["events"]
    for rank in range(8):
        assert len(list((out / "events" / f"rank={rank}").glob("*.parquet"))) == 1


def test_eight_ranks_use_several_worker_processes(tmp_path):
    summary = convert([shared("gpu/param_dlrm_8ranks")], tmp_path / "out", parquet=False, workers=4)
    assert summary["workers"]["processes"] == 4
    assert os.getpid() not in summary["workers"]["pids"]


def test_default_workers_are_the_machine_cores(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEKIT_IN_PROCESS_BELOW", "0")  # as for inputs above the small-job size
    summary = convert([shared("gpu/param_dlrm_8ranks")], tmp_path / "out", parquet=False)
    assert summary["workers"]["processes"] == min(8, len(os.sched_getaffinity(0)))


def test_small_inputs_convert_in_process_by_default(ranks_out, tmp_path):
    """8 rank files of 0.6 MB in all: worker start-up would cost more than the work, so no worker is started;
    the tables are the same as on a pool of workers."""
    out, summary, coll = ranks_out("gpu/param_dlrm_8ranks")
    assert summary["workers"] == {**summary["workers"], "processes": 1, "pids": [os.getpid()]}
    pooled = convert([shared("gpu/param_dlrm_8ranks")], tmp_path / "pool", workers=2)
    assert pooled["workers"]["processes"] == 2
    pd.testing.assert_frame_equal(collectives_table(tmp_path / "pool" / "collectives.parquet").to_pandas(), coll)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "pool" / "events"), pd.read_parquet(out / "events"))


def test_rebase_is_exact():
    body = b'{"ph":"X","pid":1,"tid":1,"name":"a","ts":0.001,"dur":1.000},{"ph":"i","pid":1,"tid":1,"ts":7.999}'
    shifted = json.loads(b"[" + rebase(body, 3_600_000_000_001) + b"]")
    assert [e["ts"] for e in shifted] == [3600000000.002, 3600000007.999 + 0.001]
    assert shifted[0]["dur"] == 1.0


# -- collectives: dist_tp_ddp --------------------------------------------------------------------------------


def test_tp_ddp_groups_and_labels(ranks_out):
    """Per rank: 48 TP all-reduces labelled TP, 4 DDP bucket all-reduces labelled DP, groups with their ranks."""
    _, _, coll = ranks_out("cpu/dist_tp_ddp")
    for rank in range(4):
        src = shared(f"cpu/dist_tp_ddp/rank-{rank}.json.gz")
        pgs = {g["pg_desc"]: g["ranks"] for g in _raw(src)["distributedInfo"]["pg_config"]}
        mine = coll[coll["rank"] == rank]
        tp = mine[mine["name"] == "_c10d_functional::all_reduce"]
        assert len(tp) == _count(src, "_c10d_functional::all_reduce") == 48
        assert set(tp["parallel_dim"]) == {"TP"} and set(tp["group_desc"]) == {"mesh_tp"}
        assert all(list(r) == pgs["mesh_tp"] for r in tp["group_ranks"])
        ddp = mine[mine["name"] == "c10d::allreduce_"]
        # c10d::allreduce_ nested in the functional all-reduce is the same collective: counted once.
        assert len(ddp) == _count(src, "c10d::allreduce_") - len(tp) == 4
        assert set(ddp["parallel_dim"]) == {"DP"} and set(ddp["group_desc"]) == {"mesh_dp"}
        assert all(list(r) == pgs["mesh_dp"] for r in ddp["group_ranks"])
        assert mine["group_from"].str.startswith("inferred").all()  # gloo events do not name their group
        assert (mine["bytes"] > 0).all() and (mine["busbw"] > 0).all()
        assert ((mine["exposed_ns"] >= 0) & (mine["exposed_ns"] <= mine["dur_ns"])).all()


def test_tp_ddp_tp_all_reduces_in_attention_and_mlp(ranks_out):
    """All TP all-reduces, forward (RowwiseParallel proj, fc2) and backward (ColwiseParallel q/k/v, fc1
    input grads), sit in attention and MLP modules (backward through tracekit.modules attribution)."""
    _, _, coll = ranks_out("cpu/dist_tp_ddp")
    tp = coll[coll["parallel_dim"] == "TP"]
    assert len(tp) == 4 * 48
    assert tp["module_path"].notna().all()
    assert tp["module_path"].str.contains(r"/(CausalSelfAttention|MLP)_\d+(/|$)").all()


# -- collectives: dist_cp_tp --------------------------------------------------------------------------------


def test_cp_tp_ring_send_recv_tp_and_gradient_all_reduces(ranks_out):
    _, _, coll = ranks_out("cpu/dist_cp_tp")
    log = {r["rank"]: r for r in json.loads(shared("cpu/dist_cp_tp/run_log.json").read_text())["ranks"]}
    for rank in range(4):
        src = shared(f"cpu/dist_cp_tp/rank-{rank}.json.gz")
        mine = coll[coll["rank"] == rank]
        cp_ranks = log[rank]["cp_group_ranks"]
        for name, kind in (("c10d::send", "send"), ("c10d::recv_", "recv")):
            ops = mine[mine["name"] == name]
            assert len(ops) == _count(src, name) == 32
            assert set(ops["collective"]) == {kind} and set(ops["parallel_dim"]) == {"CP"}
            assert all(list(r) == cp_ranks for r in ops["group_ranks"])
            # The peer is the other cp rank (group-local index), and bytes come from the K/V block dims.
            assert {cp_ranks[p] for p in ops["peer"]} == set(cp_ranks) - {rank}
            assert (ops["bytes"] == 2 * 8 * 4 * 64 * 32 * 4).all()
            assert ops["module_path"].notna().all()
            assert ops["module_path"].str.contains("CPCausalSelfAttention").all()
        tp = mine[mine["name"] == "_c10d_functional::all_reduce"]
        assert len(tp) == 48 and set(tp["parallel_dim"]) == {"TP"}
        assert all(list(r) == log[rank]["tp_group_ranks"] for r in tp["group_ranks"])
        grads = mine[mine["name"] == "c10d::allreduce_"]
        assert len(grads) == _count(src, "c10d::allreduce_") - 48 == 138
        assert set(grads["group_desc"]) == {"mesh_cp"} and set(grads["parallel_dim"]) == {"CP"}
        assert all(list(r) == cp_ranks for r in grads["group_ranks"])
        assert grads["group_from"].str.startswith("inferred").all()


# -- collectives: GPU traces ----------------------------------------------------------------------------------


def test_dlrm_every_nccl_collective_of_every_rank(ranks_out):
    _, summary, coll = ranks_out("gpu/param_dlrm_8ranks")
    for path in sorted(shared("gpu/param_dlrm_8ranks").glob("*.json.gz")):
        raw = _raw(path)
        rank = raw["distributedInfo"]["rank"]
        kernels = [e for e in raw["traceEvents"] if e.get("cat") == "kernel" and e["name"].startswith("nccl")]
        mine = coll[coll["rank"] == rank]
        assert len(mine) == len(kernels)
        kinds = Counter("all_reduce" if "AllReduce" in k["name"] else "all_to_all" for k in kernels)
        assert Counter(mine["collective"]) == kinds
        # Bytes where the trace records sizes (nccl:* / c10d op input dims), else empty with the reason.
        assert (mine["bytes"].notna() | mine["bytes_from"].str.startswith("no sizes recorded")).all()
        assert (mine["bytes"].isna() == mine["busbw"].isna()).all()
    assert summary["collectives"]["rows"] == len(coll)


@pytest.mark.parametrize("rel", ["gpu/tracelens/b200/eager_trace.json.gz", "gpu/hta/nccl_data.json.gz"])
def test_collectives_carry_group_name_and_ranks_from_the_trace(rel, converted):
    path = shared(rel)
    out, _ = converted(path)
    coll = collectives_table(out / "collectives.parquet").to_pandas()
    stated = [e["args"] for e in _raw(path)["traceEvents"] if e.get("name") == "record_param_comms"
              and "Process Group Name" in e.get("args", {})]
    named = coll[coll["group_from"] == "event args"]
    assert len(named) == len(stated) > 0
    size = {"Float": 4, "BFloat16": 2, "Long": 8}
    want = Counter((str(a["Process Group Name"]), tuple(json.loads(a["Process Group Ranks"])),
                    max(a["In msg nelems"], a["Out msg nelems"]) * size[a["dtype"]]) for a in stated)
    assert Counter(zip(named["group"], named["group_ranks"].map(tuple), named["bytes"])) == want
    for _, row in named.iterrows():
        n = len(row["group_ranks"])
        assert row["busbw"] == pytest.approx(row["algbw"] * bus_factor(row["collective"], n))


# -- labels and conventions -----------------------------------------------------------------------------------


def test_parallel_dim_labels():
    assert parallel_dim("mesh_tp", (0, 1), 4) == ("TP", False)
    assert parallel_dim("mesh_dp_shard", (0, 2), 4) == ("DP", False)
    assert parallel_dim("TENSOR_MODEL_PARALLEL_GROUP", (0, 1), 8) == ("TP", False)
    assert parallel_dim("EXPERT_MODEL_PARALLEL_GROUP", (0, 1), 8) == ("EP", False)
    assert parallel_dim("PIPELINE_MODEL_PARALLEL_GROUP", (0, 4), 8) == ("PP", False)
    assert parallel_dim("CONTEXT_PARALLEL_GROUP", (0, 2), 8) == ("CP", False)
    assert parallel_dim("default_pg", tuple(range(8)), 8) == ("world", False)
    assert parallel_dim("undefined", (4, 5, 6, 7), 8) == ("TP", True)
    assert parallel_dim("undefined", (1, 3, 5, 7), 8) == ("DP", True)
    assert parallel_dim("undefined", tuple(range(8)), 8) == ("world", True)


def test_collective_names_and_bus_factors():
    assert [collective_kind(x) for x in ("allreduce_", "_allgather_base", "reduce_scatter_tensor",
                                         "alltoall_base_", "all_to_all_single", "recv_", "wait_tensor")] == [
        "all_reduce", "all_gather", "reduce_scatter", "all_to_all", "all_to_all", "recv", None]
    assert bus_factor("all_reduce", 4) == 1.5 and bus_factor("all_gather", 4) == 0.75
    assert bus_factor("send", 2) == 1.0


# -- tracekit parallel ---------------------------------------------------------------------------------------


def test_parallel_cli_tables_and_html(tmp_path):
    html = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["parallel", str(shared("cpu/dist_cp_tp")), "--json", "--html", str(html)])
    assert result.exit_code == 0, result.output
    tables = json.loads(result.output[result.output.index("{"):])
    dims = {r["parallel_dim"] for r in tables["by_group"]}
    assert dims == {"CP", "TP"}
    assert {r["rank"] for r in tables["by_rank"]} == {0, 1, 2, 3}
    for r in tables["by_rank"]:
        assert r["compute_ns"] + r["exposed_comm_ns"] + r["idle_ns"] == r["dur_ns"]
    assert {r["step"] for r in tables["stragglers"]} == {2, 3}
    modules = [r for r in tables["by_module"] if r["module_path"] != "(no module)"]
    assert {r["parallel_dim"] for r in modules} == {"CP", "TP"}
    assert "<canvas id='rank-split'" in html.read_text()
