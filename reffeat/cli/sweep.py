"""``python -m reffeat.sweep GRID.toml``: a grid of Configs × seeds → a table.

GRID.toml names the parameters to vary (lists of values: the Cartesian
product), the fixed ones and the seeds::

    seeds = 5                  # seeds 0..4, or a list: [0, 3, 7]
    modes = ["st", "at"]       # optional (default both)
    traces = false             # optional: keep the history and C4 parts per job

    [base]                     # Config fields shared by every point (optional)
    eta = 0.1
    T = 750

    [grid]                     # Config fields -> lists of values
    beta = [0.5, 1.0, 1.5]
    eps = [0.1, 0.2, 0.3]

Each (point, seed) is one job (``reffeat.sweep.summary_job``: ST and AT,
E1–E4, claims P1–P4) run on local worker processes (default), a Dask
LocalCluster (``--scheduler local:N``) or a running Dask scheduler
(``--scheduler tcp://HOST:PORT``). Finished jobs go to a result store
(default ``OUT/store``), so an interrupted sweep resumes where it stopped.
Writes ``OUT/table.csv`` (one row per job: grid values, seed, summary numbers,
claims), ``OUT/table.json`` (the same plus the full results) and, for a 2-D
grid, ``OUT/heatmap.png`` (mean over seeds of each ``--metric``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import itertools
import math
import os
import sys
import time
from numbers import Integral

from .. import stopping
from ..config import FIELD_NAMES, Config
from ..constraints import Interval, read_small_file
from ..experiments import memory
from ..jobs import Runner, import_distributed
from ..sweep import sweep
from .common import (
    EXIT_FAILED,
    EXIT_OK,
    OutputLock,
    Parser,
    UsageError,
    check_memory,
    command,
    option,
    output_dirs,
    report_usage_error,
    runner_option_message,
)

WORKERS = Interval(Integral, 1, 256)

DEFAULT_METRICS = ("claims.P1", "claims.P2", "claims.P3", "claims.P4", "st.robust_acc", "at.robust_acc")
METRIC_WORDS = {
    "claims.P1": "P1 holds (fraction of seeds)", "claims.P2": "P2 holds (fraction of seeds)",
    "claims.P3": "P3 holds (fraction of seeds)", "claims.P4": "P4 holds (fraction of seeds)",
    "st.robust_acc": "ST robust accuracy (E2)", "at.robust_acc": "AT robust accuracy (E2)",
    "st.clean_acc": "ST clean accuracy (E1)", "at.clean_acc": "AT clean accuracy (E1)",
    "st.gamma": "ST mean Γ_j (robust coefficient)", "at.gamma": "AT mean Γ_j (robust coefficient)",
    "st.phi": "ST mean Φ_j (non-robust coefficient)", "at.phi": "AT mean Φ_j (non-robust coefficient)",
}
PARAM_WORDS = {
    "alpha": "α (robust feature scale)", "beta": "β (non-robust feature scale)", "eps": "ε (attack radius)",
    "eta": "η (step size)", "T": "T (training steps)", "P": "P (patches)", "s": "s (robust patches)",
    "d_N": "d_N (non-robust dimension)", "q": "q (activation power)", "m": "m (neurons per class)",
    "sigma_xi": "σ_ξ (noise)", "sigma0": "σ_0 (initial scale)", "n_train": "n_train (training samples)",
    "K": "K (ascent steps)", "lam": "λ (adversarial share)",
}
_TOP_KEYS = ("seeds", "modes", "traces", "base", "grid")


def build_parser():
    p = Parser(prog="python -m reffeat.sweep", description=(
        "Run a grid of Configs × seeds (ST and AT per job: E1–E4 summary numbers and the claims "
        "P1–P4) on local processes or a Dask cluster, with a result store so that an interrupted "
        "sweep resumes; write the table as CSV and JSON and a heat map for 2-D grids."),
        epilog=__doc__.replace("``", '"'), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("grid", metavar="GRID.toml", help="the grid (see below)")
    p.add_argument("--out", metavar="DIR", help="output directory (default runs/sweep-<timestamp>)")
    p.add_argument("--store", metavar="DIR", help="result store (default OUT/store)")
    p.add_argument("--scheduler", metavar="ADDR",
                   help="tcp://HOST:PORT of a running Dask scheduler, or local:N to start a Dask "
                        "LocalCluster of N workers (needs pip install \"reffeat[dask]\"); default: "
                        "local worker processes")
    p.add_argument("--workers", type=option("--workers", WORKERS), metavar="N",
                   help=f"local worker processes when no --scheduler is given; {WORKERS}; "
                        "default: the core count")
    p.add_argument("--traces", action="store_true", help="keep each job's history and C4 parts (JSON only)")
    p.add_argument("--refresh", action="store_true", help="rerun jobs that are already in the store")
    p.add_argument("--metric", action="append", metavar="NAME",
                   help="heat-map column (repeatable; default: " + ", ".join(DEFAULT_METRICS) + ")")
    p.add_argument("--no-figures", action="store_true", help="skip the heat map")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return p


#: the most seeds a grid may count (a list of seeds is as long as it is written)
MAX_SEEDS = 100_000


def _unique(values: list, name: str, path) -> list:
    """``values`` without repeats (first occurrence kept), saying so on stderr: a
    repeated seed or grid value would count the same job twice in a mean."""
    out, seen = [], []
    for v in values:
        key = (type(v) is bool, v)
        if key not in seen:
            seen.append(key)
            out.append(v)
    if len(out) < len(values):
        dup = [v for i, v in enumerate(values) if (type(v) is bool, v) in
               [(type(u) is bool, u) for u in values[:i]]]
        print(f"note: {name} in {path} repeats {', '.join(map(repr, dict.fromkeys(dup)))}; "
              f"each value is run and counted once ({len(out)} of {len(values)})", file=sys.stderr)
    return out


def check_metrics(metrics, modes) -> list:
    """Heat-map columns, checked before any job runs: ``claims.<P1..P4>`` or
    ``<mode>.<scalar>`` of a mode the grid runs (ValueError otherwise)."""
    for m in metrics:
        head, _, tail = m.partition(".")
        if not tail or head not in ("claims", *modes):
            eg = ", ".join(DEFAULT_METRICS[-2:])
            raise ValueError(f"--metric {m!r} is not a column of the table: give claims.P1..P4 or "
                             f"<mode>.<scalar> with mode in {', '.join(modes)} (e.g. {eg})")
    return list(metrics)


def load_grid(path: str) -> dict:
    """GRID.toml -> {"configs": [...], "seeds": [...], "modes": (...), "traces": bool,
    "params": [...]} (ValueError naming the bad entry)."""
    import tomllib
    data = read_small_file(path, "grid file")         # no FIFO, device, or endless file
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"grid file {path} is not valid TOML: {exc}") from None
    for key in doc:
        if key not in _TOP_KEYS:
            raise ValueError(f"unknown key {key!r} in {path}; allowed: {', '.join(_TOP_KEYS)}")
    seeds = doc.get("seeds", 1)
    if isinstance(seeds, bool) or not isinstance(seeds, (int, list)):
        raise ValueError(f"seeds must be a count >= 1 or a list of integers (got {seeds!r})")
    if isinstance(seeds, int):
        if not 1 <= seeds <= MAX_SEEDS:
            raise ValueError(f"seeds must be a count in [1, {MAX_SEEDS}] or a list of integers (got {seeds})")
        seeds = list(range(seeds))
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= 2**32 - 1
                        for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of integers in [0, 2**32 - 1] (got {seeds!r})")
    seeds = _unique(seeds, "seeds", path)
    modes = doc.get("modes", ["st", "at"])
    if not isinstance(modes, list) or not modes or any(m not in ("st", "at") for m in modes):
        raise ValueError(f"modes must be a non-empty list of \"st\", \"at\" (got {modes!r})")
    traces = doc.get("traces", False)
    if not isinstance(traces, bool):
        raise ValueError(f"traces must be true or false (got {traces!r})")
    base = doc.get("base", {})
    grid = doc.get("grid", {})
    for name, table in (("base", base), ("grid", grid)):
        if not isinstance(table, dict):
            raise ValueError(f"[{name}] must be a table of Config fields (got {table!r})")
        for key in table:
            if key == "seed":
                raise ValueError(f"seed in [{name}]: give the seeds with the top-level key seeds")
            if key not in FIELD_NAMES:
                raise ValueError(f"unknown config key {key!r} in [{name}]; known keys: {', '.join(FIELD_NAMES)}")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"grid.{key} must be a non-empty list of values (got {values!r})")
        if key in base:
            raise ValueError(f"{key} is both in [base] and in [grid]")
        grid[key] = _unique(values, f"grid.{key}", path)
    names = list(grid)
    configs = []
    for combo in itertools.product(*(grid[n] for n in names)):
        configs.append(Config.from_dict({**base, **dict(zip(names, combo))}))
    return {"configs": configs, "seeds": seeds, "modes": tuple(modes), "traces": traces,
            "params": names, "grid": grid, "base": base}


def heatmap(table, x: str, y: str, metrics, seeds, path: str, title: str) -> str:
    """One panel per metric: mean over seeds on the x × y grid, values written in the cells."""
    import numpy as np

    from ..plots import pyplot, save_figure
    plt = pyplot()
    n = len(metrics)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, metric in zip(axes.flat, metrics):
        xs, ys, grid, cnt = table.grid(metric, x, y)
        im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis",
                       vmin=0.0 if np.nanmin(np.append(grid[np.isfinite(grid)], 0)) >= 0 else None,
                       vmax=1.0 if metric.startswith("claims.") or metric.endswith("_acc") else None)
        ax.set_xticks(range(len(xs)), [f"{v:g}" if isinstance(v, float) else str(v) for v in xs])
        ax.set_yticks(range(len(ys)), [f"{v:g}" if isinstance(v, float) else str(v) for v in ys])
        ax.set_xlabel(PARAM_WORDS.get(x, x))
        ax.set_ylabel(PARAM_WORDS.get(y, y))
        ax.set_title(METRIC_WORDS.get(metric, metric), fontsize=10)
        for iy in range(len(ys)):
            for ix in range(len(xs)):
                v = grid[iy, ix]
                dark = bool(np.isfinite(v) and im.norm(v) < 0.5)        # viridis is dark at the low end
                ax.text(ix, iy, "–" if not np.isfinite(v) else f"{v:.2f}", ha="center", va="center",
                        fontsize=8, color="white" if dark else "black")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(f"{title}\nmean over seeds {seeds[0]}–{seeds[-1]} ({len(seeds)} seeds); – = no finished job",
                 fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def jobs_at_once(runner: Runner, n_jobs: int) -> int:
    """How many jobs run side by side on this machine (0: on a remote Dask cluster)."""
    if runner.kind == "inline":
        return 1
    if runner.kind == "processes":
        return max(1, min(runner.workers or os.cpu_count() or 1, n_jobs))
    if runner.kind == "local-cluster":
        return max(1, min(int(runner.target), n_jobs))
    return 0


def check_sweep_memory(spec: dict, runner: Runner) -> None:
    """Refuse (UsageError, before any work) a sweep whose ``jobs_at_once`` largest
    jobs need more memory than this machine has (``experiments.memory.sweep``)."""
    n_jobs = len(spec["configs"]) * len(spec["seeds"])
    at_once = jobs_at_once(runner, n_jobs)
    if at_once:
        check_memory(memory.sweep(spec["configs"], len(spec["seeds"]), spec["modes"], at_once),
                     f"this sweep ({n_jobs} jobs, {at_once} at a time on {runner.describe()}; "
                     "fewer --workers or smaller sizes in GRID.toml)")


@command
def main(argv, policy) -> int:
    """``python -m reffeat.sweep GRID.toml``: see the module docstring."""
    args = build_parser().parse_args(argv)
    spec = load_grid(args.grid)
    out = args.out if args.out is not None else os.path.join(
        "runs", _dt.datetime.now().strftime("sweep-%Y%m%d-%H%M%S"))
    dirs = output_dirs((out, "--out"), *([(args.store, "--store")] if args.store else []))
    out = str(dirs[0])
    try:
        runner = Runner(scheduler=args.scheduler, workers=args.workers,
                          store=args.store or os.path.join(out, "store"), refresh=args.refresh,
                          progress=None if args.quiet else sys.stderr)
        if args.scheduler and runner.kind in ("local-cluster", "address"):
            import_distributed()
    except (UsageError, ValueError) as exc:
        dirs.undo()
        if (named := runner_option_message(exc)) is not None:
            raise UsageError(named) from None          # the Runner's words, named as the option
        raise
    try:
        metrics = check_metrics(args.metric, spec["modes"]) if args.metric else [
            m for m in DEFAULT_METRICS if m.split(".")[0] in ("claims", *spec["modes"])]
    except ValueError:
        dirs.undo()
        raise
    try:
        check_sweep_memory(spec, runner)
    except UsageError:
        dirs.undo()
        raise
    policy.hold(OutputLock(out, "--out"))
    t0 = time.perf_counter()
    if not args.quiet:
        print(f"[sweep] {len(spec['configs'])} points × {len(spec['seeds'])} seeds on {runner.describe()}; "
              f"store {runner.store}", file=sys.stderr, flush=True)
    # inline jobs stop at their training loops' safe points (reffeat.stopping); a runner
    # that waits for worker processes is woken by the signal itself
    waits = stopping.interruptible() if runner.kind != "inline" else contextlib.nullcontext()
    try:
        with waits:
            table = sweep(spec["configs"], spec["seeds"], runner=runner,
                          kwargs={"modes": list(spec["modes"]), "traces": bool(args.traces or spec["traces"])})
    except KeyboardInterrupt as exc:                   # Ctrl-C or SIGTERM (reffeat.cli.common.SignalPolicy)
        policy.stopped(exc)
        print(f"{'terminated' if policy.exit_code == 143 else 'interrupted'}; finished jobs are kept "
              f"in {runner.store} (run the same command to resume)", file=sys.stderr)
        return policy.exit_code
    except ValueError as exc:                          # e.g. the scheduler cannot be reached
        return report_usage_error(exc)
    wall = time.perf_counter() - t0
    os.makedirs(out, exist_ok=True)
    table.to_csv(os.path.join(out, "table.csv"))
    table.to_json(os.path.join(out, "table.json"))
    wrote = ["table.csv", "table.json"]
    varying = [p for p in spec["params"] if len(spec["grid"][p]) > 1]
    if len(varying) == 2 and not args.no_figures:
        missing = [m for m in metrics if m not in table.columns]
        if missing:
            print(f"heat map: no column {', '.join(missing)} (columns: {', '.join(table.columns)})",
                  file=sys.stderr)
        shown = [m for m in metrics if m in table.columns]
        if shown:
            base = ", ".join(f"{k}={v}" for k, v in spec["base"].items()) or "SPEC defaults"
            heatmap(table, varying[0], varying[1], shown, spec["seeds"], os.path.join(out, "heatmap.png"),
                    f"reffeat sweep over {varying[0]} × {varying[1]} ({base}; modes {'+'.join(spec['modes'])})")
            wrote.append("heatmap.png")
    st = runner.stats
    print(f"{st['jobs']} jobs: {st['ran']} ran, {st['from_store']} from the store, {st['failed']} failed, "
          f"{st['retried']} retried after a worker died; wall time {wall:.1f} s")
    print(f"wrote {', '.join(os.path.join(out, w) for w in wrote)}")
    if st["failed"]:
        for r in table.rows:
            if r["error"]:
                print(f"failed: seed {r['seed']} " + " ".join(f"{p}={r[p]}" for p in table.params)
                      + f": {r['error']}")
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
