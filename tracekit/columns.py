"""A plain column mapping for the event table: numpy arrays and dictionary-coded strings, no pandas.

`tracekit info` on raw traces reads its events into a `Columns` instead of a pandas DataFrame: importing
pandas (and with it pyarrow) costs more than the info stages themselves. The stages it runs (call tree,
launch links, steps, the facts) read columns through tracekit.table's `column`, `kind_in`, `is_in`,
`strings` and `matches`, which take either form.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


class Coded:
    """A dictionary-encoded string column: `codes` (int, -1 = missing) into the list `categories`.

    Has the two attributes tracekit.table's helpers read from a pandas Categorical."""

    __slots__ = ("categories", "codes")

    def __init__(self, codes: np.ndarray, categories: list[str]) -> None:
        self.codes = codes
        self.categories = categories

    def __len__(self) -> int:
        return len(self.codes)

    def take(self, rows: np.ndarray) -> Coded:
        """The rows `rows` (same categories)."""
        return Coded(self.codes[rows], self.categories)


Column = np.ndarray | Coded


class Columns:
    """Named columns of equal length (numpy arrays or Coded strings); `len()` is the number of rows.

    Supports what the info stages ask of a DataFrame: `name in columns`, `columns[name]` and setting a
    column to an array or to one value for every row (`columns["source_index"] = np.int32(0)`)."""

    def __init__(self, columns: dict[str, Column], rows: int | None = None) -> None:
        self._columns: dict[str, Column] = {}
        self._rows = rows if rows is not None else (len(next(iter(columns.values()))) if columns else 0)
        for name, values in columns.items():
            self[name] = values

    def __len__(self) -> int:
        return self._rows

    def __contains__(self, name: object) -> bool:
        return name in self._columns

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __getitem__(self, name: str) -> Column:
        return self._columns[name]

    def __setitem__(self, name: str, values) -> None:
        if isinstance(values, Coded):
            column: Column = values
        else:
            array = np.asarray(values)
            column = np.full(self._rows, array, dtype=array.dtype) if array.ndim == 0 else array
        if len(column) != self._rows:
            raise ValueError(f"column {name!r} has {len(column)} rows, the table {self._rows}")
        self._columns[name] = column

    def array(self, name: str) -> Column:
        """Column `name` as tracekit.table.column gives it: a Coded, or a read-only view of the array."""
        values = self._columns[name]
        if isinstance(values, np.ndarray):
            values = values.view()
            values.flags.writeable = False
        return values

    @property
    def columns(self) -> list[str]:
        return list(self._columns)


def concat_columns(parts: list[Columns]) -> Columns:
    """Stack tables of the same columns; coded strings are recoded into one category list (first appearance)."""
    if len(parts) == 1:
        return parts[0]
    rows = sum(len(p) for p in parts)
    out: dict[str, Column] = {}
    for name in parts[0]:
        pieces = [p[name] for p in parts]
        if isinstance(pieces[0], Coded):
            index: dict[str, int] = {}
            codes = []
            for piece in pieces:
                remap = np.array([index.setdefault(c, len(index)) for c in piece.categories] + [-1], dtype=np.int32)
                codes.append(remap[piece.codes])
            out[name] = Coded(np.concatenate(codes), list(index))
        else:
            out[name] = np.concatenate(pieces)
    return Columns(out, rows)
