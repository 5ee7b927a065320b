"""Start-up: `tracekit --help` and importing the CLI load no pandas/numpy/pyarrow (the commands import
their stages when they run)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pandas", "numpy", "pyarrow", "rich", "msgspec", "orjson", "tracekit.pipeline", "tracekit.convert")


def loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint('LOADED:', *(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return out.stdout.rsplit("LOADED:", 1)[1].split()


def test_cli_import_is_light() -> None:
    assert loaded_after("import tracekit.cli") == []


def test_help_is_light() -> None:
    code = ("from tracekit.cli import main\n"
            "for args in (['--help'], ['info', '--help'], ['modules', '--help'], ['compare', '--help']):\n"
            "    main(args, standalone_mode=False)")
    assert loaded_after(code) == []


def test_sort_choices_match_the_view() -> None:
    from tracekit.cli.modules import SORT_CHOICES
    from tracekit.modules.view import SORT_KEYS

    assert list(SORT_CHOICES) == list(SORT_KEYS)
