"""``python -m reffeat.run``: the main job — ST (T1) and AT (T3) on the same
sampled training set and the same W^{(0)}, evaluated with E1–E4 on a fresh
test set, with the C2 coefficients over training and the C4 decomposition.

Writes ``summary.json``, PNG figures, ``report.html`` (everything on one
self-contained page) and the weights into ``--out`` (default
``runs/<timestamp>/``); prints the results table and the list of files on
stdout, progress on stderr.
``python -m reffeat.run real ...`` runs the real-image experiments (R1–R5).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
from numbers import Integral

from .. import presets as _presets
from ..config import FIELDS, Config, help_text, parse_set, read_toml
from ..constraints import Interval
from ..experiments import memory
from ..experiments.synthetic import run_synthetic
from ..metrics import CERTIFY_BUDGET
from ..regime import format_regime
from ..train import MODES
from .common import (
    OutputLock,
    Parser,
    check_memory,
    clear_earlier_run,
    command,
    configure_threads,
    option,
    output_dir,
    refuse_earlier_run,
)

#: what a run writes into --out (``experiments.synthetic.FILE_WORDS``, any mode): a folder
#: holding one of these holds an earlier run, refused without --overwrite and cleared with it
RUN_FILES = ("summary.json", "report.html", "coefficients.png", "accuracy.png", "c4_*.png",
             "weights_*.npz", "trace_*.npz")

#: --certify-budget: branch-and-bound rounds (each doubles the leaves of an open patch box)
CERTIFY_BUDGETS = Interval(Integral, 0, 12)

EPILOG = """
examples:
  python -m reffeat.run                              # defaults (preset "default"), ST and AT
  python -m reffeat.run --preset borderline          # the first version's defaults: the failure modes
  python -m reffeat.run --preset q3 --set T=1000     # a preset with one field overridden
  python -m reffeat.run --seed 3 --set eta=0.2 --set T=300
  python -m reffeat.run --config my.toml --mode at --out runs/at_only
  python -m reffeat.run real --dataset mnist         # real images (see --help there)

Presets (--preset NAME; --config and --set override them):
""" + _presets.describe() + """

Config keys (--set KEY=VALUE, or KEY = value lines in a TOML file given by --config,
at its top level or all in one [config] table); default and allowed range, then meaning:
""" + help_text()


def spec_path():
    """The SPEC.md installed with the package (``reffeat/SPEC.md``), or None."""
    from pathlib import Path

    import reffeat
    path = Path(reffeat.__file__).parent / "SPEC.md"
    return path if path.is_file() else None


class _SpecAction(argparse.Action):
    """``--spec``: print where SPEC.md is and exit 0 (like --version)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        path = spec_path()
        print(path if path is not None else
              "SPEC.md is not installed with this copy of reffeat (it ships as reffeat/SPEC.md); "
              "see SPEC.md at the top of the source repository")
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m reffeat.run", description=(
        "Standard vs adversarial training on the SPEC's patch data: trains ST and AT from "
        "the same data and initial weights, evaluates clean/robust accuracy (E1, E2), "
        "feature coefficients Γ, Φ (C1, C2), perturbation alignment (E3) and feature "
        "responses (E4); writes summary.json and figures."),
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="default", choices=_presets.NAMES, metavar="NAME",
                   help="named Config of SPEC §11 (default: default; list below)")
    p.add_argument("--config", metavar="FILE.toml", help="TOML file of Config fields (key = value)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override one Config field (repeatable)")
    p.add_argument("--seed", type=option("--seed", FIELDS["seed"].constraint),
                   help="random seed (overrides the config's seed; default 0)")
    p.add_argument("--mode", choices=("st", "at", "both"), default="both",
                   help="which training to run (default both)")
    p.add_argument("--out", metavar="DIR", help="output directory (default runs/<timestamp>/); one that "
                   "holds an earlier run's files is refused unless --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="run into an --out that holds an earlier run: its files (summary, weights, traces, "
                        "figures, report) are removed first, so none stays beside the new ones")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--spec", action=_SpecAction,
                   help="print the path of the installed SPEC.md (the maths contract every "
                        "docstring's labels E1, T3, C4, ... refer to) and exit")
    p.add_argument("--trace", action="store_true", help=(
        "also write trace_st.npz / trace_at.npz: the SPEC C5 trace (W, γ, φ, ν, μ; ζ and the "
        "residual where the training noise is linearly independent) at every logged step"))
    p.add_argument("--certify-budget", type=option("--certify-budget", CERTIFY_BUDGETS),
                   default=CERTIFY_BUDGET, metavar="N", help=(
                       f"branch-and-bound rounds of the certified robust accuracy (E5, reffeat.certify); "
                       f"{CERTIFY_BUDGETS}; default {CERTIFY_BUDGET}. Each round splits every open patch box "
                       "in two: a larger N certifies more points (never fewer) and costs more where many "
                       "points are undecided (e.g. --preset q3); 0 keeps the optimised linear relaxation"))
    return p


def load_config(path: str | None, sets: list[str], seed: int | None, preset: str = "default") -> Config:
    """Config from a preset, then a TOML file, then --set overrides, then --seed,
    validated (ValueError on bad input).  An old key name (``config.RENAMED``:
    gamma, eval_gamma) is read as the new one, with a one-line note on stderr."""
    import warnings
    values: dict = _presets.fields(preset)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        if path:
            values.update(read_toml(path))
        for item in sets:
            key, value = parse_set(item)
            values[key] = value
    for w in caught:
        if issubclass(w.category, DeprecationWarning):
            print(f"note: {w.message}", file=sys.stderr)
    if seed is not None:
        values["seed"] = seed
    return Config.from_dict(values)


