"""Where every input event went: written, folded into metadata, replaced, or skipped with a reason."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tracekit.table import DEVICE_KINDS, is_in, kind_in

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
    to the slice that starts at its ts on its track. Works on column codes: no copy of the frame,
    no Python string per row.
    """
    status = np.full(len(events), "", dtype=object)
    is_flow = (events["kind"] == "flow").to_numpy()
    if not is_flow.any():
        return status, pd.DataFrame(columns=["start", "end", "cat"])
    rows = np.flatnonzero(is_flow)
    src = events["source_index"].to_numpy()
    cat_codes = events["cat"].cat.codes.to_numpy()[rows]
    id_codes = events["flow_id"].cat.codes.to_numpy()[rows]
    replaced = is_in(events["cat"], LAUNCH_FLOW_CATS)[rows] & _is_linked_correlation(
        events, launch, src[rows], id_codes)
    status[rows[replaced]] = FLOW_REPLACED
    rest = rows[~replaced]
    bound = _bind_to_slices(events, rest)
    status[rest[bound < 0]] = UNBOUND_FLOW
    keep = bound >= 0
    rest, bound = rest[keep], bound[keep]
    rest_cat, rest_id = cat_codes[~replaced][keep], id_codes[~replaced][keep]
    flows = pd.DataFrame({"src": src[rest], "cat": rest_cat, "id": rest_id, "row": rest, "slice": bound})
    starts = flows[is_in(events["ph"], ("s",))[rest]].drop_duplicates(["src", "cat", "id"])
    ends = flows[is_in(events["ph"], ("f",))[rest]]
    pairs = starts.merge(ends, on=["src", "cat", "id"], suffixes=("_s", "_f"))
    paired = np.isin(rest, np.concatenate([pairs["row_s"].to_numpy(), pairs["row_f"].to_numpy()]))
    status[rest[paired]] = WRITTEN
    status[rest[~paired]] = UNMATCHED_FLOW
    cat_text = np.append(events["cat"].cat.categories.astype(str).to_numpy(dtype=object), "nan")  # -1: as str(NaN)
    out = pd.DataFrame({"start": pairs["slice_s"].to_numpy(), "end": pairs["slice_f"].to_numpy(),
                        "cat": cat_text[pairs["cat"].to_numpy()], "start_row": pairs["row_s"].to_numpy(),
                        "end_row": pairs["row_f"].to_numpy()})
    return status, out


def _is_linked_correlation(events: pd.DataFrame, launch: np.ndarray, flow_src: np.ndarray,
                           id_codes: np.ndarray) -> np.ndarray:
    """Per flow row: its id is, as text, the correlation of a linked device event of its source."""
    device = kind_in(events, DEVICE_KINDS) & (launch >= 0)
    if not device.any():
        return np.zeros(len(id_codes), dtype=bool)
    # An id is comparable only where its text is the canonical text of an int64 (str(int(text)) == text).
    parsed = [_canonical_int(text) for text in events["flow_id"].cat.categories]
    comparable = np.array([v is not None for v in parsed] + [False], dtype=bool)[id_codes]
    id_int = np.array([0 if v is None else v for v in parsed] + [0], dtype=np.int64)[id_codes]
    linked = pd.MultiIndex.from_arrays([events["source_index"].to_numpy()[device],
                                        events["correlation"].to_numpy()[device]])
    out = np.zeros(len(id_codes), dtype=bool)
    out[comparable] = pd.MultiIndex.from_arrays([flow_src[comparable], id_int[comparable]]).isin(linked)
    return out


def _canonical_int(text: object) -> int | None:
    try:
        value = int(str(text))
    except ValueError:
        return None
    return value if str(value) == str(text) and -(2**63) <= value < 2**63 else None


def _bind_to_slices(events: pd.DataFrame, flow_rows: np.ndarray) -> np.ndarray:
    """Row of the X slice starting exactly at each flow event's ts on its track (-1 if none)."""
    spans = np.flatnonzero((events["ph"] == "X").to_numpy())
    keys = ("source_index", "pid", "tid", "ts_ns")
    columns = {k: events[k].to_numpy() for k in keys}
    keyed = pd.DataFrame({**{k: v[spans] for k, v in columns.items()}, "slice": spans,
                          "dur": events["dur_ns"].to_numpy()[spans]})
    keyed = keyed.sort_values("dur", ascending=False).drop_duplicates(list(keys))
    flows = pd.DataFrame({k: v[flow_rows] for k, v in columns.items()})
    joined = flows.merge(keyed, on=list(keys), how="left")
    return joined["slice"].fillna(-1).astype(np.int64).to_numpy()


def summarize_status(status: np.ndarray, skipped_before: dict[str, int], metadata_before: int = 0
                     ) -> dict[str, object]:
    """Counts per status plus events skipped, and M events folded, while reading (conservation by construction)."""
    by = pd.Series(status).value_counts().to_dict()
    skipped = dict(skipped_before)
    for key in (UNMATCHED_FLOW, UNBOUND_FLOW):
        if by.get(key):
            skipped[key] = by[key]
    return {
        "written": by.get(WRITTEN, 0),
        "metadata_folded": by.get(METADATA, 0) + metadata_before,
        "flows_redrawn": by.get(FLOW_REPLACED, 0),
        "skipped": skipped,
    }
