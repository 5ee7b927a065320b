"""Module-tree alignment: pair the modules of two runs by their place in the tree and their type.

Instance numbers (`Linear_4`) depend on call order and differ between runs, and one run may wrap
the model (DistributedDataParallel, FSDP, a compile wrapper). So the trees are aligned level by
level: the children of two matched modules (in first-call order) are paired by a weighted LCS on
their types (same type scores 2, a similar type such as `CPGPT` vs `GPT` scores 1), and matched
children recurse. Roots that do not match are looked for below the other run's roots, and the
modules above the match are listed as wrappers. Nothing is dropped: unpaired modules are listed
with status `base_only` / `target_only`.
"""

from __future__ import annotations

import pandas as pd

from tracekit.compare.lcs import align

ALIGN_COLUMNS = ("base_path", "target_path", "status", "how")


def type_score(a: str, b: str) -> int:
    """2 for the same type, 1 for a similar one (one name ends with the other), else 0."""
    if a == b:
        return 2
    x, y = a.lower(), b.lower()
    return 1 if x and y and (x.endswith(y) or y.endswith(x)) else 0


class _Tree:
    def __init__(self, modules: pd.DataFrame):
        paths = modules["module_path"].tolist()  # lists: iterating a text Series costs ~2 us a value
        self.type = dict(zip(paths, modules["module_type"].astype(str).tolist()))
        self.children: dict[str | None, list[str]] = {}
        for path, parent in zip(paths, modules["parent_path"].tolist()):
            up = parent if isinstance(parent, str) and parent in self.type else None
            self.children.setdefault(up, []).append(path)

    def below(self, path: str | None) -> list[str]:
        """All descendants of path (or every module for None), parents first."""
        out, todo = [], list(reversed(self.children.get(path, [])))
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(reversed(self.children.get(p, [])))
        return out


def align_modules(base: pd.DataFrame, target: pd.DataFrame) -> pd.DataFrame:
    """One row per module of either side: the paired paths, status and how they were paired."""
    a, b = _Tree(base), _Tree(target)
    rows: list[tuple] = []
    roots_a, roots_b, wrappers_a, wrappers_b = _anchor(a, b)
    rows += [(p, None, "base_only", "wrapper") for p in wrappers_a]
    rows += [(None, p, "target_only", "wrapper") for p in wrappers_b]
    _pair_children(a, b, roots_a, roots_b, rows)
    return pd.DataFrame(rows, columns=list(ALIGN_COLUMNS))


def _anchor(a: _Tree, b: _Tree) -> tuple[list[str], list[str], list[str], list[str]]:
    """The two sibling lists to start from: the roots, or a root and its match deeper in the other tree."""
    roots_a, roots_b = a.children.get(None, []), b.children.get(None, [])
    if _any_pair(a, b, roots_a, roots_b) or not roots_a or not roots_b:
        return roots_a, roots_b, [], []
    for path in b.below(None):  # base roots wrapped in the target
        if any(type_score(a.type[r], b.type[path]) for r in roots_a):
            up = path.rpartition("/")[0] or None
            return roots_a, b.children[up], [], _ancestors(path)
    for path in a.below(None):  # target roots wrapped in the base
        if any(type_score(a.type[path], b.type[r]) for r in roots_b):
            up = path.rpartition("/")[0] or None
            return a.children[up], roots_b, _ancestors(path), []
    return roots_a, roots_b, [], []


def _ancestors(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _any_pair(a: _Tree, b: _Tree, xs: list[str], ys: list[str]) -> bool:
    return any(type_score(a.type[x], b.type[y]) for x in xs for y in ys)


def _pair_children(a: _Tree, b: _Tree, xs: list[str], ys: list[str], rows: list[tuple]) -> None:
    pairs = align([a.type[x] for x in xs], [b.type[y] for y in ys], type_score)
    for i, j in pairs:
        if i is not None and j is not None:
            x, y = xs[i], ys[j]
            rows.append((x, y, "matched", "type" if a.type[x] == b.type[y] else "similar_type"))
            _pair_children(a, b, a.children.get(x, []), b.children.get(y, []), rows)
        elif i is not None:
            rows.append((xs[i], None, "base_only", "unpaired"))
            rows += [(p, None, "base_only", "under_unpaired") for p in a.below(xs[i])]
        else:
            rows.append((None, ys[j], "target_only", "unpaired"))
            rows += [(None, p, "target_only", "under_unpaired") for p in b.below(ys[j])]
