"""Which input files recorded the same OS process, so their events share tracks in the merge."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from tracekit.table import SourceInfo

# Kinds that only a host (OS) process records; device pids (GPU index) never join files.
HOST_KINDS = ("python", "module", "cpu_op", "runtime", "collective", "step")


def host_pids(events: pd.DataFrame, n_files: int) -> list[set[int]]:
    """Per file, the non-negative pids that carry host events."""
    host = events["kind"].isin(HOST_KINDS).to_numpy() & (events["pid"].to_numpy() >= 0)
    pairs = pd.DataFrame({"f": events["source_index"].to_numpy()[host], "p": events["pid"].to_numpy()[host]})
    out: list[set[int]] = [set() for _ in range(n_files)]
    for f, p in pairs.drop_duplicates().itertuples(index=False):
        out[int(f)].add(int(p))
    return out


def _compatible(a: SourceInfo, b: SourceInfo) -> bool:
    """Same pid is not enough across machines or ranks: ranks and host names must not disagree."""
    if a.rank >= 0 and b.rank >= 0 and a.rank != b.rank:
        return False
    ha, hb = a.top.get("host_name"), b.top.get("host_name")
    return not (ha and hb and ha != hb)


def file_groups(sources: list[SourceInfo], pids: list[set[int]], priority: list[int]) -> list[int]:
    """Per file, the representative file of its process group (the group member first in `priority`).

    Two files are one process when they share a host pid and their rank and host name agree.
    """
    n = len(sources)
    root = list(range(n))

    def find(i: int) -> int:
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if pids[i] & pids[j] and _compatible(sources[i], sources[j]):
                root[find(j)] = find(i)
    rank = {f: k for k, f in enumerate(priority)}
    rep: dict[int, int] = {}
    for f in range(n):
        r = find(f)
        if r not in rep or rank[f] < rank[rep[r]]:
            rep[r] = f
    return [rep[find(f)] for f in range(n)]


def track_source(events: pd.DataFrame, rep: list[int]) -> np.ndarray:
    """Per row, the file whose tracks it is drawn on: its group's representative; rows with synthetic
    (negative) pids, which only mean something inside their own file, keep their file."""
    src = events["source_index"].to_numpy()
    mapped = np.asarray(rep, dtype=np.int32)[src]
    return np.where(events["pid"].to_numpy() >= 0, mapped, src).astype(np.int32)


def merged_sources(sources: list[SourceInfo], rep: list[int], pids: list[set[int]]) -> list[SourceInfo]:
    """Copies of the sources where each group's representative also carries the process and thread
    names of the other files of its group, and its host processes a label naming the merged files."""
    out = [replace(s, process_names=dict(s.process_names), thread_names=dict(s.thread_names),
                   process_labels=dict(s.process_labels)) for s in sources]
    for f, r in enumerate(rep):
        if f == r:
            continue
        for pid, name in sources[f].process_names.items():
            if pid >= 0:
                out[r].process_names.setdefault(pid, name)
        for (pid, tid), name in sources[f].thread_names.items():
            if pid >= 0:
                out[r].thread_names.setdefault((pid, tid), name)
    for r in set(rep):
        members = [Path(sources[f].path).name for f in range(len(sources)) if rep[f] == r]
        if len(members) < 2:
            continue
        for pid in {p for f in range(len(sources)) if rep[f] == r for p in pids[f]}:
            label = out[r].process_labels.get(pid)
            out[r].process_labels[pid] = ", ".join(filter(None, [label, "merged: " + " + ".join(members)]))
    return out


def track_keys(events: pd.DataFrame, sources: list[SourceInfo], rep: list[int]) -> np.ndarray:
    """Per row, a key naming its thread track across files of one process: (group, pid, tid) for real
    pids; for synthetic pids (tracks named by strings, like "Spans") the group and the track's names,
    since a file's negative ids mean nothing in another file."""
    frame = pd.DataFrame({"f": events["source_index"].to_numpy(), "p": events["pid"].to_numpy(),
                          "t": events["tid"].to_numpy()})
    distinct = frame.drop_duplicates()
    key: dict[tuple[int, int, int], str] = {}
    for f, p, t in distinct.itertuples(index=False):
        info = sources[f]
        if p >= 0:
            key[(f, p, t)] = f"{rep[f]}|{p}|{t}"
        else:
            key[(f, p, t)] = f"{rep[f]}|{info.process_names.get(p, p)!r}|{info.thread_names.get((p, t), t)!r}"
    codes = frame.merge(distinct.assign(k=[key[k] for k in distinct.itertuples(index=False)]),
                        on=["f", "p", "t"], how="left")["k"]
    return codes.to_numpy(dtype=object)
