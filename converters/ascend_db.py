"""torch_npu SQLite export (`ascend_pytorch_profiler_{rank}.db`) read into the same table as trace_view.json.

Strings are interned in STRING_IDS. Each table becomes the events trace_view.json shows for it,
with the same processes, names, categories and args keys, so both exports classify and link alike:

| table | events |
|---|---|
| PYTORCH_API | Python process: type op -> cat cpu_op, queue -> enqueue/dequeue, trace -> python_function |
| CANN_API | CANN process: `AscendCL@name`, `Node@name`, `Hccl@name` with `connection_id` |
| TASK | Ascend Hardware, thread = stream; compute tasks named from COMPUTE_TASK_INFO |
| COMMUNICATION_OP / COMMUNICATION_TASK_INFO | HCCL group track / plane tracks |
| OVERLAP_ANALYSIS, AICORE_FREQ, HBM | Overlap Analysis spans; counters |
| CONNECTION_IDS | flows: async_npu (op -> task), HostToDevice (CANN -> task), async_task_queue, fwdbwd |

Every event made is counted as an input event (flows included); ts/dur are integer ns in the db.
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from tracekit.errors import TraceError, warn
from tracekit.kinds import NPU_COMPUTE_TASKS
from tracekit.table import EventTable, SourceInfo

from .ascend_db_samples import add_counters, add_overlap
from .ascend_files import AscendFiles
from .ascend_kernels import KernelDetails, _details
from .ascend_meta import read_meta
from .ascend_table import finish_npu_table
from .ascend_trace import BASE_FROM
from .chrome_json import ChromeColumns
from .chrome_table import build_table
from .row_columns import columns_from_rows

REQUIRED = ("STRING_IDS", "PYTORCH_API", "TASK")
API_CAT = {50001: "cpu_op", 50003: "python_function", 50004: "mstx"}
CANN_PREFIX = {20000: "AscendCL", 10000: "Node", 5500: "Hccl", 5000: "Runtime", 15000: "Model"}
CANN_LEVEL = {20000: "acl", 10000: "node", 5500: "hccl", 5000: "runtime", 15000: "model"}
SKIP_NO_OP = "db_kernel_task_without_op_info"
SKIP_NO_PLANE = "db_comm_task_without_plane"
DB_KERNEL_TASKS = frozenset({"KERNEL_AICORE", "KERNEL_AIVEC"})
# TASK.taskType -> trace_view.json `Task Type` for tasks without COMPUTE_TASK_INFO (MEMCPY_ASYNC stays: the
# text export splits it into PCIE_DMA_SQE / SDMA_SQE, which the db does not record).
DB_SQE_TYPES = {"EVENT_RECORD": "EVENT_RECORD_SQE", "EVENT_WAIT": "EVENT_WAIT_SQE",
                "PROFILING_ENABLE": "PLACE_HOLDER_SQE", "PROFILING_DISABLE": "PLACE_HOLDER_SQE"}
INVALID_PLANE = 4294967295
NO_FLOW_TASKS = frozenset({"EVENT_RECORD", "EVENT_WAIT"})
_encode = msgspec.json.encode


class _Events:
    """Chrome-event columns built row by row."""

    def __init__(self) -> None:
        self.ph: list[str] = []
        self.name: list[str] = []
        self.cat: list[str | None] = []
        self.pid: list[int] = []
        self.tid: list[int] = []
        self.ts: list[int] = []
        self.dur: list[int] = []
        self.flow_id: list[str | None] = []
        self.bp: list[str | None] = []
        self.args: list[bytes] = []
        self.skipped: dict[str, int] = {}
        self.compute_rows: list[int] = []

    def add(self, ph: str, name: str, cat: str | None, pid: int, tid: int, ts: int, dur: int = -1,
            args: dict[str, Any] | None = None, flow_id: str | None = None) -> int:
        self.ph.append(ph)
        self.name.append(name)
        self.cat.append(cat)
        self.pid.append(pid)
        self.tid.append(tid)
        self.ts.append(ts)
        self.dur.append(dur)
        self.flow_id.append(flow_id)
        self.bp.append("e" if ph in ("s", "f") else None)
        self.args.append(_encode(args) if args else b"")
        return len(self.ph) - 1

    def flow(self, cat: str, name: str, flow_id: str, start: int, end: int) -> None:
        """An s/f pair from the event at row `start` to the event at row `end`."""
        self.add("s", name, cat, self.pid[start], self.tid[start], self.ts[start], flow_id=flow_id)
        self.add("f", name, cat, self.pid[end], self.tid[end], self.ts[end], flow_id=flow_id)

    def columns(self, top: dict[str, Any]) -> ChromeColumns:
        spans = np.flatnonzero(np.array([p == "X" for p in self.ph], dtype=bool))
        return columns_from_rows(
            self.ph, self.name, self.cat, self.pid, self.tid, np.array(self.ts, dtype=np.int64),
            np.array(self.dur, dtype=np.int64), self.flow_id, self.bp, self.args, top, spans,
            skipped=self.skipped, input_events=len(self.ph) + sum(self.skipped.values()),
        )


def _read_only_uri(path: Path) -> str:
    """The database opened read-only and, unless a write-ahead log with content lies beside it, immutable: torch_npu
    writes its export in WAL mode, and SQLite would otherwise create `-wal` and `-shm` files in the user's profiler
    folder (and touch the `-shm` on every read). A non-empty `-wal` holds pages not yet in the database: then it is
    read as SQLite reads it."""
    wal = path.with_name(path.name + "-wal")
    pending = wal.is_file() and wal.stat().st_size > 0
    return path.absolute().as_uri() + ("?mode=ro" if pending else "?mode=ro&immutable=1")


def read_db(files: AscendFiles) -> EventTable:
    """Read one rank's ascend_pytorch_profiler_{rank}.db (plus profiler_info_{rank}.json beside it)."""
    path = files.db
    if path is None:
        raise TraceError(files.root, "no ascend_pytorch_profiler_*.db")
    try:
        con = sqlite3.connect(_read_only_uri(Path(path)), uri=True)
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as exc:
        raise TraceError(path, f"unreadable SQLite database: {exc}") from None
    missing = [t for t in REQUIRED if t not in tables]
    if missing:
        raise TraceError(path, f"not a torch_npu profiler export: no {', '.join(missing)} table "
                               "(analysis.db holds only aggregates; pass ascend_pytorch_profiler_*.db)")
    READING[:] = [None, None]
    UNUSABLE.clear()
    try:
        return _read(con, tables, files)
    except sqlite3.Error as exc:
        raise TraceError(path, f"SQLite error: {exc}") from None
    except (TypeError, ValueError, OverflowError, KeyError, AttributeError) as exc:
        # A NULL (or other type) where the reader needs a value: name where it was read.
        table, row = READING
        raise TraceError(path, f"a value of an unexpected type or a missing value (NULL) where one is needed "
                               f"({type(exc).__name__}: {exc})", table=table, row=row) from None
    finally:
        con.close()


