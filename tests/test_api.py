"""The Python API: tracekit.open on a dataset or raw traces, lazy tables, module_tree, sql, compare, parallel."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
from click.testing import CliRunner
from conftest import ROOT, SAMPLES, shared

import tracekit
from tracekit.cli import main

DLRM = "gpu/param_dlrm_8ranks"


def test_import_tracekit_is_cheap():
    heavy = "('pandas', 'duckdb', 'pyarrow', 'distributed')"
    code = f"import sys, tracekit; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_open_a_dataset_loads_tables_lazily(converted):
    out, summary = converted(shared(DLRM))
    t = tracekit.open(out)
    assert t.ranks == list(range(8)) and "kernels" not in t.__dict__
    kernels = t.kernels
    assert "kernels" in t.__dict__ and "events" not in t.__dict__  # one table, not all
    assert len(kernels) == summary["parquet"]["kernels"] and sorted(kernels["rank"].unique()) == list(range(8))
    assert len(t.events) == summary["parquet"]["events"]
    assert sorted(t.events["source_index"].unique()) == list(range(8))  # each rank's input position
    assert len(t.collectives) == summary["parquet"]["collectives"]
    assert list(t.table("ops", ["name"], ranks=[2]).columns) == ["name"]
    assert t.stale is False


def test_sql_and_module_tree(converted):
    src = SAMPLES / "gpt" / "prof.json.gz"
    out, _ = converted(src)
    t = tracekit.open(out)
    by_kind = t.sql("SELECT kind, count(*) AS n FROM events GROUP BY kind")
    assert dict(zip(by_kind["kind"], by_kind["n"])) == t.events["kind"].value_counts()[lambda s: s > 0].to_dict()
    tree = t.module_tree()
    cli = json.loads(CliRunner().invoke(main, ["modules", str(src), "--format", "json"]).stdout)
    assert tree["module_path"].tolist() == [r["module_path"] for r in cli]
    assert tree["share"].notna().any()


def test_open_raw_trace_converts_once_into_the_cache(tmp_path):
    cache = tmp_path / "cache"
    t = tracekit.open(SAMPLES / "cnn" / "prof.json.gz", cache=cache)
    assert t.path == cache and (cache / "tracekit.json").is_file()
    stamp = (cache / "tracekit.json").stat().st_mtime_ns
    again = tracekit.open(SAMPLES / "cnn" / "prof.json.gz", cache=cache)
    assert (cache / "tracekit.json").stat().st_mtime_ns == stamp  # reused, not converted again
    pd.testing.assert_frame_equal(again.ops, pd.read_parquet(cache / "ops.parquet"))
    assert (t.ops["name"] == "aten::conv2d").sum() == 4  # 2 Conv2d layers x 2 profiled steps


def test_compare_and_parallel_return_the_cli_tables(converted, tmp_path):
    base, target = SAMPLES / "gpt" / "prof.json.gz", shared("cpu/gpt/prof_stack_modules.json.gz")
    cmp = tracekit.compare(tracekit.open(converted(base)[0]), converted(target)[0])
    assert CliRunner().invoke(main, ["compare", str(base), str(target), "-o", str(tmp_path / "c")]).exit_code == 0
    for name in ("modules", "ops", "steps"):
        getattr(cmp, name).to_parquet(tmp_path / f"api_{name}.parquet", index=False)  # as the CLI writes it
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / f"api_{name}.parquet"),
                                      pd.read_parquet(tmp_path / "c" / f"compare_{name}.parquet"))
    out, _ = converted(shared(DLRM))
    tables = tracekit.parallel(tracekit.open(out))
    cli = json.loads(CliRunner().invoke(main, ["parallel", str(shared(DLRM)), "--json"]).stdout)
    assert set(tables) == set(cli)
    for name, frame in tables.items():
        assert json.loads(frame.to_json(orient="records")) == cli[name]
    assert set(tables["by_rank"]["rank"]) == set(range(8))


def test_the_example_script_runs(converted):
    out, _ = converted(SAMPLES / "gpt" / "prof.json.gz")
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "notebook_tour.py"), str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "top ops by total time" in result.stdout and "cpu_op" in result.stdout and "steps: [" in result.stdout


def test_open_without_cache_uses_a_folder_of_its_own(tmp_path):
    import gc

    src = SAMPLES / "cnn" / "prof.json.gz"
    a, b = tracekit.open(src), tracekit.open(src)
    assert a.path != b.path and len(a.kernels) == len(b.kernels)
    folder = a.path.parent
    del a
    gc.collect()
    assert not folder.exists() and b.path.exists() and len(b.ops) > 0
