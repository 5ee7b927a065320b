"""Per-rank step splits (report.step_split with pipeline.with_compute_spans) as rank-partitioned scratch files.

On raw traces, `tracekit parallel` writes each rank's split (made in its worker) to
`<folder>/rank=R/part-I.arrow` (tracekit.parallel.scratch) as the rank is done, so the parent never holds every
rank's compute spans and layers. The per-rank, per-group and straggler tables read back the NARROW split (step
window, compute / communication / exposed / idle ns, has_compute: a few numbers per rank and step); the compute
spans and layers are read back only where the pipeline tables will use them (a run with pipeline-parallel groups:
its bubble and timeline are drawn from them).

The frame read back equals the per-rank frames concatenated in input order (same columns, order and types;
list columns as Python lists). On a dataset the process groups are known before any rank's events are read, so
dataset_splits makes the narrow rows directly (spans only for a pipeline run), with no scratch files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tracekit.memory import every
from tracekit.parallel.scratch import Part, list_parts, write_part

SPANS = ("compute_spans", "layers")  # per step: merged compute intervals and module paths (pipeline tables only)


def write_split(frame: pd.DataFrame, folder: Path, rank: int, index: int) -> int:
    """Write one input's step split (rank column left to the folder name); returns its rows."""
    return write_part(frame, folder, rank, index)


def keep_splits(folder: Path) -> Callable[[Any], None]:
    """An on_done callback for tracekit.ranks.run_ranks: writes the step split a worker sent back to `folder`
    and drops it from the result."""

    def keep(result: Any) -> None:
        if result.steps is not None:
            write_split(result.steps, folder, result.rank, result.index)
            result.steps = None
    return keep


def _frame(table: pa.Table) -> pd.DataFrame:
    lists = [c for c in table.column_names if pa.types.is_list(table.schema.field(c).type)]
    frame = table.drop_columns(lists).to_pandas()
    for name in lists:  # as with_compute_spans made them: Python lists, not numpy arrays
        frame.insert(table.column_names.index(name), name, pd.Series(table[name].to_pylist(), dtype=object))
    return frame


def read_splits(folder: Path, spans: bool = False) -> pd.DataFrame:
    """Every rank's step split under `folder`, in input order, with `rank` last; without the SPANS columns
    unless `spans`. Read file by file: the parent holds the narrow rows only."""
    def frames() -> Iterator[pd.DataFrame]:
        for _index, rank, path in list_parts(folder):
            file = Part(path)
            names = file.schema.names
            columns = names if spans else [c for c in names if c not in SPANS]
            frame = _frame(file.read(columns))
            frame["rank"] = rank
            yield frame
    return gathered(frames())


GATHER = 64  # per-rank frames concatenated in groups of this many (a small frame held costs ~5 KB)


def gathered(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """pd.concat(frames, ignore_index=True) (an empty frame for none), never holding more than GATHER of the
    small per-rank frames at once: 512 ranks' one-row frames held in a list took ~5 MB, their rows ~50 KB."""
    done: list[pd.DataFrame] = []
    pending: list[pd.DataFrame] = []
    for frame in frames:
        pending.append(frame)
        if len(pending) == GATHER:
            done.append(pd.concat(pending, ignore_index=True))
            pending = []
    if pending:
        done.append(pd.concat(pending, ignore_index=True))
    return pd.concat(done, ignore_index=True) if done else pd.DataFrame()


def pipeline_possible(coll: pd.DataFrame, groups: Sequence[dict[str, Any]]) -> bool:
    """Whether parallel_tables will make the pipeline tables (the only ones that read compute spans and layers):
    the same test it makes (PP groups, with the HCCL groups added)."""
    from tracekit.parallel.hccl import hccl_groups
    from tracekit.parallel.pipeline import stage_map

    groups = list(groups)
    return bool(stage_map(coll, groups + hccl_groups(coll, groups))[1])


def dataset_splits(ds: Any, coll: pd.DataFrame, columns: Sequence[str], spans: bool) -> pd.DataFrame:
    """The step split of every rank of a dataset, one rank's event `columns` in memory at a time. Whether the
    pipeline tables will need compute spans is known here before any rank is read (pipeline_possible), so
    without them each rank adds its narrow rows only (its spans and layers are not even computed); with them, the
    events' module paths are read too, so a stage's layers are named as on the raw traces."""
    from tracekit.parallel.pipeline import with_compute_spans
    from tracekit.parallel.report import step_split

    if spans:  # the layers each stage ran come from the module paths of its events
        columns = [*columns, "module_path"]
    of_rank = coll.groupby("rank", sort=False).indices if len(coll) else {}  # positions of each rank's calls
    none = np.zeros(0, dtype=np.int64)

    def frames() -> Iterator[pd.DataFrame]:
        for count, (rank, events) in enumerate(ds.event_parts(columns), 1):
            calls = coll.take(of_rank.get(rank, none)) if rank >= 0 else coll
            yield with_compute_spans(step_split(events, calls), events, calls, spans).assign(rank=rank)
            every(count)
    return gathered(frames())
