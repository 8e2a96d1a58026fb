"""``python -m reffeat.run real --dataset mnist|fashion-mnist|cifar10|svhn [options]``:
ST vs AT on real images with the R4 lenses and R5 figures — parse the
options, check them (``experiments.real_config.resolve``), the memory, the
output folders and the data before any work, then call
``experiments.real.run`` (or ``run_seeds`` with ``--seeds N``), write
report.html and print the headline numbers as one JSON line on stdout.

The pipeline, its stages and outputs are described in ``reffeat.experiments.real``;
the per-data-set defaults in ``reffeat.experiments.real_config``.  Bad options
exit with code 2 and a one-line message; missing data too, naming the files
and both ways to get them.  Ctrl-C keeps everything done so far.
"""

from __future__ import annotations

import argparse
import json
import sys
from numbers import Integral
from pathlib import Path

from ..constraints import Interval, Options
from ..experiments import memory
from ..experiments.real import SMOKE_NOTE, check_resume_files, run
from ..experiments.real_config import DEFAULTS, OPTIONS, QUICK, constraint, flag, show_default, train_config
from ..experiments.real_config import resolve as resolve_options
from ..experiments.real_seeds import finished, run_seeds
from ..jobs.progress import StageProgress
from ..real.datasets import NAMES, DataError, locate
from ..real.train import IMAGE_FIELDS, MODES
from .common import (
    OutputLock,
    Parser,
    UsageError,
    check_memory,
    clear_earlier_run,
    command,
    configure_threads,
    option,
    output_dirs,
    refuse_earlier_run,
)

#: what a run writes into --out (``experiments.real``, ``experiments.real_seeds``): a folder
#: holding one of these holds an earlier run, refused without --overwrite / --resume and
#: cleared with them (--resume keeps the checkpoints it reads, ``RESUME_KEEP``)
RUN_FILES = ("results.json", "results.previous.json", "report.html", "W_*.npy", "mean.npy",
             "checkpoint_*.npz", "lens_datasets.npz", "filters.png", "acc_vs_eps.png", "lens_curves.png",
             "frequency.png", "lens_examples.png", "acc_vs_eps_seeds.png", "seed*/")
#: what --resume keeps of an earlier run: the checkpoints it continues from, and results.json,
#: which the run keeps as results.previous.json
RESUME_KEEP = ("checkpoint_*.npz", "results.json")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m reffeat.run real",
               description="ST vs AT on real images (R1-R3) with the R4 lenses and R5 figures. "
                           "Every option is checked before any data is loaded.",
               epilog="Defaults differ per data set where shown (e.g. --eps 0.1 for MNIST, 4/255 for "
                      "CIFAR-10); numbers may be given as fractions, e.g. --eps 8/255.")
    a = p.add_argument
    a("--dataset", required=True, choices=NAMES, help="data set (R1; get it with python -m reffeat.data fetch)")
    a("--data-dir", default=None, help="where the data is looked up first, then $REFFEAT_DATA, "
                                        "then ~/.cache/reffeat")
    a("--out", default=None, help="output directory (default runs/real-DATASET-seedS); one that holds "
                                   "an earlier run's files is refused unless --overwrite or --resume")
    a("--overwrite", action="store_true",
      help="run into an --out that holds an earlier run: its files are removed first, so none stays "
           "beside the new ones")
    a("--figures-dir", default=None, help="also copy the figures here as real_DATASET_*.png (default: no copy)")
    a("--resume", action="store_true",
      help="continue training from the checkpoints in --out (with --seeds: a seed whose run in "
           "OUT/seedS finished with the same options is read, not run again); every other file of "
           "the earlier run is removed first")
    a("--seeds", type=option("--seeds", Interval(Integral, 1)), default=1,
      help="run N seeds (seed, seed+1, ...) each in OUT/seedS and write mean ± std and 95%% "
           "t-intervals of every headline number to OUT/results.json; default 1")
    a("--seed", type=option("--seed", IMAGE_FIELDS["seed"].constraint), default=None,
      help="seed of every random stream (default 0)")
    a("--quick", action="store_true",
      help="smoke test, not a result: a tiny run (" + ", ".join(f"{flag(k)} {v}" for k, v in QUICK.items())
      + ", the first 3 eps and 2 radii); options you give are kept")
    a("--classes", type=option("--classes", OPTIONS["classes"].constraint), default=None,
      help=OPTIONS["classes"].meaning)

    def opt(group, key, meaning=None):
        c = constraint(key)
        meaning = meaning or (OPTIONS[key].meaning if key in OPTIONS else IMAGE_FIELDS[key].meaning)
        group.add_argument(flag(key), dest=key, type=option(flag(key), c), default=None,
                           metavar=key.upper() if not isinstance(c, Options) else "{" + ",".join(c.values) + "}",
                           help=f"{meaning}; {c}; {show_default(key)}")
    g = p.add_argument_group("patches and network (R2, N1-N4)")
    for key in ("p", "stride", "m", "sigma0", "q", "rho"):
        opt(g, key)
    g.add_argument("--center", dest="center", action="store_const", const=True, default=None,
                   help=OPTIONS["center"].meaning + "; " + show_default("center"))
    g.add_argument("--no-center", dest="center", action="store_const", const=False,
                   help="do not subtract the mean (patches of the raw pixels in [0, 1])")
    g = p.add_argument_group("training (R3)")
    for key in ("epochs", "lr", "optimizer", "momentum", "batch_size", "n_train", "norm", "eps",
                "attack_steps", "lam", "at_start", "lr_schedule", "dtype"):
        opt(g, key)
    g = p.add_argument_group("lenses (R4)")
    g.add_argument("--no-lenses", dest="lenses", action="store_const", const=False, default=None,
                   help="stop after lens (a) and the linear baseline (no D_R/D_NR, frequency, curves)")
    for key in ("eps_grid", "eval_steps", "eval_restarts", "apgd_steps", "n_eval", "n_lens", "dr_kind", "dr_steps",
                "dr_step_size", "dnr_eps", "dnr_steps", "radius", "radii", "curve_every"):
        opt(g, key)
    return p


