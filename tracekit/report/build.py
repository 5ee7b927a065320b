"""`tracekit report`: read the inputs once, gather every section, render one offline page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from tracekit.compare.steps import step_breakdown
from tracekit.dataset.load import dataset_of
from tracekit.info import trace_info
from tracekit.inputs import expand_inputs
from tracekit.modules.table import module_table
from tracekit.modules.view import first_recorded_step, step_time_ns, tree_view
from tracekit.pipeline import Processed, process, read_inputs
from tracekit.report.fmt import esc
from tracekit.report.page import Section, render_page
from tracekit.report.sections import device_names, model_section, modules_section, ops_section, overview, short_names

if TYPE_CHECKING:
    import pandas as pd

    from tracekit.compare.side import Side
    from tracekit.dataset.read import Dataset

STEPS_BASE = 4  # reading, processing, modules, rendering


def report_steps(n_inputs: int, base: bool) -> int:
    """How many progress steps build_report takes (for a bar with a percentage)."""
    return STEPS_BASE + (n_inputs if n_inputs > 1 else 0) + (3 if base else 0)


def report_input_count(inputs: Sequence[str | Path]) -> int:
    """How many traces the report reads: the inputs, or the inputs a dataset was converted from (its manifest read
    without the staleness check, which build_report makes and warns about once)."""
    from tracekit.dataset.manifest import is_dataset
    from tracekit.dataset.read import open_dataset

    if len(inputs) == 1 and is_dataset(inputs[0]):
        return len(open_dataset(inputs[0], check=False).sources)
    return len(expand_inputs(inputs))


@dataclass
class _Gathered:
    """What the page is made of: the first input's processed table and module table, the parallel tables (several
    inputs), the comparison's target side (with --base), and the first input's path and the input count."""

    processed: Processed
    modules: pd.DataFrame
    parallel: dict | None
    first: Path
    count: int
    target: Callable[[], Side]


def build_report(inputs: Sequence[str | Path], base: str | Path | None = None, workers: int | None = None,
                 top: int = 15, progress: Callable[[str], None] | None = None) -> str:
    """The report page of INPUTS (one run, or one dataset; several ranks add the parallel view; BASE adds the
    comparison).

    With several ranks the overview, model and module sections describe the first rank's trace; the
    parallel section covers all of them. A dataset gives the page its raw inputs give, read from its tables.
    """
    step = progress or (lambda _msg: None)
    ds = dataset_of(inputs)
    got = _from_dataset(ds, base is not None, step) if ds is not None else _from_traces(inputs, workers, step)
    processed, first = got.processed, got.first
    info = trace_info(processed, top=top)
    view = tree_view(got.modules, step_time_ns(processed.table))
    sections = [overview(info, step_breakdown(processed.table), len(view))]
    if got.count > 1:
        info["sources"][0]["path"] += f" (and {got.count - 1} more ranks: see Parallel)"
    if len(view):
        model = model_section(view, short_names([str(first)])[0])
        sections += [_with_stage_note(model, got.parallel),
                     modules_section(view, first_recorded_step(processed.table))]
    else:
        sections.append(Section("model", "Model", "<p>No nn.Module events in this trace (record with "
                                "with_modules=True or with_stack=True, or trace the Python code with VizTracer): "
                                "no model to draw.</p>"))
    sections.append(ops_section(info))
    if got.parallel is not None:
        from tracekit.writers.parallel_html import parallel_sections

        sections += parallel_sections(got.parallel)
    if base is not None:
        from tracekit.compare.job import compare_sides
        from tracekit.compare.side import load_side
        from tracekit.writers.compare_html import compare_sections

        step(f"reading base {base}")
        base_side = load_side("base", base)
        step(f"reading target {first}")
        target = got.target()
        step("aligning modules and ops")
        sections += compare_sections(compare_sides(base_side, target), top)
    step("rendering the page")
    title = "tracekit report: " + _named(first) + (f" + {got.count - 1} ranks" if got.count > 1 else "")
    if base is not None:
        title += f" vs {_named(Path(base))}"
    subtitle = " · ".join(esc(s) for s in (
        device_names(info),
        f"{len(info['steps'])} steps" if info["steps"] else "no ProfilerStep annotations",
        f"{len(view):,} modules"))
    return render_page(title, subtitle, sections, charts=True)


def _from_traces(inputs: Sequence[str | Path], workers: int | None, step: Callable[[str], None]) -> _Gathered:
    """The first input read and processed, its module table; the parallel tables of all inputs (several)."""
    from tracekit.compare.side import load_side

    paths = expand_inputs(inputs)
    step(f"reading {paths[0]}")
    table = read_inputs(paths[:1])
    step("building the call tree and module attribution")
    processed = process(table)
    step("building the module table")
    modules = module_table(processed.table, processed.modules)
    parallel = None
    if len(paths) > 1:
        from tracekit.parallel.tables import parallel_tables
        from tracekit.ranks import analyse_ranks

        parallel = parallel_tables(*analyse_ranks(paths, workers, progress=step))
    return _Gathered(processed, modules, parallel, paths[0], len(paths), lambda: load_side("target", paths[0]))


def _from_dataset(ds: Dataset, with_args: bool, step: Callable[[str], None]) -> _Gathered:
    """The dataset's first input and its module table as stored; the parallel tables from its collectives and
    events (several inputs); the comparison's target side from the same table (args read only for it)."""
    from tracekit.compare.side import side_from
    from tracekit.dataset.load import first_input_of, first_input_path, parallel_of

    step(f"reading dataset {ds.root}")
    processed, modules = first_input_of(ds, with_args)
    step("read the first input's events")
    step("read the first input's module table")
    parallel = None
    if len(ds.sources) > 1:
        from tracekit.parallel.tables import parallel_tables

        parallel = parallel_tables(*parallel_of(ds))
        for _source in ds.sources:  # the bar counts one step per rank, as for raw inputs
            step(f"collectives and step splits of {len(ds.sources)} ranks")
    first = Path(first_input_path(ds))
    return _Gathered(processed, modules, parallel, first, len(ds.sources),
                     lambda: side_from("target", str(first), processed, modules))


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
