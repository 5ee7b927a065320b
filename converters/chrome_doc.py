"""The top level of a Chrome-trace-format JSON document: the event list split into raw slices (object or bare
list form, a truncated file recovered) and the other top-level keys."""

from __future__ import annotations

import re
from typing import Any, Union

import msgspec
import numpy as np

from tracekit.errors import TraceError, warn

from .loading import RawInput, recover_truncated_json


class ChromeDoc(msgspec.Struct):
    """Top level of a chrome trace object: the events, each kept as undecoded JSON for now."""

    traceEvents: Union[list[msgspec.Raw], None] = None


_doc_decoder = msgspec.json.Decoder(ChromeDoc)
_list_decoder = msgspec.json.Decoder(list[msgspec.Raw])


def decode_document(raw: RawInput) -> tuple[list[msgspec.Raw], bytes | None, list[str], bool]:
    """Split the event list (object or bare list form) into raw events, recovering a truncated file.

    Returns (raw events, data to read the other top-level keys from or None, damage, object form).
    """
    data, damage = raw.data, list(raw.damage)
    first = re.search(rb"\S", data[:4096])
    head = data[first.start() : first.start() + 1] if first else b""
    if head not in (b"{", b"["):
        raise TraceError(raw.path, "not JSON (does not start with '{' or '[')")
    decoder = _doc_decoder if head == b"{" else _list_decoder
    try:
        doc = decoder.decode(data)
        cut = None
    except RecursionError:
        raise TraceError(raw.path, "JSON is nested deeper than the reader allows (about 1,000 levels)"
                         + deep_where(data)) from None
    except msgspec.ValidationError as exc:
        raise TraceError(raw.path, f"not a chrome trace: {exc}") from None
    except msgspec.DecodeError as exc:
        if not cut_off(str(exc), data):
            raise TraceError(raw.path, f"malformed JSON: {exc}") from None
        doc, note = recover_truncated_json(raw.path, data, decoder.decode)
        warn(raw.path, note)
        damage.append(note)
        cut = True
    if head == b"{" and doc.traceEvents is None:
        raise TraceError(raw.path, "not a chrome trace: the JSON object has no 'traceEvents' list")
    events = doc.traceEvents if head == b"{" else doc
    top_raw = without_events(data, events) if (head == b"{" and cut is None) else None
    return events, top_raw, damage, head == b"{"


def cut_off(message: str, data: bytes) -> bool:
    """Whether a decode error is the file ending early: msgspec says "truncated", or the error is at
    the very end (a cut inside a number such as `"dur": 42.` reads as an invalid number)."""
    if "truncated" in message:
        return True
    found = re.search(r"\(byte (\d+)\)", message)
    return bool(found) and int(found.group(1)) >= _stripped_length(data) - 3


def _stripped_length(data) -> int:
    """len(data.rstrip()) of bytes or a memory map (which has no rstrip), without copying the whole."""
    end = len(data)
    while end:
        tail = bytes(data[max(0, end - 4096) : end]).rstrip()
        if tail:
            return end - 4096 + len(tail) if end >= 4096 else len(tail)
        end = max(0, end - 4096)
    return 0


def deep_where(data: bytes, limit: int = 900) -> str:
    """ " near byte N" for the first place the bracket depth passes `limit` (strings not parsed: approximate)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    step = np.zeros(len(buf), dtype=np.int32)
    step[(buf == ord("[")) | (buf == ord("{"))] = 1
    step[(buf == ord("]")) | (buf == ord("}"))] = -1
    deep = np.flatnonzero(np.cumsum(step) > limit)
    return f", near byte {int(deep[0])}" if len(deep) else ""


def without_events(data: bytes, events: list[msgspec.Raw]) -> bytes:
    """The document with the text of its events cut out (`"traceEvents": [ ]` stays), so that reading
    the other top-level keys does not scan the events again. The raw events are slices of `data`
    (msgspec decodes Raw without a copy): their addresses give where the list starts and ends."""
    if not events:
        return data
    base = np.frombuffer(data, dtype=np.uint8).ctypes.data
    first = np.frombuffer(events[0], dtype=np.uint8).ctypes.data - base
    end = np.frombuffer(events[-1], dtype=np.uint8).ctypes.data - base + len(events[-1])
    if not 0 < first < end <= len(data):  # not slices of data after all: keep it whole
        return data
    return data[:first] + data[end:]


def decode_top(data: bytes) -> tuple[dict[str, Any], list[str]]:
    """Decode the top-level keys other than traceEvents (cheap: the events are skipped raw); returns them and
    the keys that are not valid JSON text (bad UTF-8, too deep), which are left out."""
    import orjson  # local: only used for the small top-level object

    meta = msgspec.json.decode(data, type=dict[str, msgspec.Raw])
    meta.pop("traceEvents", None)
    top, dropped = {}, []
    for key, value in meta.items():
        try:
            top[key] = orjson.loads(bytes(value))
        except (orjson.JSONDecodeError, RecursionError):
            dropped.append(key)  # undecodable: as if absent; reported by the caller
    return top, dropped


def decode_top_recovered(data: bytes) -> dict[str, Any]:
    """For a truncated file, keep the top-level keys written before traceEvents."""
    start = data.find(b'"traceEvents"')
    if start <= 0:
        return {}
    head = data[:start].rstrip()
    if head.endswith(b","):
        head = head[:-1]
    try:
        import orjson

        return orjson.loads(head + b"}")
    except Exception:
        return {}
