"""Fuzz suite: seeded damage of real shared traces (tests/fuzz_inputs.py), each case run by the CLI in its
own process. Per case: exit 0 with summary `conserved` true, or exit 2 with one error line naming the file;
never a traceback or the last-resort "tracekit bug" line; peak RSS under the bound documented in the README
(tests/fuzz_run.py); nothing left beside the output. `bench/fuzz.py --cases N` runs more random cases."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from fuzz_inputs import BERT, GPT_CPU, NCCL, NPU_DB, NPU_TEXT, VIZ, all_cases, small_doc
from fuzz_run import Result, problems, run_cases

SEED = 11
RANDOM_CASES = 18

# Case-name prefixes of each class of issue 11, with the outcome each must have where it is fixed.
CLASSES = {
    "ints beyond int64, 1e400 strings": ("int-beyond-int64-", "str-1e400-"),
    "huge and NaN ts/dur": ("huge-", "neg-huge-", "nan-"),
    "wrong types in args / collectives": ("args-list", "args-string", "input-dims-strings", "collective-name-int",
                                          "pg-config-not-list"),
    "invalid UTF-8": ("bad-utf8-",),
    "deep nesting": ("nested-",),
    "truncation inside a number, string, key": ("truncate-in-", "truncate-after-", "truncate-dur-42."),
    "module names": ("module-name-",),
    "gzip bombs, lying trailers, members": ("gzip-", "plain-over-limit"),
    "special files": ("fifo", "dev-zero", "dev-null"),
    "Ascend trace_view.json / CSV / metadata": ("npu-trace-view-", "npu-kernel-details-", "npu-meta-"),
    "Ascend .db values": ("npu-db-",),
    "bad output paths": ("out-",),
    "wrong types in collective args / distributedInfo / top level": ("collective-", "distributed-", "top-"),
    "info and modules commands": ("command-",),
    "VizTracer top-level keys": ("viztracer-",),
    "random truncations, byte flips, type changes": ("truncate@", "truncate-gz@", "flip", "retype"),
}


@pytest.fixture(scope="module")
def fuzz_results(tmp_path_factory) -> tuple[list[Result], int]:
    for needed in (BERT, GPT_CPU, NCCL, NPU_TEXT, NPU_DB, VIZ):
        if not needed.exists():
            pytest.fail(f"shared trace missing: {needed}")
    work = tmp_path_factory.mktemp("fuzz")
    cases = all_cases(work / "in", SEED, RANDOM_CASES)
    outs = [work / "runs" / f"case{i}" / "out" for i in range(len(cases))]
    return run_cases(cases, outs)


def _of_class(results: list[Result], prefixes: tuple[str, ...]) -> list[Result]:
    return [r for r in results if r.case.name.startswith(prefixes)]


@pytest.mark.parametrize("name", list(CLASSES))
def test_fuzz_class(fuzz_results, name: str) -> None:
    results, baseline = fuzz_results
    mine = _of_class(results, CLASSES[name])
    assert mine, f"no cases of class {name}"
    bad = {r.case.name: (r.rc, problems(r, baseline), r.stderr.strip().splitlines()[-1:]) for r in mine
           if problems(r, baseline)}
    assert not bad, bad


def test_every_case_is_in_a_class(fuzz_results) -> None:
    results, _ = fuzz_results
    every = tuple(p for prefixes in CLASSES.values() for p in prefixes)
    assert [r.case.name for r in results if not r.case.name.startswith(every)] == []


def test_recoveries_are_recoveries(fuzz_results) -> None:
    """What is recoverable is recovered (exit 0, warned) rather than refused, and the reverse."""
    results, _ = fuzz_results
    by_name = {r.case.name: r for r in results}
    for name in ("truncate-in-number", "truncate-after-dot", "truncate-in-string", "truncate-in-key",
                 "truncate-dur-42.", "gzip-two-members", "npu-trace-view-truncated-0.5", "bad-utf8-name",
                 "huge-ts", "int-beyond-int64-ts", "args-list"):
        r = by_name[name]
        assert r.rc == 0, (name, r.stderr)
    for name in ("truncate-in-number", "npu-trace-view-truncated-0.5"):
        assert "truncated" in by_name[name].stderr
    assert "skipped" in by_name["huge-ts"].stderr and "replaced by '?'" in by_name["bad-utf8-name"].stderr
    for name in ("gzip-bomb", "plain-over-limit"):
        assert "--max-input-bytes" in by_name[name].stderr
    for name in ("fifo", "dev-zero", "npu-trace-view-unreadable", "nested-1500"):
        assert by_name[name].rc == 2, name


def test_outcomes_are_mixed(fuzz_results) -> None:
    """The mutations reach both outcomes (a suite where everything fails early would prove little)."""
    results, _ = fuzz_results
    outcomes = Counter(r.rc for r in results)
    assert outcomes[0] >= 20 and outcomes[2] >= 20, outcomes


def test_out_of_range_skips_are_counted(fuzz_results) -> None:
    import json

    results, _ = fuzz_results
    r = next(r for r in results if r.case.name == "huge-ts")
    summary = json.loads((Path(r.out) / "summary.json").read_text())
    assert summary["skipped"].get("ts_out_of_range") == 1 and summary["conserved"] is True
    # `cat a.gz b.gz`: every event of both members is read
    r = next(r for r in results if r.case.name == "gzip-two-members")
    summary = json.loads((Path(r.out) / "summary.json").read_text())
    assert summary["input_events"] == len(small_doc(BERT, 300)["traceEvents"]) and summary["conserved"] is True
