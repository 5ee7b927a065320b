"""`tracekit modules DATASET` without pandas: the same bytes as on the raw traces for every format, and a dataset
query that loads neither pandas nor pyarrow.compute (issue 15: >= 10x faster than the raw trace as a cold CLI)."""

from __future__ import annotations

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
from tracekit.cli.modules import RECORD_FUNCTION
from tracekit.dataset.manifest import MANIFEST
from tracekit.writers.modules_text import SLICE_NOTE, _json_number

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
    ds = datasets(name)
    for fmt in ("table", "csv", "json"):
        assert _loaded_after(["modules", str(ds), "-o", str(tmp_path / f"out.{fmt if fmt != 'table' else 'txt'}")]) \
            == {"pyarrow", "pyarrow.parquet", "numpy"}
        assert (tmp_path / f"out.{fmt if fmt != 'table' else 'txt'}").stat().st_size > 500
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
