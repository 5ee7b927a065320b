"""A notebook-style tour of the tracekit Python API (the tests run it).

    python examples/notebook_tour.py [TRACE_OR_DATASET ...]

With no argument it opens the project's recorded GPT sample (sample_traces/gpt/prof.json.gz).
"""

from __future__ import annotations

import sys
from pathlib import Path

import tracekit

ROOT = Path(__file__).resolve().parent.parent


def main(paths: list[str]) -> None:
    # 1. Open a raw trace (converted once into a cache folder) or a dataset written by `tracekit convert`.
    t = tracekit.open(paths or [str(ROOT / "sample_traces" / "gpt" / "prof.json.gz")])
    print(t)

    # 2. Tables are pandas DataFrames, each read from Parquet the first time it is used.
    ops = t.ops
    top = ops.groupby("name", observed=True)["dur_ns"].sum().sort_values(ascending=False).head(5)
    print("top ops by total time (ns):")
    print(top.to_string())

    # 3. The module tree, as `tracekit modules` prints it.
    tree = t.module_tree(depth=2)
    if len(tree):
        print(tree[["module_path", "module_type", "total_ns", "share"]].head(8).to_string(index=False))

    # 4. SQL over the same tables (DuckDB); rank-partitioned tables are one view with a `rank` column.
    by_kind = t.sql("SELECT kind, count(*) AS events, sum(dur_ns) AS total_ns FROM events "
                    "GROUP BY kind ORDER BY events DESC")
    print(by_kind.to_string(index=False))

    # 5. The facts of `tracekit info`.
    facts = t.info()
    print(f"steps: {facts['steps']}, time span: {facts['time_span_ns']['duration'] / 1e6:.1f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
