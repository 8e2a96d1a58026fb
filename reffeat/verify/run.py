"""``python -m reffeat.verify --out DIR``: run every claim check, phase
diagram and the algorithm-variant table, then write DIR/REPORT.md,
DIR/results.json and the figures DIR/figures/verify_*.png. Nothing is
written outside DIR (default ``runs/verify-<timestamp>``; ``--quick``:
``runs/verify-quick``).

    python -m reffeat.verify --out verify        # full: regenerates the committed verify/ report
    python -m reffeat.verify --quick --out DIR   # CI: the default regime on 5 seeds, coarse grids
    python -m reffeat.verify --only claims --out verify   # one section, merged into DIR's results.json
    python -m reffeat.verify --only invariants --out DIR  # (or scaling, rc6) a section with its own JSON
    python -m reffeat.verify --quick --out DIR --scheduler tcp://HOST:PORT   # on a Dask cluster

Every training is a job of ``reffeat.sweep`` (local worker processes, or a Dask
cluster with --scheduler), kept in the result store DIR/store: a rerun with the
same --out, after Ctrl-C or a lost client, trains only the jobs not stored yet.

Claims: 20 seeds (0–19) in each of the regimes ``default``, ``q3`` and
``borderline`` (presets of SPEC §11), verdicts in SPEC V1's words with counts
and 95% Wilson intervals (``reffeat.claims``); every failing seed is listed with
the regime conditions RC1–RC5 evaluated on its own initial weights.

Exit status (full): 1 unless each of P1–P4 "holds" (V1) in the default
regime. V1 decides the exit status, as pre-registered; SPEC V2's verdicts
are reported beside V1's (summary table, claim tables, REPORT.md text) and
never change it. Exit status (--quick): 1 unless all of P1–P4 hold on every one of the
5 seeds of the default regime, or if the report machinery fails.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import sys
import time
from numbers import Integral

import numpy as np

from reffeat import Config
from reffeat.claims import CLAIMS as P_CLAIMS
from reffeat.cli.common import (
    OutputLock,
    Parser,
    UsageError,
    command,
    input_file,
    option,
    output_dir,
    output_dirs,
    runner_option_message,
)
from reffeat.constraints import Interval
from reffeat.jobs import Runner
from reffeat.jobs.executors import import_distributed
from reffeat.output import atomic_write_bytes, strict_json

from . import invariants, m1, m3, rc6, region_sections, scaling
from . import report as R
from . import sweeps as S
from .common import pair_runs, regime_config
from .text import _REPORT_PATH, CLAIM_MODULES, MAIN_REGIME, _rel, build_report

#: sections with their own jobs and JSON (per-step traces, the RC6-vs-P4 table), each a
#: module with ``section(quick, runner, fig_dir, rel, out_dir) -> Markdown``
#: in the order a full run makes them: rc6 pools the records of the two region sections
TRACE_SECTIONS = (("invariants", invariants), ("scaling", scaling),
                  ("neighbourhood", region_sections.neighbourhood), ("family", region_sections.family),
                  ("rc6", rc6))

def quick_failures(claims_res) -> list:
    """--quick: (claim, seed) pairs of the default regime where one of P1–P4 does not hold."""
    out = []
    for name in P_CLAIMS:
        res = claims_res.get(MAIN_REGIME, {}).get(name)
        if res is None:
            out.append((name, None))
            continue
        out += [(name, sd) for sd, h in zip(res.seeds, res.holds) if not h]
    return out


def _eta_rows(etas, base_T=150, base_eta=0.5):
    """FGSM AT rows with η·T fixed to the SPEC's 0.5·150 = 75."""
    return [(f"FGSM (paper), η={e:g}, T={int(round(base_eta * base_T / e))}",
             {"eta": float(e), "T": int(round(base_eta * base_T / e))}) for e in etas]


