"""Damage that Parquet's own checks let through (a flipped byte in a data page found by bench/dataset_fuzz.py: a
dictionary code past the end of its dictionary) and row references outside their table: input errors naming the
file, column and row, for every command that reads the table, not a tracekit bug."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import SAMPLES

from tracekit.cli import main
from tracekit.convert import convert
from tracekit.dataset.table_check import checked
from tracekit.errors import TraceError


def test_a_dictionary_code_past_its_dictionary_is_named(tmp_path):
    names = pa.DictionaryArray.from_arrays(pa.array([0, 1, 0, 7], pa.int32()), pa.array(["a", "b"]), safe=False)
    table = pa.table({"name": names, "x": pa.array([1, 2, 3, 4])})
    with pytest.raises(TraceError, match=r"column 'name', row 3: dictionary code 7 outside 0\.\.1"):
        checked(table, tmp_path / "events.parquet")
    nulls = pa.DictionaryArray.from_arrays(pa.array([0, None, 1], pa.int32()), pa.array(["a", "b"]))
    assert checked(pa.table({"name": nulls}), tmp_path / "events.parquet").num_rows == 3  # nulls are fine
    later = pa.chunked_array([names.slice(0, 2), names.slice(2)])  # the row counts across chunks
    with pytest.raises(TraceError, match="row 3:"):
        checked(pa.table({"name": later}), tmp_path / "events.parquet")


@pytest.fixture(scope="module")
def ranks_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("check") / "ds"
    convert([SAMPLES / "dist_dp_cp"], out)
    return out


@pytest.mark.parametrize("command", [["info"], ["info", "--json"], ["parallel"], ["report", "-o", "REPORT"],
                                     ["sql", "SELECT count(*) FROM events"]])
def test_a_parent_outside_its_partition_is_an_input_error(ranks_dataset, tmp_path, command):
    ds = tmp_path / "ds"
    shutil.copytree(ranks_dataset, ds)
    part = sorted((ds / "events" / "rank=1").glob("*.parquet"))[0]
    table = pq.read_table(part)
    parent = np.array(table["parent"].to_numpy())
    parent[5] = len(parent) + 40
    table = table.set_column(table.column_names.index("parent"), "parent", pa.array(parent))
    pq.write_table(table, part)
    args = [a.replace("REPORT", str(tmp_path / "r.html")) for a in command]
    result = CliRunner().invoke(main, [args[0], str(ds), *args[1:]])
    if command[0] == "sql":  # SQL reads the values as they are: it follows no reference
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2, result.output
    assert str(part) in result.output and "column 'parent', row 5: row reference" in result.output, result.output
    assert not (tmp_path / "r.html").exists()


def test_pandas_metadata_that_is_not_json_is_named(ranks_dataset, tmp_path):
    """A flipped byte in the footer's pandas metadata (found by bench/dataset_fuzz.py seed 8): to_pandas raised
    JSONDecodeError, a 'tracekit bug' from parallel and report."""
    ds = tmp_path / "ds"
    shutil.copytree(ranks_dataset, ds)
    part = sorted((ds / "events" / "rank=0").glob("*.parquet"))[0]
    table = pq.read_table(part)
    text = table.schema.metadata[b"pandas"]
    pq.write_table(table.replace_schema_metadata({b"pandas": text[:40] + b"\x01" + text[41:]}), part)
    for command in (["parallel", str(ds)], ["report", str(ds), "-o", str(tmp_path / "r.html")]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 2, result.output
        assert str(part) in result.output and "pandas metadata is not valid JSON" in result.output, result.output
    assert not (tmp_path / "r.html").exists()


def test_row_references_are_the_event_tables_row_columns():
    """table_check keeps its own copy of the names (it must not import tracekit.table's numpy at import time)."""
    from tracekit.dataset.table_check import ROW_REFERENCES
    from tracekit.table import ROW_COLUMNS

    assert ROW_REFERENCES == ROW_COLUMNS
