"""Executors of the job machinery: this process (inline), local worker
processes (standard library only) and Dask (a LocalCluster or a running
scheduler; optional extra ``reffeat[dask]``). Each yields events
``("done", i, record)``, ``("failed", i, exc)``, ``("retry", i, why)``.

Threads. Every job runs with one kernel thread and one BLAS thread, whatever
the executor: :func:`execute` calls ``kernels.configure_threads(threads)``
(restored after the job), and BLAS is pinned by the environment of the worker
process (:data:`THREAD_VARS`). Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536,
which made jobs 1.6–2.2× slower; the job undoes it in its process
(:func:`undo_malloc_trim`).

Stopping. The client never blocks on a worker without a timeout: every wait
is a loop of short waits (:data:`POLL` s) that asks ``reffeat.stopping`` in
between, so SIGINT/SIGTERM (whose handler only sets the flag) stops the
sweep within a fraction of a second, the running workers killed. A local
worker whose client dies (killed, even by SIGKILL) exits by itself within
:data:`POLL` s (it watches its parent process id), so no orphan keeps
computing.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as _dt
import math
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from .. import provenance, stopping
from .._version import __version__
from ..output import encode

#: Environment variables that pin BLAS/numba threads in worker processes.
THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

_MALLOC: list = []          # what undo_malloc_trim did in this process (once)

#: seconds between the client's checks for a stop request while it waits, and
#: between a local worker's checks that its client is still alive
POLL = 0.25
#: exit code of a local worker that finds its client gone
ORPHANED = 70


def undo_malloc_trim() -> str | None:
    """Undo a small ``MALLOC_TRIM_THRESHOLD_`` in this process (glibc only).

    Dask's nanny starts every worker with MALLOC_TRIM_THRESHOLD_=65536
    (``distributed.nanny.pre-spawn-environ``). Setting it switches off glibc's
    dynamic mmap threshold, so every numpy temporary above 128 KiB is mmapped and
    unmapped again: a verify AT point took 1.6–2.2× longer in such a process
    (27–38 s instead of 15–19 s, this machine, alternating runs). Setting the
    thresholds to the values glibc's dynamic rule ends at (mmap 32 MiB, trim
    64 MiB) gave 16–17 s. Only when the variable is set and below 1 MiB; the
    result records what was done (``meta.malloc``)."""
    if _MALLOC:
        return _MALLOC[0]
    done = None
    val = os.environ.get("MALLOC_TRIM_THRESHOLD_", "")
    if val.isdigit() and int(val) < (1 << 20) and sys.platform.startswith("linux"):
        try:
            import ctypes
            libc = ctypes.CDLL("libc.so.6")
            m_trim, m_mmap = -1, -3                          # glibc's M_TRIM_THRESHOLD, M_MMAP_THRESHOLD
            if libc.mallopt(m_mmap, 32 << 20) == 1 and libc.mallopt(m_trim, 64 << 20) == 1:
                done = f"MALLOC_TRIM_THRESHOLD_={val} undone: mmap threshold 32 MiB, trim threshold 64 MiB"
        except (OSError, AttributeError):
            done = None
    _MALLOC.append(done)
    return done


def execute(fn: Callable, config: Any, kwargs: dict, threads: int = 1) -> dict:
    """Run one job in this process and return its record (``result`` encoded by
    ``reffeat.output.encode(..., lossless=True)``, ``meta``: wall time, host, pid, thread and allocator settings).
    The kernels' thread count (``kernels.configure_threads``) is ``threads`` during
    the job; see :func:`undo_malloc_trim` for the allocator."""
    from .. import kernels
    malloc = undo_malloc_trim()
    prev = kernels.threads()
    kernels.configure_threads(max(1, int(threads)))
    t0 = time.perf_counter()
    try:
        result = fn(config, **kwargs)
        used = kernels.threads()
    finally:
        kernels.configure_threads(prev)
    wall = time.perf_counter() - t0
    meta = {"wall_time_s": wall, "host": socket.gethostname(), "pid": os.getpid(),
            "reffeat_version": __version__, "code_key": provenance.code_key(),
            "threads": used, "slots": int(kernels.SLOTS),
            "env": {k: os.environ.get(k) for k in THREAD_VARS}, "malloc": malloc,
            "finished_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    return {"result": encode(result, lossless=True), "meta": meta}


@contextlib.contextmanager
def _environ(values: dict):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _watch_parent(parent: int, poll: float = POLL) -> None:
    """In a local worker: exit at once (``os._exit(ORPHANED)``) when the client
    process ``parent`` is gone (this process was re-parented), whatever job runs."""
    while True:
        time.sleep(poll)
        if os.getppid() != parent:
            os._exit(ORPHANED)


def _init_local_worker(parent: int | None = None):
    import signal
    import threading
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl-C is the client's to handle
    if parent is not None:
        threading.Thread(target=_watch_parent, args=(parent,), name="reffeat-watch-client",
                         daemon=True).start()


def _kill_pool(pool) -> None:
    """Kill the worker processes of a ProcessPoolExecutor and reap them (briefly)."""
    procs = list(getattr(pool, "_processes", {}).values())
    for p in procs:
        with contextlib.suppress(Exception):
            p.kill()
    for p in procs:
        with contextlib.suppress(Exception):
            p.join(timeout=2.0)


def parse_scheduler(scheduler) -> tuple:
    """("processes", None) | ("inline", None) | ("local-cluster", N) | ("address", "tcp://…")."""
    if scheduler in (None, "", "processes"):
        return ("processes", None)
    if not isinstance(scheduler, str):
        raise ValueError(f"scheduler must be a string (got {scheduler!r})")
    if scheduler == "inline":
        return ("inline", None)
    if scheduler.startswith("local:"):
        n = scheduler[len("local:"):]
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"scheduler local:N needs an integer N >= 1 worker processes (got {scheduler!r})")
        return ("local-cluster", int(n))
    if "://" in scheduler:
        return ("address", scheduler)
    raise ValueError("scheduler must be tcp://HOST:PORT (a running Dask scheduler), local:N "
                     f"(a Dask LocalCluster of N workers) or inline (got {scheduler!r})")


class WorkerDied(RuntimeError):
    """A job's worker process died (killed, out of memory, crashed) more often than allowed."""