def variant_rows(eps: float = 0.2, d_N: int = 32, P: int = 64, s: int = 1):
    """The algorithm variants of the issue, at the first version's η = 0.5, T = 150 and at
    the default η = 0.05, T = 300."""
    e2_patch = eps * math.sqrt(d_N)                  # ℓ2 per patch with the ℓ∞ ball's pull on ⟨x_p, v_y⟩
    e2_whole = e2_patch * math.sqrt(P - s)           # the same on every non-robust patch at once
    rows = []
    for eta, T in ((0.5, 150), (0.05, 300)):
        tag = f"η={eta:g}"
        base = {"eta": eta, "T": T}
        rows += [
            (f"FGSM (paper), {tag}", {**base}),
            (f"RS-FGSM K=1 γ=1.25ε, {tag}", {**base, "random_start": True, "ascent_step": 1.25 * eps}),
            (f"PGD-3 γ=ε/2, {tag}", {**base, "K": 3, "ascent_step": eps / 2, "random_start": True}),
            (f"PGD-3 γ=ε (large), {tag}", {**base, "K": 3, "ascent_step": eps, "random_start": True}),
            (f"PGD-10 γ=ε/4, {tag}", {**base, "K": 10, "ascent_step": eps / 4, "random_start": True}),
            (f"PGD-10 γ=ε (large), {tag}", {**base, "K": 10, "ascent_step": eps, "random_start": True}),
            (f"plain ascent K=1 γ=ε, {tag}", {**base, "ascent": "plain"}),
            (f"plain ascent K=10 γ=ε, {tag}", {**base, "ascent": "plain", "K": 10}),
            (f"ℓ2 whole input ε={e2_whole:.2f}, {tag}", {**base, "norm": "l2", "eps": e2_whole}),
            (f"ℓ2 whole input ε=2, {tag}", {**base, "norm": "l2", "eps": 2.0}),
            (f"ℓ2 per patch ε={e2_patch:.2f}, {tag}", {**base, "norm": "l2-patch", "eps": e2_patch}),
            (f"ℓ2 per patch ε=2, {tag}", {**base, "norm": "l2-patch", "eps": 2.0}),
            (f"λ=0.5 mixing, {tag}", {**base, "lam": 0.5}),
        ]
    return rows


#: The ST-only phase sweeps keep the first version's step (η = 0.5, T = 150): ST has no
#: adversary, so RC3 does not limit it, and the diagrams stay comparable with earlier reports.
ST_SWEEP_BASE = {"eta": 0.5, "T": 150}

PRESETS = {
    "full": {
        "claim_regimes": {"default": ("st", "at"), "borderline": ("st", "at"), "q3": ("at",)},
        "claim_seeds": 20,
        "eta_rows": (1.0, 0.5, 0.25, 0.1, 0.05),
        "stability_seeds": 10,
        "variant_seeds": 10,
        "variants": True,
        "pref": {"q_values": (2, 3, 4), "P_values": (4, 8, 16, 32, 64),
                 "ratios": (0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8), "seeds": (0, 1),
                 "T_of_q": {2: 150, 3: 150, 4: 600}, "base": ST_SWEEP_BASE},
        "susc": {"eps_values": (0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5),
                 "dN_values": (8, 16, 32, 64, 128), "seeds": (0, 1, 2), "base": ST_SWEEP_BASE},
        # the transition region of the earlier 5×5 grid (ε 0.1–0.4 × α/ε 2–15, 2 seeds: AT
        # robust only at α/ε = 15 for ε ≤ 0.2), at 20 seeds per cell as SPEC §11 asks
        # (~25 s of CPU per cell-seed with E5 and RC6: ~40 min on 2 cores for the grid)
        "atsucc": {"eps_values": (0.15, 0.2, 0.25), "alpha_ratios": (10, 15, 20),
                   "seeds": tuple(range(20)), "base": {"eta": 0.1, "T": 750}},
    },
    "quick": {
        "claim_regimes": {"default": ("st", "at")},
        "claim_seeds": 5,
        "eta_rows": (0.5, 0.1),
        "stability_seeds": 2,
        "variant_seeds": 0,
        "variants": False,
        "pref": {"q_values": (3,), "P_values": (8, 64), "ratios": (0.2, 0.5), "seeds": (0,),
                 "T_of_q": {3: 150}, "base": ST_SWEEP_BASE},
        "susc": {"eps_values": (0.1, 0.3), "dN_values": (16, 64), "seeds": (0,), "base": ST_SWEEP_BASE},
        "atsucc": {"eps_values": (0.1, 0.3), "alpha_ratios": (3, 15), "seeds": (0,),
                   "base": {"eta": 0.1, "T": 750}},
    },
}


