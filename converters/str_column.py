"""A dictionary-encoded string column that reads like a list, for the readers' column tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


class StrColumn(Sequence):
    """A dictionary-encoded string column: int32 codes (-1 = missing) into `categories`.

    Reads like a list of str/None (len, index, slice, iterate); `categorical()` gives pandas'.
    """

    def __init__(self, codes: np.ndarray, categories: list[str]) -> None:
        self.codes = codes
        self.categories = categories

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, item):
        if isinstance(item, slice):
            return [self.categories[c] if c >= 0 else None for c in self.codes[item].tolist()]
        code = int(self.codes[item])
        return self.categories[code] if code >= 0 else None

    def __iter__(self):
        cats = self.categories
        return (cats[c] if c >= 0 else None for c in self.codes.tolist())

    def tolist(self) -> list:
        return self[:]

    def code_of(self, value: str) -> int:
        """The code of `value`, or -2 if it does not occur."""
        try:
            return self.categories.index(value)
        except ValueError:
            return -2

    def categorical(self) -> pd.Categorical:
        import pandas as pd  # here: `tracekit info` reads the codes and never loads pandas

        return pd.Categorical.from_codes(self.codes, categories=pd.Index(self.categories, dtype=object))

    def take(self, rows: np.ndarray) -> StrColumn:
        """The rows `rows`, with the categories renumbered in order of first appearance."""
        return _first_appearance(self.codes[rows], self.categories)


def _first_appearance(codes: np.ndarray, categories: list[str]) -> StrColumn:
    """Drop unused categories and order the rest by first appearance in `codes`."""
    used, first = np.unique(codes, return_index=True)
    first, used = first[used >= 0], used[used >= 0]
    order = used[np.argsort(first, kind="stable")]
    if len(order) == len(categories) and (order == np.arange(len(order))).all():
        return StrColumn(codes, categories)
    remap = np.full(len(categories) + 1, -1, dtype=np.int32)
    remap[order] = np.arange(len(order), dtype=np.int32)
    return StrColumn(remap[codes], [categories[i] for i in order.tolist()])
