"""`tracekit compare BASE TARGET -o OUTDIR`: two runs aligned module by module and op by op."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tracekit.cli.console import out_console
from tracekit.progress import progress_steps
from tracekit.writers.atomic import check_output_folder, staged_dir


@click.command("compare")
@click.argument("base", type=click.Path(path_type=Path))
@click.argument("target", type=click.Path(path_type=Path))
@click.option("-o", "--out", "outdir", required=True, type=click.Path(path_type=Path),
              help="Output folder (created): compare_modules/ops/steps.parquet, report.html, summary.json "
                   "[, trace.json].")
@click.option("--trace", "with_trace", is_flag=True, help="Also write trace.json: both runs side by side, "
              "aligned at their first step.")
@click.option("--top", type=int, default=15, show_default=True, help="Rows in the terminal top-N tables.")
@click.option("--equiv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="JSON/YAML op-name equivalences: {canonical: [op names]}, e.g. "
                   "{\"attention\": [\"aten::_scaled_dot_product_flash_attention\", \"npu::npu_fusion_attention\"]}.")
def compare_cmd(base: Path, target: Path, outdir: Path, with_trace: bool, top: int, equiv: Path | None) -> None:
    """Compare BASE and TARGET: compare_modules/ops/steps.parquet, report.html, summary.json [, trace.json]."""
    from tracekit.compare.job import compare_paths
    from tracekit.compare.ops import one_sided
    from tracekit.writers.compare_html import render_report
    from tracekit.writers.compare_text import render_one_sided, render_steps, render_top

    check_output_folder(outdir)  # a bad -o is refused before either run is read
    with progress_steps(total=6 if with_trace else 5) as advance:
        cmp = compare_paths(base, target, equiv, progress=advance)
        only = one_sided(cmp.ops)
        with staged_dir(outdir) as stage:
            advance("writing tables and report")
            cmp.modules.to_parquet(stage / "compare_modules.parquet", index=False)
            cmp.ops.to_parquet(stage / "compare_ops.parquet", index=False)
            cmp.steps.to_parquet(stage / "compare_steps.parquet", index=False)
            (stage / "report.html").write_text(render_report(cmp, top))
            (stage / "summary.json").write_text(json.dumps(_summary(cmp, only), indent=2))
            if with_trace:  # the chrome writer is imported only when it is needed
                from tracekit.compare.trace import side_by_side
                from tracekit.writers.chrome import write_chrome_trace

                advance("writing the side-by-side trace")
                write_chrome_trace(side_by_side(cmp.base, cmp.target), stage / "trace.json")
    console = out_console()
    for note in cmp.notes:
        console.print(f"note: {note}")
    render_steps(cmp.steps, console)
    if len(cmp.modules):
        console.print(f"modules matched: {cmp.matched_fraction():.1%}")
    render_top(cmp.modules, cmp.ops, top, console, cmp.basis)
    render_one_sided(only, top, console)
    click.echo(f"wrote {outdir}")


def _summary(cmp, only=None) -> dict:
    """summary.json; `only` is one_sided(cmp.ops) when the caller has it already."""
    from tracekit.compare.ops import one_sided

    modules, ops = cmp.modules, cmp.ops
    return {
        "base": cmp.base.path, "target": cmp.target.path, "basis": cmp.basis, "notes": cmp.notes,
        "modules": {"matched_fraction": cmp.matched_fraction(),
                    "by_status": modules["status"].value_counts().to_dict() if len(modules) else {}},
        "ops": {"by_status": ops["status"].value_counts().to_dict() if len(ops) else {},
                "one_side_only": json.loads((one_sided(ops) if only is None else only).to_json(orient="records"))},
        "steps": {side: {"steps": len(f), "mean_step_ns": float(f["dur_ns"].mean()),
                         "mean_compute_ns": float(f["compute_ns"].mean()),
                         "mean_exposed_comm_ns": float(f["exposed_comm_ns"].mean()),
                         "mean_idle_ns": float(f["idle_ns"].mean())}
                  for side, f in cmp.steps.groupby("side", sort=False)},
    }
