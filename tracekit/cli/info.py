"""`tracekit info INPUT`: a readable overview of a trace."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tracekit.cli.console import check_outputs, emit, format_from_suffix, out_console
from tracekit.progress import progress_steps

if TYPE_CHECKING:
    from rich.console import Console


def _ms(ns: int) -> str:
    return f"{ns / 1e6:,.3f} ms"


@click.command("info")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--top", default=10, show_default=True, help="How many ops and kernels to list.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default=None,
              help="Tables for people, or JSON for programs. Default: from the -o file's extension, else table.")
@click.option("--json", "as_json", is_flag=True, hidden=True, help="Same as --format json.")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of the terminal (.txt or .json).")
def info_cmd(inputs: tuple[Path, ...], top: int, fmt: str | None, as_json: bool, out: Path | None) -> None:
    """Format, devices, ranks, steps, event counts, time span, top ops and kernels (of traces or a dataset)."""
    check_outputs(out)
    from tracekit.converters.loading import gunzip_ahead

    if inputs and inputs[0].is_file():  # decompressed in a second process while this one imports the rest
        gunzip_ahead(inputs[0])
    from tracekit.dataset.manifest import is_dataset
    from tracekit.info import quick_info

    with progress_steps(total=len(inputs) + 1) as advance:
        on_file = lambda p: advance(f"reading {p}")  # noqa: E731
        if any(is_dataset(p) for p in inputs):  # the stored columns it needs, as numpy: no pandas
            from tracekit.dataset.info_read import dataset_facts
            from tracekit.dataset.load import dataset_of

            ds = dataset_of(inputs)
            on_file(f"reading dataset {ds.root}")
            advance("counting")
            facts = dataset_facts(ds, top)
        else:  # raw traces: only the stages the facts need (tracekit.info.quick_info), without pandas
            from tracekit.info_inputs import read_for_info

            table = read_for_info(inputs, on_file=on_file)
            advance("building call tree and links")
            facts = quick_info(table, top=top)
    fmt = fmt or ("json" if as_json else format_from_suffix(out, ("json",), "table"))
    if fmt == "json":
        text = json.dumps(facts, indent=2) + "\n"
    else:
        if out is None:
            render(facts, out_console())
            return
        buffer = io.StringIO()
        render(facts, out_console(buffer))
        text = buffer.getvalue()
    emit(text, out)


def device_line(devices: list[dict], n_sources: int) -> str:
    """The devices once each: `8 × Tesla V100-SXM2-32GB (ids 0-7, 31.7 GiB)`, and in how many inputs they are
    named when several traces list the same ones (each rank's trace names every device of its node)."""
    groups: dict[tuple, list[dict]] = {}
    for d in devices:
        groups.setdefault((d["name"], d.get("memory_gb")), []).append(d)
    parts = []
    for (name, memory), listed in groups.items():
        ids = sorted({d["id"] for d in listed if isinstance(d.get("id"), int)})
        if not ids:
            parts.append(name)
            continue
        text = f"{len(ids)} × {name} (id{'s' if len(ids) > 1 else ''} {_ranges(ids)}"
        text += f", {memory} GiB)" if memory else ")"
        if n_sources > 1 and len(listed) > len(ids):
            text += f", named in {len(listed) // len(ids) if len(listed) % len(ids) == 0 else 'several'} inputs"
        parts.append(text)
    return ", ".join(parts)


def _ranges(ids: list[int]) -> str:
    """0-7,9 for [0..7, 9]."""
    out, start = [], ids[0]
    for prev, cur in zip(ids, [*ids[1:], None]):
        if cur != prev + 1:
            out.append(str(start) if start == prev else f"{start}-{prev}")
            start = cur
    return ",".join(out)


def render(facts: dict, console: Console) -> None:
    """Print the facts as rich tables."""
    from rich.table import Table

    for s in facts["sources"]:
        console.print(f"[bold]{s['path']}[/]  format: {s['format']}  events: {s['events']:,}  "
                      f"time base: {s['base_from']}")
        for note in s["damage"]:
            console.print(f"  [yellow]damage:[/] {note}")
    console.print("devices: " + device_line(facts["devices"], len(facts["sources"])))
    ranks = facts["ranks"]
    console.print(f"ranks: {ranks or 'not distributed'}" + (
        f" of world size {facts['world_size']}" if facts["world_size"] else ""))
    console.print(f"steps: {facts['steps'] or 'no ProfilerStep annotations'}")
    span = facts["time_span_ns"]
    console.print(f"time span: {_ms(span['duration'])}")
    if not facts["has_modules"]:
        console.print("[yellow]no nn.Module events[/] (recorded without with_modules/with_stack)")
    kinds = Table(title="events by kind")
    kinds.add_column("kind")
    kinds.add_column("events", justify="right")
    for kind, count in sorted(facts["counts_by_kind"].items(), key=lambda kv: -kv[1]):
        kinds.add_row(kind, f"{count:,}")
    console.print(kinds)
    for title, rows in (("top ops by time (outermost ops)", facts["top_ops"]),
                        ("top kernels by time", facts["top_kernels"])):
        if not rows:
            continue
        tab = Table(title=title)
        for col, just in (("name", "left"), ("total", "right"), ("calls", "right"), ("share", "right")):
            tab.add_column(col, justify=just)
        for r in rows:
            tab.add_row(r["name"][:80], _ms(r["total_ns"]), f"{r['calls']:,}", f"{r['share']:.1%}")
        console.print(tab)
    if facts["unlinked_device_events"]:
        console.print("device events without a launching op: " + ", ".join(
            f"{k}: {v:,}" for k, v in facts["unlinked_device_events"].items()))
    early = facts.get("device_before_launch")
    if early:
        console.print(f"[yellow]clock skew:[/] {early['events']:,} of {early['of']:,} device events start before the "
                      f"host call that launched them (by up to {early['max_ns'] / 1e3:,.1f} us): host and device "
                      "clocks disagree, so host-to-device gaps in this trace are off by as much")
    if facts["skipped"]:
        console.print("skipped while reading: " + ", ".join(f"{k}: {v}" for k, v in facts["skipped"].items()))
