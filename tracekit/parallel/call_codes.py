"""The calls of all ranks as group inference reads them: int64 columns and integer signature codes, no Python
object per call (issue 15: the cross-rank stage held ~0.8 KB a call where calls name no group).

A call's signature is (collective, size, peer): size -1 for collectives whose split sizes may differ between
members (all_to_all), peer -1 but for send/recv. Calls of one signature share one code; codes are numbered in
order of first appearance (as `pd.factorize` numbers the signature tuples), and each code's signature is ONE
tuple in a table of distinct signatures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

P2P = {"send": "recv", "recv": "send"}
UNEVEN = {"all_to_all"}  # split sizes may differ between members: matched by collective and time only


@dataclass
class CallArrays:
    """Every call's rank, start, end (ns) and signature code as int64 arrays, in the call table's row order; the
    signature of each code (`sigs`), whether it is send/recv (`p2p`, by code), and whether the call's execution
    is in the trace (`timed`: a worker-thread annotation or device kernel; else only its enqueue)."""

    rank: np.ndarray
    start: np.ndarray
    end: np.ndarray
    code: np.ndarray
    timed: np.ndarray
    sigs: list[tuple] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.p2p = np.array([sig[0] in P2P for sig in self.sigs], dtype=bool)
        self.code_of: dict[tuple, int] = {sig: i for i, sig in enumerate(self.sigs)}

    def __len__(self) -> int:
        return len(self.rank)

    @property
    def nbytes(self) -> int:
        """Bytes of the per-call arrays (the part that grows with calls)."""
        return sum(a.nbytes for a in (self.rank, self.start, self.end, self.code, self.timed))


def _int_column(values: pd.Series) -> np.ndarray:
    """A nullable integer column as int64, -1 where missing (as `_signatures` reads bytes and peer)."""
    return values.astype("Float64").fillna(-1).astype("int64").to_numpy(dtype=np.int64)


def first_appearance(*columns: np.ndarray) -> np.ndarray:
    """One code per distinct row of the int64 columns, numbered in order of first appearance."""
    parts = [pd.factorize(c)[0].astype(np.int64) for c in columns]
    sizes = [int(p.max()) + 1 if len(p) else 1 for p in parts]
    if float(np.prod([float(s) for s in sizes])) < 2.0 ** 62:  # one int64 key per row
        key = parts[0]
        for part, size in zip(parts[1:], sizes[1:]):
            key = key * size + part
        return pd.factorize(key)[0].astype(np.int64)
    _u, first, inverse = np.unique(np.stack(parts, axis=1), axis=0, return_index=True, return_inverse=True)
    renumber = np.empty(len(first), dtype=np.int64)
    renumber[np.argsort(first, kind="stable")] = np.arange(len(first))
    return renumber[inverse.reshape(-1)]


CHUNK = 8_192  # calls coded at a time: the transient arrays of the coding are bounded by this, not by the calls


def signature_codes(calls: pd.DataFrame, chunk: int = CHUNK) -> tuple[np.ndarray, list[tuple]]:
    """(code of each call's signature, the signature of each code): the codes `pd.factorize` gives the signature
    tuples `call_groups._signatures` makes, without a tuple per call. Coded `chunk` calls at a time (a chunk's
    signatures numbered by first appearance, then mapped to the codes of the chunks before): what the coding holds
    beyond its result is bounded by the chunk (the whole column at once held ~100 B a call)."""
    n = len(calls)
    codes = np.empty(n, dtype=np.int64)
    sigs: list[tuple] = []
    known: dict[tuple[object, int, int], int] = {}  # (collective or _MISSING, size, peer) -> code
    shared: dict[object, object] = {}
    step = max(1, chunk)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        collective = calls["collective"].iloc[lo:hi]
        local, firsts, kinds, size, peer = _chunk_codes(collective, calls["bytes"].iloc[lo:hi],
                                                        calls["peer"].iloc[lo:hi])
        kind_of = collective.iloc[firsts].tolist()  # the column's own values
        codes_of = np.empty(len(firsts), dtype=np.int64)
        for j, (k, kc, s, p) in enumerate(zip(kind_of, kinds[firsts].tolist(), size[firsts].tolist(),
                                              peer[firsts].tolist())):
            key = (k if kc >= 0 else _MISSING, int(s), int(p))
            if key not in known:
                known[key] = len(sigs)
                sigs.append((shared.setdefault(k, k) if isinstance(k, str) else k, int(s), int(p)))
            codes_of[j] = known[key]
        codes[lo:hi] = codes_of[local]
    return codes, sigs


_MISSING = object()  # the key of calls without a collective name (pd.factorize's -1: None, NaN, NA alike)


def _chunk_codes(collective: pd.Series, nbytes: pd.Series, peers: pd.Series
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One chunk's (signature code by first appearance in the chunk, first row of each code, collective code,
    size, peer) of each call (sizes -1 where uneven, peers -1 but for send/recv)."""
    kind_codes, kinds = pd.factorize(collective)  # missing -> -1
    kind_codes = np.asarray(kind_codes, dtype=np.int64)
    names = list(kinds)
    uneven = np.array([k in UNEVEN for k in names] + [False], dtype=bool)[kind_codes]  # -1: the last, False
    p2p = np.array([k in P2P for k in names] + [False], dtype=bool)[kind_codes]
    size = np.where(uneven, -1, _int_column(nbytes))
    peer = np.where(p2p, _int_column(peers), -1)
    local = first_appearance(kind_codes, size, peer)
    firsts = np.unique(local, return_index=True)[1]  # codes are in first-appearance order: firsts ascend
    return local, firsts, kind_codes, size, peer


def call_arrays(calls: pd.DataFrame) -> CallArrays:
    """The inference's per-call arrays of a call table with `call_groups.MATCH_COLUMNS` (rows by position)."""
    codes, sigs = signature_codes(calls)
    start = calls["start_ns"].to_numpy(dtype=np.int64)
    end = start + calls["dur_ns"].to_numpy(dtype=np.int64)
    timed = ((calls["exec_row"] >= 0).to_numpy(dtype=bool) if "exec_row" in calls
             else np.ones(len(calls), dtype=bool))
    return CallArrays(calls["rank"].to_numpy(dtype=np.int64), start, end, codes, timed, sigs)
