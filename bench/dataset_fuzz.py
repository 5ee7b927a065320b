"""Damaged-dataset sweep: every file of a converted dataset spoiled in several ways, every dataset command run on it.

Usage::

    .venv/bin/python bench/dataset_fuzz.py DATASET [--seed 1]

DATASET is a `tracekit convert` output folder (trace.json is left alone). Each file is emptied, cut in half, cut to
16 bytes, given 8 random byte flips, given 4 random bytes in the middle, replaced by garbage and deleted; after each,
info, info --json, modules (table and csv), parallel, two SQL statements and report run on a copy. A case breaks a
promise when a command exits other than 0 or 2, prints a traceback, or exits 2 without a message; those are
printed, and the exit status is 1 if any. Not a test (~1,500 runs, 10-20 minutes on two cores).
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

TRACEKIT = str(Path(sys.executable).with_name("tracekit"))
COMMANDS = [["info"], ["info", "--json"], ["modules"], ["modules", "--format", "csv"], ["parallel"],
            ["sql", "SELECT count(*) AS n FROM events"], ["sql", "SELECT * FROM collectives LIMIT 3"], ["report"]]


def spoiled(data: bytes, rng: random.Random) -> Iterator[tuple[str, bytes | None]]:
    """(how, new bytes) for one file's content; None: the file deleted."""
    n = len(data)
    yield "empty", b""
    yield "half", data[: n // 2]
    yield "head16", data[:16]
    flipped = bytearray(data)
    for _ in range(8 if n else 0):
        flipped[rng.randrange(n)] = rng.randrange(256)
    yield "flip8", bytes(flipped)
    middle = bytearray(data)
    if n > 64:
        at = rng.randrange(4, n - 8)
        middle[at:at + 4] = rng.randbytes(4)
    yield "mid4", bytes(middle)
    yield "garbage", rng.randbytes(max(64, n // 4))
    yield "deleted", None


def command_line(command: list[str], ds: Path, work: Path) -> list[str]:
    """The tracekit argv of one command on the dataset copy `ds`."""
    args = [TRACEKIT, command[0], str(ds), *command[1:]]
    return [*args, "-o", str(work / "report.html")] if command[0] == "report" else args


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    files = sorted(p for p in args.dataset.rglob("*") if p.is_file() and p.name != "trace.json")
    work = Path(tempfile.mkdtemp(prefix="tracekit-dataset-fuzz-"))
    runs = broken = 0
    try:
        for file in files:
            rel = file.relative_to(args.dataset)
            for how, content in spoiled(file.read_bytes(), rng):
                ds = work / "ds"
                shutil.rmtree(ds, ignore_errors=True)
                shutil.copytree(args.dataset, ds)
                if content is None:
                    (ds / rel).unlink()
                else:
                    (ds / rel).write_bytes(content)
                for command in COMMANDS:
                    try:
                        done = subprocess.run(command_line(command, ds, work), capture_output=True, text=True,
                                              timeout=300, cwd=work)
                    except subprocess.TimeoutExpired:
                        broken += 1
                        print("TIMEOUT", rel, how, command, flush=True)
                        continue
                    runs += 1
                    if (done.returncode not in (0, 2) or "Traceback" in done.stderr
                            or (done.returncode == 2 and not done.stderr.strip())):
                        broken += 1
                        print("BROKE", rel, how, command, done.returncode, done.stderr[-400:].replace("\n", " | "),
                              flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{runs} runs on {len(files)} files (seed {args.seed}): {broken} broke a promise")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
