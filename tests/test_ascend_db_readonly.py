"""Reading a torch_npu `.db` export leaves the profiler folder as it was: the WAL-mode database is opened immutable,
so SQLite creates no `-wal`/`-shm` files beside it; a write-ahead log with content is still read. A dataset's
fingerprint of a folder input leaves out SQLite's side files, so reading the input again never makes it stale."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from click.testing import CliRunner
from conftest import shared

from tracekit.cli import main
from tracekit.dataset.manifest import file_sha256

LEVEL1 = "npu/msinsight_alexnet_dp/db/level1/rank0_ascend_pt"


@pytest.fixture
def profiler_folder(tmp_path):
    folder = tmp_path / "rank0_ascend_pt"
    shutil.copytree(shared(LEVEL1), folder)
    for side in folder.rglob("*.db-*"):
        side.unlink()
    return folder


def _listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_reading_creates_no_sqlite_side_files(profiler_folder, tmp_path):
    before = _listing(profiler_folder)
    result = CliRunner().invoke(main, ["convert", str(profiler_folder), "-o", str(tmp_path / "ds")])
    assert result.exit_code == 0, result.output
    assert _listing(profiler_folder) == before
    info = CliRunner().invoke(main, ["info", str(tmp_path / "ds")])
    assert info.exit_code == 0 and "stale" not in info.output


def test_side_files_do_not_change_the_fingerprint(profiler_folder):
    before = file_sha256(profiler_folder)
    db = next(profiler_folder.rglob("ascend_pytorch_profiler_*.db"))
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)  # another program reads it the usual way
    con.execute("SELECT count(*) FROM sqlite_master").fetchall()
    assert any(p.name.endswith("-shm") for p in db.parent.iterdir())
    con.close()
    assert file_sha256(profiler_folder) == before


def test_a_wal_with_pages_is_read(tmp_path):
    """Rows committed to the write-ahead log but not yet checkpointed into the database are read."""
    from converters.ascend_db import _read_only_uri

    db = tmp_path / "x.db"
    writer = sqlite3.connect(db)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE t (v INTEGER)")
    writer.execute("INSERT INTO t VALUES (1), (2), (3)")
    writer.commit()
    assert (tmp_path / "x.db-wal").stat().st_size > 0
    reader = sqlite3.connect(_read_only_uri(db), uri=True)
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (3,)
    reader.close()
    writer.close()


def test_a_path_with_uri_characters_opens(tmp_path):
    from converters.ascend_db import _read_only_uri

    db = tmp_path / "a?b#c%d.db"
    sqlite3.connect(db).execute("CREATE TABLE t (v INTEGER)").connection.commit()
    con = sqlite3.connect(_read_only_uri(db), uri=True)
    assert con.execute("SELECT name FROM sqlite_master").fetchall() == [("t",)]
    con.close()