def resolve(args) -> dict:
    """The checked options of a run from the parsed ``args``
    (``experiments.real_config.resolve``: defaults, --quick, the options given)."""
    given = {key: getattr(args, key) for key in list(DEFAULTS[args.dataset]) + ["seed"]
             if getattr(args, key, None) is not None}
    return resolve_options(args.dataset, given, quick=args.quick, classes=args.classes)


def _clear(out: Path, c: dict, n_seeds: int, resume: bool) -> None:
    """Remove the earlier run's files from ``out`` (the folder is locked): all of
    them, or with ``resume`` all but what the resume reads — the checkpoints (and
    results.json, kept as results.previous.json) of a one-seed run; with --seeds
    the folders of this run's seeds (a finished one whole, the others' checkpoints)."""
    if not resume:
        clear_earlier_run(out, RUN_FILES)
        return
    if n_seeds <= 1:
        clear_earlier_run(out, RUN_FILES, keep=RESUME_KEEP)
        return
    mine = {f"seed{c['seed'] + i}": c["seed"] + i for i in range(n_seeds)}
    clear_earlier_run(out, RUN_FILES, keep=tuple(mine))
    for name, s_ in mine.items():
        sub = out / name
        if sub.is_dir() and finished(sub, dict(c, seed=s_)) is None:
            clear_earlier_run(sub, RUN_FILES, keep=RESUME_KEEP)


def _write_report(res: dict, out: Path, argv) -> str:
    """out/report.html: set-up, headline table, the lenses in words, every figure in
    ``out`` with what to look for, the config and every number (reffeat.report)."""
    import shlex

    from ..report import REAL_CAPTIONS, real_report
    args = sys.argv[1:] if argv is None else list(argv)
    cmd = "python -m reffeat.run real " + shlex.join(args)
    return real_report(res, str(out), REAL_CAPTIONS, command=cmd).write(str(out / "report.html"))


def _report_what_exists(out: Path, argv) -> None:
    """After a stop: report.html of the stages (or seeds) results.json holds (the
    interruption is recorded there as ``stopped``); a report that cannot be made is one line."""
    path = out / "results.json"
    if not path.is_file():
        return
    try:
        res = json.loads(path.read_text())
        _write_report(res, out, argv)
    except Exception as exc:                     # the stop is what matters; say why there is no report
        print(f"no report.html of the interrupted run: {type(exc).__name__}: {exc}", file=sys.stderr)


