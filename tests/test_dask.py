"""Per-rank work on a real Dask cluster (LocalCluster, 2 worker processes) gives the same dataset as the local pool."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import shared

import tracekit
from tracekit.cli import main
from tracekit.dataset import Dataset

TABLES = ("events", "kernels", "ops", "steps", "modules", "collectives", "group_members")


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl:
        yield cl


def _same_tables(a, b) -> None:
    da, db = Dataset(a), Dataset(b)
    assert da.tables == db.tables == list(TABLES)
    for name in TABLES:
        left, right = da.read(name), db.read(name)
        assert len(left) == da.manifest["tables"][name]["rows"]
        pd.testing.assert_frame_equal(left, right, obj=name)
    assert da.manifest["inputs"] == db.manifest["inputs"] and da.manifest["ranks"] == db.manifest["ranks"]


def test_dask_client_converts_tp_ddp_like_the_local_pool(cluster, converted, tmp_path):
    from distributed import Client

    local, _ = converted(shared("cpu/dist_tp_ddp"))
    with Client(cluster) as client:
        t = tracekit.open(shared("cpu/dist_tp_ddp"), cache=tmp_path / "dask", client=client)
        assert sorted(client.scheduler_info()["workers"]) and len(client.scheduler_info()["workers"]) == 2
    _same_tables(t.path, local)
    assert t.ranks == [0, 1, 2, 3] and len(t.collectives) > 0
    assert json.loads((t.path / "summary.json").read_text())["conserved"]


def test_cli_dask_scheduler_converts_dlrm_like_the_local_pool(cluster, converted, tmp_path):
    local, local_summary = converted(shared("gpu/param_dlrm_8ranks"))
    out = tmp_path / "dask"
    result = CliRunner().invoke(main, ["convert", str(shared("gpu/param_dlrm_8ranks")), "-o", str(out),
                                       "--executor", "dask", "--scheduler", cluster.scheduler_address])
    assert result.exit_code == 0, result.output
    _same_tables(out, local)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["input_events"] == local_summary["input_events"] and summary["ranks"] == list(range(8))
    trace = json.loads((out / "trace.json").read_text())
    assert len(trace["traceEvents"]) == len(json.loads((local / "trace.json").read_text())["traceEvents"])


def test_parallel_on_dask_matches_the_local_pool(cluster):
    args = ["parallel", str(shared("gpu/param_dlrm_8ranks")), "--json"]
    on_dask = CliRunner().invoke(main, [*args, "--scheduler", cluster.scheduler_address])
    assert on_dask.exit_code == 0, on_dask.output
    assert json.loads(on_dask.stdout) == json.loads(CliRunner().invoke(main, [*args, "--workers", "1"]).stdout)


def test_unreachable_scheduler_and_missing_address_are_clear(tmp_path):
    src = str(shared("gpu/param_dlrm_8ranks"))
    missing = CliRunner().invoke(main, ["convert", src, "-o", str(tmp_path / "a"), "--executor", "dask"])
    assert missing.exit_code == 2 and "--scheduler" in missing.output and not (tmp_path / "a").exists()
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        gone = CliRunner().invoke(main, ["convert", src, "-o", str(tmp_path / "b"), "--scheduler", "tcp://127.0.0.1:9"])
    assert gone.exit_code == 2 and "cannot reach the Dask scheduler" in gone.stderr and not (tmp_path / "b").exists()
