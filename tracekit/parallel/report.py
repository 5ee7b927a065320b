"""What a parallel strategy did, from the collectives table and per-rank step splits (pure functions)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tracekit.parallel.crossrank import ranks_text
from tracekit.parallel.exposure import compute_intervals, covered_ns, merge_intervals
from tracekit.steps import _STEP_NUMBER
from tracekit.table import is_in, strings

SPLIT_COLUMNS = ("step", "start_ns", "dur_ns", "compute_ns", "comm_ns", "exposed_comm_ns", "idle_ns")


def step_split(ev: pd.DataFrame, calls: pd.DataFrame) -> pd.DataFrame:
    """Per step of one rank: compute, communication, exposed communication (not under compute) and idle ns.

    Without ProfilerStep annotations the whole trace is one window with step -1.
    """
    ts, dur = ev["ts_ns"].to_numpy(), np.maximum(ev["dur_ns"].to_numpy(), 0)
    steps = np.flatnonzero(is_in(ev["kind"], ("step",)))
    if len(steps):
        numbers = [int(m.group(1)) if (m := _STEP_NUMBER.search(str(name))) else -1
                   for name in strings(ev["name"], steps)]
        windows = list(zip(numbers, ts[steps].tolist(), (ts[steps] + dur[steps]).tolist()))
    else:
        spans = np.flatnonzero(is_in(ev["ph"], ("X",)))
        start = int(ts[spans].min()) if len(spans) else 0
        end = int((ts[spans] + dur[spans]).max()) if len(spans) else 0
        windows = [(-1, start, end)]
    compute = compute_intervals(ev, calls)
    cs = calls["start_ns"].to_numpy(dtype=np.int64) if len(calls) else np.zeros(0, dtype=np.int64)
    comm = merge_intervals(cs, cs + (calls["dur_ns"].to_numpy(dtype=np.int64) if len(calls) else cs))
    both = merge_intervals(np.concatenate([compute[:, 0], comm[:, 0]]), np.concatenate([compute[:, 1], comm[:, 1]]))
    rows = []
    for step, s, e in windows:
        s_, e_ = np.array([s]), np.array([e])
        c = int(covered_ns(compute, s_, e_)[0])
        busy = int(covered_ns(both, s_, e_)[0])
        rows.append((int(step), int(s), int(e - s), c, int(covered_ns(comm, s_, e_)[0]), busy - c, int(e - s) - busy))
    return pd.DataFrame(rows, columns=list(SPLIT_COLUMNS))


def _sum_known(values: pd.Series) -> object:
    """Sum of the known values; unknown (NA) when none is known (HCCL ops without a message size)."""
    return values.sum(min_count=1)


def _total_step_ns(steps: pd.DataFrame) -> int:
    return int(steps["dur_ns"].sum()) or 1


def by_group(coll: pd.DataFrame, steps: pd.DataFrame) -> pd.DataFrame:
    """Per parallel dimension and group: calls, bytes, total and exposed time, share of step time, busbw."""
    if not len(coll):
        return pd.DataFrame()
    # Grouped by a number per member list, in the order of their texts: a column of the texts themselves
    # would be one copy per call (a 512-rank world group: 2 KB x every call, ~8 MB at 4,096 calls).
    texts = ranks_text(coll["group_ranks"])
    order = {text: code for code, text in enumerate(sorted(set(texts)))}
    frame = coll.assign(parallel_dim=coll["parallel_dim"].fillna("?"), group=coll["group"].fillna("?"),
                        group_desc=coll["group_desc"].fillna(""),
                        group_ranks=np.fromiter((order[t] for t in texts), dtype=np.int64, count=len(texts)))
    del texts
    out = frame.groupby(["parallel_dim", "group", "group_desc", "group_ranks"], dropna=False).agg(
        ranks=("rank", "nunique"), calls=("rank", "size"), bytes=("bytes", _sum_known), time_ns=("dur_ns", "sum"),
        exposed_ns=("exposed_ns", "sum"), busbw=("busbw", "median"),
        inferred=("group_from", lambda s: bool(s.astype(str).str.startswith("inferred").any())),
    ).reset_index()
    text_of = sorted(order)
    out["group_ranks"] = [text_of[code] for code in out["group_ranks"].tolist()]
    out["share_of_step_time"] = out["time_ns"] / _total_step_ns(steps)
    out["exposed_share_of_step_time"] = out["exposed_ns"] / _total_step_ns(steps)
    return out.sort_values("time_ns", ascending=False, ignore_index=True)


def by_module(coll: pd.DataFrame) -> pd.DataFrame:
    """Per module and parallel dimension: calls, bytes, time and exposed time each dimension added."""
    if not len(coll):
        return pd.DataFrame()
    frame = coll.assign(module_path=coll["module_path"].fillna("(no module)"),
                        parallel_dim=coll["parallel_dim"].fillna("?"))
    out = frame.groupby(["module_path", "parallel_dim"]).agg(
        calls=("rank", "size"), bytes=("bytes", _sum_known), time_ns=("dur_ns", "sum"),
        exposed_ns=("exposed_ns", "sum"),
    ).reset_index()
    return out.sort_values("time_ns", ascending=False, ignore_index=True)


def by_rank(steps: pd.DataFrame) -> pd.DataFrame:
    """Per rank: compute / exposed communication / idle over its steps, in ns and as shares."""
    if not len(steps):
        return pd.DataFrame()
    parts = ["dur_ns", "compute_ns", "comm_ns", "exposed_comm_ns", "idle_ns"]
    out = steps.groupby("rank")[parts].sum(min_count=1).reset_index()  # unknown (NaN) stays unknown
    for col in ("compute_ns", "exposed_comm_ns", "idle_ns"):
        out[col.replace("_ns", "_share")] = out[col] / out["dur_ns"].where(out["dur_ns"] > 0)
    return out


def stragglers(steps: pd.DataFrame) -> pd.DataFrame:
    """Per step: the rank with the most compute (the one the others wait for) and how much more than the median."""
    real = steps[steps["step"] >= 0] if (steps["step"] >= 0).any() else steps
    rows = []
    for step, frame in real.groupby("step"):
        worst = frame.loc[frame["compute_ns"].idxmax()]
        rows.append({"step": int(step), "rank": int(worst["rank"]), "compute_ns": int(worst["compute_ns"]),
                     "over_median_ns": int(worst["compute_ns"] - frame["compute_ns"].median()),
                     "slowest_step_rank": int(frame.loc[frame["dur_ns"].idxmax(), "rank"]), "ranks": len(frame)})
    return pd.DataFrame(rows)


def parallel_report(coll: pd.DataFrame, steps: pd.DataFrame, groups: list[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    """Every table `tracekit parallel` shows."""
    return {"groups": pd.DataFrame(groups), "by_group": by_group(coll, steps), "by_module": by_module(coll),
            "by_rank": by_rank(steps), "stragglers": stragglers(steps) if len(steps) else pd.DataFrame()}


def terminal_view(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The tables with ms, MB and shares instead of ns and bytes, and short column names, for a terminal."""
    view = dict(tables)
    g = tables["by_group"]
    if len(g):
        view["by_group"] = pd.DataFrame({
            "dim": g["parallel_dim"], "group": g["group_desc"].where(g["group_desc"] != "", g["group"]),
            "ranks": g["group_ranks"], "calls": g["calls"], "MB": g["bytes"] / 1e6, "time ms": g["time_ns"] / 1e6,
            "exposed ms": g["exposed_ns"] / 1e6, "share": g["share_of_step_time"].map("{:.1%}".format),
            "busbw GB/s": g["busbw"].astype("Float64"), "group inferred": g["inferred"]})
    m = tables["by_module"]
    if len(m):
        view["by_module"] = pd.DataFrame({
            "module": m["module_path"].map(lambda p: "/".join(p.split("/")[-3:])), "dim": m["parallel_dim"],
            "calls": m["calls"], "MB": m["bytes"] / 1e6, "time ms": m["time_ns"] / 1e6,
            "exposed ms": m["exposed_ns"] / 1e6})
    r = tables["by_rank"]
    if len(r):
        view["by_rank"] = pd.DataFrame({
            "rank": r["rank"], "steps ms": r["dur_ns"] / 1e6, "compute": r["compute_share"].map("{:.1%}".format),
            "exposed comm": r["exposed_comm_share"].map("{:.1%}".format),
            "idle": r["idle_share"].map("{:.1%}".format)})
    s = tables["stragglers"]
    if len(s):
        view["stragglers"] = pd.DataFrame({
            "step": s["step"], "rank": s["rank"], "compute ms": s["compute_ns"] / 1e6,
            "over median ms": s["over_median_ns"] / 1e6, "longest step on rank": s["slowest_step_rank"]})
    return view
