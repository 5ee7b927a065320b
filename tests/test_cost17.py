"""cost17 (issue 15, per-rank convert cost), on real rank partitions and traces:
- the module rows file, written with one C encoder call and numeric columns taken through numpy, holds what the
  stdlib's piece-by-piece `json.dump` of `to_pylist` rows held, byte for byte;
- rank partitions with v2 data pages read back the same in pyarrow and DuckDB;
- a rank's module partition made from the module columns directly is the DataFrame way's table (values, types,
  pandas metadata), and shapes the direct way does not handle or got wrong go the pandas way;
- bench/rank_cost.py's `--tree` switches the readers (tracekit.converters, installed from the top-level converters/
  folder) with the rest of tracekit, so that an old-vs-new timing compares both trees' readers."""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ROOT, SAMPLES, shared

from tracekit.writers.module_rows import _python_values, module_rows_paths, write_module_rows

RANK_SETS = ["gpu/param_dlrm_8ranks", SAMPLES / "dist_pp_dp", SAMPLES / "dist_ep_dp"]


def _same(a: object, b: object) -> bool:
    """Equal values of the same Python type (NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def _rank_outputs(converted, rel: str | Path) -> tuple[Path, list[Path]]:
    out, _ = converted(rel if isinstance(rel, Path) else shared(rel))
    parts = sorted((out / "modules").rglob("part-*.parquet"))
    assert parts, f"{rel}: no module partitions written"
    return out, parts


@pytest.mark.parametrize("rel", RANK_SETS, ids=str)
def test_rows_file_holds_the_partition_rows_as_json_dump_wrote_them(converted, rel: str | Path) -> None:
    """Each rank's rows file: the rows of its modules partition, value for value and type for type, and the text
    the former writer made (`json.dump` of the `to_pylist` rows, lists not tuples) byte for byte."""
    out, parts = _rank_outputs(converted, rel)
    checked_rows = 0
    for part in parts:
        rank = int(part.parent.name.removeprefix("rank="))
        index = int(part.stem.removeprefix("part-"))
        rows_path = module_rows_paths(out, rank, index)[1]
        text = rows_path.read_text()
        document = json.loads(text)
        table = pq.read_table(part, columns=document["columns"])
        want = [list(row) for row in zip(*(table.column(c).to_pylist() for c in document["columns"]))]
        assert len(document["rows"]) == table.num_rows == len(want)
        for got_row, want_row in zip(document["rows"], want):
            assert all(_same(g, w) for g, w in zip(got_row, want_row)), (rows_path, got_row, want_row)
        old = io.StringIO()
        json.dump({**document, "rows": want}, old, separators=(",", ":"))  # the former writer
        assert text == old.getvalue()
        checked_rows += table.num_rows
    assert checked_rows > 0


def test_python_values_is_to_pylist_on_every_module_column(converted) -> None:
    """`_python_values` gives to_pylist's values and types for each column of real module tables (ints, floats with
    NaN, nullable columns, text), and for the cases the numpy path must leave to to_pylist (nulls, float16)."""
    columns = 0
    for rel in RANK_SETS:
        _, parts = _rank_outputs(converted, rel)
        table = pq.read_table(parts[0])
        for name in table.column_names:
            got, want = _python_values(table.column(name)), table.column(name).to_pylist()
            assert len(got) == len(want) and all(_same(g, w) for g, w in zip(got, want)), name
            columns += 1
    assert columns > 20
    made = {
        "int_with_null": pa.chunked_array([pa.array([1, None, 3], pa.int64())]),
        "float_nan_and_null": pa.chunked_array([pa.array([1.5, float("nan"), None])]),
        "float32": pa.chunked_array([pa.array([0.1, 2.5], pa.float32())]),
        "uint64_big": pa.chunked_array([pa.array([2**64 - 1, 0], pa.uint64())]),
        "two_chunks": pa.chunked_array([pa.array([1, 2]), pa.array([3])]),
        "empty": pa.chunked_array([pa.array([], pa.float64())]),
    }
    for name, values in made.items():
        got, want = _python_values(values), values.to_pylist()
        assert len(got) == len(want) and all(_same(g, w) for g, w in zip(got, want)), name


def test_write_module_rows_from_file_and_from_written_table_agree(tmp_path: Path, converted) -> None:
    """The rows file made from the Arrow table just written and the one made by reading the Parquet file back are
    the same text (the rank path passes the table; other callers read the file)."""
    from conftest import processed_trace

    from tracekit.modules.table import module_table
    from tracekit.writers.parquet import frame_to_arrow

    processed = processed_trace("gpu/param_dlrm_8ranks")
    arrow = frame_to_arrow(module_table(processed.table, processed.modules))
    texts = []
    for written in (arrow, None):
        stage = tmp_path / ("given" if written is not None else "read")
        parquet_path = module_rows_paths(stage, 0, 0)[0]
        parquet_path.parent.mkdir(parents=True)
        pq.write_table(arrow.drop_columns(["rank"]), parquet_path)
        rows = write_module_rows(processed.table, stage, 0, 0, written)
        assert rows == arrow.num_rows > 0
        texts.append(module_rows_paths(stage, 0, 0)[1].read_text())
    assert texts[0] == texts[1]


def test_rank_cost_tree_switches_the_readers(tmp_path: Path) -> None:
    """A rank_cost child for `--tree old=TREE` imports tracekit AND tracekit.converters from TREE (a copy of this
    checkout's sources with a marker in its readers), and converts a real rank with them."""
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "tracekit", tree / "tracekit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "converters", tree / "converters", ignore=shutil.ignore_patterns("__pycache__"))
    with (tree / "converters" / "__init__.py").open("a") as fh:
        fh.write("\nCOST17_MARKER = 'tree copy'\n")
    code = (
        "import os, sys, runpy; from pathlib import Path\n"
        f"ns = runpy.run_path({str(ROOT / 'bench' / 'rank_cost.py')!r})\n"
        "ns['use_tree_converters'](Path(os.environ['RANK_COST_TREE']))\n"
        "import tracekit, tracekit.converters as c, tracekit.converters.chrome_json as j\n"
        "from tracekit.converters import read_trace\n"
        f"t = read_trace({str(sorted(shared('gpu/param_dlrm_8ranks').glob('*.json.gz'))[0])!r})\n"
        "print(tracekit.__file__); print(c.__file__); print(j.__file__); print(c.COST17_MARKER); print(len(t.events))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tree), "RANK_COST_TREE": str(tree)}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert Path(lines[0]).is_relative_to(tree / "tracekit")
    assert Path(lines[1]).is_relative_to(tree / "converters")
    assert Path(lines[2]).is_relative_to(tree / "converters")
    assert lines[3] == "tree copy"
    assert int(lines[4]) > 1000


@pytest.mark.parametrize("rel", RANK_SETS[:2], ids=str)
def test_partitions_with_v2_data_pages_read_the_same_in_pyarrow_and_duckdb(converted, rel: str | Path) -> None:
    """Rank partitions are written with data pages of format version 2 (less CPU, same size); pyarrow reads back the
    table that was written (the golden check compares it with the version 1 files) and DuckDB, which `tracekit sql`
    queries them with, reads the same values in every column of every table of a real rank."""
    import duckdb

    out, _ = _rank_outputs(converted, rel)
    checked = 0
    for table in ("events", "kernels", "ops", "steps", "modules"):
        part = sorted((out / table).rglob("part-*.parquet"))[0]
        ref = pq.read_table(part)
        got = duckdb.sql(f"SELECT * FROM read_parquet('{part}')").arrow()
        got = got.read_all() if hasattr(got, "read_all") else got
        assert got.num_rows == ref.num_rows
        for name in ref.column_names:
            a, b = got[name].to_pylist(), ref[name].to_pylist()
            assert all(_same(x, y) or (x is None and y is None) for x, y in zip(a, b)), (part, name)
            checked += 1
    assert checked > 60


def test_partition_options_ask_for_v2_data_pages() -> None:
    from tracekit.writers.partition import partition_options

    options = partition_options(pa.schema([("ts_ns", pa.int64()), ("name", pa.dictionary(pa.int32(), pa.string()))]))
    assert options["data_page_version"] == "2.0"
    assert options["use_dictionary"] == ["name"] and options["write_statistics"] == ["ts_ns"]


MODULE_TRACES = ["gpu/param_dlrm_8ranks", "gpu/hta/nccl_data.json.gz",
                 "cpu/gpt", "cpu/dist_tp_ddp"]


@pytest.mark.parametrize("rel", MODULE_TRACES)
def test_module_columns_to_arrow_is_the_frame_way(rel: str, monkeypatch) -> None:
    """A rank's module partition made from the module columns directly is the table (values, types, pandas
    metadata) that the module DataFrame gives, on real traces: the first call per shape checks it against the frame,
    the next ones (the direct way) still give it."""
    from conftest import processed_trace

    from tracekit.modules.table import module_columns, module_frame, module_table
    from tracekit.writers import direct_arrow
    from tracekit.writers.parquet import frame_to_arrow

    monkeypatch.setattr(direct_arrow, "_CHECKED", {})
    processed = processed_trace(rel)
    columns = module_columns(processed.table, processed.modules)
    assert columns is not None
    want = frame_to_arrow(module_table(processed.table, processed.modules))
    assert want.num_rows > 0
    for _ in range(3):
        got = direct_arrow.columns_to_arrow(columns, lambda: module_frame(columns))
        assert got.schema.equals(want.schema, check_metadata=True)
        assert got.equals(want)
    # the direct way is taken for these shapes (not a silent fall-back to pandas on every rank)
    assert list(direct_arrow._CHECKED.values()) == [want.schema.metadata]


def test_columns_to_arrow_falls_back_where_the_direct_way_differs(monkeypatch) -> None:
    """A column the direct way does not handle (Python floats with None, a Series on another index) and a shape
    whose check failed go the pandas way, and give what pandas gives."""
    import numpy as np
    import pandas as pd

    from tracekit.writers import direct_arrow
    from tracekit.writers.parquet import frame_to_arrow

    monkeypatch.setattr(direct_arrow, "_CHECKED", {})
    shifted = pd.Series(["a", "b", "c"], index=[2, 1, 0])
    for columns in ({"n": np.arange(3), "floats": [1.5, None, 2.0]}, {"n": np.arange(3), "s": shifted}):
        got = direct_arrow.columns_to_arrow(columns, lambda c=columns: pd.DataFrame(c))
        want = frame_to_arrow(pd.DataFrame(columns))
        assert got.equals(want) and got.schema.equals(want.schema, check_metadata=True)
    assert direct_arrow._CHECKED == {}  # neither shape was taken the direct way

    real = direct_arrow._column
    monkeypatch.setattr(direct_arrow, "_column", lambda v: (pa.array([9, 9, 9]), "int64") if isinstance(v, list)
                        else real(v))  # a direct way that gets the list column wrong
    columns = {"n": np.arange(3), "depth": [0, 1, 2]}
    for _ in range(2):
        got = direct_arrow.columns_to_arrow(columns, lambda: pd.DataFrame(columns))
        assert got.column("depth").to_pylist() == [0, 1, 2]
    assert list(direct_arrow._CHECKED.values()) == [None]  # the check failed: this shape stays on the pandas way
