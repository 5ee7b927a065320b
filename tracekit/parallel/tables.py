"""Every table `tracekit parallel` (and the report's parallel section) shows, from the per-rank tables."""

from __future__ import annotations

from typing import Any

import pandas as pd

from tracekit.parallel.hccl import hccl_groups
from tracekit.parallel.pipeline import pipeline_tables
from tracekit.parallel.report import parallel_report


def parallel_tables(coll: pd.DataFrame, steps: pd.DataFrame, groups: list[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    """Groups (with Ascend HCCL groups that no listed group stands for), per-group/module/rank tables,
    stragglers, and for pipeline-parallel runs the stages, transfers, DP sync and bubble."""
    groups = groups + hccl_groups(coll, groups)
    tables = parallel_report(coll, steps, groups)
    tables.update(pipeline_tables(coll, steps, groups))
    return tables
