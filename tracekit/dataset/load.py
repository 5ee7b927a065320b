"""Turn a command's inputs (raw traces, or one dataset) into the tables its stages need.

Each command calls one of these: given raw traces they read and process them as before; given a dataset they
read only the columns the command needs from its Parquet tables (after a staleness check)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from tracekit.dataset.manifest import is_dataset
from tracekit.errors import TraceError

if TYPE_CHECKING:
    from tracekit.dataset.read import Dataset

INFO_COLUMNS = ("source_index", "kind", "step", "name", "depth", "parent", "dur_ns", "ts_ns", "ph", "launch")
STEP_TIME_COLUMNS = ("source_index", "ph", "kind", "ts_ns", "dur_ns", "step")
SPLIT_COLUMNS = ("kind", "name", "ph", "ts_ns", "dur_ns", "parent")


def dataset_of(inputs: Sequence[str | Path]) -> Dataset | None:
    """The dataset when the inputs are one dataset folder; None for raw traces; an error for a mix."""
    found = [p for p in inputs if is_dataset(p)]
    if not found:
        return None
    if len(inputs) > 1:
        raise TraceError(found[0], "is a tracekit dataset: give it as the only input (it already holds all its "
                                   "ranks), not together with other traces or datasets")
    from tracekit.dataset.read import open_dataset

    return open_dataset(found[0])


def processed_of(inputs: Sequence[str | Path], columns: Sequence[str] | None = None, with_args: bool = False,
                 on_file: Callable[[str], None] | None = None):
    """tracekit.pipeline.Processed of raw traces (read + process) or of a dataset (only `columns`)."""
    ds = dataset_of(inputs)
    if ds is not None:
        if on_file:
            on_file(f"reading dataset {ds.root}")
        return ds.processed(columns, with_args)
    from tracekit.pipeline import process, read_inputs

    return process(read_inputs(inputs, on_file=on_file))


def modules_of(inputs: Sequence[str | Path], on_file: Callable[[str], None] | None = None):
    """(processed table with the step-time columns, module table): from a dataset, modules.parquet as stored."""
    ds = dataset_of(inputs)
    if ds is None:
        from tracekit.modules.table import module_table

        processed = processed_of(inputs, on_file=on_file)
        return processed, module_table(processed.table, processed.modules)
    if on_file:
        on_file(f"reading dataset {ds.root}")
    modules = ds.read("modules")
    return ds.processed(STEP_TIME_COLUMNS), modules.drop(columns=["rank"]) if ds.partitioned("modules") else modules


def parallel_of(ds: Dataset) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """Collectives, per-rank step splits and process groups of a dataset (as tracekit.ranks.analyse_ranks gives
    for raw traces): the collectives table as stored, the step split rank by rank from a few event columns, so
    memory holds one rank's events at a time, and each rank's compute spans only for a pipeline-parallel run
    (tracekit.parallel.splits)."""
    from tracekit.memory import release_freed_memory
    from tracekit.parallel.crossrank import read_collectives
    from tracekit.parallel.splits import dataset_splits, pipeline_possible
    from tracekit.ranks import group_table

    coll = read_collectives(ds.path("collectives"))
    release_freed_memory()
    table = group_table([s.distributed for s in ds.sources], coll)
    return coll, dataset_splits(ds, coll, SPLIT_COLUMNS, pipeline_possible(coll, table)), table


def side_tables(path: str | Path):
    """(processed, module table or None) of one compare side: a raw trace read and processed, or a dataset
    read whole (compare aligns ops by their args) with its stored module table."""
    ds = dataset_of([path])
    if ds is None:
        from tracekit.modules.table import module_table
        from tracekit.pipeline import process, read_inputs

        processed = process(read_inputs([path]))
        return processed, module_table(processed.table, processed.modules) if processed.modules is not None else None
    modules = ds.read("modules")
    return ds.processed(with_args=True), modules.drop(columns=["rank"]) if ds.partitioned("modules") else modules