WORKERS = Interval(Integral, 1, 256)


def build_parser():
    p = Parser(prog="python -m reffeat.verify", description=(
        "Turn each claim of Li & Li (2410.08503) into measured evidence in the reffeat model: "
        "claim checks P1–P4, M1–M3 over seeds, phase diagrams against the analytic boundaries, "
        "an algorithm-variant table; writes a Markdown report, figures and results.json."),
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.replace("``", '"'))
    p.add_argument("--quick", action="store_true",
                   help="CI mode: 5 seeds in the 'quick' regime, coarse grids, no variant table")
    p.add_argument("--only", choices=("claims", "phase", "variants", *(n for n, _ in TRACE_SECTIONS), "all"),
                   default="all",
                   help="run only one part (default all)")
    p.add_argument("--regimes", metavar="A,B",
                   help="claim regimes to run, comma-separated presets (default: default,borderline,q3; "
                        "--quick: default)")
    p.add_argument("--workers", type=option("--workers", WORKERS), default=2,
                   help=f"local worker processes when no --scheduler is given; {WORKERS}; default 2")
    p.add_argument("--scheduler", metavar="ADDR",
                   help="run the sweeps on a Dask cluster: tcp://HOST:PORT of a running scheduler, or "
                        "local:N to start a LocalCluster of N workers (needs pip install \"reffeat[dask]\")")
    p.add_argument("--store", metavar="DIR",
                   help="result store of finished jobs (default DIR/store): a rerun reads them instead "
                        "of training again")
    p.add_argument("--refresh", action="store_true", help="rerun jobs that are already in the store")
    p.add_argument("--out", metavar="DIR",
                   help="output directory: REPORT.md, results.json, figures/ (default "
                        "runs/verify-<timestamp>; --quick: runs/verify-quick)")
    p.add_argument("--report", metavar="FILE", help="report path (default DIR/REPORT.md)")
    p.add_argument("--figures", metavar="DIR", help="figure directory (default DIR/figures)")
    p.add_argument("--from-results", metavar="JSON",
                   help="do not run anything: redraw figures and rewrite the report from a results.json "
                        "written by an earlier run (e.g. verify/results.json)")
    p.add_argument("--recheck", action="store_true",
                   help="with --from-results: recompute the claim verdicts P1–P4, M1, M2 from the stored "
                        "per-seed records with the current criteria (M3 needs the weights and is kept)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--check-committed", action="store_true",
                   help="recompute the committed results' cheap representative subset (one synthetic "
                        "default seed, one short real-image run on synthetic digits) and compare them "
                        "exactly with the committed files (python -m reffeat.verify.committed); exit 1 "
                        "if they do not come back")
    return p


_ARRAY_KEYS = {"pref": ("phi_over_gamma",), "susc": ("robust_acc", "clean_acc"),
               "atsucc": ("at_robust_acc", "phi_ratio", "st_phi", "st_gamma", "at_gamma", "blew_up", "P4",
                          "at_certified_acc", "rc6_met")}


#: the header's name (``timings`` key) of each ``--only`` part
PART_KEYS = {"claims": "claims", "phase": "phase diagrams", "variants": "variants",
             **{name: name for name, _ in TRACE_SECTIONS}}


def parts_provenance(d: dict) -> dict:
    """{part (``timings`` key): provenance of the invocation that computed it} of a
    results.json dict.  Files written before this record was kept have one
    ``provenance``, that of the last invocation that computed into them: it is given
    to the part that invocation's ``--only`` names (to every part for a full run),
    and the other parts stay unattributed."""
    parts = d.get("parts_provenance")
    if isinstance(parts, dict):
        return dict(parts)
    prov = d.get("provenance") or {}
    words = str(prov.get("command") or "").split()
    only = words[words.index("--only") + 1] if "--only" in words[:-1] else "all"
    if only == "all":
        return {k: prov for k in d.get("timings", {}) if k != "total"} if prov else {}
    return {PART_KEYS[only]: prov} if only in PART_KEYS and prov else {}