def _read(con: sqlite3.Connection, tables: set[str], files: AscendFiles) -> EventTable:
    strings = dict(_select(con, "STRING_IDS", "id, value"))

    def s(key: Any) -> str:
        return strings.get(key, "") if key is not None else ""

    db_meta = _db_meta(con, tables)
    meta = read_meta(files.profiler_info, None, db_meta)
    if meta.rank < 0 and "RANK_DEVICE_MAP" in tables:
        row = _select(con, "RANK_DEVICE_MAP", "rankId").fetchone()
        if row and row[0] is not None and row[0] >= 0:
            meta.rank, meta.rank_from = int(row[0]), "RANK_DEVICE_MAP.rankId"
    ev = _Events()
    names: dict[str, Any] = {"process": {}, "thread": {}}
    host_pid, api_rows = _pytorch_api(con, ev, s, names)
    cann_pid, hw_pid, hccl_pid, overlap_pid = (host_pid * 100 + k for k in (2, 11, 12, 13))
    cann_rows = _cann_api(con, ev, s, names, cann_pid)
    task_rows, all_tasks, kd_rows = _tasks(con, tables, ev, s, names, hw_pid)
    comm_rows = _communication(con, tables, ev, s, names, hccl_pid, all_tasks, kd_rows)
    add_overlap(con, tables, ev, names, overlap_pid, _spans(ev, ev.compute_rows),
                _spans(ev, [r for rows in comm_rows.values() for r in rows]), _select)
    add_counters(con, tables, ev, names, hw_pid, _select, s)
    _flows(con, tables, ev, api_rows, cann_rows, task_rows, comm_rows)
    _report_unusable(str(files.db), ev)
    info = SourceInfo(path=str(files.db), format="npu", source="npu", base_ns=0, base_from=BASE_FROM,
                      rank=meta.rank, rank_from=meta.rank_from, distributed=meta.distributed, top=dict(meta.top))
    info.process_names.update(names["process"])
    info.thread_names.update(names["thread"])
    cols = ev.columns({})
    info.input_events = cols.input_events
    info.skipped = dict(cols.skipped)
    table = build_table(cols, info)
    return finish_npu_table(table, _kernel_details(files.db, kd_rows))


