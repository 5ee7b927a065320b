"""Text that is not JSON in the middle of a large trace (decoded in chunks, some by a second process): exit 2 naming
the file and where, nothing written. Found by the overlap20 helper: `"ts": "zz...` mid-file of a plain JSON copy of
v100_large was 'tracekit bug (DecodeError: JSON is malformed ...)'."""

from __future__ import annotations

import gzip

import pytest
from click.testing import CliRunner
from conftest import shared

from tracekit.cli import main


@pytest.mark.parametrize("command", ["convert", "info"])
def test_not_json_in_the_middle_of_a_large_trace(tmp_path, command):
    raw = gzip.decompress(shared("gpu/hta/v100_large.json.gz").read_bytes())
    at = raw.find(b'"ts":', len(raw) // 2)
    bad = tmp_path / "bad.json"
    bad.write_bytes(raw[:at] + b'"ts": "zz' + raw[at + 5:])
    out = tmp_path / "out"
    args = [command, str(bad)] + (["-o", str(out)] if command == "convert" else [])
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert str(bad) in result.output and "malformed JSON" in result.output, result.output
    assert "tracekit bug" not in result.output and not out.exists()