def _with_section_provenance(parts: dict, timings: dict, src_dir: str) -> dict:
    """``parts`` with the timed trace sections it lacks (rc6, invariants, …) taken from
    their own JSON in ``src_dir``: the run that computed a section records itself
    there (the section's result first: a wrapped result keeps its own run's record)."""
    from .common import read_section_json
    out = dict(parts)
    for name, _ in TRACE_SECTIONS:
        if name in timings and name not in out:
            stored = read_section_json(src_dir, f"{name}.json") or {}
            res = stored.get("result")
            prov = (res.get("provenance") if isinstance(res, dict) else None) or stored.get("provenance")
            if prov:
                out[name] = prov
    return out


def load_results(path):
    """Inverse of the results.json written by main(): (mode, claims_res, records, phase, var, timings)."""
    import json

    from .common import ClaimResult
    with open(path) as fh:
        d = json.load(fh)
    claims_res = {}
    for reg, by in d.get("claims", {}).items():
        claims_res[reg] = {}
        for name, c in by.items():
            q = {k: [math.nan if v is None else v for v in vals] for k, vals in c["quantities"].items()}
            claims_res[reg][name] = ClaimResult(c["name"], c["statement"], c["regime"], c["seeds"],
                                                c["holds"], q, c["criteria"], c.get("notes", []),
                                                c.get("extra", {}))
    records = {reg: (Config.from_dict(v["config"]), v["records"]) for reg, v in d.get("records", {}).items()}
    phase = d.get("phase")
    if phase:
        for part, keys in _ARRAY_KEYS.items():
            for k in keys:
                if k in phase[part]:                     # older results lack E5 / RC6
                    phase[part][k] = np.asarray(phase[part][k], dtype=float)
    return d.get("mode", "full"), claims_res, records, phase, d.get("variants"), d.get("timings", {})


# ---------------------------------------------------------------- running
def run_claims(preset, runner, progress):
    results, records = {}, {}
    for reg, c4_modes in preset["claim_regimes"].items():
        cfg = regime_config(reg)
        recs = pair_runs(cfg, range(preset["claim_seeds"]), runner, c4_modes=c4_modes)
        records[reg] = (cfg, recs)
        results[reg] = {}
        for mod in CLAIM_MODULES:
            res = mod.check(recs, cfg)
            if mod is m1 and not res.seeds:
                continue                               # ST C4 not tracked in this regime
            results[reg][mod.NAME] = res
            if progress:
                print(res.text(), file=progress, flush=True)
    return results, records


def run_phase(preset, runner):
    out = {}
    out["pref"] = S.st_preference(runner=runner, **preset["pref"])
    out["susc"] = S.susceptibility(runner=runner, **preset["susc"])
    out["atsucc"] = S.at_success(runner=runner, **preset["atsucc"])
    return out


def run_variants(preset, runner):
    out = {"stability": S.variants(_eta_rows(preset["eta_rows"]), range(preset["stability_seeds"]),
                                   runner=runner)}
    if preset["variants"]:
        out["variants"] = S.variants(variant_rows(), range(preset["variant_seeds"]), runner=runner)
    return out