def _db_meta(con: sqlite3.Connection, tables: set[str]) -> dict[str, Any]:
    """META_DATA name/value pairs, JSON values decoded (distributed_args, parallel_group_info, ...)."""
    out: dict[str, Any] = {}
    if "META_DATA" not in tables:
        return out
    for name, value in _select(con, "META_DATA", "name, value"):
        try:
            out[name] = msgspec.json.decode(value) if isinstance(value, str) and value[:1] in "{[" else value
        except msgspec.DecodeError:
            out[name] = value
    return out


def _pytorch_api(con, ev: _Events, s, names) -> tuple[int, dict[int, list[int]]]:
    """Host events; returns the host pid and PYTORCH_API connectionId -> event rows."""
    rows: dict[int, list[int]] = defaultdict(list)
    host_pid = 0
    columns = ("startNs, endNs, globalTid, connectionId, name, sequenceNumber, fwdThreadId, inputDtypes, "
               "inputShapes, type")
    swapped = _shapes_swapped(con, s)
    for start, end, gtid, conn, name, seq, fwd, dtypes, shapes, kind in _select(con, "PYTORCH_API", columns):
        if swapped:
            dtypes, shapes = shapes, dtypes
        pid, tid = gtid >> 32, gtid & 0xFFFFFFFF
        host_pid = host_pid or pid
        text = s(name)
        cat = API_CAT.get(kind) or ("enqueue" if text.startswith("Enqueue") else "dequeue")
        args: dict[str, Any] = {}
        if kind == 50001:
            args = {"Sequence number": seq if seq is not None else -1, "Fwd thread id": fwd or 0}
            if shapes is not None:
                args["Input Dims"] = s(shapes)
            if dtypes is not None:
                args["Input type"] = s(dtypes)
        row = ev.add("X", text, cat, pid, tid, int(start), int(end) - int(start), args)
        names["process"][pid] = "Python"
        names["thread"][(pid, tid)] = f"Thread {tid}"
        if conn is not None:
            rows[conn].append(row)
    return host_pid, rows


_DIMS_TEXT = re.compile(r"^[\d,;\s\[\]-]*$")
_TYPE_WORD = re.compile(r"[A-Za-z]")


def _shapes_swapped(con, s) -> bool:
    """True when this export wrote the dtypes into PYTORCH_API.inputShapes and the dims into inputDtypes
    (seen in the shared AlexNet exports: `float;\r\nScalar` under inputShapes): decided from the rows."""
    votes = 0
    rows = con.execute('SELECT inputShapes, inputDtypes FROM "PYTORCH_API" WHERE inputShapes IS NOT NULL '
                       "AND inputDtypes IS NOT NULL LIMIT 2000") if _has_columns(con) else []
    for shapes, dtypes in rows:
        a, b = s(shapes), s(dtypes)
        if _TYPE_WORD.search(a) and _DIMS_TEXT.match(b):
            votes += 1
        elif _TYPE_WORD.search(b) and _DIMS_TEXT.match(a):
            votes -= 1
    return votes > 0


