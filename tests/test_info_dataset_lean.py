"""`tracekit info DATASET` reads the stored columns it needs into numpy (tracekit.dataset.info_read), without
pandas: the facts must be those of the pandas table (Dataset.processed), on single-trace and multi-rank
datasets of real traces, and the Arrow-to-numpy conversion must match pyarrow's (nulls, slices, dictionaries)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
from conftest import SAMPLES, shared

from tracekit.convert import convert
from tracekit.dataset import open_dataset
from tracekit.dataset.info_read import _coded, _numbers, dataset_facts
from tracekit.dataset.load import INFO_COLUMNS
from tracekit.info import trace_info

INPUTS = {
    "bert h100": [shared("gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz")],
    "alexnet npu 2 ranks": [shared("npu/msinsight_alexnet_dp/text/level1")],
    "dlrm 8 ranks": [shared("gpu/param_dlrm_8ranks")],
    "gpt viztracer": [SAMPLES / "gpt" / "viz.json.gz"],
    "dist_pp_dp": [SAMPLES / "dist_pp_dp"],
}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("info_lean")
    made = {}
    for name, inputs in INPUTS.items():
        out = root / name.replace(" ", "_")
        convert(inputs, out, workers=1)
        made[name] = out
    return made


@pytest.mark.parametrize("name", list(INPUTS))
@pytest.mark.parametrize("top", [3, 10])
def test_facts_from_numpy_columns_are_the_pandas_facts(datasets, name, top):
    ds = open_dataset(datasets[name])
    lean = dataset_facts(ds, top)
    assert json.dumps(lean) == json.dumps(trace_info(ds.processed(INFO_COLUMNS), top=top))
    assert sum(lean["counts_by_kind"].values()) > 0 and (lean["top_ops"] or name == "gpt viztracer")


def test_info_on_a_dataset_loads_no_pandas(datasets):
    probe = ("from tracekit.cli import main\nimport sys\ntry:\n"
             f"    main(['info', {str(datasets['dlrm 8 ranks'])!r}])\nexcept SystemExit as e:\n    assert not e.code\n"
             "print('LOADED:', *(m for m in ('pandas', 'pyarrow.dataset', 'tracekit.pipeline') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "devices: 8 × Tesla V100" in out
    assert out.rsplit("LOADED:", 1)[1].split() == []


@pytest.mark.parametrize("values, kind", [
    ([3, None, -1, 7, None], pa.int64()), ([1.5, None, 2.0], pa.float64()), ([5, 6, 7, 8], pa.int32()),
    ([], pa.int64()), ([None, None], pa.int32()),
])
def test_numbers_as_pyarrow_gives_them(values, kind):
    array = pa.array(values, kind)
    for piece in (array, array.slice(1)):  # a slice: a buffer offset
        got, want = _numbers(pa.chunked_array([piece])), piece.to_numpy(zero_copy_only=False)
        assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True)


def test_text_as_codes_into_distinct_values():
    array = pa.array(["b", None, "a", "b", "c"]).slice(1)
    for column in (pa.chunked_array([array]), pa.chunked_array([array.dictionary_encode()]),
                   pa.chunked_array([array.slice(0, 2), array.slice(2)])):
        coded = _coded(column)
        assert [None if c < 0 else coded.categories[c] for c in coded.codes] == [None, "a", "b", "c"]
