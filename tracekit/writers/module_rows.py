"""modules.json: the rows `tracekit modules` shows, written by convert beside modules.parquet.

A dataset query of the module view then reads this small JSON file (a few hundred rows) and no event, with neither
numpy, pyarrow nor pandas imported. The rows are modules.parquet's own rows (read back once written), only the
columns the view shows; with them the per-source step figures the view divides by
(tracekit.modules.view.step_figures of the events). A rank-partitioned dataset holds one such file per partition:
modules_json/rank=R/part-I.json beside modules/rank=R/part-I.parquet. Stdlib json, so NaN and every float round
trip exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from tracekit.table import EventTable

FORMAT = "tracekit-module-rows"
FORMAT_VERSION = 1
SINGLE = "modules.json"  # the file of a one-input dataset
PER_RANK = "modules_json"  # the folder of a rank-partitioned dataset: rank=R/part-I.json


def module_rows_paths(stage: Path, rank: int | None = None, index: int = 0) -> tuple[Path, Path]:
    """(modules Parquet file, its rows file) of a one-input dataset, or of one rank partition
    (tracekit.ranks.partition_path's layout)."""
    if rank is None:
        return stage / "modules.parquet", stage / SINGLE
    part = Path(f"rank={rank}") / f"part-{index:05d}"
    return stage / "modules" / part.with_suffix(".parquet"), stage / PER_RANK / part.with_suffix(".json")


def write_module_rows(table: EventTable, stage: Path, rank: int | None = None, index: int = 0,
                      written: pa.Table | None = None) -> int:
    """Write the rows file of modules.parquet (or of one rank's partition) just written under `stage`, with the
    step figures of `table`'s events; returns its row count (0, nothing written, when no Parquet file is there).
    `written`: the Arrow table that Parquet file was written from (its rows are read back from the file without it:
    a rank saves ~1 ms with it)."""
    from tracekit.modules.view import step_figures_of
    from tracekit.writers.modules_text import VIEW_COLUMNS

    parquet_path, rows_path = module_rows_paths(stage, rank, index)
    if not parquet_path.is_file():
        return 0
    if written is None:
        import pyarrow.parquet as pq

        source = pq.ParquetFile(parquet_path)
        have = set(source.schema_arrow.names)
        columns = [c for c in VIEW_COLUMNS if c in have]
        data = source.read(columns=columns)
    else:
        columns = [c for c in VIEW_COLUMNS if c in written.column_names and c != "rank"]  # rank: the folder's
        data = written.select(columns)
    step_ns, first_step = step_figures_of(table)
    values = [_python_values(data.column(c)) for c in columns]
    document: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "columns": columns,
        "types": [str(data.schema.field(c).type) for c in columns],
        "step_ns": [[int(s), int(ns)] for s, ns in sorted(step_ns.items())], "first_step": first_step,
        "rows": list(zip(*values)) if values else [],  # (a tuple is written as a JSON array, as a list)
    }
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    # json.dumps, not json.dump: the same text from the C encoder in one call (json.dump encodes piece by piece in
    # Python); allow_nan: NaN stays NaN, as in the Parquet file
    rows_path.write_bytes(json.dumps(document, separators=(",", ":")).encode("ascii"))
    return data.num_rows


def _python_values(values: pa.ChunkedArray) -> list:
    """`values.to_pylist()`: the same Python ints and floats through numpy for a numeric column without nulls (one C
    conversion instead of an arrow scalar per row); other columns (text, nulls) by to_pylist."""
    import pyarrow as pa

    kind = values.type
    if values.null_count == 0 and (pa.types.is_integer(kind) or pa.types.is_float32(kind) or pa.types.is_float64(kind)):
        return values.to_numpy().tolist()
    return values.to_pylist()


def manifest_entry(root: Path, rows: int | None) -> dict[str, Any] | None:
    """The manifest's `module_rows` entry for what is under `root` (None when no rows file was written)."""
    if (root / SINGLE).is_file():
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "layout": "file", "path": SINGLE, "rows": rows}
    if (root / PER_RANK).is_dir():
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "layout": "one file per rank partition",
                "path": f"{PER_RANK}/", "rows": rows}
    return None
