"""SPEC §11 "region, not point" and §12 "Toward the theorems' regime": the
q = 3 family ``presets.theorem_family(d_N)`` over sizes × seeds, and the
neighbourhood of the default (each of ε, α, β, σ_0, σ_ξ, η ×0.8 and ×1.25,
T ×4), both through the jobs Runner (local processes, result store:
resumable; a rerun reads what is stored).

Per seed (``seed_job``): ST and AT of ``experiments.synthetic.run_seed`` with
E1–E5 (``metrics.evaluate`` with the seed's E2 stream), the claims P1–P4
under V1 and V2 (``reffeat.claims``), the attacked robust accuracy (E2),
the certified robust accuracy of AT (E5, as the evaluation computed it),
RC6 at AT's final weights (``regime.rc6_reach``, variants "r" and "rv"),
the Config-only RC6 estimate (``presets.rc6_estimate``) and the wall time.

    python -m reffeat.verify.region family --sizes 32 64 128 --seeds 5 \\
        --store /work/region21-results/store --out /work/region21-results/family.json
    python -m reffeat.verify.region neighbourhood --seeds 3 --store ... --out ...

Measured (2-core machine shared by ~4 sessions, one job at a time, one thread):
family v1 (σ_0·sqrt(d_N) = 0.113) d_N = 32, 64, 128 and v2 (0.0487) d_N = 32, seeds
0–2 each: all claims 0/3 at every size, AT robust accuracy (E2) and certified (E5)
0.00 on all 12, RC6 "r" not met on all 12 (10 to 1e7); wall 30 / 79 / 143 s per seed
(v1) and 145 s (v2, d_N = 32). Neighbourhood, seeds 0–1: ε×1.25, α×0.8, β×0.8 fail
(0/2, AT robust 0.00, 0.27, 0.18; RC6 3–47), the other ten neighbours hold 2/2.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from reffeat import presets, regime
from reffeat.claims import CLAIMS, VERSIONS, claims, describe, wilson
from reffeat.config import Config
from reffeat.experiments.synthetic import e_scalars, run_seed
from reffeat.jobs import Runner
from reffeat.output import atomic_write_json
from reffeat.train import problem

#: the neighbourhood's factors (SPEC §11): each parameter ×0.8 and ×1.25, T ×4
NEIGHBOUR_PARAMS = ("eps", "alpha", "beta", "sigma0", "sigma_xi", "eta")
NEIGHBOUR_FACTORS = (0.8, 1.25)
T_FACTOR = 4


def seed_job(cfg: Config) -> dict:
    """One seed of one Config: ST + AT, claims V1/V2, E2 robust accuracy, E5
    certified accuracy of AT (from the evaluation), RC6 at AT's weights, wall time."""
    t0 = time.perf_counter()
    prob = problem(cfg)
    runs = run_seed(cfg, prob=prob, track_c4=False)
    summary = {mode: e_scalars(run.evaluation) for mode, run in runs.items()}
    out: dict = {"seed": cfg.seed, "d_N": cfg.d_N, "st": summary["st"], "at": summary["at"],
                 "claims": {v: claims(summary, v) for v in VERSIONS}}
    W_at = runs["at"].result.W
    rc6 = {v: regime.rc6_reach(cfg, W_at, prob.features, variant=v) for v in ("r", "rv")}
    out["rc6"] = {v: {"value": c.value, "met": c.met} for v, c in rc6.items()}
    out["rc6_estimate"] = presets.rc6_estimate(cfg)["value"]
    # E5 is part of the evaluation run_seed already made (metrics.evaluate, level "bab"):
    # read it there instead of certifying AT a second time at a weaker level
    out["at_certified_acc"] = summary["at"].get("certified_robust_acc")
    out["certify_level"] = runs["at"].evaluation.get("certify_level")
    out["wall_s"] = time.perf_counter() - t0
    out["steps_done"] = {m: int(r.result.steps_done) for m, r in runs.items()}
    out["max_loss"] = {m: float(r.result.extra["max_loss"]) for m, r in runs.items()}
    return out


def family_configs(sizes, seeds, sigma0_root: float = presets.SIGMA0_ROOT) -> list:
    """theorem_family(d_N, sigma0_root) for each size × seed 0..seeds−1 (sizes first, small to large)."""
    return [presets.theorem_family(int(d), sigma0_root).replace(seed=s) for d in sizes for s in range(seeds)]