def _has_columns(con) -> bool:
    have = {row[1] for row in con.execute('PRAGMA table_info("PYTORCH_API")')}
    return {"inputShapes", "inputDtypes"} <= have


def _cann_api(con, ev: _Events, s, names, pid: int) -> dict[int, int]:
    """CANN calls; returns connectionId -> event row."""
    rows: dict[int, int] = {}
    names["process"][pid] = "CANN"
    columns = "startNs, endNs, type, globalTid, connectionId, name"
    for start, end, kind, gtid, conn, name in _select(con, "CANN_API", columns):
        tid = gtid & 0xFFFFFFFF
        args = {"Thread Id": tid, "level": CANN_LEVEL.get(kind, str(kind)), "id": s(name), "connection_id": conn}
        rows[conn] = ev.add("X", f"{CANN_PREFIX.get(kind, 'CANN')}@{s(name)}", None, pid, tid, start,
                            end - start, args)
        names["thread"][(pid, tid)] = f"Thread {tid}"
    return rows


def _tasks(con, tables: set[str], ev: _Events, s, names, pid: int) -> tuple[dict, dict, list[tuple]]:
    """Device tasks on Ascend Hardware.

    Returns globalTaskId -> row of the tasks launched from the host (comm steps left out), of all
    tasks, and the compute-info rows.
    """
    compute: dict[int, tuple] = {}
    if "COMPUTE_TASK_INFO" in tables:
        columns = ("globalTaskId, name, taskType, opType, blockDim, mixBlockDim, inputShapes, inputDataTypes, "
                   "inputFormats, outputShapes, outputDataTypes, outputFormats, waitNs")
        for r in _select(con, "COMPUTE_TASK_INFO", columns):
            compute[r[0]] = r
    comm = set()
    if "COMMUNICATION_TASK_INFO" in tables:
        comm = {r[0] for r in _select(con, "COMMUNICATION_TASK_INFO", "globalTaskId")}
    rows: dict[int, int] = {}
    kd_rows: list[tuple] = []
    names["process"][pid] = "Ascend Hardware"
    columns = "startNs, endNs, connectionId, globalTaskId, taskType, streamId, taskId, modelId"
    for start, end, conn, gtask, ttype, stream, task, model in _select(con, "TASK", columns):
        info = compute.get(gtask)
        if info is None and gtask not in comm and (s(ttype) in NPU_COMPUTE_TASKS or s(ttype) in DB_KERNEL_TASKS):
            # trace_view.json leaves these out too: kernel tasks with no op behind them (HCCL's own
            # AI_CORE tasks on its stream, kernels of ops compiled on the fly).
            ev.skipped[SKIP_NO_OP] = ev.skipped.get(SKIP_NO_OP, 0) + 1
            continue
        task_type = _text_task_type(s(ttype), s(info[2]) if info else None)
        name = s(info[1]) if info else s(ttype)
        args = {"Model Id": model, "Task Type": task_type, "Physic Stream Id": stream, "Task Id": task,
                "connection_id": conn, "db taskType": s(ttype)}
        rows[gtask] = ev.add("X", name, None, pid, stream, start, end - start, args)
        names["thread"][(pid, stream)] = f"Stream {stream}"
        if info and gtask not in comm:
            ev.compute_rows.append(rows[gtask])
        if info:
            kd_rows.append((name, stream, task, start, end - start, _compute_details(info, s)))
    if ev.skipped.get(SKIP_NO_OP):
        warn(con_path(con), f"{ev.skipped[SKIP_NO_OP]} kernel tasks without COMPUTE_TASK_INFO (no op name) "
                            "skipped, as trace_view.json does")
    return {g: r for g, r in rows.items() if g not in comm}, rows, kd_rows


def _text_task_type(db_type: str, core: str | None) -> str:
    """The `Task Type` trace_view.json writes for a TASK row (its SQE type) from the db's type and core."""
    if core is not None:
        return "AI_CORE" if core in ("AI_CORE", "AI_VECTOR_CORE") else core
    return DB_SQE_TYPES.get(db_type, db_type)


