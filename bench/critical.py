"""CPU seconds on the main thread of one `convert` or `info`, in-process: what the wall time would be on an
idle machine with two cores, where the decode child and the Parquet thread run beside it.

Usage::

    .venv/bin/python bench/critical.py TRACE convert|info

Prints one JSON object: import CPU, then for the command: main-thread CPU, all-threads CPU, decode child
CPU. On a machine shared with other jobs, wall time cannot show what a second core gains; the main
thread's CPU can (its waits for the others are not counted, so it is a lower bound).
"""

from __future__ import annotations

import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path


def _children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str]) -> int:
    trace, command = argv
    c0 = time.process_time()
    if command == "convert":
        from tracekit.convert import convert
    else:
        from tracekit.info import quick_info
        from tracekit.info_inputs import read_for_info  # what `tracekit info` reads raw traces with
    imports = time.process_time() - c0
    tmp = tempfile.mkdtemp(prefix="tracekit-critical-")
    m0, p0, k0 = time.thread_time(), time.process_time(), _children()
    try:
        if command == "convert":
            convert([trace], Path(tmp) / "out")
        else:
            quick_info(read_for_info([trace]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"imports_cpu": imports, "main_thread_cpu": time.thread_time() - m0,
                      "threads_cpu": time.process_time() - p0, "child_cpu": _children() - k0}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