def neighbourhood_configs(base: Config | None = None) -> list:
    """``base`` itself (label "centre") and its 13 neighbours (``base`` defaults to
    the default Config): (label, Config) for each of ε, α, β, σ_0, σ_ξ, η ×0.8 and
    ×1.25 one at a time, and T ×4."""
    base = Config() if base is None else base
    out = [("centre", base)]
    out += [(f"{p}x{f:g}", base.replace(**{p: getattr(base, p) * f}))
            for p in NEIGHBOUR_PARAMS for f in NEIGHBOUR_FACTORS]
    out.append((f"Tx{T_FACTOR}", base.replace(T=base.T * T_FACTOR)))
    return out


def _all(rec: dict, version: str) -> bool:
    c = rec["claims"][version]
    return bool(c) and all(c.values())


def summarise(records: list) -> dict:
    """Counts over seeds of one group: per version each claim and "all" as
    (successes, n, Wilson lo, hi); robust accuracies, RC6, wall time."""
    n = len(records)
    out: dict = {"n": n}
    for v in VERSIONS:
        counts = {}
        for name in CLAIMS + ("all",):
            if name != "all" and not any(name in r["claims"][v] for r in records):
                continue                                  # e.g. V2's P2 without its measurements
            k = sum(_all(r, v) if name == "all" else bool(r["claims"][v].get(name)) for r in records)
            lo, hi = wilson(k, n)
            counts[name] = {"holds": k, "n": n, "wilson": [lo, hi], "text": describe(k, n)}
        out[v] = counts

    def stats(xs):
        xs = [x for x in xs if x is not None]
        return {"mean": float(np.mean(xs)), "min": float(np.min(xs)), "max": float(np.max(xs))} if xs else None
    out["at_robust_acc"] = stats([r["at"]["robust_acc"] for r in records])
    out["at_clean_acc"] = stats([r["at"]["clean_acc"] for r in records])
    out["st_robust_acc"] = stats([r["st"]["robust_acc"] for r in records])
    out["at_certified_acc"] = stats([r.get("at_certified_acc") for r in records])
    out["at_gamma"] = stats([r["at"]["gamma"] for r in records])
    out["at_phi"] = stats([r["at"]["phi"] for r in records])
    for v in ("r", "rv"):
        vals = [r["rc6"][v]["value"] for r in records]
        out[f"rc6_{v}"] = {"met": sum(r["rc6"][v]["met"] for r in records),
                           **(stats([x for x in vals if math.isfinite(x)]) or {})}
    out["rc6_estimate"] = records[0]["rc6_estimate"] if records else None
    out["wall_s"] = stats([r["wall_s"] for r in records])
    return out


def regime_table(sizes, sigma0_root: float = presets.SIGMA0_ROOT) -> list:
    """RC1–RC5 (expected initial weights) and the RC6 estimate of each family member."""
    rows = []
    for d in sizes:
        cfg = presets.theorem_family(int(d), sigma0_root)
        conds = {c.name: {"value": c.value, "threshold": c.threshold, "met": c.met}
                 for c in regime.conditions(cfg)}
        rows.append({"d_N": int(d), "eps": cfg.eps, "sigma0": cfg.sigma0, "sigma_xi": cfg.sigma_xi,
                     "eta": cfg.eta, "T": cfg.T, "conditions": conds,
                     "rc6_estimate": presets.rc6_estimate(cfg)})
    return rows


def format_family(result: dict) -> str:
    """Markdown: the regime table and the per-size counts."""
    lines = ["| d_N | ε | σ_0 | η | T | RC1 | RC2 | RC3 | RC4 | RC5 | RC6 est. |", "|" + "---|" * 11]
    for r in result["regime"]:
        c = r["conditions"]
        cells = [f"{c[n]['value']:.3g}{'' if c[n]['met'] else ' ✗'}" for n in ("RC1", "RC2", "RC3", "RC4", "RC5")]
        lines.append(f"| {r['d_N']} | {r['eps']:.3g} | {r['sigma0']:.3g} | {r['eta']:.3g} | {r['T']} | "
                     + " | ".join(cells) + f" | {r['rc6_estimate']['value']:.2f} |")
    lines += ["", "| d_N | seeds | all V1 | all V2 | P4 V1 | AT robust (E2) mean [min] | "
              "AT certified (E5) mean | RC6 met | RC6 range | s/seed |", "|" + "---|" * 10]
    for d, s in result["by_size"].items():
        cert = s["at_certified_acc"]
        lines.append(f"| {d} | {s['n']} | {s['V1']['all']['text']} | {s['V2']['all']['text']} | "
                     f"{s['V1']['P4']['holds']}/{s['n']} | {s['at_robust_acc']['mean']:.2f} "
                     f"[{s['at_robust_acc']['min']:.2f}] | {cert['mean'] if cert else float('nan'):.2f} | "
                     f"{s['rc6_r']['met']}/{s['n']} | {s['rc6_r'].get('min', float('nan')):.3g}–"
                     f"{s['rc6_r'].get('max', float('nan')):.3g} | "
                     f"{s['wall_s']['mean']:.0f} |")
    return "\n".join(lines)


