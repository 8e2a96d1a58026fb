"""Sweeps: these Configs × these seeds → a table of results, on local worker
processes or a Dask distributed cluster, resumable through a result store.

A *job* is a pure function of (Config, seed) plus keyword arguments:
``fn(cfg.replace(seed=s), **kwargs) -> dict``. The default job,
:func:`summary_job`, trains ST and AT (T1, T3) of one seed and evaluates them
(E1–E4) with the claims P1–P4 of ``reffeat.claims``; verify runs its own job
functions through the same machinery (:class:`Runner`).

    from reffeat import Config
    from reffeat.sweep import Runner, sweep
    table = sweep([Config(beta=b) for b in (0.5, 1.0)], seeds=range(5),
                  store="runs/sweep/store", scheduler="local:2")
    table.to_csv("runs/sweep/table.csv")

Executors (``scheduler``):
  None              local worker processes (default; ``workers`` of them, no
                    dependency beyond the standard library)
  "local:N"         start a Dask ``LocalCluster`` of N worker processes on
                    127.0.0.1 (one thread each) for this sweep
  "tcp://HOST:PORT" a running Dask scheduler (``dask scheduler``, ``dask worker``)
  "inline"          this process, one job after the other (debugging; threads
                    are not pinned, see below)
The Dask executors need the optional extra ``pip install "reffeat[dask]"``.

Threads. Every job runs with one kernel thread and one BLAS thread, whatever
the executor: the job itself calls ``kernels.configure_threads(threads)``
(restored after the job), and BLAS is pinned by the environment of the worker
process — the local executor spawns its workers with NUMBA_NUM_THREADS,
OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS = 1; Dask's nanny sets
OMP/MKL/OPENBLAS_NUM_THREADS = 1 in every worker it starts
(``distributed.nanny.pre-spawn-environ``), and ``local:N`` adds
NUMBA_NUM_THREADS = 1. Each store record keeps the thread settings the job saw
(``meta``). Dask's nanny also sets MALLOC_TRIM_THRESHOLD_=65536, which made
jobs 1.6–2.2× slower; the job undoes it in its process (``_undo_malloc_trim``).
The numba kernels split work into ``kernels.SLOTS`` slots, a
constant, so the summation order — and every bit of a result — does not depend
on the machine or the thread count (``meta.slots`` records it).

Store. One strict-JSON file per finished job,
``STORE/reffeat-<version>/<key>/seed-<seed>.json``, written atomically by the
client as each result arrives; ``key`` is the SHA-256 (first 16 hex digits) of
the job function's name, the config without its seed (fields in canonical
form) and the keyword arguments. A sweep that is interrupted (Ctrl-C, killed
client) resumes from the store: finished jobs are read, not rerun. Arrays and
non-finite floats are stored losslessly (``encode``/``decode``), so a result
read from the store equals the one the worker computed, to the last bit.
Results are stored under the reffeat version only: after changing the code
without changing the version, use a new store (or ``refresh=True``).

Failures. A worker process that dies mid-job loses that job only; it is run
again on a fresh worker (local executor: up to ``retries`` times per job; Dask:
the scheduler's ``distributed.scheduler.allowed-failures``, 3 by default). A
job that raises is not retried (a job is a pure function: it would raise
again); it is reported in the table's ``error`` column and not stored, so the
next run tries it again.

Progress goes to ``progress`` (stderr by default): done/total, jobs read from
the store, failures, rate, time left — one updating line on a terminal, plain
lines (at most one per ``interval`` seconds) in a log.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import __version__
from .config import Config

from .output import atomic_write_bytes

#: Environment variables that pin BLAS/numba threads in worker processes.
THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
STORE_FORMAT = "reffeat-sweep-result/1"


# ---------------------------------------------------------------- lossless strict JSON
def encode(obj):
    """A strict-JSON tree of ``obj`` that :func:`decode` turns back into equal
    values, bit for bit: numpy arrays -> ``{"__ndarray__": base64, "dtype",
    "shape"}`` (raw little-endian bytes), non-finite floats -> ``{"__float__":
    "nan" | "inf" | "-inf"}``, numpy scalars -> Python numbers, tuples -> lists.
    Dict keys must be strings (TypeError otherwise: a key changed by JSON would
    break the round trip)."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"result dict keys must be str for the store (got {k!r})")
            out[k] = encode(v)
        return out
    if isinstance(obj, (list, tuple)):
        return [encode(v) for v in obj]
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            return [encode(v) for v in obj.tolist()]
        a = np.asarray(obj, order="C")          # (ascontiguousarray would make 0-d arrays 1-d)
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder not in ("|", "<") else a.dtype
        return {"__ndarray__": base64.b64encode(a.astype(dt, copy=False).tobytes()).decode("ascii"),
                "dtype": dt.str, "shape": list(a.shape)}
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        if math.isfinite(f):
            return f
        return {"__float__": "nan" if math.isnan(f) else ("inf" if f > 0 else "-inf")}
    if obj is None or isinstance(obj, str):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a sweep result")


