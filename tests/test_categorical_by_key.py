"""pipeline._categorical_by_key (module path and type encoded through the rows' module span) against the generic
_categorical_once, on real traces: the same categories, codes and code type."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import processed_trace

from tracekit.modules.attribute import attribute_modules
from tracekit.pipeline import _categorical_by_key, _categorical_once


@pytest.mark.parametrize("rel", ["gpu/param_dlrm_8ranks", "cpu/gpt/prof_stack_modules.json.gz",
                                 "gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz"])
def test_module_columns_encode_as_the_generic_way(rel):
    modules = attribute_modules(processed_trace(rel).table)  # the per-row arrays (a Processed keeps only spans)
    assert (modules.module >= 0).any() or rel.startswith("gpu/param")
    for name in ("module_path", "module_type"):
        values = getattr(modules, name)
        fast, generic = _categorical_by_key(modules.module, values), _categorical_once(values)
        assert list(fast.categories) == list(generic.categories), name
        assert fast.codes.dtype == generic.codes.dtype and np.array_equal(fast.codes, generic.codes), name
        assert fast.dtype == generic.dtype


def test_a_key_with_no_value_is_missing():
    keys = np.array([3, -1, 3, 7, -1], dtype=np.int64)
    values = np.array(["b/a", None, "b/a", "a", None], dtype=object)
    encoded = _categorical_by_key(keys, values)
    assert list(encoded.categories) == ["a", "b/a"]
    assert encoded.codes.tolist() == [1, -1, 1, 0, -1]
