"""A rich-style table written as plain text where rich would write exactly that text, without rich's layout.

rich lays a table out cell by cell (measure, wrap, pad, crop: ~0.1 ms a cell), which made the terminal tables
the largest part of `tracekit compare` on small traces. When the console writes no styles (piped, no colour
forced), every cell is one line of plain text that rich would print unchanged (no markup, no emoji code, no
control character) and the table fits the console, rich's output is the fixed box drawing below: those
tables are written here, the rest still by rich. tests/test_small16.py checks the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table

try:  # private in rich; without it every table goes to rich
    from rich._emoji_replace import _emoji_replace
except ImportError:  # pragma: no cover - depends on the installed rich
    _emoji_replace = None

LEFT, RIGHT = "left", "right"


def _plain(text: str) -> bool:
    """rich prints `text` as it is: one line, no markup tag, no :emoji: code, no control character."""
    if not text.isprintable():
        return False
    if "[" in text and escape(text) != text:
        return False
    return ":" not in text or _emoji_replace(text) == text


def box_text(title: str | None, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[str]]) -> str:
    """The table as rich's default box (heavy head) draws it, title line first; columns are (header, justify)."""
    widths = [cell_len(header) for header, _ in columns]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], cell_len(cell))
    justify = [j for _, j in columns]

    def line(cells: Sequence[str], bar: str) -> str:
        parts = []
        for cell, width, just in zip(cells, widths, justify):
            pad = " " * (width - cell_len(cell))
            parts.append(f" {pad}{cell} " if just == RIGHT else f" {cell}{pad} ")
        return bar + bar.join(parts) + bar

    def rule(left: str, mid: str, right: str, fill: str) -> str:
        return left + mid.join(fill * (w + 2) for w in widths) + right

    out = [title] if title else []
    out += [rule("┏", "┳", "┓", "━"), line([h for h, _ in columns], "┃"), rule("┡", "╇", "┩", "━")]
    out += [line(row, "│") for row in rows]
    out.append(rule("└", "┴", "┘", "─"))
    return "\n".join(out) + "\n"


def print_table(console: Console, title: str | None, columns: Sequence[tuple[str, str]],
                rows: Sequence[Sequence[str]], caption: str | None = None, no_wrap: Sequence[str] = ()) -> None:
    """Print the table: as plain text where that is what rich would print, else through rich. `caption`: lines
    under the table; `no_wrap`: headers of columns rich must not wrap (where the table is wider than the console)."""
    if _fits_plain(console, title, columns, rows) and (caption is None or all(map(_plain, caption.split("\n")))):
        console.file.write(box_text(title, columns, rows) + (caption + "\n" if caption else ""))
        return
    table = Table(title=title, caption=caption)
    for header, just in columns:
        table.add_column(header, justify=just, no_wrap=header in no_wrap)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _fits_plain(console: Console, title: str | None, columns: Sequence[tuple[str, str]],
                rows: Sequence[Sequence[str]]) -> bool:
    if _emoji_replace is None or console.color_system is not None or console.is_terminal or not rows:
        return False
    if console.record or console.is_jupyter or not console.soft_wrap:
        return False
    texts = {h for h, _ in columns}.union(*map(set, rows))
    if not all(map(_plain, texts)) or (title is not None and not _plain(title)):
        return False
    widths = [max(cell_len(t) for t in col) for col in zip([h for h, _ in columns], *rows)]
    width = sum(widths) + 3 * len(widths) + 1
    return width <= console.width and (title is None or cell_len(title) <= width)
