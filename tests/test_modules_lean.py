"""`tracekit modules DATASET` without pandas: the same bytes as on the raw traces for every format, and a dataset
query that loads neither pandas nor pyarrow.compute (issue 15: >= 10x faster than the raw trace as a cold CLI)."""

from __future__ import annotations

import csv
import io
import json
import math
import random
import shutil
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import SAMPLES, shared

from tracekit.cli import main
from tracekit.dataset.manifest import MANIFEST
from tracekit.errors import TraceWarning
from tracekit.writers.modules_text import RECORD_FUNCTION, SLICE_NOTE, _json_number

# (name, inputs): single traces of both recorders, a CUDA graph / torch.compile trace, two multi-rank sets (a
# rank-partitioned dataset), an Ascend profiler folder and a record_function-only job
CASES = {
    "gpt_prof_cuda": [SAMPLES / "gpt" / "prof_cuda.json.gz"],
    "gpt_viz_both_cuda": [SAMPLES / "gpt" / "viz_both_cuda.json.gz"],
    "cnn_prof_both": [SAMPLES / "cnn" / "prof_both.json.gz"],
    "oracle_mlp_graphed": [SAMPLES / "oracle_cuda" / "mlp_graphed.json.gz"],
    "alexnet_cpu_2ranks": [SAMPLES / "alexnet" / "cpu_rank0.json.gz", SAMPLES / "alexnet" / "cpu_rank1.json.gz"],
    "dist_pp_dp": sorted((SAMPLES / "dist_pp_dp").glob("rank-*.json.gz")),
    "npu_alexnet": ["npu/msinsight_alexnet_dp/text/level1/rank0_ascend_pt"],
    "dlrm_8ranks": ["gpu/param_dlrm_8ranks"],
    "attribution_hf_llama": [SAMPLES / "attribution_cuda" / "hf_llama_truth.json.gz"],
    "dist_ep_dp": sorted((SAMPLES / "dist_ep_dp").glob("rank-*.json.gz")),
}
FORMATS = (["--format", "table"], ["--format", "csv"], ["--format", "json"], ["--depth", "2", "--sort", "total"],
           ["--depth", "1", "--sort", "device", "--format", "csv"], ["--sort", "flops", "--format", "json"])


def _inputs(name: str) -> list[Path]:
    return [p if isinstance(p, Path) else shared(p) for p in CASES[name]]


def _run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """name -> dataset folder, each case converted once."""
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            out = tmp_path_factory.mktemp(name) / "ds"
            result = _run("convert", *_inputs(name), "-o", out)
            assert result.exit_code == 0, result.output
            made[name] = out
        return made[name]

    return get


def _same_but_title(raw: str, on_dataset: str, inputs: list[Path], dataset: Path) -> None:
    """Equal once the title (the inputs' names) is the same."""
    title_raw = "modules of " + ", ".join(p.name for p in inputs)
    assert title_raw in raw or "modules of" not in raw
    assert on_dataset.replace("modules of " + dataset.name, title_raw) == raw


@pytest.mark.parametrize("name", list(CASES))
def test_dataset_output_is_the_raw_output_for_every_format(name, datasets, tmp_path):
    inputs, ds = _inputs(name), datasets(name)
    for options in FORMATS:
        raw, on_dataset = _run("modules", *inputs, *options), _run("modules", ds, *options)
        assert raw.exit_code == on_dataset.exit_code == 0, on_dataset.output
        assert len(raw.stdout) > 500  # a real tree, not two empty answers
        _same_but_title(raw.stdout, on_dataset.stdout, inputs, ds)
        assert raw.stderr == on_dataset.stderr.replace(str(ds), ", ".join(map(str, inputs)))  # the same messages
    for fmt in ("html", "csv", "json", "txt"):
        raw_file, ds_file = tmp_path / f"raw.{fmt}", tmp_path / f"ds.{fmt}"
        assert _run("modules", *inputs, "-o", raw_file).exit_code == 0
        assert _run("modules", ds, "-o", ds_file).exit_code == 0
        _same_but_title(raw_file.read_text(), ds_file.read_text(), inputs, ds)
    rows = json.loads(_run("modules", ds, "--format", "json").stdout)
    depth = [r["depth"] for r in rows]
    assert depth[0] == 0 and all(b <= a + 1 for a, b in pairwise(depth))  # tree order: a child after its parent


