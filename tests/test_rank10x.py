"""The per-rank shortcuts of issue 15 (rank10x) give what the pandas ways give: column access without a Series
equals `frame[name]` on every column of real processed traces, and tables built from the column arrays equal
`pa.Table.from_pandas` in values, types and the pandas schema metadata (the dtypes a reader gets back)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import processed_trace

from tracekit.modules.table import module_table
from tracekit.pipeline import Processed
from tracekit.steps import step_table
from tracekit.table import column, column_array, is_in, matches, strings
from tracekit.writers.parquet import EVENT_COLUMNS, events_frame, frame_to_arrow, kernels_frame, ops_frame

TRACES = ("gpu/param_dlrm_8ranks/worker3_step_12.1694128201557.pt.trace.json.gz", "gpu/hta/nccl_data.json.gz",
          "cpu/gpt/prof_stack_modules.json.gz", "cpu/gpt/viz.json.gz", "cpu/dist_cp_tp/rank-1.json.gz",
          "gpu/kineto_legacy")


def _processed(rel: str) -> Processed:
    return processed_trace(rel)


@pytest.fixture(scope="module", params=TRACES)
def processed(request) -> Processed:
    return _processed(request.param)


def test_column_equals_the_series_values(processed: Processed) -> None:
    ev = processed.table.events
    assert len(ev) > 100
    for name in ev.columns:
        got, series = column(ev, name), ev[name]
        if isinstance(series.dtype, pd.CategoricalDtype):
            assert isinstance(got, pd.Categorical)
            assert got.categories.equals(series.array.categories)
            np.testing.assert_array_equal(got.codes, series.array.codes)
        else:
            want = series.to_numpy()
            assert got.dtype == want.dtype, name
            np.testing.assert_array_equal(got, want)
            assert not got.flags.writeable, name  # the frame's own memory: never written through
        raw = column_array(ev, name)
        assert type(raw) is type(series.array) or isinstance(raw, np.ndarray)


def test_column_of_a_missing_name_raises_like_the_frame(processed: Processed) -> None:
    with pytest.raises(KeyError):
        column(processed.table.events, "no_such_column")


def test_helpers_give_the_same_on_a_categorical_and_its_series(processed: Processed) -> None:
    ev = processed.table.events
    rows = np.arange(0, len(ev), 7)
    for name in ("name", "cat", "kind", "ph"):
        series, cat = ev[name], column(ev, name)
        np.testing.assert_array_equal(strings(series, rows), strings(cat, rows))
        np.testing.assert_array_equal(is_in(series, ("cpu_op", "X", "kernel")), is_in(cat, ("cpu_op", "X", "kernel")))
        np.testing.assert_array_equal(matches(series, r"aten::|X"), matches(cat, r"aten::|X"))
    plain = ev["name"].astype(object)  # a plain (not categorical) column takes the row-by-row way
    np.testing.assert_array_equal(strings(plain.to_numpy(), rows), strings(ev["name"], rows))
    np.testing.assert_array_equal(matches(plain.to_numpy(), r"aten::"), matches(ev["name"], r"aten::"))


def _same_as_from_pandas(frame: pd.DataFrame, columns: list[str] | None = None) -> None:
    want = pa.Table.from_pandas(frame, columns=columns, preserve_index=False)
    got = frame_to_arrow(frame, columns)
    assert got.schema.equals(want.schema, check_metadata=True), (got.schema, want.schema)
    assert got.schema.pandas_metadata == want.schema.pandas_metadata
    assert got.equals(want)
    if got.num_rows < 5_000:  # read back as pandas: the same dtypes (slow on the big event tables)
        pd.testing.assert_frame_equal(got.to_pandas(), want.to_pandas())


def test_frame_to_arrow_equals_from_pandas_on_real_tables(processed: Processed) -> None:
    ev = processed.table.events
    _same_as_from_pandas(ev, [c for c in EVENT_COLUMNS if c in ev])
    _same_as_from_pandas(ev)
    _same_as_from_pandas(step_table(ev))
    modules = module_table(processed.table, processed.modules)
    _same_as_from_pandas(modules)
    events = events_frame(processed.table)
    assert events.column_names[-1] == "args" and events.num_rows == len(ev)
    for made in (kernels_frame(processed.table), ops_frame(processed.table)):
        assert made.num_rows >= 0


def test_frame_to_arrow_equals_from_pandas_on_every_kind_of_column() -> None:
    n = 6
    frame = pd.DataFrame({
        "i8": np.arange(n, dtype=np.int8), "u32": np.arange(n, dtype=np.uint32), "b": np.arange(n) % 2 == 0,
        "f": np.array([1.0, np.nan, 2.5, np.nan, 0.0, -1.0]),  # NaN -> null as from_pandas does
        "nullable": pd.array([1, None, 3, 4, None, 6], dtype="Int64"),
        "text": pd.array(["a", None, "c", "d", "e", "f"], dtype="str"),
        "obj": pd.Series(["x", None, "z", "x", "y", None], dtype=object),
        "cat": pd.Categorical(["a", None, "b", "a", "b", "a"], categories=pd.Index(["a", "b"], dtype=object)),
        "ordered": pd.Categorical(["lo", "hi", "lo", None, "hi", "lo"],
                                  categories=pd.Index(["lo", "hi"], dtype=object), ordered=True),
        "empty_cat": pd.Categorical([None] * n, categories=pd.Index([], dtype=object)),
        "int_cat": pd.Categorical([1, 2, 1, 2, None, 1]),
        "bytes_cat": pd.Categorical([b"a", b"b", b"a", b"a", b"b", None],
                                    categories=pd.Index([b"a", b"b"], dtype=object)),
        "str_cat": pd.Categorical(["p", "q", "p", "q", "p", "q"]),  # categories of the str dtype
        "when": pd.to_datetime(np.arange(n), unit="s"),
        "lists": pd.Series([[0, 1], None, [2], [0, 1], [], None], dtype=object),  # as collectives' group_ranks
        "none": pd.Series([None] * n, dtype=object),
    })
    frame.attrs["note"] = "kept"
    _same_as_from_pandas(frame)
    _same_as_from_pandas(frame, ["cat", "i8", "f"])
    _same_as_from_pandas(frame.iloc[:0])


def test_small_tables_do_not_hand_memory_back_large_ones_do() -> None:
    from tracekit.converters.loading import release_free_memory

    from tracekit.writers.memory import RELEASE_ROWS, releaser

    assert releaser(RELEASE_ROWS) is release_free_memory
    assert releaser(10 * RELEASE_ROWS) is release_free_memory
    small = releaser(RELEASE_ROWS - 1)
    assert small is not release_free_memory
    assert small() is None


def test_rank_partitions_read_back_the_same_table(tmp_path) -> None:
    """The partition writer's options (dictionary pages for dictionary columns only, statistics for the
    columns that are not text) change how the file is laid out, not what is read back."""
    import pyarrow.parquet as pq

    from tracekit.ranks import _write_partition, partition_options

    processed = _processed(TRACES[0])
    ev = processed.table.events
    for name, made in (("events", events_frame(processed.table)), ("ops", ops_frame(processed.table)),
                       ("modules", module_table(processed.table, processed.modules)), ("steps", step_table(ev))):
        path = tmp_path / name / "rank=3" / "part-00000.parquet"
        rows = _write_partition(made, path)
        want = made if isinstance(made, pa.Table) else pa.Table.from_pandas(made, preserve_index=False)
        want = want.drop_columns(["rank"]) if "rank" in want.column_names else want
        got = pq.read_table(path)
        assert rows == want.num_rows == got.num_rows
        assert got.schema.equals(want.schema, check_metadata=True)
        assert got.equals(want)
        meta = pq.ParquetFile(path).metadata.row_group(0)
        options = partition_options(want.schema)
        for i in range(meta.num_columns):
            col = meta.column(i)
            field = want.schema.field(col.path_in_schema)
            assert col.is_stats_set == (field.name in (options["write_statistics"] or [])), field
            assert ("RLE_DICTIONARY" in col.encodings or "PLAIN_DICTIONARY" in col.encodings) == \
                pa.types.is_dictionary(field.type), field


def test_small_partitions_written_from_memory_are_the_same_bytes(tmp_path, monkeypatch) -> None:
    import tracekit.ranks as ranks

    processed = _processed(TRACES[0])
    table = events_frame(processed.table)
    assert table.num_rows < ranks.SMALL_PARTITION_ROWS
    ranks._write_partition(table, tmp_path / "memory" / "part.parquet")
    monkeypatch.setattr(ranks, "SMALL_PARTITION_ROWS", 0)  # the file-system way, as for a large rank
    ranks._write_partition(table, tmp_path / "file" / "part.parquet")
    assert (tmp_path / "memory" / "part.parquet").read_bytes() == (tmp_path / "file" / "part.parquet").read_bytes()


def test_column_of_a_name_held_twice_is_what_the_frame_gives() -> None:
    frame = pd.DataFrame([[1, 2, 3], [4, 5, 6]], columns=["a", "b", "a"])
    np.testing.assert_array_equal(column(frame, "a"), frame["a"].to_numpy())
    np.testing.assert_array_equal(column(frame, "b"), np.array([2, 5]))
    assert not column(frame, "b").flags.writeable
