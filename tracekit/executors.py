"""Where per-rank work runs: one interface, a local process pool by default, Dask distributed for clusters.

An executor maps a picklable top-level function over jobs and returns the results in job order, calling
`on_done` as each (in order) arrives. Workers start once per run, never once per job.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

J = TypeVar("J")
R = TypeVar("R")
EXECUTORS = ("local", "dask")


class Executor(Protocol):
    """Runs fn over jobs; results in job order."""

    name: str

    def run(self, fn: Callable[[J], R], jobs: Sequence[J], on_done: Callable[[R], None] | None = None,
            keep: bool = True) -> list[R]:
        """keep=False: each result goes to on_done and is then dropped (an empty list is returned), so the parent
        holds no result per job (the local pool and Dask; an executor without the argument keeps them)."""
        ...


def run_on(runner: Executor, fn: Callable[[J], R], jobs: Sequence[J], on_done: Callable[[R], None] | None = None,
           keep: bool = True) -> list[R]:
    """`runner.run`, passing keep=False only to executors that take it (LocalPool, DaskExecutor); others keep
    their results as before."""
    if keep or not isinstance(runner, LocalPool | DaskExecutor):
        return runner.run(fn, jobs, on_done=on_done)
    return runner.run(fn, jobs, on_done=on_done, keep=False)


def default_workers() -> int:
    """The machine's cores (those this process may use)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# signals that end the CLI (SIGINT: KeyboardInterrupt; SIGTERM/SIGHUP: tracekit.signals.Terminated)
_STOP_SIGNALS = {2, 15, 1}


@contextlib.contextmanager
def _signals_held() -> Any:
    """Hold the signals that end the CLI while the pool starts its workers: a worker whose start is cut short (the
    parent unwinding before it sent the worker its job) prints multiprocessing's EOFError traceback. Held signals
    arrive as soon as every worker has started, and then stop them all. Main thread only (Linux/macOS)."""
    import signal

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    held = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _start_together(barrier: Any) -> None:
    """Worker initializer: end with the parent, leave interrupts to it (it stops the workers), and wait until every
    worker has started, so the work spreads over all of them."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # a spawned worker may inherit the parent's held signals
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    _die_with_parent()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=120)


def _die_with_parent() -> None:
    """Linux: the kernel sends this worker SIGTERM when its parent dies (killed, not only exited)."""
    import signal

    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl
            os._exit(1)


def _stop_workers(pool: Any) -> None:
    """End the pool's workers now (the parent is failing or was interrupted)."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.terminate()
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.join(timeout=5)


def worker_context(preload: Sequence[str] = ()) -> Any:
    """How workers start. Default: spawn (a fresh interpreter per worker; each pays the imports of the per-rank
    stages, ~0.6 CPU s). With TRACEKIT_WORKER_START=forkserver (Linux): forks of a fork server that imported
    `preload` once (measured: ~0.01 CPU s per worker instead of ~0.6). Not the default: a signal that ends the
    parent while a worker is still being forked leaves that worker printing a traceback (its semaphores are
    gone). Neither forks the parent, which may hold arrow threads."""
    import multiprocessing as mp

    if os.environ.get("TRACEKIT_WORKER_START") != "forkserver" or "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(list(preload))  # used when the fork server starts (once per parent process)
    return ctx


SUBMIT_AHEAD = 4  # jobs per worker submitted ahead (the pool's queue stays full; the parent holds no future per job)
SMALL_JOB_ENV = "TRACEKIT_IN_PROCESS_BELOW"
SMALL_JOB_BYTES = 4 << 20  # inputs this small (on disk, all ranks) convert faster in-process than in workers


def in_process_below() -> int:
    """Total input bytes on disk under which the default local pool runs in-process (TRACEKIT_IN_PROCESS_BELOW)."""
    text = os.environ.get(SMALL_JOB_ENV, "").strip()
    return int(text) if text.isdigit() else SMALL_JOB_BYTES


def input_bytes(paths: Sequence[str | os.PathLike]) -> int:
    """Bytes on disk of the input files (an NPU folder: every file under it)."""
    total = 0
    for path in map(str, paths):
        if os.path.isdir(path):
            total += sum(os.path.getsize(os.path.join(d, f)) for d, _s, files in os.walk(path) for f in files
                         if os.path.isfile(os.path.join(d, f)))
        elif os.path.isfile(path):
            total += os.path.getsize(path)
    return total


