"""`tracekit report`: read the inputs once, gather every section, render one offline page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from tracekit.compare.steps import step_breakdown
from tracekit.info import trace_info
from tracekit.inputs import expand_inputs
from tracekit.modules.table import module_table
from tracekit.modules.view import first_recorded_step, step_time_ns, tree_view
from tracekit.pipeline import process, read_inputs
from tracekit.report.fmt import esc
from tracekit.report.page import Section, render_page
from tracekit.report.sections import device_names, model_section, modules_section, ops_section, overview, short_names

STEPS_BASE = 4  # reading, processing, modules, rendering


def report_steps(n_inputs: int, base: bool) -> int:
    """How many progress steps build_report takes (for a bar with a percentage)."""
    return STEPS_BASE + (n_inputs if n_inputs > 1 else 0) + (3 if base else 0)


def build_report(inputs: Sequence[str | Path], base: str | Path | None = None, workers: int | None = None,
                 top: int = 15, progress: Callable[[str], None] | None = None) -> str:
    """The report page of INPUTS (one run; several ranks add the parallel view; BASE adds the comparison).

    With several ranks the overview, model and module sections describe the first rank's trace; the
    parallel section covers all of them.
    """
    step = progress or (lambda _msg: None)
    paths = expand_inputs(inputs)
    first = paths[:1]
    step(f"reading {first[0]}")
    table = read_inputs(first)
    step("building the call tree and module attribution")
    processed = process(table)
    info = trace_info(processed, top=top)
    step("building the module table")
    modules = module_table(processed.table, processed.modules)
    view = tree_view(modules, step_time_ns(processed.table))
    sections = [overview(info, step_breakdown(processed.table), len(view))]
    parallel = None
    if len(paths) > 1:
        from tracekit.parallel.tables import parallel_tables
        from tracekit.ranks import analyse_ranks

        info["sources"][0]["path"] += f" (and {len(paths) - 1} more ranks: see Parallel)"
        parallel = parallel_tables(*analyse_ranks(paths, workers, progress=step))
    if len(view):
        model = model_section(view, short_names([str(p) for p in first])[0])
        sections += [_with_stage_note(model, parallel), modules_section(view, first_recorded_step(processed.table))]
    else:
        sections.append(Section("model", "Model", "<p>No nn.Module events in this trace (record with "
                                "with_modules=True or with_stack=True, or trace the Python code with VizTracer): "
                                "no model to draw.</p>"))
    sections.append(ops_section(info))
    if parallel is not None:
        from tracekit.writers.parallel_html import parallel_sections

        sections += parallel_sections(parallel)
    if base is not None:
        from tracekit.compare.job import compare_paths
        from tracekit.writers.compare_html import compare_sections

        sections += compare_sections(compare_paths(base, paths[0], progress=step), top)
    step("rendering the page")
    title = "tracekit report: " + _named(paths[0]) + (f" + {len(paths) - 1} ranks" if len(paths) > 1 else "")
    if base is not None:
        title += f" vs {_named(Path(base))}"
    subtitle = " · ".join(esc(s) for s in (
        device_names(info),
        f"{len(info['steps'])} steps" if info["steps"] else "no ProfilerStep annotations",
        f"{len(view):,} modules"))
    return render_page(title, subtitle, sections, charts=True)


def _with_stage_note(model: Section, parallel: dict | None) -> Section:
    """With pipeline parallelism the first rank holds one stage only: say which, and what the others run."""
    stages = (parallel or {}).get("pipeline_stages")
    if stages is None or not len(stages) or len(stages) < 2:
        return model
    mine = next((r for r in stages.itertuples(index=False) if 0 in list(r.ranks)), None)
    others = "; ".join(f"stage {r.stage} (ranks {', '.join(map(str, r.ranks))}): {r.layers}"
                       for r in stages.itertuples(index=False) if mine is None or r.stage != mine.stage)
    here = f"stage {mine.stage} of {len(stages)}" if mine is not None else f"one of {len(stages)} stages"
    note = (f"<p class='note'>Pipeline parallelism: this drawing is rank 0's, {esc(here)}. The other stages run "
            f"other layers: {esc(others)} (see Parallel → Pipeline).</p>")
    return replace(model, body=note + model.body)


def _named(path: Path) -> str:
    """A file with its folder (gpt/prof.json.gz): sample and profiler file names alone say little."""
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name