# ---------------------------------------------------------------- main
def _figures(mode, claims_res, records, phase, var, fig_dir):
    """Draw every figure; a failing figure is reported and skipped (the numbers survive)."""
    figs, failed = {}, []
    tag = "verify_"

    def draw(key, fn, *a):
        try:
            figs[key] = fn(*a)
        except Exception as exc:
            failed.append(key)
            print(f"[verify] figure {key} failed: {exc!r}", file=sys.stderr)

    if claims_res:
        draw("claims", R.fig_claims, claims_res, os.path.join(fig_dir, f"{tag}claims.png"))
        for reg, (cfg, recs) in records.items():
            if recs and recs[0]["st"].get("phi_path") is not None:
                draw("m1", R.fig_m1, recs, cfg, claims_res[reg].get("M1"),
                     os.path.join(fig_dir, f"{tag}m1_race.png"))
                break
        draw("m2", R.fig_m2, {reg: recs for reg, (cfg, recs) in records.items()},
             os.path.join(fig_dir, f"{tag}m2_c4.png"))
        reg = MAIN_REGIME if MAIN_REGIME in claims_res else next(iter(claims_res))
        draw("m3", R.fig_m3, claims_res[reg]["M3"], os.path.join(fig_dir, f"{tag}m3_alignment.png"))
    if phase:
        draw("pref", R.fig_st_preference, phase["pref"], os.path.join(fig_dir, f"{tag}phase_st_preference.png"))
        draw("susc", R.fig_susceptibility, phase["susc"], os.path.join(fig_dir, f"{tag}phase_susceptibility.png"))
        draw("atsucc", R.fig_at_success, phase["atsucc"], os.path.join(fig_dir, f"{tag}phase_at_success.png"))
    if var:
        labels = [r["label"] for r in var["stability"]["rows"]]
        draw("stability", R.fig_stability, var["stability"], labels,
             os.path.join(fig_dir, f"{tag}stability.png"))
    return figs, failed


_DROP = {"st": ("W", "c4_gamma_rstar", "c4_gamma_sum"),
         "at": ("W", "c4_gamma_rstar", "c4_gamma_sum", "c4_phi_rstar", "phi_path", "gamma_path")}


def _strip(records):
    """Per-seed records without weights and with C4 parts averaged over classes
    (what the report, the figures and --recheck need; keeps results.json small)."""
    out = {}
    for reg, (cfg, recs) in records.items():
        slim = []
        for r in recs:
            rr = {"seed": r["seed"]}
            for mode in ("st", "at"):
                d = {k: v for k, v in r[mode].items() if k not in _DROP[mode]}
                if d.get("c4_phi_sum") is not None:
                    d["c4_phi_sum"] = np.asarray(d["c4_phi_sum"], float).mean(axis=3, keepdims=True)
                rr[mode] = d
            slim.append(rr)
        out[reg] = {"config": cfg.to_dict(), "records": slim}
    return out


def write_results(path, mode, timings, claims_res, records, phase, var, figs, computed_by=None,
                  parts=None):
    """results.json; ``computed_by``: the provenance of the run that computed the
    numbers, kept when the file is only rebuilt (``--from-results``), with the
    rebuilding run's own provenance beside it as ``rebuilt_by``; ``parts``: the
    provenance of each part (``parts_provenance``), as each ``--only`` run that
    computed into the folder recorded it."""
    from reffeat import provenance
    here = provenance.record()
    results = {"mode": mode, "timings": timings, "provenance": computed_by or here,
               **({"rebuilt_by": here} if computed_by else {}),
               "parts_provenance": parts or {},
               "claims": {reg: {n: r.to_dict() for n, r in d.items()} for reg, d in claims_res.items()},
               "records": _strip(records), "phase": phase, "variants": var,
               "figures": {k: _rel(v) for k, v in figs.items()}}
    atomic_write_bytes(path, (strict_json(results, digits=7, separators=(",", ":")) + "\n").encode())


