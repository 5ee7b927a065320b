"""`tracekit report INPUT... -o report.html [--base OTHER]`: one self-contained offline HTML report."""

from __future__ import annotations

from pathlib import Path

import click

from tracekit.cli.console import check_outputs
from tracekit.progress import progress_steps
from tracekit.writers.atomic import staged_file


@click.command("report", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The HTML file to write (one self-contained page; opens offline).")
@click.option("--base", type=click.Path(path_type=Path), default=None,
              help="Another run to compare against: adds the comparison (BASE = the reference, INPUT = target).")
@click.option("--top", default=15, show_default=True, help="Rows in the top ops, kernels and regressions.")
@click.option("--workers", type=int, default=None, help="Worker processes for several ranks (default: cores).")
def report_cmd(inputs: tuple[Path, ...], out: Path, base: Path | None, top: int, workers: int | None) -> None:
    """Write one HTML report: overview, model drawing, module tree, top ops and kernels; with several
    ranks the parallel view; with --base the comparison."""
    check_outputs(out)
    from tracekit.report.build import build_report, report_input_count, report_steps

    n_inputs = report_input_count(inputs)
    with progress_steps(total=report_steps(n_inputs, base is not None)) as advance:
        page = build_report(inputs, base=base, workers=workers, top=top, progress=advance)
        with staged_file(out) as tmp:
            tmp.write_text(page, encoding="utf-8")
    click.echo(f"wrote {out} ({len(page.encode()) / 1e6:.1f} MB; open it in a browser, no network needed)")