def decode(obj):
    """Inverse of :func:`encode`."""
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            raw = base64.b64decode(obj["__ndarray__"])
            return np.frombuffer(raw, dtype=np.dtype(obj["dtype"])).reshape(tuple(obj["shape"])).copy()
        if "__float__" in obj:
            return float(obj["__float__"])
        return {k: decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    return obj


def _canonical(obj) -> str:
    return json.dumps(encode(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


# ---------------------------------------------------------------- jobs
def _config_fields(cfg: Config) -> dict:
    """cfg as a dict with every float field a float (so Config(alpha=3) and
    Config(alpha=3.0), equal runs, hash alike)."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if str(f.type).startswith("float") and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        out[f.name] = v
    return out


def fn_name(fn: Callable) -> str:
    """"module:qualname" of a job function (it must be importable on the workers)."""
    mod, qual = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not mod or not qual or "<" in qual:
        raise ValueError(f"job function must be a module-level function (got {fn!r})")
    if mod == "__main__":
        raise ValueError(f"job function {qual} is defined in __main__: worker processes cannot "
                         "import it; put it in a module")
    return f"{mod}:{qual}"


@dataclass(frozen=True)
class Job:
    """One job: ``fn(config, **kwargs)``; ``config.seed`` is the seed."""
    fn: Callable
    config: Config
    kwargs: dict = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return int(self.config.seed)

    def spec(self) -> dict:
        """What the result depends on, besides the seed and the code version."""
        cfg = _config_fields(self.config)
        cfg.pop("seed")
        return {"fn": fn_name(self.fn), "config": cfg, "kwargs": dict(self.kwargs)}

    @property
    def key(self) -> str:
        """Content hash of :meth:`spec` (16 hex digits of SHA-256)."""
        return hashlib.sha256(_canonical(self.spec()).encode()).hexdigest()[:16]

    def ident(self) -> tuple:
        return (self.key, self.seed)


_MALLOC: list = []          # what _undo_malloc_trim did in this process (once)


def _undo_malloc_trim() -> str | None:
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


def execute(fn: Callable, config: Config, kwargs: dict, threads: int = 1) -> dict:
    """Run one job in this process and return its record (``result`` encoded by
    :func:`encode`, ``meta``: wall time, host, pid, thread and allocator settings).
    The kernels' thread count (``kernels.configure_threads``) is ``threads`` during
    the job; see :func:`_undo_malloc_trim` for the allocator."""
    from . import kernels
    malloc = _undo_malloc_trim()
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
            "reffeat_version": __version__, "threads": used, "slots": int(kernels.SLOTS),
            "env": {k: os.environ.get(k) for k in THREAD_VARS}, "malloc": malloc,
            "finished_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    return {"result": encode(result), "meta": meta}


# ---------------------------------------------------------------- store
class Store:
    """Directory of finished jobs: ``ROOT/reffeat-<version>/<key>/seed-<seed>.json``."""

    def __init__(self, root: str, version: str = __version__):
        self.root = os.fspath(root)
        self.version = version

    def path(self, job: Job) -> str:
        return os.path.join(self.root, f"reffeat-{self.version}", job.key, f"seed-{job.seed}.json")

    def load(self, job: Job) -> dict | None:
        """The stored record of ``job``, or None (missing, unreadable or not this job's)."""
        path = self.path(job)
        try:
            with open(path, encoding="utf-8") as fh:
                rec = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None                      # never half-written (atomic); treat as missing
        if (rec.get("format") != STORE_FORMAT or rec.get("key") != job.key or rec.get("seed") != job.seed
                or rec.get("reffeat_version") != self.version):
            return None
        return rec

    def save(self, job: Job, record: dict) -> str:
        spec = job.spec()
        full = {"format": STORE_FORMAT, "key": job.key, "seed": job.seed,
                "reffeat_version": self.version, "fn": spec["fn"],
                "config": encode(_config_fields(job.config)), "kwargs": encode(spec["kwargs"]),
                "result": record["result"], "meta": record["meta"]}
        path = self.path(job)
        atomic_write_bytes(path, (json.dumps(full, allow_nan=False, separators=(",", ":")) + "\n").encode())
        return path

    def count(self) -> int:
        """Number of stored results of this version."""
        top = os.path.join(self.root, f"reffeat-{self.version}")
        n = 0
        for _, _, files in os.walk(top):
            n += sum(1 for f in files if f.startswith("seed-") and f.endswith(".json"))
        return n


# ---------------------------------------------------------------- progress
def _fmt_time(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


class Progress:
    """done/total, from the store, failures, retries, rate and time left on one
    line: rewritten in place (\\r) on a terminal, printed as plain lines (at
    most one per ``interval`` s, plus the last) otherwise."""

    def __init__(self, stream, total: int, label: str = "sweep", interval: float = 10.0):
        self.stream, self.total, self.label, self.interval = stream, total, label, interval
        self.tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self.t0 = time.perf_counter()
        self.last = -math.inf
        self.done = self.stored = self.failed = self.retried = 0
        self.width = 0

    def line(self) -> str:
        el = time.perf_counter() - self.t0
        ran = self.done - self.stored
        rate = ran / el if el > 0 else 0.0
        left = self.total - self.done - self.failed
        eta = left / rate if rate > 0 else (0.0 if left == 0 else math.inf)
        parts = [f"[{self.label}] {self.done}/{self.total} done"]
        if self.stored:
            parts.append(f"{self.stored} from store")
        parts.append(f"{self.failed} failed")
        if self.retried:
            parts.append(f"{self.retried} retried")
        if ran:
            parts.append(f"{rate * 60:.1f} jobs/min" if rate < 1 else f"{rate:.2f} jobs/s")
        parts.append(f"elapsed {_fmt_time(el)}" + (f", left ~{_fmt_time(eta)}" if left else ""))
        return ", ".join(parts)

    def update(self, force: bool = False) -> None:
        if self.stream is None:
            return
        now = time.perf_counter()
        finished = self.done + self.failed >= self.total
        if self.tty:
            if not (force or finished or now - self.last >= 0.2):
                return
            text = self.line()
            pad = max(0, self.width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self.width = len(text)
        else:
            if not (force or finished or now - self.last >= self.interval):
                return
            self.stream.write(self.line() + "\n")
        self.last = now
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not None and self.tty:
            self.update(force=True)
            self.stream.write("\n")
            self.stream.flush()


# ---------------------------------------------------------------- executors
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


def _init_local_worker():
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl-C is the client's to handle


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


def _inline_events(jobs, threads, retries):
    for i, job in enumerate(jobs):
        try:
            rec = execute(job.fn, job.config, job.kwargs, threads)
        except Exception as exc:
            yield ("failed", i, exc)
        else:
            yield ("done", i, rec)


def _process_events(jobs, workers, threads, retries):
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
                        pools[slot] = ProcessPoolExecutor(1, mp_context=ctx, initializer=_init_local_worker)
                    i = queue.popleft()
                    job = jobs[i]
                    inflight[pools[slot].submit(execute, job.fn, job.config, job.kwargs, threads)] = (slot, i)
                done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
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
                    for p in list(getattr(pool, "_processes", {}).values()):
                        with contextlib.suppress(Exception):
                            p.kill()
                pool.shutdown(wait=finished, cancel_futures=True)


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise ValueError("a Dask scheduler needs the dask extra: pip install \"reffeat[dask]\"") from None
    return distributed


def start_local_cluster(n_workers: int, threads: int = 1):
    """A Dask LocalCluster of ``n_workers`` processes, one task thread each,
    numba/BLAS pinned to ``threads`` threads, no dashboard, every socket on 127.0.0.1."""
    import logging
    distributed = _import_distributed()
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


def _dask_events(jobs, target, threads, retries):
    """Dask executor: one task per job; a task whose worker dies is rescheduled by
    the scheduler (allowed-failures), a job that fails raises KilledWorker."""
    distributed = _import_distributed()
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
        for fut in distributed.as_completed(list(futures)):
            i = futures[fut]
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


# ---------------------------------------------------------------- running jobs
@dataclass
class Outcome:
    """What became of one job: ``result`` (decoded), or ``error`` (one line)."""
    job: Job
    result: object = None
    error: str | None = None
    from_store: bool = False
    meta: dict | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class SweepError(RuntimeError):
    """Some jobs failed; the others finished (and are in the store)."""

    def __init__(self, outcomes):
        self.failed = [o for o in outcomes if not o.ok]
        first = self.failed[0]
        super().__init__(f"{len(self.failed)} of {len(outcomes)} jobs failed; first: "
                         f"{fn_name(first.job.fn)} seed {first.job.seed}: {first.error}")


def _error_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


@dataclass
class Runner:
    """Where and how jobs run: ``scheduler`` (see the module doc), ``workers``
    (local executor; default: the core count), ``store`` (directory or None),
    ``progress`` (a stream or None), ``threads`` per job, ``retries`` of a job
    whose worker died (local executor), ``refresh`` (rerun stored jobs)."""
    scheduler: str | None = None
    workers: int | None = None
    store: str | None = None
    progress: object = field(default_factory=lambda: sys.stderr)
    threads: int = 1
    retries: int = 2
    refresh: bool = False
    interval: float = 10.0
    #: counters of the last run (``stats``) and of all runs of this Runner (``totals``):
    #: jobs, read from the store, ran, failed, retried
    stats: dict = field(default_factory=dict)
    totals: dict = field(default_factory=lambda: dict.fromkeys(("jobs", "from_store", "ran", "failed",
                                                                  "retried"), 0))

    def __post_init__(self):
        self.kind, self.target = parse_scheduler(self.scheduler)
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            raise ValueError(f"workers must be an integer >= 1 (got {self.workers!r})")
        if not isinstance(self.threads, int) or self.threads < 1:
            raise ValueError(f"threads must be an integer >= 1 (got {self.threads!r})")
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"retries must be an integer >= 0 (got {self.retries!r})")

    def describe(self) -> str:
        if self.kind == "processes":
            n = self.workers or os.cpu_count() or 1
            return f"{n} local worker process{'es' if n > 1 else ''}"
        if self.kind == "inline":
            return "this process (inline)"
        if self.kind == "local-cluster":
            return f"a Dask LocalCluster of {self.target} workers on 127.0.0.1"
        return f"the Dask scheduler at {self.target}"

    def _events(self, jobs):
        if self.kind == "inline":
            return _inline_events(jobs, self.threads, self.retries)
        if self.kind == "processes":
            return _process_events(jobs, self.workers or os.cpu_count() or 1, self.threads, self.retries)
        return _dask_events(jobs, self.target, self.threads, self.retries)

    def run(self, jobs, label: str = "sweep") -> list:
        """Outcomes of ``jobs`` (same order). Identical jobs run once. Stored jobs
        are read; the others run on the executor and are stored as they finish."""
        jobs = list(jobs)
        store = Store(self.store) if self.store else None
        uniq: dict = {}
        for job in jobs:
            uniq.setdefault(job.ident(), job)
        outcomes: dict = {}
        todo = []
        for ident, job in uniq.items():
            rec = store.load(job) if store is not None and not self.refresh else None
            if rec is not None:
                outcomes[ident] = Outcome(job, decode(rec["result"]), None, True, rec.get("meta"))
            else:
                todo.append(job)
        prog = Progress(self.progress, len(uniq), label, self.interval)
        prog.done = prog.stored = len(outcomes)
        self.stats = {"jobs": len(uniq), "from_store": len(outcomes), "ran": 0, "failed": 0, "retried": 0}
        if todo:
            prog.update(force=True)
            events = self._events(todo)
            try:
                for kind, i, payload in events:
                    job = todo[i]
                    if kind == "retry":
                        prog.retried += 1
                        self.stats["retried"] += 1
                    elif kind == "failed":
                        outcomes[job.ident()] = Outcome(job, error=_error_line(payload))
                        prog.failed += 1
                        self.stats["failed"] += 1
                    else:
                        rec = self._check(job, payload)
                        if isinstance(rec, str):
                            outcomes[job.ident()] = Outcome(job, error=rec)
                            prog.failed += 1
                            self.stats["failed"] += 1
                        else:
                            if store is not None:
                                store.save(job, rec)
                            outcomes[job.ident()] = Outcome(job, decode(rec["result"]), None, False, rec["meta"])
                            prog.done += 1
                            self.stats["ran"] += 1
                    prog.update()
            finally:
                events.close()
                prog.close()
        elif self.progress is not None:
            prog.update(force=True)
            prog.close()
        for k, v in self.stats.items():
            self.totals[k] = self.totals.get(k, 0) + v
        return [outcomes[j.ident()] for j in jobs]

    @staticmethod
    def _check(job, rec):
        if not isinstance(rec, dict) or "result" not in rec or "meta" not in rec:
            return "worker returned a malformed record"
        v = rec["meta"].get("reffeat_version")
        if v != __version__:
            return f"worker runs reffeat {v}, this client {__version__}: install the same version on every worker"
        return rec

    def map(self, fn: Callable, configs, kwargs=None, label: str = "sweep") -> list:
        """[fn(c, **kwargs) for c in configs] through the executor and the store
        (``kwargs``: one dict for all, or a list of one dict per config).
        Raises SweepError if any job failed (after all others finished)."""
        configs = list(configs)
        if kwargs is None or isinstance(kwargs, dict):
            kwargs = [dict(kwargs or {})] * len(configs)
        jobs = [Job(fn, c, dict(kw)) for c, kw in zip(configs, kwargs, strict=True)]
        outs = self.run(jobs, label)
        if any(not o.ok for o in outs):
            raise SweepError(outs)
        return [o.result for o in outs]


# ---------------------------------------------------------------- the default job and the table
def summary_job(cfg: Config, modes=("st", "at"), traces: bool = False) -> dict:
    """T1/T3 + E1–E4 for one seed: per mode the summary numbers (every scalar of
    ``metrics.evaluate``: E1 clean_acc, E2 robust_acc and its parts, C2 gamma/phi,
    E3 alignments; E4 responses averaged over j; max
    training loss, why it stopped), the claims P1–P4 that those modes decide
    (``reffeat.claims``), and with ``traces`` the training history and the C4
    parts per step (summed over r, averaged over j)."""
    from .metrics import PART_NAMES, c4_per_step, evaluate
    from .train import problem, train
    from .claims import claims
    from . import seeding
    prob = problem(cfg)
    out: dict = {}
    for mode in modes:
        res = train(cfg, mode, prob, track_c4=bool(traces))
        ev = evaluate(res.W, cfg, prob.test, prob.features, seeding.rng(cfg.seed, "eval", mode))
        # every scalar of E1–E4 (whatever evaluate adds later), None where not computed
        rec = {k: (None if v is None else float(v)) for k, v in ev.items()
               if v is None or isinstance(v, (int, float, np.integer, np.floating))}
        rec["response_robust"] = float(np.mean(ev["responses"]["robust"]))
        rec["response_nonrobust"] = float(np.mean(ev["responses"]["nonrobust"]))
        rec["max_loss"] = float(res.extra["max_loss"])
        rec["steps_done"] = int(res.steps_done)
        rec["stopped"] = res.stopped
        if traces:
            c4 = {}
            for name, arr in (("gamma", res.c4_gamma), ("phi", res.c4_phi)):
                per = c4_per_step(arr)
                c4[name] = {part: per[:, i] for i, part in enumerate(PART_NAMES)}
            rec["trace"] = {"history": res.history, "c4": c4}
        out[mode] = rec
    out["claims"] = claims(out)
    return out


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, name + "."))
        elif v is None or isinstance(v, (bool, int, float, str)):
            out[name] = v
    return out


@dataclass
class Table:
    """Rows of a sweep, one per (config, seed): ``key`` (content hash of the
    config), ``seed``, the ``params`` (Config fields that vary over the sweep),
    the scalar results flattened with dots (``st.clean_acc``, ``claims.P4``),
    ``error`` (None when the job finished) and ``from_store``. ``results``
    keeps the full per-job results (traces included) in row order."""
    params: list
    rows: list
    results: list
    base: dict

    @property
    def columns(self) -> list:
        cols, seen = [], set()
        for r in self.rows:
            for c in r:
                if c not in seen:
                    seen.add(c)
                    cols.append(c)
        return cols

    def column(self, name: str) -> list:
        return [r.get(name) for r in self.rows]

    def to_csv(self, path: str) -> None:
        import csv
        import io
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})
        atomic_write_bytes(path, buf.getvalue().encode())

    def to_dict(self) -> dict:
        from . import __version__ as v
        return {"reffeat_version": v, "params": self.params, "base": encode(self.base),
                "rows": [encode(r) for r in self.rows], "results": [encode(r) for r in self.results]}

    def to_json(self, path: str) -> None:
        """Strict JSON: the rows and the full results (arrays and non-finite
        numbers in :func:`encode`'s form)."""
        atomic_write_bytes(path, (json.dumps(self.to_dict(), allow_nan=False) + "\n").encode())

    def grid(self, metric: str, x: str, y: str):
        """Mean over seeds (and over any other param) of ``metric`` on the x × y grid:
        (xs, ys, array (len(ys), len(xs)), counts) — NaN where no job finished.
        Booleans (claims) average to the fraction of seeds where they hold."""
        xs = sorted({r[x] for r in self.rows}, key=_sort_key)
        ys = sorted({r[y] for r in self.rows}, key=_sort_key)
        tot = np.zeros((len(ys), len(xs)))
        cnt = np.zeros((len(ys), len(xs)), dtype=int)
        for r in self.rows:
            v = r.get(metric)
            if v is None or isinstance(v, str) or (isinstance(v, float) and not math.isfinite(v)):
                continue
            iy, ix = ys.index(r[y]), xs.index(r[x])
            tot[iy, ix] += float(v)
            cnt[iy, ix] += 1
        with np.errstate(invalid="ignore", divide="ignore"):
            return xs, ys, np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan), cnt