@command
def main(argv, policy) -> int:
    """``python -m reffeat.verify``: see the module docstring."""
    args = build_parser().parse_args(argv)
    if args.check_committed:
        from .committed import main as committed_main
        return committed_main([])
    if args.recheck and not args.from_results:
        raise UsageError("--recheck needs --from-results JSON (it re-judges stored per-seed records)")
    loaded = None
    if args.from_results is not None:        # read (and judged) before anything is written
        input_file(args.from_results, "--from-results")
        from .results_check import ResultsFileError, check_results, read_results
        try:
            check_results(read_results(args.from_results), args.from_results, recheck=args.recheck)
        except ResultsFileError as exc:
            raise UsageError(str(exc)) from None
        try:
            loaded = load_results(args.from_results)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            what = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)
            raise UsageError(f"--from-results {args.from_results} is not a results.json written by "
                             f"python -m reffeat.verify ({what})") from None
    from ..cli.common import configure_threads
    configure_threads()
    mode = "quick" if args.quick else "full"
    preset = PRESETS[mode]
    if args.regimes:
        from reffeat import presets as _presets
        names = [r.strip() for r in args.regimes.split(",") if r.strip()]
        bad = [r for r in names if r not in _presets.NAMES]
        if bad or not names:
            print(f"error: --regimes must be presets among {', '.join(_presets.NAMES)} (got {args.regimes!r})",
                  file=sys.stderr)
            return 2
        known = preset["claim_regimes"]
        preset = {**preset, "claim_regimes": {r: known.get(r, ("st", "at")) for r in names}}
    progress = None if args.quiet else sys.stderr
    if args.out is not None:
        out_dir = args.out if args.out.strip() else str(output_dir(args.out, "--out"))  # "" refused
    elif mode == "quick":
        out_dir = os.path.join("runs", "verify-quick")
    else:
        out_dir = os.path.join("runs", "verify-" + _dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
    out_dir = os.path.abspath(out_dir)
    report_path = os.path.abspath(args.report or os.path.join(out_dir, "REPORT.md"))
    fig_dir = os.path.abspath(args.figures or os.path.join(out_dir, "figures"))
    # every path checked (and the output folder locked) before any work
    if os.path.isdir(report_path):
        raise UsageError(f"--report {report_path} is a directory; give a file path")
    lock_out = args.out is not None or not (args.report and args.figures)
    dirs = output_dirs(*([(out_dir, "--out")] if lock_out else []),
                       (os.path.dirname(report_path), "--report"), (fig_dir, "--figures"),
                       *([(args.store, "--store")] if args.store and not args.from_results else []))
    if lock_out:
        policy.hold(OutputLock(dirs[0], "--out"))
    _REPORT_PATH[0] = report_path
    timings = {}
    t_all = time.perf_counter()
    claims_res, records, phase, var = {}, {}, None, None
    if args.from_results:
        mode, claims_res, records, phase, var, timings = loaded
        if args.recheck:
            for reg, (cfg, recs) in records.items():
                for mod in CLAIM_MODULES:
                    if mod is m3:
                        continue
                    res = mod.check(recs, cfg)
                    if mod is m1 and not res.seeds:
                        continue
                    claims_res[reg][mod.NAME] = res
            order = [m.NAME for m in CLAIM_MODULES]
            claims_res = {reg: {n: d[n] for n in order if n in d} for reg, d in claims_res.items()}
        _REPORT_PATH[0] = report_path
        figs, failed_figs = _figures(mode, claims_res, records, phase, var, fig_dir)
        expected_ok = not quick_failures(claims_res) if mode == "quick" and claims_res else None
        import json as _json
        with open(args.from_results) as fh:
            computed = _json.load(fh)
        computed_by = computed.get("provenance")
        parts = _with_section_provenance(parts_provenance(computed), timings,
                                         os.path.dirname(os.path.abspath(args.from_results)))
        text = build_report(mode, claims_res, records, phase, var, figs, timings, expected_ok,
                            rebuilt_from=os.path.basename(args.from_results), recheck=args.recheck,
                            parts=parts)
        # the sections with their own JSON beside the results file (invariants, scaling,
        # neighbourhood, family, rc6): re-rendered from it, nothing recomputed
        src_dir = os.path.dirname(os.path.abspath(args.from_results))
        text += "\n".join(sec for _, mod in TRACE_SECTIONS
                          if (sec := mod.section_from_json(src_dir, fig_dir, _rel)))
        atomic_write_bytes(report_path, text.encode())
        write_results(os.path.join(os.path.dirname(report_path), "results.json"), mode, timings,
                      claims_res, records, phase, var, figs, computed_by=computed_by, parts=parts)
        print(f"rebuilt {report_path}, its results.json and {len(figs)} figures from {args.from_results}")
        return 1 if failed_figs else 0
    results_path = os.path.join(os.path.dirname(report_path), "results.json")
    parts: dict = {}
    if args.only != "all" and os.path.exists(results_path):
        # one section: merge it into the results.json already in DIR (the other sections are kept)
        _m, claims_res, records, phase, var, timings = load_results(results_path)
        timings = {k: v for k, v in timings.items() if k != "total"}
        import json as _json
        with open(results_path) as fh:
            parts = _with_section_provenance(parts_provenance(_json.load(fh)), timings, out_dir)
    try:
        runner = Runner(scheduler=args.scheduler, workers=args.workers, progress=progress,
                        store=os.path.abspath(args.store or os.path.join(out_dir, "store")),
                        refresh=args.refresh)
        if runner.kind in ("local-cluster", "address"):
            import_distributed()
    except ValueError as exc:
        print(f"error: {runner_option_message(exc) or exc}", file=sys.stderr)
        return 2
    if progress:
        print(f"[verify] jobs run on {runner.describe()}; result store {runner.store}", file=progress)
    sections = []
    try:
        if args.only in ("claims", "all"):
            t = time.perf_counter()
            claims_res, records = run_claims(preset, runner, progress)
            timings["claims"] = time.perf_counter() - t
        if args.only in ("phase", "all"):
            t = time.perf_counter()
            phase = run_phase(preset, runner)
            timings["phase diagrams"] = time.perf_counter() - t
        if args.only in ("variants", "all"):
            t = time.perf_counter()
            var = run_variants(preset, runner)
            timings["variants"] = time.perf_counter() - t
        for name, mod in TRACE_SECTIONS:     # --quick runs them only when asked by --only (CI time)
            if args.only == name or (args.only == "all" and mode != "quick"):
                t = time.perf_counter()
                sections.append(mod.section(mode == "quick", runner, fig_dir, _rel, out_dir))
                timings[name] = time.perf_counter() - t
            elif args.only != "all":           # keep the section an earlier run left in DIR
                sections.append(mod.section_from_json(out_dir, fig_dir, _rel))
    except KeyboardInterrupt as exc:
        policy.stopped(exc)
        print(f"interrupted; finished jobs are kept in {runner.store} (run the same command to resume)",
              file=sys.stderr)
        return policy.exit_code
    except ValueError as exc:                    # e.g. the Dask scheduler cannot be reached
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tot = runner.totals
    print(f"sweep jobs: {tot['ran']} ran, {tot['from_store']} read from the store, {tot['failed']} failed, "
          f"{tot['retried']} rerun after a worker died ({runner.describe()}; store {runner.store})")
    figs, failed_figs = _figures(mode, claims_res, records, phase, var, fig_dir)
    timings["total"] = time.perf_counter() - t_all
    from reffeat import provenance as _provenance
    here = _provenance.record()
    parts.update({key: here for key in timings if key != "total"
                  and (args.only == "all" or PART_KEYS.get(args.only) == key)})
    expected_ok = not quick_failures(claims_res) if mode == "quick" and claims_res else None
    text = build_report(mode, claims_res, records, phase, var, figs, timings, expected_ok, parts=parts)
    text += "\n".join(sec for sec in sections if sec)
    atomic_write_bytes(report_path, text.encode())
    write_results(results_path, mode, timings, claims_res, records, phase, var, figs, parts=parts)
    print(f"wrote {report_path} and {len(figs)} figures in {fig_dir} ({timings['total']:.0f} s)")
    for reg, d in claims_res.items():
        for n, r in d.items():
            print(f"[{reg}] {n} {r.describe()}")
    if failed_figs:
        print(f"figures failed: {', '.join(failed_figs)}")
        return 1
    if mode == "quick":
        bad = quick_failures(claims_res) if claims_res else []
        if bad:
            print("quick mode: P1–P4 must hold on every seed of the default regime; failing (claim, seed): "
                  + ", ".join(f"({n}, {sd})" for n, sd in bad))
            return 1
        return 0
    main_res = claims_res.get(MAIN_REGIME, {})
    not_holding = [n for n in P_CLAIMS if n in main_res and not main_res[n].passed]
    if not_holding:
        print(f"claims that do not hold (SPEC V1) in the {MAIN_REGIME} regime: {', '.join(not_holding)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
