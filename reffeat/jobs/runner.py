"""The runner of the job machinery: jobs through an executor and the store,
with progress; identical jobs run once, stored jobs are read, not rerun.

A *job* is a pure function of (Config, seed) plus keyword arguments,
``fn(cfg.replace(seed=s), **kwargs) -> dict``; the function is passed in (this
floor never imports the experiments). Failures: a worker process that dies
mid-job loses that job only; it is run again on a fresh worker (local
executor: up to ``retries`` times per job; Dask: the scheduler's
``distributed.scheduler.allowed-failures``). A job that raises is not retried
(it would raise again); it is reported (``Outcome.error``) and not stored.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any

from .. import provenance
from ..constraints import Interval, NoneOr, check
from ..output import decode
from .executors import dask_events, inline_events, parse_scheduler, process_events
from .progress import Progress
from .store import Job, Store, fn_name

_WORKERS = NoneOr(Interval(Integral, 1), none_means="the core count")
_THREADS = Interval(Integral, 1)
_RETRIES = Interval(Integral, 0)


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
    progress: Any = field(default_factory=lambda: sys.stderr)
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
        self.workers = check("workers", self.workers, _WORKERS)
        self.threads = check("threads", self.threads, _THREADS)
        self.retries = check("retries", self.retries, _RETRIES)

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
            return inline_events(jobs, self.threads, self.retries)
        if self.kind == "processes":
            return process_events(jobs, self.workers or os.cpu_count() or 1, self.threads, self.retries)
        return dask_events(jobs, self.target, self.threads, self.retries)

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
        code = rec["meta"].get("code_key")
        if code != provenance.code_key():
            return (f"worker runs code {code} (reffeat {rec['meta'].get('reffeat_version')}), this client "
                    f"{provenance.code_key()}: run the same reffeat sources and numpy/scipy/numba on every worker")
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
