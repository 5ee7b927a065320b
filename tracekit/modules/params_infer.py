"""Parameters the op rules do not see, inferred with their evidence, and counts that may hold a tied weight twice.

A Kineto trace has no tensor identities: a module's params are the weight inputs of its parameter ops (linear,
conv, norms, embedding...). Two common patterns escape that rule and are handled here, each marked in `params_from`:
- an RMSNorm written out (`weight * x` after the normalisation, as HF Llama/Qwen/Mistral/T5 do): a leaf module
  whose class name says Norm, with no parameter op, that multiplies by a 1-d tensor of its input's last size;
- a weight shared by two modules (HF `tie_word_embeddings`: the LM head is the token embedding) counts twice, and
  nothing in the trace tells a tied pair from two tensors of the same shape: modules above such a pair say so.
And one pattern cannot be decided: a module's own code multiplying by a 2-d tensor (`x @ self.weight`,
`torch.einsum("btd,de->bte", x, self.proj)`) or by a batched one whose matrix does not span the other operand's rows
(`torch.bmm(x, self.experts)`, (E, T, d) x (E, d, h)) may use a parameter or an activation. Its count is then a
lower bound, and it and the modules above it say so. Attention's batched products are told apart by shape: each of
them spans the rows (the sequence) of its left operand ((B, S, d) x (B, d, S), (B, S, S) x (B, S, d)).
"""

from __future__ import annotations

import math

import numpy as np

from tracekit.modules.opshapes import OpArgs

NORM_MUL = "aten::mul"


def leaf_norms(types: list, paths: list, sources: list, own: dict[int, int]) -> set[int]:
    """Modules (by index) whose class name says Norm, with no module below them and no params counted."""
    parents = {(s, str(p).rpartition("/")[0]) for s, p in zip(sources, paths)}
    return {i for i, (t, p, s) in enumerate(zip(types, paths, sources))
            if "norm" in str(t).lower() and (s, str(p)) not in parents and not own.get(i)}


def norm_weight(op: OpArgs) -> list[int] | None:
    """The shape [H] of the 1-d operand of `mul(a, b)` when the other operand ends in H (else None)."""
    a, b = op.shape(0), op.shape(1)
    for weight, data in ((a, b), (b, a)):
        if weight and data and len(weight) == 1 and len(data) >= 2 and data[-1] == weight[0]:
            return weight
    return None


def norm_note(shape: list[int]) -> str:
    return (f"inferred: the 1-d {shape} tensor this Norm module multiplies its input by (RMSNorm's `weight * x`, "
            "no norm op) counted as its weight")


def tied_notes(types: list, paths: list, sources: list, own_shapes: dict[int, list[list[int]]]) -> dict[int, str]:
    """Per module index: a note where an Embedding and another Embedding or Linear below it hold 2-d weights of one
    shape (possibly one tied tensor, counted twice in `params`). Each weight is paired with the first embedding of
    its (source, shape), so the work stays linear in the modules, and a module keeps its first two notes."""
    at = {(s, str(p)): i for i, (s, p) in enumerate(zip(sources, paths))}
    groups: dict[tuple[int, tuple[int, ...]], list[int]] = {}
    for i, shapes in own_shapes.items():
        if _may_tie(types[i]):
            for shape in {tuple(x) for x in shapes if len(x) == 2}:
                groups.setdefault((sources[i], shape), []).append(i)
    notes: dict[int, list[str]] = {}
    for (source, shape), members in groups.items():
        first = next((i for i in members if "embedding" in str(types[i]).lower()), None)
        for other in members:
            if first is None or other == first:
                continue
            a, b = str(paths[first]).split("/"), str(paths[other]).split("/")
            common = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            note = (f"unsure: {'/'.join(a[common:])} and {'/'.join(b[common:])} both hold a {list(shape)} weight, "
                    f"counted twice; if they are one tied tensor (HF tie_word_embeddings) the count is "
                    f"{math.prod(shape):,} lower")
            for k in range(1, common + 1):
                i = at.get((source, "/".join(a[:k])))
                if i is not None and len(notes.setdefault(i, [])) < 2:
                    notes[i].append(note)
    return {i: "; ".join(said) for i, said in notes.items()}


def _may_tie(module_type: object) -> bool:
    """An embedding is tied to an LM head (Linear) or to another embedding (encoder and decoder share one)."""
    name = str(module_type).lower()
    return name == "linear" or "embedding" in name


# matrix products that a module's own code may run on one of its parameters (`x @ self.weight`); addmm only where
# it is not the hand-written linear pattern (counted); bmm/baddbmm/matmul of batched operands only where the right
# matrix does not span the left one's rows (batched_weight)
OWN_MATMULS = ("aten::matmul", "aten::mm", "aten::einsum", "aten::addmm", "aten::bmm", "aten::baddbmm")
_BATCHED = ("aten::matmul", "aten::bmm", "aten::baddbmm")


def matmul_operands(name: str, op: OpArgs) -> list[list[int]]:
    """The shapes of the matrix operands of one of OWN_MATMULS (einsum's are its tensor list)."""
    if name == "aten::einsum":
        return op.shape_list(1) or []
    first = 1 if name in ("aten::addmm", "aten::baddbmm") else 0
    return [shape for shape in (op.shape(first), op.shape(first + 1)) if shape]


def batched_weight(name: str, operands: list[list[int]], batch: int | None = None) -> bool:
    """Whether a batched product (..., M, K) x (..., K, N) has a right operand that may be a stack of weights: neither
    of its matrix sizes is M, the left operand's rows (tokens), and K > 1. Attention's products always span them:
    q k^T is (S, d) x (d, S) and attn v is (S, S) x (S, d); a cross-attention (S_q != S_k) is flagged too, rightly
    unsure. K = 1 is an outer product (rotary embeddings' inv_freq x positions, a buffer), not a weight. `batch`: the
    leading size of the module's input; a product batched over it is per sample (DLRM's feature interactions), while
    a stack of E expert weights is batched over E."""
    if name not in _BATCHED or len(operands) != 2 or min(len(shape) for shape in operands) < 3:
        return False
    rows, right = operands[0][-2], operands[1][-2:]
    return right[0] > 1 and rows not in right and operands[1][0] != batch


def own_matmul_note(module_type: object, name: str, operands: list[list[int]], batch: int | None = None) -> str | None:
    """A lower-bound note when an operand of a matrix product in a module's own code may be a parameter: a 2-d one,
    or a batched right operand that does not span the left one's rows (batched_weight; `batch` as there)."""
    shapes = " and ".join(str(shape) for shape in operands)
    if any(len(shape) == 2 for shape in operands):
        what = "a 2-d operand"
    elif batched_weight(name, operands, batch):
        what = f"the {operands[1]} operand, which does not span the rows of the other as attention's products do,"
    else:
        return None
    return (f"unsure, a lower bound: {module_type} runs {name} on {shapes} in its own code; {what} may be a "
            "parameter, which a trace cannot tell from an activation (not counted)")


def rows_of(module: np.ndarray, rows: np.ndarray, first_rows: dict[int, int], wanted: set[int]) -> np.ndarray:
    """The rows (ops) of the first calls of the wanted module indices."""
    spans = np.array([span for span, idx in first_rows.items() if idx in wanted], dtype=np.int64)
    return rows[np.isin(module[rows], spans)]