def _communication(con, tables: set[str], ev: _Events, s, names, pid: int, task_rows: dict[int, int],
                   kd_rows: list[tuple]) -> dict:
    """HCCL group ops (thread 0) and their plane tasks (thread plane + 1); returns connectionId -> op rows.

    Each group op also gets a kernel_details entry (Type, Accelerator Core HCCL), as the csv has.
    """
    rows: dict[int, list[int]] = defaultdict(list)
    if "COMMUNICATION_OP" not in tables:
        return rows
    names["process"][pid] = "HCCL"
    groups: dict[str, int] = {}
    dtypes = dict(_select(con, "ENUM_HCCL_DATA_TYPE", "id, name")) if "ENUM_HCCL_DATA_TYPE" in tables else {}
    members = _group_members(con, tables, s)
    columns = "opName, startNs, endNs, connectionId, groupName, algType, count, dataType, opType"
    for name, start, end, conn, group, alg, count, dtype, op_type in _select(con, "COMMUNICATION_OP", columns):
        kd_rows.append((s(name), -1, -1, start, end - start, {"Type": s(op_type), "Accelerator Core": "HCCL"}))
        number = groups.setdefault(s(group), len(groups))
        args = {"connection_id": conn, "data_type": dtypes.get(dtype, dtype), "alg_type": s(alg), "count": count,
                "group": s(group), **members.get(s(group), {})}
        rows[conn].append(ev.add("X", s(name), None, pid, 0, start, end - start, args))
        names["thread"][(pid, 0)] = f"Group {number} Communication"
    if "COMMUNICATION_TASK_INFO" in tables:
        columns = "globalTaskId, taskType, planeId, srcRank, dstRank, size"
        for gtask, ttype, plane, src, dst, size in _select(con, "COMMUNICATION_TASK_INFO", columns):
            row = task_rows.get(gtask)
            if row is None:
                continue
            if plane is None or plane == INVALID_PLANE:
                # level0 records no plane: trace_view.json shows no plane steps then
                ev.skipped[SKIP_NO_PLANE] = ev.skipped.get(SKIP_NO_PLANE, 0) + 1
                continue
            args = {"task type": s(ttype), "stream id": ev.tid[row], "src rank": src, "dst rank": dst,
                    "size(Byte)": size}
            ev.add("X", s(ttype), None, pid, plane + 1, ev.ts[row], ev.dur[row], args)
            names["thread"][(pid, plane + 1)] = f"Plane {plane}"
    return rows


def _group_members(con, tables: set[str], s) -> dict[str, dict[str, int]]:
    """Group name -> `group size` (highest group-local rank in its tasks + 1) and `group rank` (this rank's
    place: the source rank of most of its tasks), from COMMUNICATION_TASK_INFO."""
    if "COMMUNICATION_TASK_INFO" not in tables:
        return {}
    seen: dict[str, set[int]] = defaultdict(set)
    sources: dict[str, Counter] = defaultdict(Counter)
    for group, src, dst in _select(con, "COMMUNICATION_TASK_INFO", "groupName, srcRank, dstRank"):
        for rank in (src, dst):
            if rank is not None and 0 <= rank < INVALID_PLANE:
                seen[s(group)].add(int(rank))
        if src is not None and 0 <= src < INVALID_PLANE:
            sources[s(group)][int(src)] += 1
    return {g: {"group size": max(r) + 1, **({"group rank": sources[g].most_common(1)[0][0]} if sources[g] else {})}
            for g, r in seen.items() if r}


