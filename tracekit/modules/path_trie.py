"""A trie of module paths per source: node ids for (source, part, part, ...), shared by the module table's sums."""

from __future__ import annotations


class PathTrie:
    """Nodes for (source, part, part, ...); node 0 is the root. Whole paths seen are remembered, so a
    path whose parent path was seen costs one step instead of a walk over all its parts."""

    def __init__(self) -> None:
        self.child: dict[tuple[int, object], int] = {}
        self.up: list[int] = [-1]
        self.total: list[float] = [0]
        self.known: dict[tuple[int, str], int] = {}

    def node(self, s: int, path: str, create: bool) -> int:
        """The node of `path` in source `s`; -1 if absent and not create."""
        found = self.known.get((s, path))
        if found is not None:
            return found
        head, sep, tail = path.rpartition("/")
        start = self.known.get((s, head)) if sep else None
        if start is not None:
            node = self._step(start, tail, create)
        else:
            node = self._step(0, s, create)
            for part in path.split("/"):
                if node < 0:
                    break
                node = self._step(node, part, create)
        if node >= 0:
            self.known[(s, path)] = node
        return node

    def _step(self, node: int, part: object, create: bool) -> int:
        if node < 0:
            return -1
        nxt = self.child.get((node, part))
        if nxt is None:
            if not create:
                return -1
            nxt = self.child[(node, part)] = len(self.up)
            self.up.append(node)
            self.total.append(0)
        return nxt
