"""The batched-product rule of tracekit.modules.params_infer on the shapes real models run (pure function; the
recorded models are in test_flops_oracle.py, the shared traces below)."""

from __future__ import annotations

from tracekit.modules.params_infer import batched_weight, own_matmul_note


def test_attention_products_and_outer_products_are_not_weights():
    assert not batched_weight("aten::bmm", [[8, 128, 64], [8, 64, 128]])  # q k^T
    assert not batched_weight("aten::bmm", [[8, 128, 128], [8, 128, 64]])  # attn v
    assert not batched_weight("aten::matmul", [[2, 12, 128, 64], [2, 12, 64, 128]])  # 4-d q k^T
    assert not batched_weight("aten::baddbmm", [[16, 7, 64], [16, 64, 7]])  # bias + q k^T (Bloom's alibi)
    assert not batched_weight("aten::matmul", [[1, 32, 1], [1, 1, 559]])  # rotary: inv_freq x positions (K = 1)
    assert not batched_weight("aten::einsum", [[4, 6, 32], [4, 32, 48]])  # einsum: subscripts unknown, 2-d rule only
    # batched over the module's own batch (DLRM's interaction layers in the shared HTA traces): per sample
    assert not batched_weight("aten::bmm", [[1024, 96, 50], [1024, 50, 8]], batch=1024)


def test_a_stack_of_expert_weights_and_a_cross_attention_are_unsure():
    assert batched_weight("aten::bmm", [[4, 6, 32], [4, 32, 48]])  # (E, T, d) x (E, d, h)
    assert batched_weight("aten::bmm", [[4, 6, 32], [4, 32, 48]], batch=24)  # the module took 24 tokens
    assert batched_weight("aten::matmul", [[2, 12, 10, 64], [2, 12, 64, 77]])  # cross-attention S_q 10, S_k 77
    note = own_matmul_note("Experts", "aten::bmm", [[4, 6, 32], [4, 32, 48]])
    assert note is not None and note.startswith("unsure, a lower bound") and "[4, 32, 48] operand" in note
    assert own_matmul_note("Attention", "aten::bmm", [[8, 128, 64], [8, 64, 128]]) is None
