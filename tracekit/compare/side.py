"""One side of a comparison: the processed event table, its module table and its op sequences."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tracekit.compare.opframe import op_frame
from tracekit.modules.table import module_table
from tracekit.pipeline import Processed
from tracekit.table import DEVICE_KINDS


@dataclass(frozen=True)
class Side:
    """What compare needs from one input: its name (base/target), tables and time basis facts."""

    label: str
    path: str
    processed: Processed
    modules: pd.DataFrame  # tracekit.modules.table.module_table
    ops: pd.DataFrame  # tracekit.compare.opframe.op_frame
    note: str | None = None  # what was compared when the input holds several ranks

    @property
    def has_device(self) -> bool:
        return bool(np.isin(self.processed.table.events["kind"].to_numpy(), list(DEVICE_KINDS)).any())


def load_side(label: str, path: str | Path) -> Side:
    """Read and process one input (a trace or a dataset) and build its module table and op frame."""
    from tracekit.dataset.load import side_tables

    processed, modules, note = side_tables(path)
    return side_from(label, str(path), processed, modules, note)


def side_from(label: str, path: str, processed: Processed, modules: pd.DataFrame | None,
              note: str | None = None) -> Side:
    """A Side from an already processed table (any EventTable with module columns)."""
    if modules is None:
        modules = module_table(processed.table, processed.modules)
    return Side(label, path, processed, modules, op_frame(processed.table), note)
