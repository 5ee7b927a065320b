"""`tracekit info`'s fast path (call tree, links and steps only) gives the facts of the full pipeline."""

from __future__ import annotations

import pytest
from conftest import SAMPLES, shared

from tracekit.info import quick_info, trace_info
from tracekit.pipeline import process, read_inputs


@pytest.mark.parametrize("rel", [
    "gpu/hta/v100_large.json.gz",
    "gpu/hta/nccl_data.json.gz",
    "gpu/kineto_legacy/worker0.1623143089861.pt.trace.json.gz",
    "cpu/gpt/viz.json.gz",
    "cpu/dist_tp_ddp/rank-0.json.gz",
])
def test_quick_info_matches_full_pipeline(rel: str) -> None:
    table = read_inputs([shared(rel)])
    fast = quick_info(read_inputs([shared(rel)], keep_args=False), top=15)  # as `tracekit info` reads
    assert fast == trace_info(process(table), top=15)
    assert fast["counts_by_kind"] and fast["time_span_ns"]["duration"] > 0


def test_quick_info_on_recorded_sample() -> None:
    table = read_inputs([SAMPLES / "gpt" / "prof.json.gz"])
    fast = quick_info(read_inputs([SAMPLES / "gpt" / "prof.json.gz"], keep_args=False))
    assert fast == trace_info(process(table))
    assert fast["top_ops"] and fast["has_modules"]