def test_csv_and_json_match_what_pandas_writes(datasets):
    """The rows writers give what DataFrame.to_csv / to_json gave (the display columns of the same rows)."""
    from tracekit.modules.table import module_table
    from tracekit.modules.view import step_time_ns, tree_view
    from tracekit.pipeline import process, read_inputs
    from tracekit.writers.modules_text import DISPLAY_COLUMNS

    processed = process(read_inputs(_inputs("cnn_prof_both")))
    view = tree_view(module_table(processed.table, processed.modules), step_time_ns(processed.table), sort="total")
    text = _run("modules", *_inputs("cnn_prof_both"), "--sort", "total", "--format", "csv").stdout
    assert text == view[list(DISPLAY_COLUMNS)].to_csv(index=False) + "\n"
    frame = view[list(DISPLAY_COLUMNS)].copy()
    for col in ("input_shapes", "last_input_shapes", "output_shapes"):
        frame[col] = [json.loads(v) if isinstance(v, str) else None for v in frame[col]]
    assert json.loads(_run("modules", datasets("cnn_prof_both"), "--sort", "total", "--format", "json").stdout) == \
        json.loads(frame.to_json(orient="records"))


def test_json_numbers_are_what_pandas_to_json_gives():
    rng = random.Random(15)
    values = [0.0, -0.0, 1e16, 9.99e15, -2.5e17, 1e-15, 9.9e-16, 5e-11, 1.5489425189726167, 67108864.0]
    values += [rng.choice((-1, 1)) * rng.random() * 10 ** rng.randint(-20, 22) for _ in range(5000)]
    expected = [r["x"] for r in json.loads(pd.DataFrame({"x": values}).to_json(orient="records"))]
    assert [json.dumps(_json_number(v)) for v in values] == [json.dumps(v) for v in expected]
    assert _json_number(math.nan) is None and _json_number([1.23456789012345, 2]) == [1.2345678901, 2]