def _flows(con, tables: set[str], ev: _Events, api_rows: dict, cann_rows: dict, task_rows: dict,
           comm_rows: dict) -> None:
    """Flow pairs from the connection ids shared by host events, CANN calls and device tasks."""
    by_conn: dict[int, list[int]] = defaultdict(list)
    for row in task_rows.values():
        if ev.name[row] not in NO_FLOW_TASKS:  # trace_view.json draws no flow to stream event tasks
            by_conn[_conn(ev, row)].append(row)
    for conn, rows in comm_rows.items():
        by_conn[conn].extend(rows)
    for conn, cann in cann_rows.items():
        for dev in by_conn.get(conn, []):
            ev.flow("HostToDevice", f"HostToDevice{conn}", str(conn), cann, dev)
    if "CONNECTION_IDS" not in tables:
        return
    linked: dict[int, list[int]] = defaultdict(list)
    for api_id, conn in _select(con, "CONNECTION_IDS", "id, connectionId"):
        for row in api_rows.get(api_id, []):
            linked[conn].append(row)
    for conn, rows in linked.items():
        rows = sorted(set(rows), key=lambda r: ev.ts[r])
        cats = {ev.cat[r] for r in rows}
        if cats <= {"enqueue", "dequeue"} and len(rows) == 2:
            ev.flow("async_task_queue", "enqueue_to_dequeue", str(conn), rows[0], rows[1])
        elif len(rows) == 2 and cats == {"cpu_op"} and conn not in by_conn:
            ev.flow("fwdbwd", "fwdbwd", str(conn), rows[0], rows[1])
        elif len(rows) == 1:
            for dev in by_conn.get(conn, []):
                ev.flow("async_npu", "torch_to_npu", str(ev.ts[dev]), rows[0], dev)


def _spans(ev: _Events, rows: list[int]) -> list[tuple[int, int]]:
    return [(ev.ts[r], ev.ts[r] + max(ev.dur[r], 0)) for r in rows]


def _select(con: sqlite3.Connection, table: str, columns: str) -> _Rows:
    """SELECT columns FROM table; a column this export version lacks reads as NULL. Every value is
    checked for its column's type as it is read (see _Rows)."""
    schema = {row[1]: str(row[2]).upper() for row in con.execute(f'PRAGMA table_info("{table}")')}
    wanted = [c.strip() for c in columns.split(",")]
    numeric = [any(t in schema.get(c, "") for t in ("INT", "NUM", "REAL")) for c in wanted]
    cursor = con.execute(f'SELECT {", ".join(c if c in schema else "NULL" for c in wanted)} FROM "{table}"')
    return _Rows(cursor, table, wanted, numeric)


# Where the .db reader is: (table, row), so that a value of the wrong type found later in the same
# row's handling can still be located.
READING: list = [None, None]
_MAX_ABS = 2**62
# Per table, the columns without which a row says nothing (a NULL there makes the row unusable too).
NEEDED = {
    "STRING_IDS": ("id",), "CONNECTION_IDS": ("id", "connectionId"), "COMPUTE_TASK_INFO": ("globalTaskId",),
    "PYTORCH_API": ("startNs", "endNs", "globalTid"), "CANN_API": ("startNs", "endNs", "globalTid"),
    "TASK": ("startNs", "endNs", "streamId"), "COMMUNICATION_OP": ("startNs", "endNs"),
    "OVERLAP_ANALYSIS": ("startNs", "endNs", "type"), "AICORE_FREQ": ("timestampNs",), "HBM": ("timestampNs",),
    "LLC": ("timestampNs",), "NPU_MEM": ("timestampNs",), "ACC_PMU": ("timestampNs",),
    "SOC_BANDWIDTH_LEVEL": ("timestampNs",),
}
# Tables whose rows become events: an unusable row there is an input event skipped.
EVENT_TABLES = frozenset({"PYTORCH_API", "CANN_API", "TASK", "COMMUNICATION_OP", "OVERLAP_ANALYSIS", "AICORE_FREQ",
                          "HBM", "LLC", "NPU_MEM", "ACC_PMU", "SOC_BANDWIDTH_LEVEL"})
SKIP_BAD_ROW = "db_row_with_unusable_value"
# table -> [rows skipped, first such row, its column, the value shown], for the rows _Rows leaves out.
UNUSABLE: dict[str, list] = {}


