"""The shape of a dataset manifest (tracekit.json): every field a reader uses, of the type convert writes.

A hand-edited or damaged manifest would otherwise fail deep inside a command (a size that is not a number, an
input that is not an object) and be reported as a tracekit bug. `manifest_problem` says what is wrong and where
(`sources[3].rank: "x" is not an integer`); read_manifest turns it into a clear error (exit 2). Fields a reader
never reads are not checked; optional fields are checked only where present.
"""

from __future__ import annotations

from typing import Any


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _str(value: Any) -> bool:
    return isinstance(value, str)


def _list(value: Any) -> bool:
    return isinstance(value, list)


def _dict(value: Any) -> bool:
    return isinstance(value, dict)


def _int_or_none(value: Any) -> bool:
    return value is None or _int(value)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_KIND = {_number: "a number",
         _int: "an integer", _str: "a string", _list: "a list", _dict: "an object", _int_or_none: "an integer or null"}

_INPUT = {"path": _str, "size": _int, "mtime_ns": _int, "sha256": _str}
_SOURCE = {"path": _str, "format": _str, "source": _str, "base_ns": _int, "base_from": _str, "rank": _int,
           "rank_from": _str, "devices": _list, "distributed": _dict, "top": _dict, "process_names": _list,
           "process_labels": _list, "process_sort": _list, "thread_names": _list, "thread_sort": _list,
           "input_events": _int, "metadata_folded": _int, "skipped": _dict, "damage": _list, "details": _dict,
           "source_index": _int}
_TABLE = {"layout": _str, "path": _str, "rows": _int_or_none, "columns": _list, "partitioning": _str}
_COLUMN = {"name": _str, "type": _str}
_REQUIRED = {"inputs": ("path", "size"), "sources": ("path", "format", "source", "base_ns", "base_from"),
             "tables": ("layout", "path", "columns"), "columns": ("name", "type")}
# process_* hold [pid, value] pairs, thread_* [pid, tid, value] triples (tracekit.dataset.manifest.source_record)
_PAIRS = {"process_names": (2, _str), "process_labels": (2, _str), "process_sort": (2, _int),
          "thread_names": (3, _str), "thread_sort": (3, _int)}


def manifest_problem(manifest: dict[str, Any]) -> str | None:
    """What is wrong with the manifest's fields, naming the first bad one; None when it is sound."""
    for key, check in (("inputs", _list), ("ranks", _list), ("sources", _list), ("tables", _dict),
                       ("traces", _list), ("summary", _str), ("module_rows", _dict)):
        if key in manifest and not check(manifest[key]):
            return _wrong(key, manifest[key], check)
    for i, rank in enumerate(manifest.get("ranks", [])):
        if not _int(rank):
            return _wrong(f"ranks[{i}]", rank, _int)
    for i, trace in enumerate(manifest.get("traces", [])):
        if not _str(trace):
            return _wrong(f"traces[{i}]", trace, _str)
    for i, entry in enumerate(manifest.get("inputs", [])):
        if problem := _record(f"inputs[{i}]", entry, _INPUT, _REQUIRED["inputs"]):
            return problem
    for i, entry in enumerate(manifest.get("sources", [])):
        if problem := _record(f"sources[{i}]", entry, _SOURCE, _REQUIRED["sources"]) or _source_lists(i, entry):
            return problem
    for name, entry in manifest.get("tables", {}).items():
        where = f"tables.{name}"
        if problem := _record(where, entry, _TABLE, _REQUIRED["tables"]):
            return problem
        for k, column in enumerate(entry["columns"]):
            if problem := _record(f"{where}.columns[{k}]", column, _COLUMN, _REQUIRED["columns"]):
                return problem
    return None


def resolve_device_lists(manifest: dict[str, Any]) -> str | None:
    """Put each source's device list in place of its index into `device_lists` (format 2; the lists are shared,
    not copied); what is wrong with those indexes and lists, or None. Format 1 lists are inline: left as they are."""
    lists = manifest.get("device_lists", [])
    if not _list(lists):
        return _wrong("device_lists", lists, _list)
    for i, devices in enumerate(lists):
        if not _list(devices):
            return _wrong(f"device_lists[{i}]", devices, _list)
    sources = manifest.get("sources", [])
    for i, source in enumerate(sources if _list(sources) else []):
        if _dict(source) and _int(source.get("devices")):
            k = source["devices"]
            if not 0 <= k < len(lists):
                return f"sources[{i}].devices: {k} is not an index of device_lists ({len(lists)} lists)"
            source["devices"] = lists[k]
    return None


def _devices(i: int, devices: list[Any]) -> str | None:
    """The device entries of sources[i]: objects whose name, id and memory are of the types info reads."""
    for k, device in enumerate(devices):
        where = f"sources[{i}].devices[{k}]"
        if not _dict(device):
            return _wrong(where, device, _dict)
        for key, check in (("name", _str), ("id", _int_or_none), ("totalGlobalMem", _number)):
            if key in device and not check(device[key]):
                return _wrong(f"{where}.{key}", device[key], check)
    return None


def _record(where: str, entry: Any, fields: dict[str, Any], required: tuple[str, ...]) -> str | None:
    if not _dict(entry):
        return _wrong(where, entry, _dict)
    missing = [key for key in required if key not in entry]
    if missing:
        return f"{where}: no {', '.join(repr(k) for k in missing)}"
    for key, check in fields.items():
        if key in entry and not check(entry[key]):
            return _wrong(f"{where}.{key}", entry[key], check)
    return None


def _source_lists(i: int, source: dict[str, Any]) -> str | None:
    """The pid/tid-keyed lists and the skipped counts of sources[i]."""
    for key, (size, check) in _PAIRS.items():
        for k, item in enumerate(source.get(key, [])):
            if not (_list(item) and len(item) == size and all(_int(x) for x in item[:-1]) and check(item[-1])):
                return f"sources[{i}].{key}[{k}]: {_short(item)} is not [{'pid, ' if size == 2 else 'pid, tid, '}" \
                       f"{_KIND[check].split()[-1]}]"
    if problem := _devices(i, source.get("devices", [])):
        return problem
    for reason, count in source.get("skipped", {}).items():
        if not _int(count):
            return _wrong(f"sources[{i}].skipped.{reason}", count, _int)
    return None


def _wrong(where: str, value: Any, check: Any) -> str:
    return f"{where}: {_short(value)} is not {_KIND[check]}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
