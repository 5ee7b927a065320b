"""A module instance called from several parents is named under each parent that calls it, a recursive call is
part of the call around it, and parameters count once per instance (as `module.parameters()` does).

Real traces: vLLM's GPT-OSS (b200 eager) shares one rotary embedding among all attention layers; HF OWLv2
reuses its vision post-layernorm in the detection head; DLRM's DDP annotation nests inside itself."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from conftest import shared

B200 = "gpu/tracelens/b200/eager_trace.json.gz"
OWLV2 = "gpu/tracelens/h100/google_owlv2-large-patch14-ensemble__1016001.json.gz"
DLRM = "gpu/param_dlrm_8ranks/worker0_step_12.1694128201545.pt.trace.json.gz"


def _modules(converted, rel: str) -> pd.DataFrame:
    out, _ = converted(shared(rel))
    return pq.read_table(out / "modules.parquet").to_pandas()


def _children_fit(modules: pd.DataFrame) -> list[str]:
    """Parents whose children's total time is more than their own (a child counted outside its parent)."""
    kids = modules.dropna(subset=["parent_path"]).groupby(["source_index", "parent_path"])["total_ns"].sum()
    own = modules.set_index(["source_index", "module_path"])["total_ns"]
    return [path for (src, path), total in kids.items() if total > own[(src, path)]]


def test_shared_rotary_embedding_is_under_every_attention_layer(converted) -> None:
    modules = _modules(converted, B200)
    attention = modules[modules.module_type == "OAIAttention"]
    rotary = modules[modules.module_type == "YaRNScalingRotaryEmbedding"]
    assert len(attention) > 1
    # one instance (YaRNScalingRotaryEmbedding_0) called once by each attention layer, under each of them
    assert set(rotary.module_path.str.rpartition("/")[2]) == {"YaRNScalingRotaryEmbedding_0"}
    assert sorted(rotary.parent_path) == sorted(attention.module_path)
    assert (rotary.calls == attention.calls.iloc[0]).all()
    assert _children_fit(modules) == []


def test_kernels_of_a_shared_module_stay_in_the_calling_layer(converted) -> None:
    out, _ = converted(shared(B200))
    events = pq.read_table(out / "events.parquet", columns=["kind", "name", "ts_ns", "dur_ns", "module_path"]
                           ).to_pandas()
    spans = events[(events.kind == "module") & events.name.str.endswith("YaRNScalingRotaryEmbedding_0")]
    layers = events[(events.kind == "module") & events.name.str.contains("OAIAttention_")]
    assert len(spans) == len(layers)
    for ts, path in zip(spans.ts_ns, spans.module_path):
        around = layers[(layers.ts_ns <= ts) & (layers.ts_ns + layers.dur_ns >= ts)]
        assert len(around) == 1  # the attention call that made this rotary call
        assert path == f"{around.module_path.iloc[0]}/YaRNScalingRotaryEmbedding_0"


def test_reused_layernorm_keeps_each_callers_shapes_and_params_count_once(converted) -> None:
    modules = _modules(converted, OWLV2)
    norm = modules[modules.module_path.str.endswith("/LayerNorm_49")]
    assert len(norm) == 2  # the vision tower's post-layernorm, and the detection head's use of it
    assert len(set(norm.parent_path)) == 2
    shapes = [json.loads(s) for s in norm.input_shapes]
    assert shapes[0] != shapes[1]  # pooled [1, 1024] in the tower, every token in the head
    assert (norm.params == norm.own_params).all() and (norm.own_params > 0).all()
    # the root's params hold every instance's own params once
    instance = modules.module_path.str.rpartition("/")[2]
    once = modules.assign(instance=instance).drop_duplicates("instance")
    root = modules[modules.parent_path.isna()]
    assert len(root) == 1
    assert int(root.params.iloc[0]) == int(once.own_params.sum())
    assert _children_fit(modules) == []


def test_recursive_call_is_part_of_the_call_around_it(converted) -> None:
    modules = _modules(converted, DLRM)
    ddp = modules[modules.module_path.str.endswith("DistributedDataParallel.forward")]
    assert len(ddp) == 1
    assert "DistributedDataParallel.forward/DistributedDataParallel.forward" not in ddp.module_path.iloc[0]
    assert _children_fit(modules) == []


def test_deep_recursion_stays_one_module(tmp_path: Path) -> None:
    """An instance nested in itself 2,000 deep: one path, one call, its outer time (not a path per level)."""
    from tracekit.convert import convert

    n = 2000
    events = [{"ph": "X", "name": "nn.Module: Block_0", "cat": "python_function", "pid": 1, "tid": 1,
               "ts": 1000 + i, "dur": 2 * (n - i) + 8} for i in range(n)]
    events.append({"ph": "X", "name": "aten::add", "cat": "cpu_op", "pid": 1, "tid": 1, "ts": 1000 + n, "dur": 1})
    trace = tmp_path / "recursive.json"
    trace.write_text(json.dumps({"traceEvents": events}))
    convert([trace], tmp_path / "out")
    modules = pq.read_table(tmp_path / "out" / "modules.parquet").to_pandas()
    assert modules.module_path.tolist() == ["Block_0"]
    assert modules.calls.tolist() == [1]
    assert modules.total_ns.tolist() == [events[0]["dur"] * 1000]
    ops = pq.read_table(tmp_path / "out" / "ops.parquet").to_pandas()
    assert ops.module_path.tolist() == ["Block_0"]
