"""Read inputs and run the stages that every command needs (tree, launch links, steps)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tracekit.converters import read_trace
from tracekit.inputs import expand_inputs, with_name_rank
from tracekit.link import Links, link_launches
from tracekit.modules.attribute import ModuleCalls, attribute_modules
from tracekit.narrow import narrow_ids, narrow_rows
from tracekit.steps import assign_steps
from tracekit.table import EventTable, concat, track_view
from tracekit.tree import build_call_tree


@dataclass
class Processed:
    """The event table with its derived columns, plus what the stages found."""

    table: EventTable
    unlinked: dict[str, int]
    overlapped: int
    modules: ModuleCalls | None = None


def read_inputs(paths: Sequence[str | Path], on_file: Callable[[str], None] | None = None,
                unique: bool = True, keep_args: bool = True) -> EventTable:
    """Read every input (files, rank folders, globs: see tracekit.inputs) into one table; a `source_index`
    column tells the files apart; with unique=False a file given twice is read twice (merge); without
    keep_args the args column is left empty (see converters.read_trace)."""
    tables = []
    for index, path in enumerate(expand_inputs(paths, unique)):
        if on_file:
            on_file(str(path))
        table = with_name_rank(read_trace(path, keep_args=keep_args), path)
        table.events["source_index"] = np.int32(index)
        narrow_ids(table.events)
        tables.append(table)
    return concat(tables)


def _categorical_once(values: np.ndarray) -> pd.Categorical:
    """Dictionary-encode an object column holding few distinct strings many times (module paths).

    pd.Categorical(values) would first convert the column to an arrow string array, one copy of the
    string per row: a 10 MB module name over 2,000 events took 20 GB. Hashing each Python object (str caches
    its hash) keeps memory that of the distinct values. A column longer than _ENCODE_CHUNK is encoded chunk by
    chunk (pd.unique, then each chunk looked up among the sorted distinct values): pd.factorize of the whole
    column sizes a hash table by the rows and gives intp codes (~32 B a row); a shorter one is factorized whole,
    which costs less time there (~0.15 vs 0.7 ms on a rank of 3,000 events)."""
    if len(values) <= _ENCODE_CHUNK:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        order = sorted(range(len(uniques)), key=lambda i: uniques[i])
        remap = np.empty(len(uniques) + 1, dtype=np.int32)
        remap[np.asarray(order, dtype=np.int64)] = np.arange(len(order), dtype=np.int32)
        remap[-1] = -1
        cats = pd.Index([uniques[i] for i in order], dtype=object)
        return pd.Categorical.from_codes(remap[codes], dtype=pd.CategoricalDtype(cats))
    parts = [pd.unique(values[at : at + _ENCODE_CHUNK]) for at in range(0, len(values), _ENCODE_CHUNK)]
    distinct = pd.unique(np.concatenate(parts))
    del parts
    cats = pd.Index(sorted(v for v in distinct.tolist() if not _is_missing(v)), dtype=object)
    codes = np.empty(len(values), dtype=np.int32)
    for at in range(0, len(values), _ENCODE_CHUNK):
        codes[at : at + _ENCODE_CHUNK] = cats.get_indexer(values[at : at + _ENCODE_CHUNK])  # missing: -1
    return pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(cats))


_ENCODE_CHUNK = 1 << 16


def _is_missing(value: object) -> bool:
    """What pd.factorize counts as missing (None, NaN, NaT, pd.NA) rather than a value."""
    return value is None or bool(pd.isna(value))


def _categorical_by_key(keys: np.ndarray, values: np.ndarray) -> pd.Categorical:
    """_categorical_once of `values` where each value is a function of an int key (a row's module span row gives its
    module path and type): one value per distinct key is kept (ints, not the strings, are looked at per row).
    Same categories (sorted) and codes as _categorical_once. On a table longer than _ENCODE_CHUNK whose keys are
    row numbers (or -1), the keys index a table of one entry per possible key; otherwise they are factorized (a
    hash table sized by the rows, and intp codes: fine on a small table)."""
    if len(keys) > _ENCODE_CHUNK and int(keys.min()) >= -1 and int(keys.max()) < 2 * len(keys) + 64:
        slot, slots = keys + 1, int(keys.max()) + 2  # -1 -> 0
    else:
        slot, unique_keys = pd.factorize(keys)
        slots = len(unique_keys)
    labels = np.empty(slots, dtype=object)
    labels[slot] = values  # every row of a key holds the same value
    present = np.zeros(slots, dtype=bool)
    present[slot] = True
    used = np.flatnonzero(present)  # the keys some row has (a table of possible keys has gaps)
    del present
    used_labels = labels[used].tolist()
    del labels
    cats = sorted({label for label in used_labels if label is not None})
    position = {label: i for i, label in enumerate(cats)}
    code_of_key = np.full(slots, -1, dtype=np.int32)
    code_of_key[used] = [position[label] if label is not None else -1 for label in used_labels]
    dtype = pd.CategoricalDtype(pd.Index(cats, dtype=object))
    return pd.Categorical.from_codes(code_of_key[slot], dtype=dtype)


def process(table: EventTable) -> Processed:
    """Add parent, depth, lane, launch, launcher, step and module attribution columns."""
    tree = build_call_tree(track_view(table.events))
    links: Links = link_launches(table.events, tree.parent)
    step = assign_steps(track_view(table.events), links.launch)
    out = _with_columns(table, {
        "parent": narrow_rows(tree.parent), "depth": tree.depth, "lane": tree.lane,
        "launch": narrow_rows(links.launch), "launcher": narrow_rows(links.launcher), "step": step,
    })
    unlinked, overlapped = links.unlinked, tree.overlapped
    del tree, links, step  # the table holds copies of their columns (34 B a row not kept twice through attribution)
    modules = attribute_modules(out)
    out = _with_columns(out, {
        name: (_categorical_by_key(modules.module, values) if name in _BY_MODULE
               else _categorical_once(values) if values.dtype == object
               else narrow_rows(values) if name == "module" else values)
        for name, values in modules.as_columns().items()
    })
    # the per-row arrays are columns of `out` now (path, type, phase and `from` as categoricals): not kept twice
    return Processed(out, unlinked, overlapped, modules.calls())


_BY_MODULE = ("module_path", "module_type")  # columns that are a function of the row's module span (`module`)
SMALL_TABLE_ROWS = 65_536  # below, a table with new columns is built afresh from the column arrays


def _with_columns(table: EventTable, columns: dict[str, np.ndarray | pd.Categorical]) -> EventTable:
    """`table.with_columns(**columns)`. A small table (a rank of a many-rank job) is built from its columns'
    arrays and the new ones in one go (pandas' `_from_arrays`: ~0.25 ms less than a concat of a few thousand
    rows; it copies the numeric columns into one block per dtype, so a large table keeps the concat, which
    shares them)."""
    ev = table.events
    make = getattr(pd.DataFrame, "_from_arrays", None)
    if (len(ev) >= SMALL_TABLE_ROWS or make is None or not hasattr(ev, "_get_column_array") or not ev.columns.is_unique
            or any(name in ev for name in columns)):
        return table.with_columns(**columns)
    arrays = [ev._get_column_array(i) for i in range(ev.shape[1])] + list(columns.values())
    names = pd.Index([*ev.columns, *columns], dtype=ev.columns.dtype)
    return EventTable(make(arrays, columns=names, index=ev.index, verify_integrity=False), table.args, table.sources)