def format_header(summary: dict) -> str:
    """Preset and regime lines (RC1–RC5: value, threshold, met or not; then RC6
    at the learned weights and whether RC1–RC5 were all met a priori), printed
    before the table."""
    from ..report import rc6_lines
    cfg = Config.from_dict(summary["config"])
    rc6 = rc6_lines(summary.get("regime"))
    return (f"preset: {summary.get('preset') or '(none)'}   seed: {summary['seed']}\n"
            f"regime (SPEC §11, expected initial weights):\n{format_regime(cfg)}"
            + ("\n" + "\n".join(rc6) if rc6 else ""))


def _num(v) -> str:
    """A table cell: 4 decimals, or 4 significant digits when large (never 300 digits)."""
    if v is None:
        return f"{'—':>12s}"
    return f"{v:12.4f}" if abs(v) < 1e6 else f"{v:12.4g}"


def format_table(summary: dict) -> str:
    """The results table printed at the end of a run: what was measured (threat,
    data sizes, the attacks behind "robust"), the numbers, the claims of this
    seed, a two-line legend of the labels, and warnings."""
    from ..report import E_LEGEND, claims_lines, describe_robust, describe_threat, interval_line, result_rows
    cfg = summary["config"]
    modes = [m for m in MODES if m in summary]
    preset = f"; preset {summary['preset']}" if summary.get("preset") else ""
    lines = [f"results — seed {summary['seed']}{preset}; threat: {describe_threat(cfg)}",
             f"n_train = {cfg['n_train']} training points, n_test = {cfg['n_test']} fresh test points; "
             f"robust = survives {describe_robust(cfg)}",
             f"{'':38s}" + "".join(f"{m.upper():>12s}" for m in modes)]
    for label, key in result_rows(summary, modes):
        vals = []
        for m in modes:
            v = summary[m]
            for part in key.split("."):
                v = v.get(part) if isinstance(v, dict) else None
            vals.append(_num(v))
        lines.append(f"{label:38s}" + "".join(vals))
    iv = interval_line(summary, modes)
    if iv:
        lines.append(iv)
    cl = claims_lines(summary)
    if cl:
        cl[0] += "   (over seeds: python -m reffeat.verify)"
        lines.extend(cl)
    lines.extend(E_LEGEND)
    for m in modes:
        h = summary[m]["history"]
        if h["loss"] and summary[m].get("max_loss", 0) > 2 * h["loss"][0]:
            lines.append(f"{m.upper()}: the training loss spiked to {summary[m]['max_loss']:.4g} at step "
                         f"{summary[m]['max_loss_step']} (initial {h['loss'][0]:.4g}): gradient descent was "
                         "unstable at this eta (see RC3 above); try a smaller eta and a longer T, or --preset default")
        if summary[m].get("stopped"):
            lines.append(f"{m.upper()} stopped early: {summary[m]['stopped']}")
    return "\n".join(lines)


def format_files(summary: dict, out_dir: str) -> str:
    """The last lines of a run: every file written, with a few words each."""
    files = summary.get("files") or {}
    width = max((len(f) for f in files), default=0)
    lines = [f"wrote {len(files)} file{'s' if len(files) != 1 else ''} in {out_dir}{os.sep}"
             f"  (wall time {summary['wall_time_s']:.1f} s):"]
    lines += [f"  {name:{width}s}  {what}" for name, what in files.items()]
    if "report.html" in files:
        lines.append(f"open {os.path.join(out_dir, 'report.html')} in a browser to see it all on one page")
    return "\n".join(lines)


@command
def main(argv, policy) -> int:
    """``python -m reffeat.run [options]``: see ``build_parser``."""
    if argv and argv[0] == "real":
        from .real import main as real_main
        return real_main.__wrapped__(argv[1:], policy)
    args = build_parser().parse_args(argv)
    cfg = load_config(args.config, args.sets, args.seed, args.preset)
    modes = list(MODES) if args.mode == "both" else [args.mode]
    check_memory(memory.synthetic(cfg, modes, trace=args.trace),
                 "this config (n_train, n_test, P, d = k + d_N, k, m, T; --trace)")
    out = args.out if args.out is not None else os.path.join(
        "runs", _dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
    out = str(output_dir(out, "--out"))
    refuse_earlier_run(out, RUN_FILES, "--out", allowed=args.overwrite)
    threads = configure_threads()
    with OutputLock(out, "--out"):
        clear_earlier_run(out, RUN_FILES)
        try:
            summary = run_synthetic(cfg, modes, out, figures=not args.no_figures,
                                    progress=None if args.quiet else sys.stderr, preset=args.preset,
                                    trace=args.trace, threads=threads,
                                    evaluate_options={"bab_budget": args.certify_budget})
        except KeyboardInterrupt as exc:
            policy.stopped(exc)
            print("interrupted; results completed so far (if any) are in " + out, file=sys.stderr)
            return policy.exit_code
    print(format_header(summary))
    print(format_table(summary))
    print(format_files(summary, out))
    return policy.exit_code if summary.get("interrupted") else 0     # the shell's code for Ctrl-C


if __name__ == "__main__":
    sys.exit(main())