#: the family sizes of verify's section "Toward the theorems' regime" (d_N = 8 has no
#: finite RC4 take-off at q = 3: ``theorem_family`` refuses it)
FAMILY_SIZES = (16, 32, 64, 128)

#: seed counts of the family's rounds: every size gets a few seeds before any gets many
ROUNDS = (3, 5, 10, 20)


def run_family(sizes, seeds, runner, out, sigma0_root: float = presets.SIGMA0_ROOT) -> dict:
    """The family section: sizes × seeds through ``runner`` (a ``reffeat.jobs.Runner``:
    resumable), in rounds (``ROUNDS`` up to ``seeds``; within a round the small sizes
    first); the summary JSON at ``out`` is rewritten after every size of every round."""
    from reffeat import provenance
    t0 = time.perf_counter()
    result: dict = {"sizes": [int(d) for d in sizes], "seeds": seeds, "sigma0_root": sigma0_root,
                    "provenance": provenance.record(),
                    "regime": regime_table(sizes, sigma0_root),
                    "by_size": {}, "records": {}}
    rounds = sorted({min(r, seeds) for r in ROUNDS} | {seeds})
    for n in rounds:
        for d in sizes:
            outs = runner.run([_job(c) for c in family_configs([d], n, sigma0_root)], label=f"family d_N={d} seeds<{n}")
            recs = [o.result for o in outs if o.ok]
            result["records"][str(d)] = recs
            result["failed"] = sum(not o.ok for o in outs)
            result["errors"] = sorted({o.error for o in outs if not o.ok})
            for err in result["errors"]:
                print(f"d_N={d}: a job failed: {err}", file=sys.stderr)
            if recs:
                result["by_size"][str(d)] = summarise(recs)
            result["seeds_done"] = n
            result["wall_s"] = time.perf_counter() - t0
            if out:
                atomic_write_json(out, result)
    return result


def run_neighbourhood(seeds, runner, out, base: Config | None = None) -> dict:
    """The neighbourhood section: the centre and its 13 neighbours × seeds through the
    same Runner, in rounds (``ROUNDS`` up to ``seeds``: every neighbour gets a few seeds
    before any gets many); the JSON at ``out`` is rewritten after every neighbour."""
    from reffeat import provenance
    t0 = time.perf_counter()
    result: dict = {"seeds": seeds, "provenance": provenance.record(), "by_neighbour": {}, "records": {}}
    for n in sorted({min(r, seeds) for r in ROUNDS} | {seeds}):
        for label, cfg in neighbourhood_configs(base):
            outs = runner.run([_job(cfg.replace(seed=s)) for s in range(n)], label=f"{label} seeds<{n}")
            recs = [o.result for o in outs if o.ok]
            result["records"][label] = recs
            result["config"] = (base or Config()).to_dict()
            if recs:
                result["by_neighbour"][label] = summarise(recs)
            result["seeds_done"] = n
            result["wall_s"] = time.perf_counter() - t0
            if out:
                atomic_write_json(out, result)
    return result


def _job(cfg):
    """The Runner's job for one Config; ``seed_job`` taken from the imported module (not
    ``__main__`` under ``python -m``), so worker processes can import it."""
    from reffeat.jobs import Job
    from reffeat.verify import region as _module
    return Job(_module.seed_job, cfg, {})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m reffeat.verify.region",
                                description=__doc__.split("\n")[0].replace("``", '"'))
    p.add_argument("section", choices=("family", "neighbourhood", "table"))
    p.add_argument("--sizes", type=int, nargs="+", default=list(FAMILY_SIZES))
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--store", default=None)
    p.add_argument("--out", default=None)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--sigma0-root", type=float, default=presets.SIGMA0_ROOT,
                   help="σ_0·sqrt(d_N) of the family (presets.SIGMA0_ROOT = v1, SIGMA0_ROOT_V2 = v2)")
    a = p.parse_args(argv)
    if a.section == "table":
        print(format_family({"regime": regime_table(a.sizes, a.sigma0_root), "by_size": {}}))
        return 0
    runner = Runner(workers=a.workers, store=a.store, progress=sys.stderr)
    if a.section == "family":
        res = run_family(a.sizes, a.seeds, runner, a.out, sigma0_root=a.sigma0_root)
        print(format_family(res))
    else:
        res = run_neighbourhood(a.seeds, runner, a.out)
        for label, s in res["by_neighbour"].items():
            print(f"{label}: V1 all {s['V1']['all']['text']}; V2 all {s['V2']['all']['text']}; "
                  f"AT robust {s['at_robust_acc']['mean']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
