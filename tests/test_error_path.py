"""The CLI's one error path: the last-resort handler (a tracekit bug is one line naming the input, exit 1;
--debug shows the traceback), --max-input-bytes parsing, and input problems staying exit 2."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_bad_input import _good, leftovers

from tracekit.cli import main
from tracekit.limits import parse_size


def _boom(*_args, **_kwargs):
    raise ValueError("simulated defect")


@pytest.mark.parametrize("debug", [False, True])
def test_unexpected_exception_is_one_line_naming_the_input(tmp_path: Path, monkeypatch, debug: bool) -> None:
    monkeypatch.setattr(sys.modules["tracekit.convert"], "process", _boom)
    good = _good(tmp_path)
    out = tmp_path / "out"
    args = (["--debug"] if debug else []) + ["convert", str(good), "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: {good}: tracekit bug (ValueError: simulated defect)"), lines
    if debug:
        assert "Traceback" in result.stderr
    else:
        assert "Traceback" not in result.stderr and len(lines) == 1 and "--debug" in lines[0]
    assert not out.exists() and leftovers(out) == []


def test_keyboard_interrupt_cleans_up(tmp_path: Path, monkeypatch) -> None:
    def interrupt(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sys.modules["tracekit.convert"], "write_parquet_tables", interrupt)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["convert", str(_good(tmp_path)), "-o", str(out)])
    assert result.exit_code == 130 and "Traceback" not in result.output
    assert not out.exists() and leftovers(out) == []


@pytest.mark.parametrize(("text", "value"), [("123", 123), ("512M", 512 << 20), ("8G", 8 << 30), ("1.5K", 1536),
                                             ("2GiB", 2 << 30), ("64gb", 64 << 30)])
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


def test_max_input_bytes_option(tmp_path: Path) -> None:
    good = _good(tmp_path)
    size = good.stat().st_size
    saved = os.environ.pop("TRACEKIT_MAX_INPUT_BYTES", None)
    try:
        result = CliRunner().invoke(main, ["info", str(good), "--max-input-bytes", str(size - 1)])
        assert result.exit_code == 2
        assert str(good) in result.stderr and "--max-input-bytes" in result.stderr
        assert CliRunner().invoke(main, ["info", str(good), "--max-input-bytes", str(size)]).exit_code == 0
        bad = CliRunner().invoke(main, ["info", str(good), "--max-input-bytes", "lots"])
        assert bad.exit_code == 2 and "not a size" in bad.output
    finally:
        os.environ.pop("TRACEKIT_MAX_INPUT_BYTES", None)
        if saved is not None:
            os.environ["TRACEKIT_MAX_INPUT_BYTES"] = saved
