"""Damaged values in a torch_npu `.db` export: rows that cannot be used are skipped and counted, not fatal.

Made from the shared AlexNet level0 `.db` (real torch_npu output): a few rows of one table get a NULL, text or
a BLOB where the reader needs a number. The rest of the file must convert, the warning must name the table,
the first row and the column, and the lost events must be counted so that conservation still holds.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import shared
from test_bad_input import cli

DB_RUN = "npu/msinsight_alexnet_dp/db/level0/rank0_ascend_pt"
DB_FILE = "ASCEND_PROFILER_OUTPUT/ascend_pytorch_profiler_0.db"


def _damaged(tmp_path: Path, table: str, column: str, value, rows: int = 3) -> Path:
    run = tmp_path / "rank0_ascend_pt"
    shutil.copytree(shared(DB_RUN), run)
    con = sqlite3.connect(run / DB_FILE)
    con.execute(f'UPDATE "{table}" SET "{column}" = ? WHERE rowid IN '
                f'(SELECT rowid FROM "{table}" ORDER BY rowid LIMIT {rows})', (value,))
    con.commit()
    con.close()
    return run


def _convert(src: Path, out: Path):
    result = cli("convert", src, "-o", out)
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else None
    return result, summary


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    out = tmp_path_factory.mktemp("clean") / "out"
    result, summary = _convert(shared(DB_RUN), out)
    assert result.exit_code == 0, result.output
    return summary


@pytest.mark.parametrize(("table", "column", "value"), [
    ("TASK", "startNs", None),
    ("TASK", "endNs", "soon"),
    ("PYTORCH_API", "startNs", b"\xff\xfe"),
    ("PYTORCH_API", "globalTid", None),
    ("CANN_API", "endNs", 1e300),
])
def test_unusable_rows_are_skipped_and_counted(tmp_path, clean, table, column, value):
    result, summary = _convert(_damaged(tmp_path, table, column, value), tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert f"table {table}: 3 input events skipped" in result.stderr
    assert f"first at row 1, column {column}" in result.stderr
    assert summary["skipped"].get("db_row_with_unusable_value") == 3
    # A .db row is not one chrome event: the events the 3 rows would have made (their flows, plane tasks) are
    # not made either. What is made is conserved, and at least the 3 rows' own events are missing from it.
    assert summary["conserved"]
    assert summary["written_events"] <= clean["written_events"] - 3
    assert clean["input_events"] - 3 * 4 <= summary["input_events"] <= clean["input_events"]


def test_integer_text_in_a_numeric_column_is_read_as_the_number(tmp_path, clean):
    con = sqlite3.connect(f"file:{shared(DB_RUN) / DB_FILE}?mode=ro", uri=True)
    first_end = con.execute('SELECT endNs FROM "TASK" ORDER BY rowid LIMIT 1').fetchone()[0]
    con.close()
    result, summary = _convert(_damaged(tmp_path, "TASK", "endNs", f" {first_end}", rows=1), tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "input events skipped" not in result.stderr
    assert summary["written_events"] == clean["written_events"] and summary["input_events"] == clean["input_events"]


def test_unusable_connection_ids_are_rows_not_used_not_events(tmp_path, clean):
    result, summary = _convert(_damaged(tmp_path, "CONNECTION_IDS", "connectionId", "x1"), tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "table CONNECTION_IDS: 3 rows not used" in result.stderr
    assert "db_row_with_unusable_value" not in summary["skipped"]
    # Those rows pair host ops with queue events and device tasks: only flows can be missing, nothing else.
    assert summary["conserved"] and summary["input_events"] < clean["input_events"]
    lost_flows = clean["trace"]["flows"] - summary["trace"]["flows"]
    assert 0 < lost_flows <= 3 and clean["input_events"] - summary["input_events"] == 2 * lost_flows
