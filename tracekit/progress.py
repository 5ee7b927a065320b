"""A progress display on terminals (rich), silent elsewhere."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def progress_steps(total: int | None, enabled: bool | None = None) -> Iterator[Callable[[str], None]]:
    """Yield `advance(description)`: each call moves the bar one step (on a terminal only).

    With a known `total` the bar shows the percentage done and steps done of total; with None it pulses.
    A step that runs past `total` (a stage that reported more than planned) grows the total, so the bar
    never claims more than 100%.
    """
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield lambda _desc: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    columns = [TextColumn("{task.description}"), BarColumn()]
    if total is not None:
        columns += [TaskProgressColumn(), MofNCompleteColumn()]
    with Progress(*columns, TimeElapsedColumn(), transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("starting", total=total)
        state = {"done": 0, "first": True}

        def advance(desc: str) -> None:
            if not state["first"]:
                state["done"] += 1
                if total is not None and state["done"] >= (bar.tasks[0].total or 0):
                    bar.update(task, total=state["done"] + 1)
                bar.update(task, completed=state["done"])
            state["first"] = False
            bar.update(task, description=desc)

        yield advance
        bar.update(task, completed=bar.tasks[0].total or state["done"])
