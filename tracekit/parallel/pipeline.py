"""Pipeline parallelism: stages, the send/recv between them, the DP gradient sync per stage and the bubble.

Per rank (in its worker, `with_compute_spans`): each step window gets the merged compute intervals of the
rank (non-communication device kernels, or cpu ops on a CPU-only rank; see collectives.compute_intervals) and
the module paths its compute ran in (`layers`, depth <= 3), so the parent can lay ranks side by side without
their events.

Across ranks (`pipeline_tables`):
- stages: from the PP process groups (parallel_group_info `pp`, Megatron PIPELINE groups, or the groups of
  the PP send/recv calls): stage k holds the k-th rank of every PP group;
- send/recv: the PP point-to-point calls per stage pair, with bytes moved and time blocked;
- DP sync: the data-parallel collectives of each stage (the gradient reduce-scatter/all-gather/all-reduce);
- bubble per stage and step: the step window is the same for all ranks (first to last activity of any
  rank). `bubble_start_ns` is the rank's idle time (no compute) before its first compute, plus from the
  start of its first PP transfer until it computes again (a later stage waiting for its first
  activations); `bubble_end_ns` is the idle time from the start of its last PP transfer until it computes
  again, plus after its last compute (an earlier stage waiting for the last gradients); `pp_wait_ns` is
  all idle time while a PP transfer was in flight (the start and end bubbles' transfers and the steady
  state's). Host-bound gaps between kernels elsewhere are not bubble. Ranks without compute events
  (communication-only exports) have no bubble.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from tracekit.parallel.crossrank import ranks_text
from tracekit.parallel.exposure import compute_intervals, covered_ns, merge_intervals
from tracekit.table import DEVICE_KINDS, kind_in, strings

P2P = ("send", "recv", "send_recv")
LAYER_DEPTH = 3


def with_compute_spans(steps: pd.DataFrame, ev: pd.DataFrame, calls: pd.DataFrame, spans: bool = True) -> pd.DataFrame:
    """The step split of one rank with `compute_spans` ([[start, end], ...] inside each window) and `layers`
    (without `spans`: only `has_compute`, and compute unknown on communication-only exports, as below)."""
    compute = compute_intervals(ev, calls)
    dev = kind_in(ev, DEVICE_KINDS)
    has_compute = bool(len(compute))
    if not spans:
        return _unknown_without_compute(steps.assign(has_compute=has_compute), has_compute, dev)
    paths = strings(ev["module_path"]) if "module_path" in ev else None
    # the layers a stage ran: the modules of its device kernels, or of its cpu ops where it has no device
    layer_rows = dev if dev.any() else kind_in(ev, ["cpu_op"])
    windows, layers = [], []
    for start, dur in zip(steps["start_ns"].tolist(), steps["dur_ns"].tolist()):
        end = start + dur
        inside = compute[(compute[:, 1] > start) & (compute[:, 0] < end)] if has_compute else compute
        windows.append(np.clip(inside, start, end).tolist())
        if paths is not None:
            ts = ev["ts_ns"].to_numpy()
            rows = np.flatnonzero(layer_rows & (ts >= start) & (ts < end))
            found = {"/".join(str(p).split("/")[:LAYER_DEPTH]) for p in pd.unique(paths[rows])
                     if isinstance(p, str) and p}
            layers.append(sorted(found))
        else:
            layers.append([])
    return _unknown_without_compute(steps.assign(compute_spans=windows, layers=layers, has_compute=has_compute),
                                    has_compute, dev)


def _unknown_without_compute(out: pd.DataFrame, has_compute: bool, dev: np.ndarray) -> pd.DataFrame:
    if not has_compute and dev.any():
        # device events but none of them compute: a communication-only export; its compute, exposed
        # communication and idle time are unknown, not zero
        out = out.astype({c: "float64" for c in ("compute_ns", "exposed_comm_ns", "idle_ns")})
        out[["compute_ns", "exposed_comm_ns", "idle_ns"]] = np.nan
    return out


def stage_map(coll: pd.DataFrame, groups: list[dict[str, Any]]) -> tuple[dict[int, int], list[tuple[int, ...]], str]:
    """rank -> stage, the PP groups, and where they came from."""
    pp = [tuple(g["ranks"]) for g in groups if g.get("parallel_dim") == "PP" and len(g.get("ranks") or []) > 1
          and str(g.get("desc", "")).lower().startswith(("pp", "pipeline"))]
    source = "process groups (pp)"
    if not pp:
        pp = [tuple(g["ranks"]) for g in groups if g.get("parallel_dim") == "PP" and len(g.get("ranks") or []) > 1]
        source = "process groups of dimension PP"
    if not pp and len(coll):
        rows = coll[(coll["parallel_dim"] == "PP") & coll["collective"].isin(P2P) & coll["group_ranks"].notna()]
        pp = [tuple(r) for r in rows["group_ranks"]]
        source = "groups of the PP send/recv calls"
    pp = sorted(set(pp))
    stage: dict[int, int] = {}
    for ranks in pp:
        for i, rank in enumerate(ranks):
            stage.setdefault(int(rank), i)
    return stage, pp, source


def pipeline_tables(coll: pd.DataFrame, steps: pd.DataFrame, groups: list[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    """The pipeline tables (empty dict when the run has no pipeline parallelism)."""
    stage, pp, source = stage_map(coll, groups)
    if not pp:
        return {}
    if "compute_spans" not in steps:  # step splits made without with_compute_spans: compute unknown
        steps = steps.assign(compute_spans=[[] for _ in range(len(steps))], layers=[[] for _ in range(len(steps))],
                             has_compute=False)
    coll = _with_pp_transfers(coll.assign(stage=coll["rank"].map(stage)), pp) if len(coll) else coll
    steps = steps.assign(stage=steps["rank"].map(stage))
    return {"pipeline_stages": _stages(stage, pp, source, steps, coll),
            "pipeline_p2p": _p2p(coll), "pipeline_dp_sync": _dp_sync(coll),
            "pipeline_bubble": _bubbles(steps, coll), "pipeline_timeline": _timeline(steps, coll)}


_LABEL = re.compile(r"^(.*) \[([\d, ]*)\]$")


def _with_pp_transfers(coll: pd.DataFrame, pp: list[tuple[int, ...]]) -> pd.DataFrame:
    """`pp_transfer` and `pp_peer_rank` for every call: a send/recv labelled PP, or one whose group is undecided
    but whose peer is the same rank in every candidate group and sits in another stage of the rank's PP group
    (counted as a pipeline transfer: where it goes is known, only the group's name is not; `pp_from` says so)."""
    pp_of = {int(r): set(g) for g in pp for r in g}
    is_p2p = coll["collective"].isin(P2P).to_numpy()
    dims = coll["parallel_dim"].to_numpy(dtype=object)
    transfer, peer_rank, source = [], [], []
    for i, (rank, peer, ranks, cands) in enumerate(zip(coll["rank"].tolist(), coll["peer"].tolist(),
                                                      coll["group_ranks"].tolist(),
                                                      coll.get("group_candidates", pd.Series([None] * len(coll))))):
        target, why = None, ""
        if is_p2p[i] and pd.notna(peer):
            if dims[i] == "PP":
                target = _peer_in(ranks, int(peer))
                why = "group" if target is not None else ""
            elif not isinstance(dims[i], str) and isinstance(cands, (list, tuple, np.ndarray)) and len(cands):
                peers = {_peer_in(_ranks_of(c), int(peer)) for c in cands}
                one = peers.pop() if len(peers) == 1 else None
                if one is not None and one != rank and one in pp_of.get(int(rank), ()):
                    target = one
                    why = (f"peer rank {one} in every candidate group ({'; '.join(map(str, cands))}), in another "
                           "stage of this rank's PP group; the group itself is undecided")
        transfer.append(target is not None)
        peer_rank.append(target)
        source.append(why)
    return coll.assign(pp_transfer=transfer, pp_peer_rank=pd.array(peer_rank, dtype="Int64"), pp_from=source)


def _ranks_of(label: Any) -> list[int] | None:
    m = _LABEL.match(str(label))
    return [int(x) for x in m.group(2).split(",") if x.strip()] if m else None


def _peer_in(ranks: Any, peer: int) -> int | None:
    """The global rank at group index `peer`."""
    if isinstance(ranks, (list, tuple, np.ndarray)) and 0 <= peer < len(ranks):
        return int(ranks[peer])
    return None


def _stages(stage: dict[int, int], pp: list[tuple[int, ...]], source: str, steps: pd.DataFrame,
            coll: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for k in sorted(set(stage.values())):
        ranks = sorted(r for r, s in stage.items() if s == k)
        mine = steps[steps["rank"].isin(ranks)]
        layers = sorted({p for ls in mine.get("layers", []) for p in (ls if isinstance(ls, list) else [])})
        no_compute = sorted(int(r) for r, f in mine.groupby("rank") if not f["has_compute"].any()) \
            if "has_compute" in mine else []
        rows.append({"stage": k, "ranks": ranks, "ranks_from": source,
                     "layers": ", ".join(layers) if layers else "(no module events in these traces)",
                     "ranks_without_compute_events": no_compute,
                     "pp_groups": "; ".join(",".join(map(str, g)) for g in pp)})
    return pd.DataFrame(rows)


def _p2p(coll: pd.DataFrame) -> pd.DataFrame:
    if not len(coll):
        return pd.DataFrame()
    rows = coll[coll["pp_transfer"]].copy()
    if not len(rows):
        return pd.DataFrame()
    peer_rank = [None if pd.isna(r) else int(r) for r in rows["pp_peer_rank"]]
    rows["peer_rank"] = peer_rank
    rows["undecided"] = rows["pp_from"] != "group"
    stage_of = dict(zip(coll["rank"], coll["stage"]))
    rows["peer_stage"] = [stage_of.get(r) if r is not None else None for r in peer_rank]
    transit = pd.to_numeric(rows["hccl_transit_bytes"], errors="coerce") if "hccl_transit_bytes" in rows else np.nan
    rows["moved"] = pd.to_numeric(rows["bytes"], errors="coerce").astype(float).fillna(transit)
    rows["wait"] = pd.to_numeric(rows["hccl_wait_ns"], errors="coerce") if "hccl_wait_ns" in rows else np.nan
    rows["exposed"] = pd.to_numeric(rows["exposed_ns"], errors="coerce")
    out = rows.groupby(["stage", "peer_stage", "rank", "peer_rank", "collective"], dropna=False).agg(
        calls=("collective", "size"), bytes=("moved", lambda s: s.sum(min_count=1)), time_ns=("dur_ns", "sum"),
        wait_ns=("wait", lambda s: s.sum(min_count=1)), exposed_ns=("exposed", lambda s: s.sum(min_count=1)),
        group_undecided=("undecided", "sum"),
    ).reset_index()
    return out.sort_values(["stage", "rank"], ignore_index=True)


def _dp_sync(coll: pd.DataFrame) -> pd.DataFrame:
    if not len(coll):
        return pd.DataFrame()
    rows = coll[coll["parallel_dim"] == "DP"]
    if not len(rows):
        return pd.DataFrame()
    rows = rows.assign(ranks=ranks_text(rows["group_ranks"]),
                       link=pd.to_numeric(rows["hccl_transit_bytes"], errors="coerce")
                       if "hccl_transit_bytes" in rows else np.nan)
    out = rows.groupby(["stage", "ranks", "collective"], dropna=False).agg(
        calls=("rank", "size"), bytes=("bytes", lambda s: s.sum(min_count=1)),
        link_bytes=("link", lambda s: s.sum(min_count=1)), time_ns=("dur_ns", "sum"),
        exposed_ns=("exposed_ns", lambda s: pd.to_numeric(s, errors="coerce").sum(min_count=1)),
    ).reset_index()
    return out.sort_values(["stage", "time_ns"], ascending=[True, False], ignore_index=True)


def _idle(spans: np.ndarray, lo: int, hi: int) -> int:
    if hi <= lo:
        return 0
    return int(hi - lo - covered_ns(spans, np.array([lo]), np.array([hi]))[0])


def _next_compute(spans: np.ndarray, t: int, hi: int) -> int:
    later = spans[spans[:, 0] >= t] if len(spans) else spans
    inside = spans[(spans[:, 0] < t) & (spans[:, 1] > t)] if len(spans) else spans
    if len(inside):
        return t
    return int(later[0, 0]) if len(later) else hi


def _bubbles(steps: pd.DataFrame, coll: pd.DataFrame) -> pd.DataFrame:
    rows = []
    p2p = coll[coll["pp_transfer"]] if len(coll) else coll
    for step, frame in steps.groupby("step"):
        lo, hi = int(frame["start_ns"].min()), int((frame["start_ns"] + frame["dur_ns"]).max())
        for r in frame.itertuples(index=False):
            if pd.isna(r.stage):
                continue
            base = {"step": int(step), "stage": int(r.stage), "rank": int(r.rank), "window_ns": hi - lo}
            if not getattr(r, "has_compute", True):
                rows.append({**base, "compute_ns": None, "bubble_start_ns": None, "bubble_end_ns": None,
                             "pp_wait_ns": None, "bubble_share": None,
                             "note": "no compute events (communication-only export)"})
                continue
            spans = merge_intervals(*np.array(r.compute_spans, dtype=np.int64).reshape(-1, 2).T) \
                if len(r.compute_spans) else np.zeros((0, 2), dtype=np.int64)
            ops = p2p[(p2p["rank"] == r.rank) & (p2p["start_ns"] < hi) & (p2p["start_ns"] + p2p["dur_ns"] > lo)]
            ops = ops.sort_values("start_ns")
            compute = int(spans[:, 1].sum() - spans[:, 0].sum()) if len(spans) else 0
            if not len(ops):
                rows.append({**base, "compute_ns": compute, "bubble_start_ns": 0, "bubble_end_ns": 0,
                             "pp_wait_ns": 0, "bubble_share": 0.0, "note": "no PP transfers in this step"})
                continue
            first_start, first_end = int(ops["start_ns"].iloc[0]), int(ops["start_ns"].iloc[0] + ops["dur_ns"].iloc[0])
            last_start, last_end = int(ops["start_ns"].iloc[-1]), int(ops["start_ns"].iloc[-1] + ops["dur_ns"].iloc[-1])
            first_compute = int(spans[0, 0]) if len(spans) else hi
            last_compute = int(spans[-1, 1]) if len(spans) else lo
            # leading idle + the first transfer until compute resumes; the last transfer until compute resumes +
            # trailing idle
            start = _idle(spans, lo, min(first_compute, first_start)) + \
                _idle(spans, first_start, _next_compute(spans, first_end, hi))
            end = _idle(spans, max(last_compute, last_end), hi)
            if len(ops) > 1:
                end += _idle(spans, last_start, _next_compute(spans, last_end, hi))
            flight = merge_intervals(ops["start_ns"].to_numpy(dtype=np.int64),
                                     (ops["start_ns"] + ops["dur_ns"]).to_numpy(dtype=np.int64))
            wait = sum(_idle(spans, int(a), int(b)) for a, b in flight)
            rows.append({**base, "compute_ns": compute, "bubble_start_ns": start, "bubble_end_ns": end,
                         "pp_wait_ns": wait, "bubble_share": (start + end) / (hi - lo) if hi > lo else None,
                         "note": ""})
    return pd.DataFrame(rows)


def _timeline(steps: pd.DataFrame, coll: pd.DataFrame) -> pd.DataFrame:
    """Spans to draw: compute per rank (merged) and each collective with its dimension, in the step windows."""
    rows = []
    for r in steps.itertuples(index=False):
        if pd.isna(r.stage):
            continue
        for a, b in r.compute_spans:
            rows.append((int(r.rank), int(r.stage), int(r.step), "compute", int(a), int(b), ""))
    for r in coll[coll["stage"].notna()].itertuples(index=False) if len(coll) else []:
        pp = bool(r.pp_transfer)
        kind = "PP p2p" if pp else f"{r.parallel_dim or '?'} {r.collective}"
        rows.append((int(r.rank), int(r.stage), int(r.step), kind, int(r.start_ns), int(r.start_ns + r.dur_ns),
                     str(r.name)))
    return pd.DataFrame(rows, columns=["rank", "stage", "step", "kind", "start_ns", "end_ns", "name"])


def pipeline_view(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The pipeline tables for a terminal (ms, MB), keyed by their titles; empty without PP."""
    if "pipeline_stages" not in tables:
        return {}
    ms = 1e6
    out = {"pipeline stages (stage k = the k-th rank of every PP group)": tables["pipeline_stages"].assign(
        ranks=lambda f: f["ranks"].map(lambda r: ",".join(map(str, r))),
        ranks_without_compute_events=lambda f: f["ranks_without_compute_events"].map(
            lambda r: ",".join(map(str, r)) or "-")).drop(columns=["pp_groups"])}
    b = tables["pipeline_bubble"]
    if len(b):
        out["pipeline bubble per stage and step (idle, no compute)"] = pd.DataFrame({
            "step": b["step"], "stage": b["stage"], "rank": b["rank"], "window ms": b["window_ns"] / ms,
            "compute ms": b["compute_ns"] / ms, "bubble start ms": b["bubble_start_ns"] / ms,
            "bubble end ms": b["bubble_end_ns"] / ms, "idle in PP transfers ms": b["pp_wait_ns"] / ms,
            "bubble share": b["bubble_share"].map(lambda v: "" if pd.isna(v) else f"{v:.1%}"), "note": b["note"]})
    p = tables["pipeline_p2p"]
    if len(p):
        out["send/recv between stages (PP)"] = pd.DataFrame({
            "stage": p["stage"], "rank": p["rank"], "peer stage": p["peer_stage"], "peer rank": p["peer_rank"],
            "op": p["collective"], "calls": p["calls"], "MB": p["bytes"] / 1e6, "time ms": p["time_ns"] / ms,
            "waiting for peer ms": p["wait_ns"] / ms,
            "of them group undecided": p.get("group_undecided", 0)})
    d = tables["pipeline_dp_sync"]
    if len(d):
        out["DP gradient sync per stage"] = pd.DataFrame({
            "stage": d["stage"], "DP group": d["ranks"], "op": d["collective"], "calls": d["calls"],
            "MB": d["bytes"].astype("Float64") / 1e6, "MB over links (HCCL)": d["link_bytes"] / 1e6,
            "time ms": d["time_ns"] / ms,
            "exposed ms": d["exposed_ns"] / ms})
    return out
