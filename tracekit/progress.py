"""A progress display on terminals (rich), silent elsewhere."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def progress_steps(total: int, enabled: bool | None = None) -> Iterator[Callable[[str], None]]:
    """Yield `advance(description)`: each call moves the bar one step (on a terminal only)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield lambda _desc: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task("starting", total=total)
        state = {"first": True}

        def advance(desc: str) -> None:
            if not state["first"]:
                bar.advance(task)
            state["first"] = False
            bar.update(task, description=desc)

        yield advance
        bar.update(task, completed=total)
