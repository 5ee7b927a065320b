"""`tracekit sql`: one DuckDB view per table, a rank-partitioned table as one view across ranks."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
from click.testing import CliRunner
from conftest import SAMPLES, shared

from tracekit.cli import main
from tracekit.dataset import Dataset
from tracekit.group_members import collectives_table

DLRM = "gpu/param_dlrm_8ranks"


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_one_view_across_ranks_counts_what_the_partitions_hold(converted):
    out, summary = converted(shared(DLRM))
    result = _run("sql", out, "SELECT rank, count(*) AS n FROM kernels GROUP BY rank ORDER BY rank", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["rank"] for r in rows] == list(range(8))
    for r in rows:
        part = list((out / "kernels" / f"rank={r['rank']}").glob("*.parquet"))
        assert r["n"] == sum(pq.ParquetFile(p).metadata.num_rows for p in part) > 0
    assert sum(r["n"] for r in rows) == summary["parquet"]["kernels"]


def test_join_of_views_and_json_args(converted):
    out, _ = converted(shared(DLRM))
    sql = ("SELECT c.rank, count(*) AS n FROM collectives c JOIN ops o ON o.rank = c.rank AND o.row = c.call_row "
           "WHERE o.name = c.name GROUP BY c.rank ORDER BY c.rank")
    rows = json.loads(_run("sql", out, sql, "--format", "json").stdout)
    coll = collectives_table(out / "collectives.parquet").to_pandas()
    assert {r["rank"]: r["n"] for r in rows} == coll.groupby("rank").size().to_dict()
    total = _run("sql", out, "SELECT count(*) AS n FROM events WHERE json_valid(args) OR args = ''", "--format", "csv")
    assert total.stdout.splitlines()[1] == str(Dataset(out).manifest["tables"]["events"]["rows"])


def test_formats_table_csv_json_parquet(converted, tmp_path):
    out, _ = converted(SAMPLES / "cnn" / "prof.json.gz")
    sql = "SELECT name, count(*) AS calls FROM ops GROUP BY name ORDER BY calls DESC, name LIMIT 5"
    table = _run("sql", out, sql)
    assert table.exit_code == 0 and "calls" in table.stdout and "aten::" in table.stdout
    csv = _run("sql", out, sql, "--format", "csv").stdout.splitlines()
    assert csv[0] == "name,calls" and len(csv) == 6
    parquet = tmp_path / "r.parquet"
    assert _run("sql", out, sql, "--format", "parquet", "-o", parquet).exit_code == 0
    frame = pd.read_parquet(parquet)
    assert frame["name"].tolist() == [line.split(",")[0] for line in csv[1:]]
    ops = pd.read_parquet(out / "ops.parquet")
    assert frame["calls"].tolist() == ops["name"].value_counts().loc[frame["name"]].tolist()


def test_sql_errors_name_the_dataset_and_write_nothing(converted, tmp_path):
    out, _ = converted(SAMPLES / "cnn" / "prof.json.gz")
    target = tmp_path / "r.csv"
    bad = _run("sql", out, "SELECT nope FROM kernels", "--format", "csv", "-o", target)
    assert bad.exit_code == 2 and f"{out}: SQL error" in bad.stderr and "views: events" in bad.stderr
    assert not target.exists() and "Traceback" not in bad.output
    raw = _run("sql", SAMPLES / "cnn" / "prof.json.gz", "SELECT 1")
    assert raw.exit_code == 2 and "not a tracekit dataset" in raw.stderr
    assert _run("sql", out, "SELECT 1", "--format", "parquet").exit_code == 2  # parquet needs -o
