"""Where every input event went: written, folded into metadata, replaced, or skipped with a reason."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tracekit.table import DEVICE_KINDS

WRITTEN = "written"
METADATA = "metadata"  # M events: folded into tracekit's own process/thread names
FLOW_REPLACED = "flow_replaced_by_launch_link"  # cpu->device flows re-drawn from correlation ids
UNMATCHED_FLOW = "flow_unmatched"  # a flow start or end without its other half
UNBOUND_FLOW = "flow_without_slice"  # a flow end not at the start of any slice on its track
LAUNCH_FLOW_CATS = frozenset({"ac2g", "async_cpu_to_gpu", "async", "async_npu", "HostToDevice"})


def flow_status(events: pd.DataFrame, launch: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
    """Status per flow row, and the pairs (start row, end row, cat) of flows to write as they are.

    Launch flows whose id is the correlation of a linked device event are replaced by the flows
    drawn from the links; other flows are paired by (source file, cat, id) and each end is bound
    to the slice that starts at its ts on its track.
    """
    status = np.full(len(events), "", dtype=object)
    is_flow = (events["kind"] == "flow").to_numpy()
    if not is_flow.any():
        return status, pd.DataFrame(columns=["start", "end", "cat"])
    flows = events.loc[is_flow, ["source_index", "pid", "tid", "ts_ns", "ph", "cat", "flow_id"]].copy()
    flows["row"] = np.flatnonzero(is_flow)
    flows["cat"] = flows["cat"].astype(str)
    flows["flow_id"] = flows["flow_id"].astype(str)
    kind = events["kind"].to_numpy()
    linked_corr = events.loc[np.isin(kind, list(DEVICE_KINDS)) & (launch >= 0), ["source_index", "correlation"]]
    linked = set(zip(linked_corr["source_index"].tolist(), linked_corr["correlation"].astype(str).tolist()))
    is_launch = flows["cat"].isin(LAUNCH_FLOW_CATS).to_numpy()
    replaced = is_launch & np.array(
        [(s, i) in linked for s, i in zip(flows["source_index"].tolist(), flows["flow_id"].tolist())], dtype=bool
    )
    status[flows["row"].to_numpy()[replaced]] = FLOW_REPLACED
    rest = flows[~replaced]
    bound = _bind_to_slices(events, rest)
    rest = rest.assign(slice=bound)
    status[rest["row"].to_numpy()[bound < 0]] = UNBOUND_FLOW
    rest = rest[bound >= 0]
    starts = rest[rest["ph"] == "s"].drop_duplicates(["source_index", "cat", "flow_id"])
    ends = rest[rest["ph"] == "f"]
    pairs = starts.merge(ends, on=["source_index", "cat", "flow_id"], suffixes=("_s", "_f"))
    paired_rows = set(pairs["row_s"].tolist()) | set(pairs["row_f"].tolist())
    for row in rest["row"].tolist():
        status[row] = WRITTEN if row in paired_rows else UNMATCHED_FLOW
    out = pd.DataFrame({"start": pairs["slice_s"].to_numpy(), "end": pairs["slice_f"].to_numpy(),
                        "cat": pairs["cat"].to_numpy(), "start_row": pairs["row_s"].to_numpy(),
                        "end_row": pairs["row_f"].to_numpy()})
    return status, out


def _bind_to_slices(events: pd.DataFrame, flows: pd.DataFrame) -> np.ndarray:
    """Row of the X slice starting exactly at each flow event's ts on its track (-1 if none)."""
    spans = events[(events["ph"] == "X")]
    keyed = pd.DataFrame({
        "source_index": spans["source_index"].to_numpy(), "pid": spans["pid"].to_numpy(),
        "tid": spans["tid"].to_numpy(), "ts_ns": spans["ts_ns"].to_numpy(), "slice": np.flatnonzero(
            (events["ph"] == "X").to_numpy()),
        "dur": spans["dur_ns"].to_numpy(),
    }).sort_values("dur", ascending=False).drop_duplicates(["source_index", "pid", "tid", "ts_ns"])
    joined = flows[["source_index", "pid", "tid", "ts_ns"]].merge(
        keyed, on=["source_index", "pid", "tid", "ts_ns"], how="left")
    return joined["slice"].fillna(-1).astype(np.int64).to_numpy()


def summarize_status(status: np.ndarray, skipped_before: dict[str, int]) -> dict[str, object]:
    """Counts per status plus events skipped while reading; conservation holds by construction."""
    by = pd.Series(status).value_counts().to_dict()
    skipped = dict(skipped_before)
    for key in (UNMATCHED_FLOW, UNBOUND_FLOW):
        if by.get(key):
            skipped[key] = by[key]
    return {
        "written": by.get(WRITTEN, 0),
        "metadata_folded": by.get(METADATA, 0),
        "flows_redrawn": by.get(FLOW_REPLACED, 0),
        "skipped": skipped,
    }
