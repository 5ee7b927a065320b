"""Read raw traces for `tracekit info`: torch and VizTracer traces into pandas-free tables (tracekit.columns).

`tracekit.pipeline.read_inputs` with keep_args=False gives the same sources, damage and skipped counts; here a
torch or VizTracer trace's events are a Columns of the few columns info reads, so that neither pandas nor
pyarrow's compute module is loaded. torch_npu output is read by its own reader (it needs pandas); when the
inputs mix it with other traces, those are read again the pandas way (their warnings are then printed twice).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tracekit.columns import Columns, concat_columns
from tracekit.inputs import expand_inputs, with_name_rank
from tracekit.table import EventTable


def read_for_info(paths: Sequence[str | Path], on_file: Callable[[str], None] | None = None) -> EventTable:
    """Every input (files, rank folders, globs) in one table, `source_index` telling the files apart: a Columns
    table where every input is a torch or VizTracer trace, else a pandas one (as read_inputs gives it)."""
    from tracekit.converters import read_trace

    expanded = expand_inputs(paths)
    tables = []
    for index, path in enumerate(expanded):
        if on_file:
            on_file(str(path))
        tables.append(_numbered(read_trace(path, keep_args=False, columns_only=True), path, index))
    lean = [isinstance(t.events, Columns) for t in tables]
    if all(lean):
        return EventTable(concat_columns([t.events for t in tables]), None, [s for t in tables for s in t.sources])
    from tracekit.table import concat

    tables = [_numbered(read_trace(path, keep_args=False), path, index) if is_lean else table
              for index, (path, table, is_lean) in enumerate(zip(expanded, tables, lean))]
    return concat(tables)


def _numbered(table: EventTable, path: Path, index: int) -> EventTable:
    table = with_name_rank(table, path)
    table.events["source_index"] = np.int32(index)
    return table
