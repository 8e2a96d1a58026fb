"""Sweeps: these Configs × these seeds → a table of results (and, in the command
``python -m reffeat.sweep GRID.toml``, a heat map). The jobs run through the
job machinery of ``reffeat.jobs`` (store, executors, runner, progress), which
takes the job function as an argument; this module adds the default job and
the table on top.

The default job, :func:`summary_job`, trains ST and AT (T1, T3) of one seed and
evaluates them (E1–E4) with the claims P1–P4 of ``reffeat.claims``; verify runs
its own job functions through the same machinery (``reffeat.jobs.Runner``).

    from reffeat import Config
    from reffeat.sweep import sweep
    table = sweep([Config(beta=b) for b in (0.5, 1.0)], seeds=range(5),
                  store="runs/sweep/store", scheduler="local:2")
    table.to_csv("runs/sweep/table.csv")

Executors (``scheduler``): None (local worker processes), "local:N" (a Dask
LocalCluster of N workers), "tcp://HOST:PORT" (a running Dask scheduler),
"inline" (this process) — see ``reffeat.jobs.executors``. Every job runs with
one kernel thread and one BLAS thread; the numba kernels split work into
``kernels.SLOTS`` slots, so every bit of a result is the same on any machine.

Store: one strict-JSON file per finished job (``reffeat.jobs.store``); an
interrupted sweep resumes from it. A job that raises is reported in the
table's ``error`` column and not stored.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral

import numpy as np

from .. import provenance
from .._version import __version__
from ..config import Config
from ..constraints import InstanceOf, Interval, ListOf, check
from ..jobs import Runner
from ..jobs.store import Job, config_fields
from ..output import atomic_write_bytes
from ..output import encode as _encode

__all__ = ["Table", "sweep", "summary_job"]


_CONFIGS = ListOf(InstanceOf(Config), what="a non-empty list of Config objects")
_SEEDS = ListOf(Interval(Integral, 0, 2**32 - 1))


def summary_job(cfg: Config, modes=("st", "at"), traces: bool = False) -> dict:
    """T1/T3 + E1–E4 for one seed: per mode the summary numbers (every scalar of
    ``metrics.evaluate``: E1 clean_acc, E2 robust_acc and its parts, C2 gamma/phi,
    E3 alignments; E4 responses averaged over j; max
    training loss, why it stopped), the claims P1–P4 that those modes decide
    (``reffeat.claims``), and with ``traces`` the training history and the C4
    parts per step (summed over r, averaged over j)."""
    from ..experiments.synthetic import sweep_record
    return sweep_record(cfg, modes, traces)


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
        return {"reffeat_version": __version__, "provenance": provenance.record(), "params": self.params,
                "base": _encode(self.base, lossless=True),
                "rows": [_encode(r, lossless=True) for r in self.rows],
                "results": [_encode(r, lossless=True) for r in self.results]}

    def to_json(self, path: str) -> None:
        """Strict JSON: the rows and the full results (arrays and non-finite
        numbers in ``reffeat.output.encode(..., lossless=True)``'s form)."""
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
    configs = check("configs", list(configs), _CONFIGS)
    if seeds is not None:
        seeds = check("seeds", list(seeds), _SEEDS)
    runner = runner or Runner(**runner_options)
    kwargs = dict(kwargs or {})
    jobs = [Job(fn, c if seeds is None else c.replace(seed=s), kwargs)
            for c in configs for s in ([c.seed] if seeds is None else seeds)]
    outs = runner.run(jobs, label)
    dicts = [config_fields(c) for c in configs]
    names = [f.name for f in dataclasses.fields(Config) if f.name != "seed"]
    params = [n for n in names if len({json.dumps(d[n]) for d in dicts}) > 1]
    base = {n: dicts[0][n] for n in names if n not in params}
    rows, results = [], []
    for o in outs:
        cfg = config_fields(o.job.config)
        row = {"key": o.job.key, "seed": o.job.seed, **{p: cfg[p] for p in params}}
        if o.ok and isinstance(o.result, dict):
            row.update(_flatten({k: v for k, v in o.result.items()}))
        row["error"] = o.error
        row["from_store"] = o.from_store
        rows.append(row)
        results.append(o.result)
    return Table(params, rows, results, base)
