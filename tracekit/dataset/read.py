"""Read a dataset: tables (with column projection and a rank filter) and the event table the stages use."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracekit.dataset.manifest import MANIFEST, read_manifest, source_from_record
from tracekit.dataset.stale import InputState, staleness
from tracekit.dataset.table_check import checked
from tracekit.errors import TraceError, warn

if TYPE_CHECKING:  # imported where used: opening a dataset (manifest, staleness) loads none of them
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from tracekit.table import EventTable, SourceInfo

_PART = re.compile(r"part-(\d+)\.parquet$")


@contextmanager
def table_file(path: str | Path) -> Iterator[None]:
    """Reading a dataset's Parquet file: one it cannot read (gone, cut short, not Parquet) is an input error naming
    it (arrow raises ArrowInvalid, a ValueError, or an OSError), not a tracekit bug."""
    try:
        yield
    except FileNotFoundError:
        raise TraceError(path, "dataset table missing (the manifest lists it); convert the traces again") from None
    except (ValueError, OSError) as exc:
        raise TraceError(path, f"damaged dataset table: {exc}") from None


class Dataset:
    """A `tracekit convert` output folder, read through its manifest (tracekit.json)."""

    def __init__(self, root: str | Path, manifest: dict[str, Any] | None = None):
        self.root = Path(root)
        self.manifest = manifest if manifest is not None else read_manifest(self.root)

    def __repr__(self) -> str:
        return f"Dataset({str(self.root)!r}, ranks={self.ranks}, tables={self.tables})"

    @property
    def tables(self) -> list[str]:
        """Names of the tables the dataset holds."""
        return list(self.manifest["tables"])

    @property
    def ranks(self) -> list[int]:
        return list(self.manifest.get("ranks", []))

    @cached_property
    def summary(self) -> dict[str, Any]:
        """The convert summary (summary.json)."""
        try:
            return json.loads((self.root / self.manifest.get("summary", "summary.json")).read_text())
        except (OSError, ValueError, RecursionError):
            return {}

    @cached_property
    def sources(self) -> list[SourceInfo]:
        """One SourceInfo per input (rank), in input order."""
        return [source_from_record(rec) for rec in self.manifest.get("sources", [])]

    def staleness(self) -> list[InputState]:
        """The state of every input now (size and mtime first, SHA-256 only when they differ)."""
        return staleness(self.manifest)

    def warn_if_stale(self) -> bool:
        """Warn (naming the input and what changed) when an input changed or is gone; True when stale."""
        stale = False
        for state in self.staleness():
            if state.state == "changed":
                stale = True
                warn(self.root, f"stale dataset: input {state.path} changed since it was converted ({state.why}); "
                                "the results describe the trace as converted; run `tracekit convert` again")
            elif state.state == "missing":
                warn(self.root, f"input {state.path} is gone; cannot check that the dataset is current")
        return stale

    def entry(self, name: str) -> dict[str, Any]:
        try:
            return self.manifest["tables"][name]
        except KeyError:
            raise TraceError(self.root, f"the dataset has no {name!r} table (it has: {', '.join(self.tables)}); "
                                        "converted with --no-parquet?") from None

    def path(self, name: str) -> Path:
        """The table's file, or its folder when partitioned by rank."""
        return self.root / self.entry(name)["path"]

    def partitioned(self, name: str) -> bool:
        return self.entry(name)["layout"] != "file"

    def columns(self, name: str) -> list[str]:
        return [c["name"] for c in self.entry(name)["columns"]]

    def parts(self, name: str) -> list[tuple[int, int, Path]]:
        """(rank, input index, file) of each partition of a rank-partitioned table, in input order."""
        out = []
        for path in self.path(name).glob("rank=*/*.parquet"):
            m = _PART.search(path.name)
            out.append((int(path.parent.name.removeprefix("rank=")), int(m.group(1)) if m else 0, path))
        return sorted(out, key=lambda p: (p[1], p[0]))

    def _project(self, name: str, columns: Sequence[str] | None) -> list[str] | None:
        if columns is None:
            return None
        have = set(self.columns(name))
        return [c for c in columns if c in have]

    def read_arrow(self, name: str, columns: Sequence[str] | None = None,
                   ranks: Sequence[int] | None = None) -> pa.Table:
        """A table as arrow, only `columns` (those it has), only `ranks` (of a partitioned table)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from tracekit.group_members import expand_members, stored_columns

        wanted = self._project(name, columns)
        path = self.path(name)
        if not self.partitioned(name):
            with table_file(path):
                table = checked(pq.read_table(path, columns=stored_columns(path, wanted) if name == "collectives"
                                              else wanted), path)
            if name == "collectives":  # the member lists put back by id (tracekit.group_members)
                table = expand_members(table, path)
            if ranks is not None and "rank" in table.column_names:
                import pyarrow.compute as pc

                table = table.filter(pc.is_in(table["rank"], pa.array(list(ranks), table["rank"].type)))
            return table
        pieces = [self._read_part(f, rank, wanted) for rank, _i, f in self.parts(name)
                  if ranks is None or rank in ranks]
        if not pieces:  # no partition of these ranks: the columns, no rows
            with table_file(self.parts(name)[0][2]):
                schema = pq.read_schema(self.parts(name)[0][2])
            return pa.schema([f for f in schema if wanted is None or f.name in wanted]).empty_table()
        return pa.concat_tables(pieces, promote_options="permissive").unify_dictionaries()

    @staticmethod
    def _read_part(path: Path, rank: int, columns: list[str] | None) -> pa.Table:
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        with table_file(path):
            table = checked(pq.read_table(path, columns=[c for c in columns if c != "rank"] if columns is not None
                                          else None), path)
        if columns is None or "rank" in columns:
            table = table.append_column("rank", pa.array(np.full(table.num_rows, rank, dtype=np.int32)))
        return table

    def read(self, name: str, columns: Sequence[str] | None = None,
             ranks: Sequence[int] | None = None) -> pd.DataFrame:
        """A table as pandas (see read_arrow); dictionary strings become categoricals."""
        frame = self.read_arrow(name, columns, ranks).to_pandas()
        if self.partitioned(name) and "source_index" in frame:
            frame["source_index"] = self._source_index_of(name, ranks)
        return frame

    def _source_index_of(self, name: str, ranks: Sequence[int] | None) -> np.ndarray:
        """Each row's input position (a rank's partitions hold source_index 0: one input per worker)."""
        import numpy as np
        import pyarrow.parquet as pq

        counts = []
        for rank, i, f in self.parts(name):
            if ranks is None or rank in ranks:
                with table_file(f):
                    counts.append((i, pq.ParquetFile(f).metadata.num_rows))
        return np.repeat([i for i, _n in counts], [n for _i, n in counts]).astype(np.int32)

    def event_parts(self, columns: Sequence[str] | None = None) -> Iterator[tuple[int, pd.DataFrame]]:
        """(rank, events of that rank) one rank at a time: memory holds one rank's columns."""
        import numpy as np

        if not self.partitioned("events"):
            frame = events_frame(self.read_arrow("events", columns))
            ranks = self.ranks
            yield (ranks[0] if len(ranks) == 1 else -1), frame
            return
        wanted = self._project("events", columns)
        for rank, index, path in self.parts("events"):
            frame = events_frame(self._read_part(path, rank, wanted))
            if "source_index" in frame:
                frame["source_index"] = np.int32(index)
            yield rank, frame

    def events(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The events of all ranks as one frame, row references (parent, launch, launcher) shifted as
        tracekit.table.concat does for several inputs; source_index is each rank's input position."""
        import numpy as np
        import pandas as pd

        from tracekit.table import ROW_COLUMNS

        if not self.partitioned("events"):
            return events_frame(self.read_arrow("events", columns))
        frames, offset = [], 0
        for _rank, frame in self.event_parts(columns):
            for col in ROW_COLUMNS:
                if col in frame and offset:
                    values = frame[col].to_numpy()
                    frame[col] = np.where(values >= 0, values + offset, values)
            frames.append(frame)
            offset += len(frame)
        return _categoricals(pd.concat(frames, ignore_index=True)) if len(frames) > 1 else frames[0]

    def event_table(self, columns: Sequence[str] | None = None, with_args: bool = False) -> EventTable:
        """The processed event table (the columns asked for; args only with with_args) and the sources."""
        import pyarrow as pa

        from tracekit.table import EventTable

        cols = None if columns is None else [c for c in columns if c != "args"]
        events = self.events(cols)
        args = _no_args(len(events))
        if with_args:
            text = self.read_arrow("events", ["args"])["args"]
            args = text.combine_chunks().cast(pa.large_binary()).fill_null(b"") if len(text) else args
        return EventTable(events, args, self.sources)

    def processed(self, columns: Sequence[str] | None = None, with_args: bool = False):
        """A tracekit.pipeline.Processed from the dataset (modules=None: the module table is stored)."""
        from tracekit.pipeline import Processed

        trace = self.summary.get("trace", {})
        return Processed(self.event_table(columns, with_args), dict(self.summary.get("unlinked_device_events", {})),
                         int(trace.get("overlap_lanes_events", 0)), None)


def events_frame(table: pa.Table) -> pd.DataFrame:
    """Arrow events -> pandas with the categoricals the stages expect (object categories)."""
    if "args" in table.column_names:
        table = table.drop_columns(["args"])
    return _categoricals(table.to_pandas())


def _categoricals(frame: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    from tracekit.table import object_categories

    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.CategoricalDtype):
            frame[col] = object_categories(frame[col].array)
        elif col in ("source", "ph", "name", "cat", "kind", "flow_id", "bp", "scope", "module_path", "module_type",
                     "phase", "module_from") and frame[col].dtype == object:
            frame[col] = object_categories(pd.Categorical(frame[col]))
    return frame


def _no_args(n: int) -> pa.LargeBinaryArray:
    """n empty args (the stages that read args are not run on a projection without them)."""
    import numpy as np
    import pyarrow as pa

    offsets = pa.py_buffer(np.zeros(n + 1, dtype=np.int64))
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [None, offsets, pa.py_buffer(b"")])


def open_dataset(path: str | Path, check: bool = True) -> Dataset:
    """Open a dataset folder; with check, warn when it is stale (its inputs changed since convert)."""
    ds = Dataset(path)
    if check:
        ds.warn_if_stale()
    return ds


__all__ = ["MANIFEST", "Dataset", "events_frame", "open_dataset"]
