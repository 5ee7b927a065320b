"""The Python API for notebooks: open a trace or a dataset, get its tables as pandas DataFrames, ask SQL.

    import tracekit
    t = tracekit.open("out/")            # a dataset (tracekit convert output) ...
    t = tracekit.open("rank-0.json.gz")  # ... or raw traces, converted once into a cache folder
    t.kernels.groupby("name")["dur_ns"].sum()
    t.sql("SELECT rank, sum(dur_ns) FROM kernels GROUP BY rank")
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from tracekit.dataset.manifest import is_dataset
from tracekit.dataset.read import Dataset, open_dataset

PathLike = str | Path


class Trace:
    """One converted job (one or many ranks): tables load lazily, one at a time, on first use."""

    def __init__(self, dataset: Dataset, inputs: Sequence[str] | None = None):
        self.dataset = dataset
        self.inputs = list(inputs) if inputs is not None else [r["path"] for r in dataset.manifest["inputs"]]
        self._con: Any = None

    def __repr__(self) -> str:
        return f"<tracekit.Trace {self.path} ranks={self.ranks} tables={self.dataset.tables}>"

    @property
    def path(self) -> Path:
        """The dataset folder."""
        return self.dataset.root

    @property
    def ranks(self) -> list[int]:
        return self.dataset.ranks

    @property
    def stale(self) -> bool:
        """True when an input changed since it was converted (size/mtime, then SHA-256)."""
        return any(s.state == "changed" for s in self.dataset.staleness())

    def table(self, name: str, columns: Sequence[str] | None = None, ranks: Sequence[int] | None = None
              ) -> pd.DataFrame:
        """Any table, only `columns`, only `ranks` (Parquet column projection; rank partitions skipped)."""
        return self.dataset.read(name, columns, ranks)

    @cached_property
    def events(self) -> pd.DataFrame:
        """Every event: ts_ns/dur_ns, name, kind, parent/depth (call tree), launch links, step, module."""
        return self.dataset.read("events")

    @cached_property
    def kernels(self) -> pd.DataFrame:
        """One row per device event (kernel, memcpy, memset) with its launching op and module."""
        return self.dataset.read("kernels")

    @cached_property
    def ops(self) -> pd.DataFrame:
        """One row per cpu op with input dims/types and kernel count."""
        return self.dataset.read("ops")

    @cached_property
    def modules(self) -> pd.DataFrame:
        """One row per nn.Module instance (or record_function annotation): shapes, params, FLOPs, times."""
        return self.dataset.read("modules")

    @cached_property
    def collectives(self) -> pd.DataFrame:
        """One row per collective call per rank: group, parallel dimension, bytes, bandwidth, exposed time."""
        return self.dataset.read("collectives")

    @cached_property
    def steps(self) -> pd.DataFrame:
        """One row per profiler step per rank."""
        return self.dataset.read("steps")

    def module_tree(self, depth: int | None = None, sort: str = "order") -> pd.DataFrame:
        """The module tree as `tracekit modules` shows it: tree order, `share` of step time, `device_ns`."""
        from tracekit.dataset.load import STEP_TIME_COLUMNS
        from tracekit.modules.view import step_time_ns, tree_view

        modules = self.modules.drop(columns=["rank"]) if self.dataset.partitioned("modules") else self.modules
        if not len(modules):
            return modules
        return tree_view(modules, step_time_ns(self.dataset.event_table(STEP_TIME_COLUMNS)), depth=depth, sort=sort)

    def info(self, top: int = 10) -> dict[str, Any]:
        """The facts `tracekit info` prints (devices, ranks, steps, counts by kind, top ops and kernels)."""
        from tracekit.dataset.info_read import dataset_facts

        return dataset_facts(self.dataset, top)

    def sql(self, statement: str) -> pd.DataFrame:
        """Run SQL (DuckDB) on the tables, one view each; rank-partitioned tables are one view with `rank`."""
        from tracekit.sql import connect, query

        if self._con is None:
            self._con = connect(self.dataset)
        return query(self.dataset, statement, self._con).to_pandas()


def open(path: PathLike | Sequence[PathLike], cache: PathLike | None = None, *, executor: Any = None,
         client: Any = None, workers: int | None = None) -> Trace:
    """Open a dataset folder, or raw traces (a file, a folder of rank files, a list, a glob).

    Raw traces are converted once into `cache` (default: a temporary folder of this Trace, removed when it
    is collected); an existing `cache` dataset of the same inputs that is not stale is reused. Ranks run on
    `executor` ("local", "dask"), or on a `dask.distributed.Client` given as `client`.
    """
    paths = [Path(p) for p in ([path] if isinstance(path, str | Path) else path)]
    if len(paths) == 1 and is_dataset(paths[0]):
        return Trace(open_dataset(paths[0]))
    from tracekit.convert import convert
    from tracekit.executors import make_executor
    from tracekit.inputs import expand_inputs

    inputs = expand_inputs(paths)
    target = Path(cache) if cache is not None else Path(tempfile.mkdtemp(prefix="tracekit-")) / "dataset"
    if is_dataset(target):
        ds = Dataset(target)
        same = sorted(r["path"] for r in ds.manifest["inputs"]) == sorted(str(p.resolve()) for p in inputs)
        if same and not any(s.state != "unchanged" for s in ds.staleness()):
            return Trace(ds, [str(p) for p in inputs])
    if target.exists():
        shutil.rmtree(target)
    convert(inputs, target, workers=workers, executor=make_executor(executor, workers, client=client))
    trace = Trace(Dataset(target), [str(p) for p in inputs])
    if cache is None:
        weakref.finalize(trace, shutil.rmtree, str(target.parent), True)
    return trace


def _as_trace(t: Trace | PathLike) -> Trace:
    return t if isinstance(t, Trace) else open(t)


def compare(base: Trace | PathLike, target: Trace | PathLike, equiv: PathLike | None = None):
    """Align two runs module by module and op by op (as `tracekit compare`): a Comparison with .modules,
    .ops and .steps (the compare_*.parquet tables) and .notes."""
    from tracekit.compare.job import compare_sides
    from tracekit.compare.side import load_side

    a, b = _as_trace(base), _as_trace(target)
    return compare_sides(load_side("base", a.path), load_side("target", b.path), equiv)


def parallel(trace: Trace | PathLike) -> dict[str, pd.DataFrame]:
    """What each parallel dimension and group did (as `tracekit parallel --json`): groups, by_group,
    by_module, by_rank, stragglers, and for pipeline-parallel runs the pipeline_* tables."""
    from tracekit.dataset.load import parallel_of
    from tracekit.parallel.tables import parallel_tables

    t = _as_trace(trace)
    return parallel_tables(*parallel_of(t.dataset))


__all__ = ["Trace", "compare", "open", "parallel"]