def _loaded_after(args: list[str]) -> set[str]:
    probe = (f"from tracekit.cli import main\nimport sys\ntry:\n    main({args!r})\nexcept SystemExit as e:\n"
             "    assert not e.code, e.code\n"
             "print('LOADED:', *(m for m in ('pandas', 'pyarrow.compute', 'pyarrow.dataset', 'tracekit.pipeline',"
             " 'pyarrow.parquet', 'pyarrow', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.rsplit("LOADED:", 1)[1].split())


@pytest.mark.parametrize("name", ["gpt_prof_cuda", "dist_pp_dp"])
def test_a_dataset_query_loads_no_pandas(name, datasets, tmp_path):
    """Through the module rows file: json only (no numpy, pyarrow or pandas), the html page included; an older
    dataset without it: pyarrow and numpy, no pandas."""
    ds = datasets(name)
    old = without_rows_file(ds, tmp_path / "old")
    for fmt in ("table", "csv", "json", "html"):
        out = tmp_path / f"out.{fmt if fmt != 'table' else 'txt'}"
        assert _loaded_after(["modules", str(ds), "-o", str(out)]) == set()
        assert out.stat().st_size > 500
        assert _loaded_after(["modules", str(old), "-o", str(out)]) == {"pyarrow", "pyarrow.parquet", "numpy"}
    # the raw trace still goes through pandas (the pipeline)
    assert "pandas" in _loaded_after(["modules", str(_inputs(name)[0]), "--format", "csv"])


def test_no_modules_is_said_from_the_manifest_alone(datasets, tmp_path):
    """A dataset whose manifest counts 0 module rows: the message, without opening a table."""
    ds = tmp_path / "ds"
    shutil.copytree(datasets("gpt_prof_cuda"), ds)
    manifest = json.loads((ds / MANIFEST).read_text())
    manifest["tables"]["modules"]["rows"] = 0
    (ds / MANIFEST).write_text(json.dumps(manifest))
    for table in ("modules.parquet", "events.parquet", "steps.parquet"):
        (ds / table).unlink()
    result = _run("modules", ds, "-o", tmp_path / "out.csv")
    assert result.exit_code == 0 and "no nn.Module events" in result.stderr
    assert not (tmp_path / "out.csv").exists()
    assert _loaded_after(["modules", str(ds), "--format", "csv"]) == set()  # not even pyarrow or numpy


def test_record_function_only_job_says_so_on_both_paths(datasets):
    raw, on_dataset = _run("modules", *_inputs("dlrm_8ranks"), "--format", "csv"), _run(
        "modules", datasets("dlrm_8ranks"), "--format", "csv")
    assert raw.stderr == on_dataset.stderr.replace(str(datasets("dlrm_8ranks")), ", ".join(map(str, _inputs(
        "dlrm_8ranks"))))
    rows = json.loads(_run("modules", datasets("dlrm_8ranks"), "--format", "json").stdout)
    record_function_only = all(r["module_type"] == RECORD_FUNCTION for r in rows)
    assert ("showing the record_function annotation hierarchy" in on_dataset.stderr) == record_function_only


def test_constants_copied_to_stay_light_match_their_source():
    from tracekit.modules.call_details import SLICE_NOTE as source_note
    from tracekit.modules.spans import RECORD_FUNCTION as source_kind

    assert source_note == SLICE_NOTE and source_kind == RECORD_FUNCTION


@pytest.mark.parametrize("name", ["gpt_prof_cuda", "dist_pp_dp", "npu_alexnet"])
def test_step_figures_read_with_pyarrow_are_the_pandas_ones(name, datasets):
    from tracekit.dataset import open_dataset
    from tracekit.dataset.load import STEP_TIME_COLUMNS, _dataset_step_figures
    from tracekit.modules.view import first_recorded_step, step_time_ns

    ds = open_dataset(datasets(name))
    events = ds.processed(STEP_TIME_COLUMNS).table
    step_ns, first = _dataset_step_figures(ds)
    assert step_ns == step_time_ns(events) and first == first_recorded_step(events)
    assert len(step_ns) == len(ds.sources) and all(v > 0 for v in step_ns.values())


def test_arrow_columns_as_numpy_without_pandas():
    import pyarrow as pa

    from tracekit.dataset.load import _equals, _numpy, _Unreadable

    chunks = pa.chunked_array([pa.array([1, 2, 3], pa.int64()).slice(1), pa.array([], pa.int64()), pa.array([7])])
    assert _numpy(chunks).tolist() == [2, 3, 7]
    assert _numpy(pa.chunked_array([pa.array([1.5, -2.5], pa.float32())])).tolist() == [1.5, -2.5]
    assert _numpy(pa.chunked_array([pa.array([250], pa.uint8())])).tolist() == [250]
    kinds = pa.chunked_array([pa.array(["M", "X", "step"]).dictionary_encode(), pa.array(["step"]).dictionary_encode()])
    assert _equals(kinds, "step").tolist() == [False, False, True, True]
    assert _equals(pa.chunked_array([pa.array(["M", None])]), "M").tolist() == [True, False]
    for odd in (pa.array([1, None]), pa.array([True])):  # nulls, or not a number: the pandas way instead
        with pytest.raises(_Unreadable):
            _numpy(pa.chunked_array([odd]))


# --- the module rows file (modules.json, modules_json/rank=R/part-I.json) that convert writes beside modules.parquet


def without_rows_file(ds: Path, to: Path) -> Path:
    """A copy of the dataset as a tracekit before the rows file wrote it: no rows file, no manifest entry."""
    shutil.copytree(ds, to)
    manifest = json.loads((to / MANIFEST).read_text())
    del manifest["module_rows"]
    (to / MANIFEST).write_text(json.dumps(manifest))
    (to / "modules.json").unlink(missing_ok=True)
    shutil.rmtree(to / "modules_json", ignore_errors=True)
    return to


def _outputs(ds: Path, tmp_path: Path) -> list[tuple[int, str, str]]:
    """(exit code, stdout with the title made neutral, stderr) of `modules ds` for every option set and -o file."""
    got = []
    for options in FORMATS:
        result = _run("modules", ds, *options)
        got.append((result.exit_code, result.stdout.replace(f"modules of {ds.name}", "modules of DS"),
                    result.stderr.replace(str(ds), "DS")))
    for fmt in ("html", "csv", "json", "txt"):
        out = tmp_path / f"{ds.name}.{fmt}"
        result = _run("modules", ds, "-o", out)
        got.append((result.exit_code, out.read_text().replace(f"modules of {ds.name}", "modules of DS"),
                    result.stderr.replace(str(ds), "DS")))
    return got


@pytest.mark.parametrize("name", list(CASES))
def test_rows_file_gives_what_the_parquet_path_gives(name, datasets, tmp_path):
    """The same bytes through the rows file as through modules.parquet (the path of an older dataset), every
    format, option and -o file; the manifest lists the rows file with the module table's row count."""
    ds = datasets(name)
    manifest = json.loads((ds / MANIFEST).read_text())
    entry = manifest["module_rows"]
    assert entry["rows"] == manifest["tables"]["modules"]["rows"] > 0
    assert (ds / entry["path"]).exists()
    one_file = manifest["tables"]["modules"]["layout"] == "file"
    assert entry["layout"] == ("file" if one_file else "one file per rank partition")
    assert _outputs(ds, tmp_path) == _outputs(without_rows_file(ds, tmp_path / "ds"), tmp_path)


@pytest.mark.parametrize("name", ["gpt_prof_cuda", "npu_alexnet", "dist_pp_dp", "dlrm_8ranks"])
def test_rows_file_holds_the_parquet_rows_and_step_figures(name, datasets):
    """read_module_rows: modules.parquet's rows (source_index: the partition's input position) and the step
    figures read from events.parquet, without touching either."""
    from tracekit.dataset import open_dataset
    from tracekit.dataset.load import _dataset_modules, _dataset_step_figures
    from tracekit.dataset.module_rows import read_module_rows
    from tracekit.writers.modules_text import VIEW_COLUMNS

    ds = open_dataset(datasets(name))
    stored = read_module_rows(ds, VIEW_COLUMNS)
    assert stored is not None and len(stored.rows) == ds.entry("modules")["rows"]
    assert stored.rows == _dataset_modules(ds, VIEW_COLUMNS).to_pylist()
    assert (stored.step_ns, stored.first_step) == _dataset_step_figures(ds)
    assert {r["source_index"] for r in stored.rows} <= set(stored.step_ns)  # every row's source has its step time


def test_a_damaged_rows_file_is_said_and_the_parquet_tables_answer(datasets, tmp_path):
    """Truncated, missing, or counting other rows than the manifest: a warning naming the file and what is wrong,
    then the Parquet path's output (exit 0)."""
    good = datasets("gpt_prof_cuda")
    expected = _run("modules", good, "--format", "csv").stdout

    def damaged(label: str, spoil, why: str) -> None:
        ds = tmp_path / label
        shutil.copytree(good, ds)
        spoil(ds)
        with pytest.warns(TraceWarning) as said:
            result = _run("modules", ds, "--format", "csv")
        assert result.exit_code == 0 and result.stdout == expected
        message = " ".join(str(w.message) for w in said)
        assert f"{ds / 'modules.json'}: module rows file unusable ({why}" in message, message
        assert "reading modules.parquet instead" in message

    damaged("truncated", lambda ds: (ds / "modules.json").write_text((ds / "modules.json").read_text()[:-40]),
            "modules.json: JSONDecodeError")
    damaged("missing", lambda ds: (ds / "modules.json").unlink(), "modules.json: FileNotFoundError")

    def fewer_rows(ds: Path) -> None:
        doc = json.loads((ds / "modules.json").read_text())
        doc["rows"] = doc["rows"][:-1]
        (ds / "modules.json").write_text(json.dumps(doc))

    damaged("fewer_rows", fewer_rows, "28 rows, the manifest counts 29")
    damaged("not_rows", lambda ds: (ds / "modules.json").write_text("[1, 2]"), "modules.json: TypeError")

    def shapeless(ds: Path) -> None:
        doc = json.loads((ds / "modules.json").read_text())
        doc["rows"][3] = doc["rows"][3][:-2]
        (ds / "modules.json").write_text(json.dumps(doc))

    damaged("shapeless", shapeless, "modules.json: not a module rows file")
    damaged("nested_deep", lambda ds: (ds / "modules.json").write_text("[" * 200_000), "modules.json: RecursionError")

    def edited(ds: Path, key: str, value) -> None:
        doc = json.loads((ds / "modules.json").read_text())
        if key == "step_ns":
            doc["step_ns"] = value
        else:
            doc["rows"][0][doc["columns"].index(key)] = value
        (ds / "modules.json").write_text(json.dumps(doc))

    damaged("huge_step", lambda ds: edited(ds, "step_ns", [[0, 1e400]]), "modules.json: OverflowError")
    damaged("text_count", lambda ds: edited(ds, "calls", "many"),
            "modules.json: row 0 column calls: 'many' is not of its type int")
    damaged("number_path", lambda ds: edited(ds, "module_path", 7),
            "modules.json: row 0 column module_path: 7 is not of its type str")


def test_a_newer_rows_file_is_left_to_the_parquet_tables_silently(datasets, tmp_path, recwarn):
    ds = tmp_path / "ds"
    shutil.copytree(datasets("gpt_prof_cuda"), ds)
    manifest = json.loads((ds / MANIFEST).read_text())
    manifest["module_rows"]["format_version"] += 1
    (ds / MANIFEST).write_text(json.dumps(manifest))
    (ds / "modules.json").write_text("a format this tracekit does not know")
    expected = _run("modules", datasets("gpt_prof_cuda"), "--format", "csv").stdout
    result = _run("modules", ds, "--format", "csv")
    assert result.exit_code == 0 and result.stdout == expected and result.stderr == ""
    assert not [w for w in recwarn if issubclass(w.category, TraceWarning)]


def test_a_missing_rank_rows_file_is_said(datasets, tmp_path):
    ds = tmp_path / "ds"
    shutil.copytree(datasets("dist_pp_dp"), ds)
    expected = _run("modules", datasets("dist_pp_dp"), "--format", "json").stdout
    next((ds / "modules_json").glob("rank=*/*.json")).unlink()
    with pytest.warns(TraceWarning, match=r"modules_json: module rows file unusable \(3 rows files for 4 "
                                          r"partitions of modules/\); reading modules.parquet instead"):
        result = _run("modules", ds, "--format", "json")
    assert result.exit_code == 0 and result.stdout == expected


def test_int_and_float_partitions_are_made_float_as_arrow_concatenates(datasets, tmp_path):
    """A column integer in one rank's partition and floating in another: the Parquet path's concatenation makes it
    floating everywhere (1 -> 1.0 in the CSV); the rows file path does the same."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ds = tmp_path / "ds"
    shutil.copytree(datasets("dist_pp_dp"), ds)
    part = sorted((ds / "modules").glob("rank=*/*.parquet"))[1]
    table = pq.read_table(part)
    at = table.column_names.index("calls")
    assert table.schema.field("calls").type == pa.int64()
    pq.write_table(table.set_column(at, "calls", table.column("calls").cast(pa.float64())), part)
    rows_file = ds / "modules_json" / part.parent.name / part.with_suffix(".json").name
    doc = json.loads(rows_file.read_text())
    col = doc["columns"].index("calls")
    doc["types"][col] = "double"
    for row in doc["rows"]:
        row[col] = float(row[col])
    rows_file.write_text(json.dumps(doc))
    through_rows = _run("modules", ds, "--format", "csv")
    through_parquet = _run("modules", without_rows_file(ds, tmp_path / "old"), "--format", "csv")
    assert through_rows.stdout.replace("modules of ds", "") == through_parquet.stdout
    assert through_rows.stderr == through_parquet.stderr == ""
    calls = [row["calls"] for row in csv.DictReader(io.StringIO(through_rows.stdout))]
    assert calls and all(c.endswith(".0") for c in calls)  # every rank's calls as floats, not only rank 1's


def test_convert_without_parquet_writes_no_rows_file(tmp_path):
    out = tmp_path / "ds"
    assert _run("convert", SAMPLES / "gpt" / "prof.json.gz", "-o", out, "--no-parquet").exit_code == 0
    assert not (out / "modules.json").exists() and "module_rows" not in json.loads((out / MANIFEST).read_text())
