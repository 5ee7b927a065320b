"""Read the module rows file(s) that convert writes beside modules.parquet (tracekit.writers.module_rows) with
stdlib json only: the rows and step figures `tracekit modules DATASET` shows, without numpy, pyarrow or pandas.

Gives the same rows as reading modules.parquet (tracekit.dataset.load): a rank-partitioned dataset's rows in
partition order, each row's source_index its partition's input position, and a column that is integer in some
partitions and floating in others made floating, as Arrow's concatenation does. Returns None where the rows file
cannot answer (an older dataset without it: silently; a damaged or inconsistent one: with a warning) so that the
caller reads the Parquet tables instead."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracekit.errors import warn
from tracekit.writers.module_rows import FORMAT, FORMAT_VERSION, PER_RANK

if TYPE_CHECKING:
    from tracekit.dataset.read import Dataset

_PART = re.compile(r"part-(\d+)\.(?:parquet|json)$")


@dataclass
class ModuleRows:
    """The module rows (dicts of the asked columns), per source the step time, and the lowest ProfilerStep."""

    rows: list[dict[str, Any]]
    step_ns: dict[int, int]
    first_step: int | None


class _Damaged(ValueError):
    """A rows file that cannot answer: the message says what is wrong."""


class _Unanswerable(ValueError):
    """Sound rows files that cannot give this answer (a newer format, a column not stored, partitions whose types
    differ in a way only Arrow's concatenation resolves): the Parquet path answers, nothing to warn about."""


def read_module_rows(ds: Dataset, columns: Sequence[str]) -> ModuleRows | None:
    """The rows file(s) of `ds` with only `columns` (those the modules table has); None when the dataset has no
    rows file or it cannot give these columns (the caller reads modules.parquet instead)."""
    entry = ds.manifest.get("module_rows")
    if not isinstance(entry, dict):
        return None  # converted by a tracekit without it
    wanted = [c for c in ds._project("modules", columns) if c != "rank"]
    try:
        if entry.get("format") != FORMAT or not isinstance(entry.get("format_version"), int):
            raise _Damaged(f"format {entry.get('format')!r} version {entry.get('format_version')!r} in the manifest")
        if entry["format_version"] > FORMAT_VERSION:
            raise _Unanswerable("written by a newer tracekit: the Parquet tables answer")
        one_file = entry.get("layout") == "file"
        parts = [(None, ds.root / str(entry.get("path")))] if one_file else _rank_files(ds)
        found = _combine([_load(path, index, wanted) for index, path in parts], wanted)
        if entry.get("rows") is not None and len(found.rows) != entry["rows"]:
            raise _Damaged(f"{len(found.rows)} rows, the manifest counts {entry['rows']}")
        return found
    except _Unanswerable:
        return None
    except _Damaged as exc:
        warn(ds.root / str(entry.get("path", "")), f"module rows file unusable ({exc}); reading modules.parquet "
                                                   "instead")
        return None


def _rank_files(ds: Dataset) -> list[tuple[int, Path]]:
    """(input index, rows file) for each partition of the modules table, in its order; the two sets must match."""
    files = {}
    for path in (ds.root / PER_RANK).glob("rank=*/*.json"):
        m, rank = _PART.search(path.name), path.parent.name.removeprefix("rank=")
        if not rank.lstrip("-").isdigit():
            raise _Damaged(f"{path.parent.name}: not a rank folder")
        files[(int(rank), int(m.group(1)) if m else 0)] = path
    parts = [(rank, index) for rank, index, _path in ds.parts("modules")]
    if set(parts) != set(files):
        raise _Damaged(f"{len(files)} rows files for {len(parts)} partitions of modules/")
    return [(index, files[(rank, index)]) for rank, index in parts]


@dataclass
class _Part:
    rows: list[list[Any]]
    types: list[str]
    step_ns: dict[int, int]
    first_step: int | None


def _load(path: Path, index: int | None, wanted: Sequence[str]) -> _Part:
    """One rows file, only `wanted` columns; with an input index (a rank partition) source_index set to it."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        columns, types, rows = doc["columns"], doc["types"], doc["rows"]
        step_ns = {int(s): int(ns) for s, ns in doc["step_ns"]}
        first = doc["first_step"]
        sound = doc["format"] == FORMAT and all(isinstance(v, list) for v in (columns, types, rows)) and \
            len(types) == len(columns) and all(isinstance(r, list) and len(r) == len(columns) for r in rows)
    except (OSError, ValueError, KeyError, TypeError, RecursionError, OverflowError) as exc:  # nested too deep,
        raise _Damaged(f"{path.name}: {type(exc).__name__}: {exc}") from None  # a step time of 1e400, ...
    if not sound:
        raise _Damaged(f"{path.name}: not a module rows file (its format, columns, types and rows disagree)")
    if not all(c in columns for c in wanted):  # a view that reads more columns than this file's writer stored
        raise _Unanswerable(f"{path.name} has not every column asked")
    at = [columns.index(c) for c in wanted]
    picked = [[row[i] for i in at] for row in rows]
    _check_values(path, picked, wanted, [_family(str(types[i])) for i in at])
    if index is not None:
        if len(step_ns) > 1:
            raise _Damaged(f"{path.name}: step figures of {len(step_ns)} sources in one rank partition")
        step_ns = dict.fromkeys([index], *step_ns.values()) if step_ns else {}
        if "source_index" in wanted:
            s = wanted.index("source_index")
            for row in picked:
                row[s] = index
    return _Part(picked, [types[i] for i in at], step_ns, first if isinstance(first, int) else None)


_FITS = {
    "null": lambda v: v is None,
    "int": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)),
    "float": lambda v: v is None or (isinstance(v, int | float) and not isinstance(v, bool)),
    "str": lambda v: v is None or isinstance(v, str),
}


def _check_values(path: Path, rows: list[list[Any]], wanted: Sequence[str], families: list[str]) -> None:
    """Every value is of its column's declared type (a text where a number belongs would break the view's
    formatting); a type this reader does not know is left to the Parquet path."""
    for col, (name, family) in enumerate(zip(wanted, families)):
        fits = _FITS.get(family)
        if fits is None:
            raise _Unanswerable(f"{path.name}: column {name} of type {family}")
        bad = next((r for r, row in enumerate(rows) if not fits(row[col])), None)
        if bad is not None:
            raise _Damaged(f"{path.name}: row {bad} column {name}: {rows[bad][col]!r} is not of its type {family}")


def _family(arrow_type: str) -> str:
    """What a column's values are in Python: int, float, str, null, or the Arrow type itself."""
    if arrow_type == "null":
        return "null"
    if re.fullmatch(r"u?int\d+", arrow_type):
        return "int"
    if arrow_type in ("halffloat", "float", "double"):
        return "float"
    if arrow_type in ("string", "large_string") or re.fullmatch(r"dictionary<values=(large_)?string,.*", arrow_type):
        return "str"
    return arrow_type


def _combine(parts: list[_Part], wanted: Sequence[str]) -> ModuleRows:
    """The parts' rows in order, with one Python type per column as one Arrow table would have."""
    rows: list[dict[str, Any]] = []
    step_ns: dict[int, int] = {}
    for col, name in enumerate(wanted):
        families = {_family(p.types[col]) for p in parts if p.rows} - {"null"}
        if families == {"int", "float"}:
            for p in parts:
                for row in p.rows:
                    if isinstance(row[col], int):
                        row[col] = float(row[col])
        elif len(families) > 1:
            raise _Unanswerable(f"column {name} has types {sorted(families)} in different partitions")
    for p in parts:
        rows += [dict(zip(wanted, row)) for row in p.rows]
        step_ns.update(p.step_ns)
    firsts = [p.first_step for p in parts if p.first_step is not None]
    return ModuleRows(rows, step_ns, min(firsts) if firsts else None)