def inline_events(jobs, threads, retries):
    for i, job in enumerate(jobs):
        try:
            rec = execute(job.fn, job.config, job.kwargs, threads)
        except Exception as exc:
            yield ("failed", i, exc)
        else:
            yield ("done", i, rec)


def process_events(jobs, workers, threads, retries):
    """Local executor: ``workers`` single-process pools, one job in flight each,
    so a worker that dies takes only its own job with it (run again on a fresh
    process, at most ``retries`` times)."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context("spawn")
    queue = collections.deque(range(len(jobs)))
    deaths = collections.Counter()
    pools: list = [None] * max(1, min(workers, len(jobs)))
    inflight: dict = {}                                 # future -> (slot, index)
    finished = False
    with _environ({k: str(threads) for k in THREAD_VARS}):     # inherited by the spawned workers
        try:
            while queue or inflight:
                busy = {s for s, _ in inflight.values()}
                for slot in range(len(pools)):
                    if slot in busy or not queue:
                        continue
                    if pools[slot] is None:
                        pools[slot] = ProcessPoolExecutor(1, mp_context=ctx, initializer=_init_local_worker,
                                                          initargs=(os.getpid(),))
                    i = queue.popleft()
                    job = jobs[i]
                    inflight[pools[slot].submit(execute, job.fn, job.config, job.kwargs, threads)] = (slot, i)
                done: set = set()
                while not done:                     # short waits: a stop request is seen at once
                    stopping.check()
                    done, _ = wait(list(inflight), timeout=POLL, return_when=FIRST_COMPLETED)
                for fut in done:
                    slot, i = inflight.pop(fut)
                    try:
                        rec = fut.result()
                    except BrokenProcessPool:
                        pools[slot].shutdown(wait=False, cancel_futures=True)
                        pools[slot] = None
                        deaths[i] += 1
                        if deaths[i] > retries:
                            yield ("failed", i, WorkerDied(f"worker process died {deaths[i]} times running this job"))
                        else:
                            queue.appendleft(i)
                            yield ("retry", i, "worker process died")
                    except Exception as exc:
                        yield ("failed", i, exc)
                    else:
                        yield ("done", i, rec)
            finished = True
        finally:
            for pool in pools:
                if pool is None:
                    continue
                if not finished:                        # interrupted: do not wait for running jobs
                    _kill_pool(pool)
                pool.shutdown(wait=finished, cancel_futures=True)


def import_distributed():
    try:
        import distributed
    except ImportError:
        raise ValueError("a Dask scheduler needs the dask extra: pip install \"reffeat[dask]\"") from None
    return distributed


def start_local_cluster(n_workers: int, threads: int = 1):
    """A Dask LocalCluster of ``n_workers`` processes, one task thread each,
    numba/BLAS pinned to ``threads`` threads, no dashboard, every socket on 127.0.0.1."""
    import logging
    distributed = import_distributed()
    return distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                    host="127.0.0.1", dashboard_address=None,
                                    # the scheduler's HTTP endpoint (health, metrics) on loopback too
                                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                                    silence_logs=logging.ERROR,
                                    env={k: str(threads) for k in THREAD_VARS})


class _LostWorkers:
    """Jobs the Dask scheduler reschedules because their worker died: read from
    the scheduler's "remove-worker" events (unexpected removals after the sweep
    started, with the tasks the worker was processing), at most every 2 s."""

    def __init__(self, client, ours: dict, t_start: float):
        self.client, self.ours, self.t_start = client, ours, t_start
        self.seen: set = set()
        self.last = -math.inf

    def events(self, force: bool = False):
        now = time.perf_counter()
        if now - self.last < 2.0 and not force:
            return
        self.last = now
        try:
            log = self.client.get_events("all")
        except Exception:  # pragma: no cover - an old scheduler without the event log
            return
        for t, ev in log:
            if (t < self.t_start or not isinstance(ev, dict) or ev.get("action") != "remove-worker"
                    or ev.get("expected")):
                continue
            ident = (t, ev.get("worker"))
            if ident in self.seen:
                continue
            self.seen.add(ident)
            for key in ev.get("processing-tasks", ()):
                if key in self.ours:
                    yield ("retry", self.ours[key], f"worker {ev.get('worker')} died")


def dask_events(jobs, target, threads, retries):
    """Dask executor: one task per job; a task whose worker dies is rescheduled by
    the scheduler (allowed-failures), a job that fails raises KilledWorker."""
    distributed = import_distributed()
    cluster = None
    client = None
    futures: dict = {}
    try:
        if isinstance(target, int):
            cluster = start_local_cluster(target, threads)
            client = distributed.Client(cluster)
        else:
            try:
                client = distributed.Client(target, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise ValueError(f"cannot reach the Dask scheduler at {target}: {exc}") from None
        tag = f"{os.getpid()}-{time.time_ns()}"
        t_start = client.run_on_scheduler(time.time)          # the scheduler's clock stamps its events
        for i, job in enumerate(jobs):
            fut = client.submit(execute, job.fn, job.config, job.kwargs, threads, pure=False,
                                key=f"reffeat-{job.key}-seed{job.seed}-{tag}")
            futures[fut] = i
        lost = _LostWorkers(client, {f.key: i for f, i in futures.items()}, t_start)
        pending = dict(futures)
        while pending:                               # short waits: a stop request is seen at once
            stopping.check()
            done = [f for f in pending if f.done()]
            if not done:
                yield from lost.events()
                time.sleep(POLL)
                continue
            for fut in done:
                i = pending.pop(fut)
                yield from lost.events()
                try:
                    rec = fut.result()
                except Exception as exc:
                    yield ("failed", i, exc)
                else:
                    yield ("done", i, rec)
                fut.release()
        yield from lost.events(force=True)           # a removal logged after the last check
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                client.cancel(list(futures))
            with contextlib.suppress(Exception):
                client.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()
