"""Start-up: `tracekit --help` and importing the CLI load no pandas/numpy/pyarrow (the commands import
their stages when they run), and each command, run on a real trace, loads only what it needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import SAMPLES, shared

HEAVY = ("pandas", "numpy", "pyarrow", "rich", "msgspec", "orjson", "tracekit.pipeline", "tracekit.convert")


# Never needed by compare, merge or info (dask/distributed: the dask executor; duckdb: `tracekit sql`).
NEVER = ("dask", "distributed", "duckdb", "matplotlib", "torch")


def loaded_after(code: str, watch: tuple[str, ...] = HEAVY) -> list[str]:
    probe = f"{code}\nimport sys\nprint('LOADED:', *(m for m in {watch!r} if m in sys.modules))"
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


def loaded_by_command(args: list[str], watch: tuple[str, ...]) -> list[str]:
    """The modules of `watch` that one CLI run (exit code 0) has imported when it ends."""
    code = (f"from tracekit.cli import main\n"
            f"try:\n    main({[str(a) for a in args]!r}, standalone_mode=False)\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n")
    return loaded_after(code, watch)


def test_compare_imports_no_trace_writer_unless_asked(tmp_path: Path) -> None:
    """compare without --trace writes no chrome trace, so it imports neither the chrome writer nor convert's job;
    with --trace it does (so the probe can see them)."""
    pair = [SAMPLES / "gpt/prof.json.gz", SAMPLES / "gpt/prof_cuda.json.gz"]
    watch = ("tracekit.writers.chrome", "tracekit.convert", "tracekit.ranks", *NEVER)
    assert loaded_by_command(["compare", *pair, "-o", tmp_path / "a"], watch) == []
    assert "tracekit.writers.chrome" in loaded_by_command(["compare", *pair, "-o", tmp_path / "b", "--trace"], watch)


def test_info_imports_only_what_it_needs() -> None:
    """info --json on a raw trace: no rich (tables are not printed), no module table, writers or report code,
    and no dataset reader or Parquet (a raw trace is not a dataset)."""
    watch = ("rich", "tracekit.modules.table", "tracekit.writers.chrome", "tracekit.writers.parquet",
             "tracekit.report", "tracekit.convert", "tracekit.compare", "tracekit.dataset.read", "pyarrow.parquet",
             *NEVER)
    trace = shared("gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz")
    assert loaded_by_command(["info", "--json", trace], watch) == []


def test_merge_imports_only_what_it_needs(tmp_path: Path) -> None:
    """merge without --parquet: no compare, module table, report or rich tables."""
    watch = ("rich", "tracekit.compare", "tracekit.modules.table", "tracekit.report", *NEVER)
    inputs = [SAMPLES / "gpt/viz_both.json.gz", SAMPLES / "gpt/prof_both.json.gz"]
    assert loaded_by_command(["merge", *inputs, "-o", tmp_path / "m.json"], watch) == []


COMMAND_MODULES = tuple(f"tracekit.cli.{name}" for name in
                        ("convert", "info", "modules", "merge", "compare", "parallel", "report", "sql"))


def test_help_imports_no_command_module() -> None:
    """`tracekit --help` lists every command from tracekit.cli.COMMANDS: no command's module is imported."""
    from tracekit.cli import COMMANDS

    assert sorted(f"tracekit.cli.{n}" for n in COMMANDS) == sorted(COMMAND_MODULES)
    assert loaded_after("import tracekit.cli", COMMAND_MODULES) == []
    assert loaded_by_command(["--help"], COMMAND_MODULES) == []
    assert loaded_by_command(["modules", "--help"], COMMAND_MODULES) == ["tracekit.cli.modules"]


def test_modules_on_a_dataset_imports_only_its_command(tmp_path: Path) -> None:
    """`tracekit modules DATASET`: its own command module, no other, and neither numpy, pyarrow nor pandas."""
    from click.testing import CliRunner

    from tracekit.cli import main

    ds = tmp_path / "ds"
    assert CliRunner().invoke(main, ["convert", str(SAMPLES / "gpt/prof.json.gz"), "-o", str(ds)]).exit_code == 0
    watch = (*COMMAND_MODULES, *HEAVY, "pyarrow.parquet")
    assert loaded_by_command(["modules", ds, "--format", "csv"], watch) == ["tracekit.cli.modules"]


def _help_text(group, args: list[str], width: int = 100) -> str:
    from click.testing import CliRunner

    return CliRunner().invoke(group, args, prog_name="tracekit", terminal_width=width).output


def test_lazy_help_is_the_eager_help() -> None:
    """The command list of `tracekit --help` (from COMMANDS' helps) is what click prints from the commands
    themselves, at any width; each COMMANDS help is its command's first paragraph."""
    import click

    from tracekit.cli import COMMANDS, load_command, main

    eager = click.Group(name="tracekit", commands={n: load_command(n) for n in COMMANDS}, params=main.params,
                        help=main.help, context_settings=main.context_settings)
    for name, (_module, _attribute, text) in COMMANDS.items():
        assert text == " ".join((load_command(name).help or "").split("\n\n")[0].split())
    for width in (60, 100, 200):
        lazy = _help_text(main, ["--help"], width).split("Commands:")[1]
        assert lazy == _help_text(eager, ["--help"], width).split("Commands:")[1]
        assert all(f"  {name}" in lazy for name in COMMANDS), width


def test_shared_options_and_the_error_path_still_apply(tmp_path: Path) -> None:
    """A command loaded on use still gets --max-input-bytes / --force (once) and the guard's one-line errors."""
    from tracekit.cli import READS_INPUTS, REPLACES_OUTPUT, main

    for name in ("convert", "info", "modules", "merge", "compare", "parallel", "report", "sql"):
        text = _help_text(main, [name, "--help"])
        assert (text.count("--max-input-bytes") == 1) == (name in READS_INPUTS), name
        assert (text.count("--force") == 1) == (name in REPLACES_OUTPUT), name
    bad = tmp_path / "bad.json"
    bad.write_text("{\"traceEvents\": [")
    run = subprocess.run([sys.executable, "-c", "from tracekit.cli import main; main()", "modules", str(bad),
                          "--max-input-bytes", "1M"], capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.startswith(f"error: {bad}") and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