@command
def main(argv, policy) -> int:
    """``python -m reffeat.run real ...``: every option checked, the memory
    estimated, the output folders checked and locked before any data is loaded."""
    args = build_parser().parse_args(argv)
    c = resolve(args)
    if c["seed"] + args.seeds - 1 > 2**32 - 1:    # every seed of --seeds N is a valid seed, before any run
        raise UsageError(f"--seed {c['seed']} with --seeds {args.seeds} reaches seed {c['seed'] + args.seeds - 1}; "
                         f"seeds must be integers in [0, {2**32 - 1}]: lower --seed or --seeds")
    for mode in MODES:                           # the R3 configs validate at the boundary too
        train_config(c, mode)
    check_memory(memory.real(c), "this run (--n-train, --n-eval, --n-lens, --m, --patch, --epochs)")
    out_path = args.out if args.out is not None else Path("runs") / f"real-{args.dataset}-seed{c['seed']}"
    dirs = output_dirs((out_path, "--out"), *([(args.figures_dir, "--figures-dir")]
                                              if args.figures_dir is not None else []))
    try:
        for split in ("train", "test"):            # the data is there (else: how to get it)
            locate(args.dataset, split, args.data_dir)
    except DataError:
        dirs.undo()
        raise
    out, figures_dir = dirs[0], (dirs[1] if len(dirs) > 1 else None)
    refuse_earlier_run(out, RUN_FILES, "--out", allowed=args.overwrite or args.resume,
                       how="--overwrite (or --resume to continue it)")
    if args.resume:                              # a resume's checkpoints, checked before any work
        try:
            if args.seeds > 1:
                for i in range(args.seeds):
                    sub = out / f"seed{c['seed'] + i}"
                    if sub.is_dir():
                        check_resume_files({**c, "seed": c["seed"] + i}, sub)
            else:
                check_resume_files(c, out)
        except ValueError:
            dirs.undo()
            raise
    configure_threads()
    smoke = {"smoke_test": True, "note": SMOKE_NOTE} if args.quick else {}

    def progress(label, total, unit=""):             # time left inside every stage (stderr, every 10 s at most)
        return StageProgress(sys.stderr, total, label, unit)
    with OutputLock(out, "--out"):
        _clear(out, c, args.seeds, args.resume)
        try:
            if args.seeds > 1:
                agg = run_seeds(c, out, args.seeds, data_dir=args.data_dir, resume=args.resume,
                                figures_dir=figures_dir, smoke_test=args.quick, progress=progress)
            else:
                res = run(c, out, data_dir=args.data_dir, resume=args.resume, figures_dir=figures_dir,
                          smoke_test=args.quick, progress=progress)
        except KeyboardInterrupt as exc:
            policy.stopped(exc)
            _report_what_exists(out, argv)
            return policy.exit_code
    if args.seeds > 1:
        _write_report(agg, out, argv)
        print(json.dumps({**smoke, "dataset": args.dataset, "eps": c["eps"], "seeds": agg["seeds"],
                          **{k_: {"mean": v["mean"], "std": v["std"], "ci95": v["ci95"]}
                             for k_, v in agg.get("summary", {}).items()},
                          "results": str(out / "results.json"), "wall_time": round(agg["wall_time"], 1)}))
        return 0
    if res.get("stopped"):
        _write_report(res, out, argv)
        print(json.dumps({**smoke, "dataset": args.dataset, "stopped": res["stopped"],
                          "results": str(out / "results.json"), "wall_time": round(res["wall_time"], 1)}))
        return 0
    _write_report(res, out, argv)
    h = res["headline"]
    print(json.dumps({**smoke, "dataset": args.dataset, "eps": h["eps"], "st": h["st"], "at": h["at"],
                      "linear": {m_: {k_: res["linear"][m_][k_] for k_ in ("clean", "robust")} for m_ in ("st", "at")},
                      "results": str(out / "results.json"), "wall_time": round(res["wall_time"], 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
