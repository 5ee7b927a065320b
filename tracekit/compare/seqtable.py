"""All op sequences of one run as one flat table, for aligning many module pairs in one pass.

The same rows as tracekit.compare.ops.sequences (the op at each ordinal of each (module path,
phase), averaged over the calls that ran it), but kept in one frame with a row range per
sequence instead of one small frame per sequence, which is what made compare slow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tracekit.compare.ops import SEQ_COLUMNS, per_ordinal

PER_CALL = ("host_ns", "device_ns", "kernel_count", "cast_ns", "cast_count")
TEXT_COLUMNS = frozenset({"name", "kernel_names", "shapes", "dtypes", "local_shapes", "weight_shape"})


@dataclass(frozen=True)
class SequenceTable:
    """`frame`: SEQ_COLUMNS rows, each sequence contiguous; `spans`: (path, phase) -> its rows."""

    frame: pd.DataFrame
    spans: dict[tuple[str | None, str], range]
    phases_of: dict[str | None, set[str]] = field(default_factory=dict)
    lists: dict[str, list] = field(default_factory=dict, repr=False, compare=False)  # view's cache

    def phases(self, path: str | None) -> set[str]:
        """Phases that have a sequence for module path `path` (None: ops outside any module)."""
        return self.phases_of.get(path, set())

    def span(self, path: str | None, phase: str) -> range | None:
        return self.spans.get((path, phase))

    def column(self, name: str) -> np.ndarray:
        """A column as an object array (for picking rows by number)."""
        return self.frame[name].to_numpy(dtype=object)

    def view(self, span: range) -> dict[str, list]:
        """The names and shapes of one sequence (what tracekit.compare.ops.align_ops reads)."""
        if not self.lists:  # both columns as lists once: slicing a list is far cheaper than a Series per span
            self.lists.update({c: self.frame[c].tolist() for c in ("name", "shapes")})
        return {c: values[span.start:span.stop] for c, values in self.lists.items()}

    def take(self, rows: np.ndarray, columns: list[str], absent: bool) -> pd.DataFrame:
        """`columns` at `rows` (-1: a missing row, all values missing).

        `absent`: some rows are of a module or phase this run has no sequence for; an all-missing
        text column is then None (object), else NaN (float), as compare has always written it.
        """
        if not len(self.frame):
            return pd.DataFrame({c: [None] * len(rows) for c in columns})
        out = self.frame[columns].reindex(rows).reset_index(drop=True)
        for col in TEXT_COLUMNS.intersection(columns) if absent else ():
            if out[col].dtype.kind == "f":
                out[col] = pd.Series([None] * len(out), dtype=object)
        return out


def sequence_table(ops: pd.DataFrame) -> SequenceTable:
    """The sequences of an op frame (tracekit.compare.opframe.op_frame) as one table."""
    if not len(ops):
        return SequenceTable(pd.DataFrame({c: [] for c in SEQ_COLUMNS}), {})
    calls, agg = per_ordinal(ops)
    agg = agg.reset_index(drop=True)
    known = {(p, str(ph)): int(n) for (p, ph), n in calls.items() if isinstance(p, str)}
    group = agg.groupby(["module_path", "phase"], dropna=False, sort=False).ngroup().to_numpy()
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    stops = np.r_[starts[1:], len(agg)]
    paths, phases, count = agg["module_path"].tolist(), agg["phase"].tolist(), agg["count"].to_numpy()
    calls_per_row = np.zeros(len(agg), dtype=np.int64)
    spans, phases_of = {}, {}
    for start, stop in zip(starts.tolist(), stops.tolist()):
        path = paths[start] if isinstance(paths[start], str) else None
        key = (path, str(phases[start]))
        calls_per_row[start:stop] = known.get(key, 0) or int(count[start:stop].max())
        spans[key] = range(start, stop)
        phases_of.setdefault(path, set()).add(key[1])
    agg["calls"] = calls_per_row
    divisor = np.maximum(calls_per_row, 1)
    for col in PER_CALL:  # per call of the module
        agg[col] = agg[col] / divisor
    return SequenceTable(agg[list(SEQ_COLUMNS)], spans, phases_of)
