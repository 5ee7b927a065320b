"""The report's sections about one run: overview, model drawing, module tree, top ops and kernels."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracekit.report.blocks import bar_chart, facts, table
from tracekit.report.fmt import esc, json_script, ms, pct
from tracekit.report.model import model_graph
from tracekit.report.page import Section
from tracekit.report.tree_table import tree_table
from tracekit.writers.modules_text import RECORD_FUNCTION, view_rows

if TYPE_CHECKING:
    import pandas as pd

    from tracekit.modules.view import Row

SPLIT = (("compute_ns", "compute", "#59a14f"), ("exposed_comm_ns", "exposed communication", "#e15759"),
         ("idle_ns", "idle / waiting", "#bab0ac"))


def short_names(paths: list[str]) -> list[str]:
    """File names, with the parent folder where two inputs share a name."""
    names = [Path(p).name for p in paths]
    return [f"{Path(p).parent.name}/{n}" if names.count(n) > 1 else n for p, n in zip(paths, names)]


def device_names(info: dict[str, Any]) -> str:
    """The devices the trace names, each name once (where it names none: CPU only, or its device events)."""
    return ", ".join(dict.fromkeys(d["name"] for d in info["devices"]))


def overview(info: dict[str, Any], steps: pd.DataFrame, n_modules: int) -> Section:
    """Inputs, devices, ranks, steps, time span and where the step time went."""
    sources = info["sources"]
    inputs = "<br>".join(f"{esc(s['path'])} <span class='note'>({esc(s['format'])}, {s['events']:,} events)</span>"
                         for s in sources)
    ranks = info["ranks"]
    rows = [("inputs", inputs), ("devices", esc(device_names(info))),
            ("ranks", esc(f"{len(ranks)} ({', '.join(map(str, ranks))})" if ranks else "not distributed")),
            ("steps", esc(f"{len(info['steps'])} ProfilerStep(s)" if info["steps"] else "no ProfilerStep annotations")),
            ("time span", esc(f"{ms(info['time_span_ns']['duration'])} ms")),
            ("modules", esc(f"{n_modules:,}" if n_modules else "no nn.Module events"))]
    body = facts(rows)
    for s in sources:
        for note in s["damage"]:
            body += f"<p class='note'>damage in {esc(s['path'])}: {esc(note)}</p>"
    body += "".join(f"<p class='note quality'>{esc(note)}</p>" for note in data_quality_notes(info))
    if len(steps):
        basis = str(steps["basis"].iloc[0])
        labels = [f"step {int(s)}" if s >= 0 else "whole trace" for s in steps["step"]]
        body += "<h3>Time split per step (" + ("GPU/NPU time" if basis == "device" else "host time: no device events")
        body += ")</h3>" + bar_chart("step-split", labels, [
            {"label": label, "data": (steps[col] / 1e6).tolist(), "color": color} for col, label, color in SPLIT],
            "ms", stacked=True)
        mean = steps[["dur_ns", *[c for c, _, _ in SPLIT]]].mean()
        body += table("step-table", ["", "step ms", *[f"{label} ms" for _, label, _ in SPLIT],
                                     *[f"{label} %" for _, label, _ in SPLIT]],
                      [["mean", ms(mean["dur_ns"]), *[ms(mean[c]) for c, _, _ in SPLIT],
                        *[pct(mean[c] / mean["dur_ns"]) if mean["dur_ns"] else "" for c, _, _ in SPLIT]]],
                      [False, *[True] * 7], sortable=False)
        if basis == "host" and dict(info.get("counts_by_kind") or {}).get("collective"):
            body += f"<p class='note'>{esc(HOST_COMM_NOTE)}</p>"
    return Section("overview", "Overview", body)


HOST_COMM_NOTE = ("Host time: communication here is the time inside collective ops on the thread that runs the "
                  "steps. A collective that runs on a worker thread (gloo) or completes later (isend/irecv, async "
                  "all-reduce) is waited for outside its op: that wait counts as idle / waiting here, and as exposed "
                  "communication in tracekit parallel (and this page's Parallel section), which times each call "
                  "until it completes.")


_UNLINKED = {"no_correlation_id": "no correlation id", "launch_not_in_trace": "launch call not in the trace",
             "launch_outside_any_op": "launched outside any op"}


def data_quality_notes(info: dict[str, Any]) -> list[str]:
    """What a reader of the page must know before trusting its times: input events skipped while reading,
    device events that no op launched (their time belongs to no op or module), and device events that start
    before the host call that launched them (the trace's host and device clocks disagree)."""
    notes = []
    skipped = info.get("skipped") or {}
    if sum(skipped.values()):
        notes.append(f"{sum(skipped.values()):,} input events were skipped while reading (" + ", ".join(
            f"{reason}: {n:,}" for reason, n in skipped.items()) + "): they are in no figure below.")
    unlinked = info.get("unlinked_device_events") or {}
    if sum(unlinked.values()):
        notes.append(f"{sum(unlinked.values()):,} device events have no launching op (" + ", ".join(
            f"{_UNLINKED.get(cause, cause)}: {n:,}" for cause, n in unlinked.items()) + "): their time counts in "
            "device and step time, but in no op or module.")
    early = info.get("device_before_launch") or {}
    if early:
        notes.append(f"Clock skew: {early['events']:,} of {early['of']:,} device events start before the host call "
                     f"that launched them (by up to {early['max_ns'] / 1e3:,.1f} µs). The trace's host and device "
                     "clocks disagree, so a gap between a host call and its device work is off by as much.")
    return notes


def model_section(view: list[Row] | pd.DataFrame, source_name: str) -> Section:
    """The model drawing of the first source (blocks in forward order, repeats folded)."""
    view = view_rows(view)
    graph = model_graph(view)
    note = ("Drawn from the trace alone: each block is a module in forward (first-call) order, nested as in the "
            "code, with its type, parameters, forward FLOPs, time per call and share of step time (colour). "
            "Identical consecutive blocks are folded (× N). Arrows carry the input shape of the next block; a "
            "dashed arrow means that input is not the previous block's output (the trace records call order, "
            "not data flow). Click a block to open it and see its details. ~: inferred or unsure, ?: unknown "
            "(the details say why).")
    if all(r["module_type"] == RECORD_FUNCTION for r in view):
        note = ("<b>This trace has no nn.Module events</b> (record with with_modules=True or with_stack=True): "
                "the blocks are its record_function annotations, not the model's modules. ") + note
    if len({r["source_index"] for r in view}) > 1:
        note += f" Shown: {esc(source_name)} (the first input)."
    tools = ("<div class='mdl-tools'><button class='expand-all'>open all</button><button class='collapse-all'>"
             f"close all</button><span>{graph['modules']:,} modules</span><span>share of step time: 0 "
             f"<span class='heat'></span> {pct(graph['max_share'])}</span></div>")
    body = (f"<div class='model-wrap'><div>{tools}<div class='model' id='model-drawing'></div></div>"
            f"<aside class='details'></aside>{json_script('model-data', graph)}</div>")
    return Section("model", "Model", body, note)


def modules_section(view: list[Row] | pd.DataFrame, first_step: int | None = None) -> Section:
    """The module tree table; `first_step`: the lowest ProfilerStep recorded (above 0, "first" is not the
    program's first call, and the note says so)."""
    note = ("Indented as in the code; ▸ opens a module, a column title sorts siblings (module: back to forward "
            "order). first = first call, steady = median of later calls; times are host (CPU) time unless marked "
            "device. Blank: not measurable from this trace (no device events, no backward, one call only). "
            "? unknown, ~ inferred or unsure: hover the cell for why.")
    if first_step:
        note += (f" <b>first</b> is the first call in the recording, which starts at ProfilerStep#{first_step}: "
                 "the program's first (warm-up) calls were not recorded.")
    return Section("tree", f"Module tree ({len(view):,} modules)", tree_table(view), note)


def ops_section(info: dict[str, Any]) -> Section:
    """Top ops (outermost, host time) and top kernels (device time) as charts and tables."""
    body = ""
    for key, title, chart_id in (("top_ops", "Top ops by host time (outermost ops)", "top-ops"),
                                 ("top_kernels", "Top kernels by device time", "top-kernels")):
        rows = info[key]
        if not rows:
            body += f"<h3>{esc(title)}</h3><p class='note'>none in this trace</p>"
            continue
        labels = [_short(r["name"]) for r in rows]
        body += f"<h3>{esc(title)}</h3>" + bar_chart(chart_id, labels, [
            {"label": "total", "data": [r["total_ns"] / 1e6 for r in rows], "color": "#4e79a7"}], "ms")
        body += table(f"{chart_id}-table", ["name", "total ms", "calls", "mean µs", "% of all"],
                      [[_short(r["name"], 150), ms(r["total_ns"]), f"{r['calls']:,}",
                        f"{r['total_ns'] / r['calls'] / 1e3:,.1f}", pct(r["share"])] for r in rows],
                      [False, True, True, True, True])
    return Section("top-ops-kernels", "Top ops and kernels", body)


def _short(name: str, width: int = 70) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"

