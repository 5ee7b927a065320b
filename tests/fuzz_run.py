"""Run one fuzz case in a child process and check tracekit's promises on it (see tests/test_fuzz.py)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fuzz_inputs import Case

# Peak RSS bound (documented in the README, "Bad input"): the import baseline plus this many times
# the decompressed input, plus a fixed allowance for the first chunk's buffers and the writers.
RSS_PER_INPUT_BYTE = 40
RSS_FIXED_ALLOWANCE = 256 << 20
CASE_TIMEOUT_S = 120


@dataclass
class Result:
    case: Case
    rc: int
    stdout: str
    stderr: str
    peak_rss: int  # bytes, of the child process alone
    seconds: float
    out: Path


def run_case(case: Case, out: Path, timeout: float = CASE_TIMEOUT_S) -> Result:
    """Run `tracekit ARGV` for `case` in a child process; its own peak RSS comes from wait4."""
    argv = [a.replace("{out}", str(out)) for a in case.argv]
    cmd = [sys.executable, "-c", "from tracekit.cli import main; main()", *argv]
    start = time.monotonic()
    with tempfile.TemporaryFile() as so, tempfile.TemporaryFile() as se:
        proc = subprocess.Popen(cmd, stdout=so, stderr=se, stdin=subprocess.DEVNULL,
                                cwd=out.parent if out.parent.exists() else None)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                se.write(b"\n<fuzz: timed out>")
                break
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        so.seek(0)
        se.seek(0)
        stdout, stderr = so.read(), se.read()
    return Result(case, proc.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace"),
                  usage.ru_maxrss * 1024, time.monotonic() - start, out)


def baseline_rss() -> int:
    """Peak RSS of a child that imports tracekit's CLI and the readers/writers, and does nothing else."""
    code = ("import resource, tracekit.cli, tracekit.convert, pyarrow.parquet, tracekit.converters; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)")
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def run_cases(cases: list[Case], outs: list[Path], jobs: int = 2, timeout: float = CASE_TIMEOUT_S
              ) -> tuple[list[Result], int]:
    """Run every case in its own process, forked from one server that has imported tracekit (so no case
    pays the import time). Returns the results and the server's RSS after imports (the baseline).

    Each case's peak RSS is its forked process's own (wait4), which starts at the server's RSS.
    """
    jobs_in = [{"argv": [a.replace("{out}", str(o)) for a in c.argv], "cwd": str(o.parent)}
               for c, o in zip(cases, outs)]
    for o in outs:
        o.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(jobs), str(timeout)],
                          input=json.dumps(jobs_in), capture_output=True, text=True, check=True)
    lines = proc.stdout.splitlines()
    baseline = int(lines[0])
    results = []
    for case, out, line in zip(cases, outs, lines[1:]):
        r = json.loads(line)
        results.append(Result(case, r["rc"], r["stdout"], r["stderr"], r["peak_rss"], r["seconds"], out))
    return results, baseline


def _serve(jobs: int, timeout: float) -> None:
    """Fork server: read the cases (JSON) from stdin, fork one process per case, print one JSON line each."""
    import resource

    import tracekit.cli
    import tracekit.convert  # noqa: F401  (loaded once here, before the cases fork)

    todo = json.loads(sys.stdin.read())
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, flush=True)
    running: dict[int, tuple[int, float, str, str]] = {}
    done: dict[int, dict] = {}
    tmp = tempfile.mkdtemp(prefix="fuzz-serve-")
    try:
        _run_forked(todo, jobs, timeout, tmp, running, done)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # each case's captured stdout/stderr, read already
    for i in range(len(todo)):
        print(json.dumps(done[i]), flush=True)


def _run_forked(todo: list, jobs: int, timeout: float, tmp: str, running: dict, done: dict) -> None:
    """Fork one process per case, at most `jobs` at a time; fill `done` with each case's outcome."""
    import tracekit.cli

    nxt = 0
    while nxt < len(todo) or running:
        while nxt < len(todo) and len(running) < jobs:
            so, se = os.path.join(tmp, f"{nxt}.out"), os.path.join(tmp, f"{nxt}.err")
            pid = os.fork()
            if pid == 0:
                _child(todo[nxt], so, se, tracekit.cli.main)
            running[pid] = (nxt, time.monotonic(), so, se)
            nxt += 1
        pid, status, usage = os.wait4(-1, os.WNOHANG)
        if not pid:
            now = time.monotonic()
            for p, (_i, start, _so, _se) in running.items():
                if now - start > timeout:
                    os.kill(p, 9)
            time.sleep(0.01)
            continue
        i, start, so, se = running.pop(pid)
        done[i] = {"rc": os.waitstatus_to_exitcode(status), "peak_rss": usage.ru_maxrss * 1024,
                   "seconds": time.monotonic() - start, "stdout": _read(so), "stderr": _read(se)}


def _read(path: str) -> str:
    with open(path, "rb") as fh:
        return fh.read().decode(errors="replace")


def _child(job: dict, so: str, se: str, main) -> None:
    """In the forked process: run the CLI with the job's argv; never return."""
    code = 1
    try:
        os.chdir(job["cwd"])
        out_fd = os.open(so, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err_fd = os.open(se, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        try:
            main(job["argv"], prog_name="tracekit")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # what escapes the CLI: printed as the traceback the test looks for
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def problems(result: Result, baseline: int) -> list[str]:
    """What the result breaks of the promises; empty when it keeps them all."""
    case, out = result.case, result.out
    found = []
    text = result.stderr + result.stdout
    if "Traceback" in text or "tracekit bug" in text:
        found.append("traceback / last-resort handler reached")
    if result.rc not in (0, 2):
        found.append(f"exit {result.rc}")
    if case.expect == "error" and result.rc != 2:
        found.append(f"expected exit 2, got {result.rc}")
    if case.expect == "ok" and result.rc != 0:
        found.append(f"expected exit 0, got {result.rc}")
    if result.rc == 2:
        named = any(p in result.stderr for p in _named_paths(case))
        if not named or "error:" not in result.stderr:
            found.append("error does not name the file")
        if out.exists() and case.argv[0] == "convert" and "-o" in case.argv and "{out}" in case.argv:
            found.append("output written despite the error")
    if result.rc == 0 and case.argv[0] == "convert":
        summary_path = out / "summary.json"
        if not summary_path.is_file():
            found.append("no summary.json")
        else:
            summary = json.loads(summary_path.read_text())
            if summary.get("conserved") is not True:
                found.append(f"not conserved: {summary.get('input_events')} in, {summary.get('accounted')} accounted")
    # The case's folder holds the output folder (after exit 0) and nothing else: no staging folder,
    # no half-written file.
    stray = [p.name for p in out.parent.iterdir() if p.name != out.name] if out.parent.exists() else []
    if stray:
        found.append(f"stray files {stray}")
    bound = baseline + RSS_FIXED_ALLOWANCE + RSS_PER_INPUT_BYTE * case.input_bytes
    if result.peak_rss and result.peak_rss > bound:
        found.append(f"peak RSS {result.peak_rss >> 20} MB over the bound {bound >> 20} MB")
    return found


def _named_paths(case: Case) -> list[str]:
    """Paths an error message may name: the inputs (or a file inside an input folder) and -o."""
    names = []
    for arg in case.argv[1:]:
        if arg.startswith("-") or arg.isdigit() or arg == "{out}":
            continue
        names.append(arg if arg else "current folder")
        names.append(os.path.basename(arg.rstrip("/")) or arg)
    return [n for n in names if n]


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    _serve(int(sys.argv[1]), float(sys.argv[2]))
