"""SQL over a dataset with DuckDB (embedded): one view per table; a rank-partitioned table is one view across
ranks (hive partitioning gives back its `rank` column). Results as arrow, pandas, or written as CSV/JSON/Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracekit.errors import TraceError

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from tracekit.dataset.read import Dataset

FORMATS = ("table", "csv", "json", "parquet")
# What DuckDB's Python binding raises where a damaged file gives it bytes it cannot convert (not a duckdb.Error)
_BINDING_ERRORS = (RuntimeError, UnicodeError)


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def view_sql(ds: Dataset, name: str) -> str:
    """The SELECT that a table's view stands for."""
    path = ds.path(name)
    if ds.partitioned(name):
        return (f"SELECT * FROM read_parquet({_quoted(str(path / 'rank=*' / '*.parquet'))}, "
                "hive_partitioning = true, union_by_name = true)")
    from tracekit.group_members import ID, LIST, members_path

    names = _stored_names(path) if name == "collectives" else []
    if ID in names:  # collectives: each call's member list put back from group_members.parquet by id
        stored = f"(SELECT list({LIST} ORDER BY {ID}) FROM read_parquet({_quoted(str(members_path(path)))}))"
        damaged = _quoted(f"damaged dataset table {path}: {ID} ")  # an id past the stored lists: an error, not NULL
        lists = (f"CASE WHEN {ID} >= len({stored}) OR {ID} < 0 THEN error({damaged} || {ID} || ' names no member "
                 f"list') ELSE {stored}[{ID} + 1] END AS {LIST}")
        columns = ", ".join(lists if c == ID else _identifier(c) for c in names)
        return f"SELECT {columns} FROM read_parquet({_quoted(str(path))})"
    return f"SELECT * FROM read_parquet({_quoted(str(path))})"


def _stored_names(path: Path) -> list[str]:
    """The column names of a Parquet file ([] where its schema cannot be read: the view's own read says why)."""
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(path).names
    except (ValueError, OSError):
        return []


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def connect(ds: Dataset) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one view per table of the dataset (events, kernels, ops, ...)."""
    import duckdb

    con = duckdb.connect()
    for name in ds.tables:
        try:
            con.execute(f'CREATE VIEW "{name}" AS {view_sql(ds, name)}')
        except (duckdb.Error, *_BINDING_ERRORS) as exc:  # reads the schema: a file gone, cut short, not Parquet
            if not ds.path(name).exists():
                raise TraceError(ds.path(name), "dataset table missing (the manifest lists it); convert the traces "
                                                "again") from None
            raise TraceError(ds.path(name), f"damaged dataset table: {' '.join(str(exc).split())}") from None
    return con


def query(ds: Dataset, sql: str, con: Any = None) -> pa.Table:
    """Run one SQL statement on the dataset's views; a SQL error is a TraceError naming the dataset."""
    import duckdb

    con = con or connect(ds)
    try:
        relation = con.sql(sql)
        if relation is None:
            raise TraceError(ds.root, "the statement returns no rows (give a SELECT)")
        fetch = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table  # DuckDB >= 2 / < 2
        return fetch()
    except duckdb.Error as exc:
        views = ", ".join(ds.tables)
        raise TraceError(ds.root, f"SQL error: {str(exc).strip()} (views: {views})") from None
    except _BINDING_ERRORS as exc:  # DuckDB's Python binding could not convert what it read (e.g. invalid UTF-8)
        damaged = damaged_file(ds)
        if damaged is not None:
            raise TraceError(damaged[0], f"damaged dataset table: {damaged[1]}") from None
        raise TraceError(ds.root, f"DuckDB could not read the dataset's tables ({type(exc).__name__}: {exc}); no "
                                  "table file's schema is damaged, so one of their data pages may be: convert the "
                                  "traces again") from None


def damaged_file(ds: Dataset) -> tuple[Path, str] | None:
    """The first Parquet file of the dataset's tables whose schema DuckDB cannot read, and DuckDB's words; None if
    every file's schema reads."""
    import duckdb

    con = duckdb.connect()
    for name in ds.tables:
        files = [file for _rank, _index, file in ds.parts(name)] if ds.partitioned(name) else [ds.path(name)]
        for file in files:
            try:
                con.sql(f"DESCRIBE SELECT * FROM read_parquet({_quoted(str(file))})").fetchall()
            except (duckdb.Error, *_BINDING_ERRORS) as exc:
                return file, " ".join(str(exc).split())
    return None


def write_result(table: pa.Table, fmt: str, path: Path) -> None:
    """Write a result table as csv, json (one object per row, in a list) or parquet."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path, compression="zstd")
    else:
        path.write_text(result_text(table, fmt))


def result_text(table: pa.Table, fmt: str) -> str:
    """A result table as csv or json text."""
    frame = table.to_pandas()
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "json":
        return frame.to_json(orient="records", indent=1, default_handler=str) + "\n"
    raise ValueError(f"no text form for {fmt!r}")
