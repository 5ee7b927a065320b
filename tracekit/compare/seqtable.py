"""All op sequences of one run as one flat table, for aligning many module pairs in one pass.

The same rows as tracekit.compare.ops.sequences (the op at each ordinal of each (module path,
phase), averaged over the calls that ran it), but kept in one frame with a row range per
sequence instead of one small frame per sequence, which is what made compare slow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tracekit.compare.ops import _FIRST, _SUMMED, SEQ_COLUMNS, per_ordinal

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
    fast = _per_ordinal_rows(ops)
    if fast is not None:
        known, columns = fast
        paths, phases, count = columns["module_path"], columns["phase"], columns["count"]
        n = len(paths)
        starts = [i for i in range(n) if not i or paths[i] != paths[i - 1] or phases[i] != phases[i - 1]]
    else:
        calls, agg = per_ordinal(ops)
        agg = agg.reset_index(drop=True)
        known = {(p, str(ph)): int(n) for (p, ph), n in calls.items() if isinstance(p, str)}
        group = agg.groupby(["module_path", "phase"], dropna=False, sort=False).ngroup().to_numpy()
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]).tolist()
        paths, phases, count, n = agg["module_path"].tolist(), agg["phase"].tolist(), agg["count"].to_numpy(), len(agg)
        columns = {c: agg[c] for c in SEQ_COLUMNS if c != "calls"}
    calls_per_row = np.zeros(n, dtype=np.int64)
    spans, phases_of = {}, {}
    for start, stop in zip(starts, [*starts[1:], n]):
        path = paths[start] if isinstance(paths[start], str) else None
        key = (path, str(phases[start]))
        calls_per_row[start:stop] = known.get(key, 0) or int(count[start:stop].max())
        spans[key] = range(start, stop)
        phases_of.setdefault(path, set()).add(key[1])
    divisor = np.maximum(calls_per_row, 1)
    frame = {c: (calls_per_row if c == "calls" else columns[c] / divisor if c in PER_CALL else columns[c])
             for c in SEQ_COLUMNS}  # per call of the module
    return SequenceTable(pd.DataFrame(frame), spans, phases_of)


def _per_ordinal_rows(ops: pd.DataFrame) -> tuple[dict[tuple[str, str], int], dict[str, object]] | None:
    """What tracekit.compare.ops.per_ordinal gives (calls per module path and phase, and the op at each
    ordinal: the most frequent name, first seen on ties, summed over the calls that ran it) as columns,
    computed over Python lists and numpy: an op frame has a few hundred rows, where each pandas groupby costs
    more than the rows. None (use per_ordinal) when a key is missing or a summed column is not int64."""
    if any(ops[c].dtype != np.int64 for c in (*_SUMMED, "ordinal", "call")):
        return None
    paths = [p if isinstance(p, str) else None for p in ops["module_path"].tolist()]
    phases, names = ops["phase"].tolist(), ops["name"].tolist()
    if not all(isinstance(v, str) for v in (*phases, *names)):
        return None
    ordinals, calls = ops["ordinal"].tolist(), ops["call"].tolist()
    call_sets: dict[tuple[str, str], set] = {}
    groups: dict[tuple, list[int]] = {}  # (path, phase, ordinal, name) -> its rows, in order of first appearance
    for i, (path, phase, ordinal, name, call) in enumerate(zip(paths, phases, ordinals, names, calls)):
        if path is not None:
            call_sets.setdefault((path, phase), set()).add(call)
        groups.setdefault((path, phase, ordinal, name), []).append(i)
    best: dict[tuple, tuple] = {}  # (path, phase, ordinal) -> its group with the most rows (the first on ties)
    for key, rows in groups.items():
        place = key[:3]
        if place not in best or len(rows) > len(groups[best[place]]):
            best[place] = key
    order = sorted(best, key=lambda k: (k[0] is not None, k[0] or "", k[1], k[2]))
    n_ops = len(ops)
    place_of = [-1] * n_ops  # each row's place in `order` (-1: not a chosen group's row)
    for g, place in enumerate(order):
        for i in groups[best[place]]:
            place_of[i] = g
    group = np.array(place_of, dtype=np.int64)
    member = np.flatnonzero(group >= 0)
    first = np.full(len(order), n_ops, dtype=np.int64)
    np.minimum.at(first, group[member], member)
    columns: dict[str, object] = {
        "module_path": [p for p, _, _ in order], "phase": [ph for _, ph, _ in order],
        "name": pd.array([names[r] for r in first.tolist()], dtype=ops["name"].dtype),
        "count": np.bincount(group[member], minlength=len(order)).astype(np.int64),
    }
    for col in _SUMMED:
        total = np.zeros(len(order), dtype=np.int64)
        np.add.at(total, group[member], ops[col].to_numpy()[member])  # int64: exact, as the groupby sum
        columns[col] = total
    for col in _FIRST:  # the first value that is not missing (None, NaN, NA), None where all are
        present = member[~ops[col].isna().to_numpy()[member]]
        found = np.full(len(order), n_ops, dtype=np.int64)
        np.minimum.at(found, group[present], present)
        values = ops[col].tolist()
        columns[col] = pd.array([values[r] if r < n_ops else None for r in found.tolist()], dtype=ops[col].dtype)
    return {k: len(v) for k, v in call_sets.items()}, columns