class _Rows:
    """The rows of one SELECT, each checked: no BLOBs, numbers finite and within ±2**62, text in a numeric
    column only if it is an integer (then read as one), no NULL in the table's NEEDED columns. A row that
    fails is left out and counted in UNUSABLE (table, first row, column), so the rest of the file is read."""

    def __init__(self, cursor: sqlite3.Cursor, table: str, columns: list[str], numeric: list[bool]) -> None:
        self.cursor, self.table, self.columns, self.numeric = cursor, table, columns, numeric
        self.needed = [c in NEEDED.get(table, ()) for c in columns]
        self.row = 0

    def _check(self, values: tuple) -> tuple | None:
        self.row += 1
        READING[:] = [self.table, self.row]
        fixed = None
        for i, (column, value, numeric, needed) in enumerate(zip(self.columns, values, self.numeric, self.needed)):
            if type(value) is int and -_MAX_ABS < value < _MAX_ABS:
                continue
            if value is None:
                if needed:
                    return self._unusable(column, value)
                continue
            if numeric and isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 40:
                value = int(value)
                fixed = list(values) if fixed is None else fixed
                fixed[i] = value
            bad = (isinstance(value, bytes) or (isinstance(value, (int, float)) and not -_MAX_ABS < value < _MAX_ABS)
                   or (numeric and isinstance(value, str)))
            if bad:
                return self._unusable(column, value)
        return values if fixed is None else tuple(fixed)

    def _unusable(self, column: str, value: Any) -> None:
        seen = UNUSABLE.setdefault(self.table, [0, self.row, column,
                                                repr(value if not isinstance(value, (str, bytes)) else value[:40])])
        seen[0] += 1
        return None

    def __iter__(self):
        for values in self.cursor:
            checked = self._check(values)
            if checked is not None:
                yield checked
        READING[:] = [None, None]

    def fetchone(self) -> tuple | None:
        while (values := self.cursor.fetchone()) is not None:
            checked = self._check(values)
            if checked is not None:
                return checked
        return None


def _report_unusable(path: str, ev: _Events) -> None:
    """Count the rows _Rows left out (events among them as skipped input events) and warn once per table."""
    for table, (count, row, column, shown) in UNUSABLE.items():
        lost = "input events skipped" if table in EVENT_TABLES else "rows not used"
        warn(path, f"table {table}: {count} {lost}: a value this reader cannot use (NULL where one is needed, "
                   f"binary, text, NaN/infinite or beyond ±2**62); first at row {row}, column {column}: {shown}")
        if table in EVENT_TABLES:
            ev.skipped[SKIP_BAD_ROW] = ev.skipped.get(SKIP_BAD_ROW, 0) + count


def con_path(con: sqlite3.Connection) -> str:
    """File name of an open database (for warnings)."""
    return next((row[2] for row in con.execute("PRAGMA database_list") if row[1] == "main"), "database")


def _conn(ev: _Events, row: int) -> int:
    return msgspec.json.decode(ev.args[row]).get("connection_id", -1)


def _kernel_details(path: Path, kd_rows: list[tuple]) -> KernelDetails:
    """COMPUTE_TASK_INFO and COMMUNICATION_OP as a KernelDetails table (same fields as kernel_details.csv)."""
    def ints(i: int) -> np.ndarray:
        return np.array([r[i] for r in kd_rows], dtype=np.int64)

    return KernelDetails(
        path=path, column_set="db COMPUTE_TASK_INFO", name=[r[0] for r in kd_rows], stream=ints(1), task=ints(2),
        device=np.full(len(kd_rows), -1, dtype=np.int64), ts_ns=ints(3), dur_ns=ints(4),
        details=[_details({k: v for k, v in r[5].items() if v not in ("", "None")}) for r in kd_rows])


def _compute_details(info: tuple, s) -> dict[str, str]:
    """kernel_details.csv fields (as text) of one COMPUTE_TASK_INFO row."""
    (_g, _n, core, op, block, mix, in_shapes, in_types, in_formats, out_shapes, out_types, out_formats, wait) = info
    return {"Type": s(op), "Accelerator Core": s(core), "Block Dim": str(block), "Mix Block Dim": str(mix),
            "Input Shapes": s(in_shapes), "Input Data Types": s(in_types), "Input Formats": s(in_formats),
            "Output Shapes": s(out_shapes), "Output Data Types": s(out_types), "Output Formats": s(out_formats),
            "Wait Time(us)": str((wait or 0) / 1000)}