def _sort_key(v):
    return (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, str(v))


def sweep(configs, seeds=None, *, fn: Callable = summary_job, kwargs: dict | None = None,
          runner: Runner | None = None, label: str = "sweep", **runner_options) -> Table:
    """These Configs × these seeds → a :class:`Table`. ``seeds`` None: each
    config's own seed. ``fn`` (default :func:`summary_job`) is called as
    ``fn(config_with_seed, **kwargs)``. Executor, store and progress come from
    ``runner`` or from ``Runner(**runner_options)`` (scheduler, workers, store, …)."""
    configs = list(configs)
    if not configs:
        raise ValueError("configs must hold at least one Config (got none)")
    for c in configs:
        if not isinstance(c, Config):
            raise ValueError(f"configs must be Config objects (got {type(c).__name__})")
    if seeds is not None:
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise ValueError("seeds must hold at least one seed (got none)")
        if any(s < 0 or s > 2**32 - 1 for s in seeds):
            raise ValueError(f"seeds must be integers in [0, 2**32 - 1] (got {seeds})")
    runner = runner or Runner(**runner_options)
    kwargs = dict(kwargs or {})
    jobs = [Job(fn, c if seeds is None else c.replace(seed=s), kwargs)
            for c in configs for s in ([c.seed] if seeds is None else seeds)]
    outs = runner.run(jobs, label)
    dicts = [_config_fields(c) for c in configs]
    names = [f.name for f in dataclasses.fields(Config) if f.name != "seed"]
    params = [n for n in names if len({json.dumps(d[n]) for d in dicts}) > 1]
    base = {n: dicts[0][n] for n in names if n not in params}
    rows, results = [], []
    for o in outs:
        cfg = _config_fields(o.job.config)
        row = {"key": o.job.key, "seed": o.job.seed, **{p: cfg[p] for p in params}}
        if o.ok and isinstance(o.result, dict):
            row.update(_flatten({k: v for k, v in o.result.items()}))
        row["error"] = o.error
        row["from_store"] = o.from_store
        rows.append(row)
        results.append(o.result)
    return Table(params, rows, results, base)


if __name__ == "__main__":                      # python -m reffeat.sweep GRID.toml
    from reffeat.cli.sweep import main as _main
    sys.exit(_main())
