"""The flat sequence table compare aligns from: the same sequences as compare.ops.sequences, and the
op table built from it lists every op of every compared sequence once, in order."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import compared_pair

from tracekit.compare.ops import sequences
from tracekit.compare.seqtable import sequence_table

PAIRS = {
    "bert h100 vs mi300": ("gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz",
                           "gpu/tracelens/mi300/gaunernst_bert-small-uncased__1016001.json.gz"),
    "gpt vs tp+ddp (ops outside modules)": ("cpu/gpt/prof_stack_modules.json.gz", "cpu/dist_tp_ddp/rank-0.json.gz"),
    "alexnet npu vs gpt": ("npu/msinsight_alexnet_dp/text/level1/rank0_ascend_pt",
                           "cpu/gpt/prof_stack_modules.json.gz"),
}
def compared(name: str):
    return compared_pair(*PAIRS[name])


@pytest.mark.parametrize("name", PAIRS)
def test_sequence_table_holds_the_same_sequences(name):
    cmp = compared(name)
    for side in (cmp.base, cmp.target):
        reference = sequences(side.ops)
        table = sequence_table(side.ops)
        assert set(table.spans) == set(reference) and reference
        spans = sorted(table.spans.values(), key=lambda r: r.start)
        assert [r.start for r in spans] == [0] + [r.stop for r in spans[:-1]]  # contiguous, no row twice
        assert spans[-1].stop == len(table.frame)
        for path in {p for p, _ in reference} | {"no/such/module"}:
            assert table.phases(path) == {ph for p, ph in reference if p == path}
        for key, span in table.spans.items():
            got = table.frame.iloc[span.start:span.stop].reset_index(drop=True)
            pd.testing.assert_frame_equal(got, reference[key], check_dtype=True)
            assert (got["calls"] >= 1).all()


@pytest.mark.parametrize("name", PAIRS)
def test_op_table_lists_each_sequence_once_in_order(name):
    cmp = compared(name)
    ops, modules = cmp.ops, cmp.modules
    assert {"matched", "base_only", "target_only"} >= set(ops["status"]) and len(ops)
    for label, side in (("base", cmp.base), ("target", cmp.target)):
        paths = modules[f"{label}_path"]
        listed = set(paths.dropna()) | {None}
        mine = ops[ops["status"].isin(["matched", f"{label}_only"])]
        path_col = mine[f"{label}_module_path"].astype(object).where(mine[f"{label}_module_path"].notna(), None)
        for (path, phase), seq in sequences(side.ops).items():
            if path not in listed:
                continue
            rows = mine[(path_col == path) & (mine["phase"] == phase)] if path is not None else \
                mine[path_col.isna() & (mine["phase"] == phase)]
            assert rows[f"{label}_op"].tolist() == seq["name"].tolist(), (label, path, phase)
            assert rows["position"].is_monotonic_increasing
        both = ops[ops["status"] == "matched"]
        assert (both["base_op"].notna() & both["target_op"].notna()).all()