def sized_for(runner: Executor, paths: Sequence[str | os.PathLike]) -> Executor:
    """The default local pool, in-process when the inputs are small: each worker process pays ~0.6 s of imports,
    more than small ranks take to convert (8 small rank files: 1.4 s in-process against 1.8 s on two workers).
    An explicit worker count or another executor is kept as given."""
    if isinstance(runner, LocalPool) and runner.workers is None and input_bytes(paths) < in_process_below():
        return LocalPool(1, runner.preload)
    return runner


class LocalPool:
    """A pool of worker processes on this machine (default: its cores; started as worker_context says, `preload`
    being what a fork server imports once); one worker runs in-process."""

    name = "local"

    def __init__(self, workers: int | None = None, preload: Sequence[str] = ()):
        self.workers = workers
        self.preload = tuple(preload)

    def run(self, fn: Callable[[J], R], jobs: Sequence[J], on_done: Callable[[R], None] | None = None,
            keep: bool = True) -> list[R]:
        count = max(1, min(len(jobs), self.workers or default_workers()))
        results: list[R] = []
        if count == 1:
            for job in jobs:
                result = fn(job)
                if keep:
                    results.append(result)
                if on_done:
                    on_done(result)
                del result
            return results
        from concurrent.futures import ProcessPoolExecutor

        ctx = worker_context(self.preload)
        barrier = ctx.Barrier(count)
        with ProcessPoolExecutor(max_workers=count, mp_context=ctx, initializer=_start_together,
                                 initargs=(barrier,)) as pool:
            try:
                ahead = SUBMIT_AHEAD * count  # jobs submitted but not yet taken back: a bounded window
                with _signals_held():  # submitting starts the workers
                    window = collections.deque(pool.submit(fn, job) for job in jobs[:ahead])
                for job in itertools.chain(jobs[ahead:], itertools.repeat(None, len(window))):
                    result = window.popleft().result()  # a future is dropped once its result is taken
                    if job is not None:
                        window.append(pool.submit(fn, job))
                    if keep:
                        results.append(result)
                    if on_done:
                        on_done(result)
                    del result
            except BaseException:
                _stop_workers(pool)
                raise
        return results


class DaskExecutor:
    """Jobs as tasks on a Dask distributed cluster: a Client given by the caller (left open), or one connected
    to `scheduler` (tcp://HOST:PORT) for this run. Workers must see the input and output paths (a shared
    file system) and have tracekit installed."""

    name = "dask"

    def __init__(self, client: Any = None, scheduler: str | None = None):
        if client is None and not scheduler:
            from tracekit.errors import TraceError

            raise TraceError("--scheduler", "the dask executor needs a scheduler address (tcp://HOST:PORT) or a "
                                            "dask.distributed.Client")
        self.client, self.scheduler = client, scheduler

    def run(self, fn: Callable[[J], R], jobs: Sequence[J], on_done: Callable[[R], None] | None = None,
            keep: bool = True) -> list[R]:
        client, own = self.client, False
        if client is None:
            from distributed import Client

            from tracekit.errors import TraceError

            try:
                client, own = Client(self.scheduler), True  # timeout: dask's distributed.comm.timeouts.connect
            except (OSError, TimeoutError) as exc:
                raise TraceError(self.scheduler or "", f"cannot reach the Dask scheduler: {exc}") from None
        try:
            futures = client.map(fn, list(jobs), pure=False)
            results: list[R] = []
            for i, fut in enumerate(futures):
                result = fut.result()
                if keep:
                    results.append(result)
                else:
                    futures[i] = None  # released on the cluster too once the parent holds no future
                del fut
                if on_done:
                    on_done(result)
                del result
            return results
        finally:
            if own:
                client.close()


def make_executor(executor: str | Executor | None = None, workers: int | None = None, scheduler: str | None = None,
                  client: Any = None) -> Executor:
    """An executor from CLI/API arguments: 'local' (default), 'dask' with a scheduler address, or a Client."""
    if executor is not None and not isinstance(executor, str):
        return executor
    if client is not None or executor == "dask" or (executor is None and scheduler):
        return DaskExecutor(client, scheduler)
    if executor not in (None, "local"):
        raise ValueError(f"unknown executor {executor!r} (one of {', '.join(EXECUTORS)})")
    return LocalPool(workers)
