"""Op-sequence alignment within matched modules.

Each module's listed ops (tracekit.compare.opframe) are folded over its calls into one sequence
per phase: the op at each ordinal, with its mean time per call. Two sequences are aligned by a
weighted LCS on canonical op names (tracekit.compare.equiv), preferring pairs with the same
shapes; the rest are listed as base-only or target-only ops. Kernel names are never used.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tracekit.compare.lcs import align

SEQ_COLUMNS = ("name", "calls", "count", "host_ns", "device_ns", "kernel_count", "cast_ns", "cast_count",
               "kernel_names", "shapes", "dtypes", "local_shapes", "weight_shape", "nested", "collective")


_SUMMED = ("host_ns", "device_ns", "kernel_count", "cast_ns", "cast_count")
_FIRST = ("kernel_names", "shapes", "dtypes", "local_shapes", "weight_shape", "nested", "collective")


def per_ordinal(ops: pd.DataFrame) -> tuple[pd.Series, pd.DataFrame]:
    """(calls per (module path, phase), the op at each (module path, phase, ordinal): the most frequent name,
    summed over the calls that ran it), sorted by path, phase and ordinal."""
    frame = ops.assign(module_path=ops["module_path"].astype(object).where(ops["module_path"].notna(), None))
    calls = frame.groupby(["module_path", "phase"], dropna=False)["call"].nunique()
    grouped = frame.groupby(["module_path", "phase", "ordinal", "name"], dropna=False, sort=False)
    # one call per kind of aggregate (size, sum, first: the first non-missing value), not one per column
    agg = pd.concat([grouped.size().rename("count"), grouped[list(_SUMMED)].sum(), grouped[list(_FIRST)].first()],
                    axis=1).reset_index()
    agg = agg.sort_values(["module_path", "phase", "ordinal", "count"], ascending=[True, True, True, False],
                          kind="stable", na_position="first")
    return calls, agg.drop_duplicates(["module_path", "phase", "ordinal"])


def sequences(ops: pd.DataFrame) -> dict[tuple[str | None, str], pd.DataFrame]:
    """(module path, phase) -> the op at each ordinal, averaged over the calls that ran it."""
    if not len(ops):
        return {}
    calls, agg = per_ordinal(ops)
    out = {}
    for (path, phase), seq in agg.groupby(["module_path", "phase"], dropna=False, sort=False):
        path = None if not isinstance(path, str) else path
        n = int(calls.get((path if path is not None else np.nan, phase), 0) or seq["count"].max())
        seq = seq.assign(calls=n)
        for col in ("host_ns", "device_ns", "kernel_count", "cast_ns", "cast_count"):  # per call of the module
            seq[col] = seq[col] / max(n, 1)
        out[(path, str(phase))] = seq[list(SEQ_COLUMNS)].reset_index(drop=True)
    return out


def align_ops(base: pd.DataFrame, target: pd.DataFrame, canon: dict[str, str]) -> list[tuple[int | None, int | None]]:
    """Pairs of positions in two op sequences (None: the op has no partner)."""
    a = list(zip([canon.get(n, n) for n in base["name"]], base["shapes"]))
    b = list(zip([canon.get(n, n) for n in target["name"]], target["shapes"]))

    def score(x: tuple, y: tuple) -> int:
        return 0 if x[0] != y[0] else (3 if x[1] == y[1] else 2)

    return align(a, b, score, key=lambda x: x[0])


ONE_SIDED_COLUMNS = ["side", "op", "phase", "occurrences", "modules", "time_ns"]


def one_sided(ops: pd.DataFrame) -> pd.DataFrame:
    """Ops that exist on one side only, per side and op name: occurrences, modules and time (per call summed)."""
    if not len(ops):
        return pd.DataFrame(columns=ONE_SIDED_COLUMNS)
    fast = _one_sided_lists(ops)
    if fast is not None:
        return fast
    rows = []
    for side in ("base", "target"):
        part = ops.loc[ops["status"] == f"{side}_only", [f"{side}_op", "phase", "module_path", "status", f"{side}_ns"]]
        if not len(part):
            continue
        part = part.assign(module_or_none=part["module_path"].fillna("(no module)"))  # ops outside modules count once
        grouped = part.groupby([f"{side}_op", "phase"], dropna=False)
        # one aggregation per column on one grouper: a third of the time of .agg with named aggregations
        counts = pd.concat([grouped.size().rename("occurrences"), grouped["module_or_none"].nunique().rename("modules"),
                            grouped[f"{side}_ns"].sum().rename("time_ns")], axis=1)
        rows.append(counts.reset_index().rename(columns={f"{side}_op": "op"}).assign(side=side))
    if not rows:
        return pd.DataFrame(columns=ONE_SIDED_COLUMNS)
    out = pd.concat(rows, ignore_index=True)
    return out[ONE_SIDED_COLUMNS].sort_values(["side", "time_ns"], ascending=[True, False], ignore_index=True)


def _one_sided_lists(ops: pd.DataFrame) -> pd.DataFrame | None:
    """one_sided over Python lists (the one-sided ops are a few hundred rows, where each pandas call costs more than
    the rows): the same groups, order and sums (pandas' compensated float sum, kahan_sum). None (use pandas) unless
    every op name and phase is text and the times are float64."""
    status = ops["status"].tolist()
    phases, paths = ops["phase"].tolist(), ops["module_path"].tolist()
    found: list[tuple] = []
    for side in ("base", "target"):
        if ops[f"{side}_ns"].dtype != np.float64:
            return None
        wanted = f"{side}_only"
        rows = [i for i, s in enumerate(status) if s == wanted]
        if not rows:
            continue
        names, times = ops[f"{side}_op"].tolist(), ops[f"{side}_ns"].tolist()
        groups: dict[tuple[str, str], list[int]] = {}
        for i in rows:
            if not isinstance(names[i], str) or not isinstance(phases[i], str):
                return None
            groups.setdefault((names[i], phases[i]), []).append(i)
        for (name, phase), members in sorted(groups.items()):
            modules = {paths[i] if isinstance(paths[i], str) else "(no module)" for i in members}
            found.append((side, name, phase, len(members), len(modules), kahan_sum(times[i] for i in members)))
    if not found:
        return pd.DataFrame(columns=ONE_SIDED_COLUMNS)
    found.sort(key=lambda r: (r[0], -r[5]))  # stable: ties keep the (op, phase) order, as pandas' lexsort
    columns = list(zip(*found))
    return pd.DataFrame({"side": list(columns[0]), "op": list(columns[1]), "phase": list(columns[2]),
                         "occurrences": np.array(columns[3], dtype=np.int64),
                         "modules": np.array(columns[4], dtype=np.int64),
                         "time_ns": np.array(columns[5], dtype=np.float64)})


def kahan_sum(values) -> float:
    """Sum of the non-NaN floats as pandas' groupby sum adds them (Kahan compensation; 0.0 for none)."""
    total = compensation = 0.0
    for value in values:
        if value != value:
            continue
        y = value - compensation
        t = total + y
        compensation = t - total - y
        if compensation != compensation:  # an infinite value: no compensation (pandas GH#53606)
            compensation = 0.0
        total = t
    return total
