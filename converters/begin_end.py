"""B/E events of a chrome trace: the pid/tid of each event as written, and B/E pairs folded into X events."""

from __future__ import annotations

import msgspec
import numpy as np

from tracekit.errors import warn

from .chrome_ranges import ByteChunks
from .chrome_slices import EventSlices


class _Track(msgspec.Struct, gc=False):
    """pid and tid of an event as written (only needed to pair B/E events)."""

    pid: int | str | None = None
    tid: int | str | None = None


_track_decoder = msgspec.json.Decoder(list[_Track])


def tracks_as_written(events: EventSlices | ByteChunks) -> tuple[list, list]:
    """pid and tid of every event as written (B/E pairing tells "5" and 5 apart, as written)."""
    pids: list = []
    tids: list = []
    for k in range(len(events)):
        tracks = _track_decoder.decode(events.text(k))
        events.done(k)
        pids += [t.pid for t in tracks]
        tids += [t.tid for t in tracks]
    return pids, tids


def pair_begin_end(path, ph: list, pid: list, tid: list, ts_ns: np.ndarray, dur_ns: np.ndarray,
                    keep: np.ndarray, skipped: dict[str, int], damage: list[str]) -> np.ndarray:
    """Turn matched B/E pairs into X events (the E is folded into its B); recover unmatched ones.

    An unmatched B is closed at the last timestamp of its track; an unmatched E is skipped.
    Returns the mask of rows that stay.
    """
    rows = [i for i, p in enumerate(ph) if p in ("B", "E") and keep[i]]
    rows.sort(key=lambda i: (str(pid[i]), str(tid[i]), ts_ns[i], ph[i] == "B"))
    stay = np.ones(len(ph), dtype=bool)
    open_: dict[tuple, list[int]] = {}
    unmatched_end = 0
    for i in rows:
        track = (pid[i], tid[i])
        if ph[i] == "B":
            open_.setdefault(track, []).append(i)
        elif open_.get(track):
            b = open_[track].pop()
            ph[b] = "X"
            dur_ns[b] = ts_ns[i] - ts_ns[b]
            stay[i] = False
        else:
            stay[i] = False
            unmatched_end += 1
    folded = int((~stay).sum()) - unmatched_end
    if folded:
        skipped["end_folded_into_begin"] = folded
    last_ts: dict[tuple, int] = {}
    for i in range(len(ph)):
        if keep[i] and ph[i] != "M":
            track = (pid[i], tid[i])
            last_ts[track] = max(last_ts.get(track, ts_ns[i]), int(ts_ns[i] + max(dur_ns[i], 0)))
    unclosed = [b for track in open_.values() for b in track]
    for b in unclosed:
        ph[b] = "X"
        dur_ns[b] = last_ts[(pid[b], tid[b])] - ts_ns[b]
    if unclosed:
        note = f"{len(unclosed)} 'B' events have no matching 'E'; closed at their track's last timestamp"
        warn(path, note)
        damage.append(note)
    if unmatched_end:
        note = f"{unmatched_end} 'E' events have no matching 'B' and were skipped"
        warn(path, note)
        damage.append(note)
        skipped["unmatched_end"] = unmatched_end
    return stay
