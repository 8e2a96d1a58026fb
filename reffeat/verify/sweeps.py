"""Phase diagrams and the algorithm-variant table: where each claim holds in
parameter space, next to the analytic boundaries.

    st_preference   grid β/α × P for q ∈ {2, 3, 4}; colour log10 Φ/Γ (ST, end);
                    boundary (P − s) β^q = s α^q  ⇔  β/α = (s/(P − s))^{1/q}.
    susceptibility  grid ε × d_N; colour ST robust accuracy (E2);
                    boundary ε √d_N = β (the ℓ∞ budget on ⟨x_p, v_y⟩ equals β).
    at_success      grid ε × α/ε; colour AT robust accuracy and Φ(AT)/Φ(ST);
                    boundaries ε √d_N = β (below it the "non-robust" feature is
                    robust and ST is robust too) and α/ε = 1 + (P/s)^{1/q} (this
                    suite's estimate: an AT network w_{j,r} ≈ Γ u_j loses a point
                    when the ℓ∞ adversary's gain on the P patches of a wrong class,
                    P(εΓ)^q, beats the robust patches' s((α − ε)Γ)^q).
    variants        AT algorithm variants (one-step vs PGD-K, step sizes, plain vs
                    sign ascent, ℓ∞ / ℓ2 / per-patch ℓ2, λ mixing, η with ηT fixed)
                    over seeds: final Γ, Φ, clean and robust accuracy, blow-ups.

Each grid point is a pure function of its Config (seed included) and is run
through ``reffeat.sweep`` (a ``Runner``: local processes or a Dask cluster,
with a result store). Sweeps use ``SWEEP_BASE`` (n_train = 40, n_test = 100,
one PGD start): with σ_ξ = 0 every training sample of a class is the same
input up to a permutation of patches (N3 sums over patches), so n_train only
sets the class proportions; REPORT.md states this next to every diagram.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from reffeat import Config, coefficient_summary, evaluate, problem, train
from reffeat.claims import claims
from reffeat.experiments.synthetic import run_seed
from reffeat.regime import rc6_reach

from .common import BAB_BUDGET, as_runner, eval_rng

SWEEP_BASE = {"n_train": 40, "n_test": 100, "eval_restarts": 0}

# analytic boundaries -------------------------------------------------------------


def preference_boundary(P, s: int, q: float):
    """β/α on the curve (P − s) β^q = s α^q."""
    P = np.asarray(P, dtype=float)
    return (s / (P - s)) ** (1.0 / q)


def susceptibility_boundary(d_N, beta: float):
    """ε on the curve ε √d_N = β."""
    return beta / np.sqrt(np.asarray(d_N, dtype=float))


def leverage_boundary(P: int, s: int, q: float) -> float:
    """α/ε on s(α − ε)^q = P ε^q (the adversary's P-fold leverage)."""
    return 1.0 + (P / s) ** (1.0 / q)


# points -------------------------------------------------------------------------


def _quiet(cfg: Config) -> Config:
    """No in-training logs except the first and last step (they cost test-set attacks)."""
    return cfg.replace(log_every=max(1, cfg.T))


def st_point(cfg: Config) -> dict:
    """ST only; final and initial C2 summaries."""
    cfg = _quiet(cfg)
    prob = problem(cfg)
    res = train(cfg, "st", prob, track_c4=False)
    U, V = prob.features
    end, start = coefficient_summary(res.W, U, V), coefficient_summary(prob.W0, U, V)
    return {"gamma": end["gamma"], "phi": end["phi"], "gamma0": start["gamma"], "phi0": start["phi"],
            "gamma_j": end["gamma_j"], "phi_j": end["phi_j"], "stopped": res.stopped,
            "clean_acc_train_log": res.history["clean_acc"][-1] if res.history["clean_acc"] else math.nan}


def susceptibility_point(cfg: Config, eps_values) -> dict:
    """ST at cfg (ε unused in training), then E2 robust accuracy at each ε."""
    cfg = _quiet(cfg)
    prob = problem(cfg)
    res = train(cfg, "st", prob, track_c4=False)
    out = {"eps": list(eps_values), "robust_acc": [], "robust_acc_pgd": [],
           "robust_acc_feature_attack": [], "clean_acc": None, "phi": None, "gamma": None}
    for eps in eps_values:
        c = cfg.replace(eps=float(eps))
        ev = evaluate(res.W, c, prob.test, prob.features, eval_rng(c, "st"))
        out["robust_acc"].append(ev["robust_acc"])
        out["robust_acc_pgd"].append(ev["robust_acc_pgd"])
        out["robust_acc_feature_attack"].append(ev["robust_acc_feature_attack"])
        out["clean_acc"], out["phi"], out["gamma"] = ev["clean_acc"], ev["phi"], ev["gamma"]
    return out


_ST_FIELDS_IGNORED = ("norm", "eps", "K", "ascent_step", "random_start", "ascent", "lam", "eval_K",
                      "eval_ascent_step", "eval_restarts", "log_every")


@functools.lru_cache(maxsize=64)
def _st_model(key):
    cfg = Config(**dict(key))
    prob = problem(cfg)
    return train(cfg, "st", prob, track_c4=False).W


def st_model(cfg: Config) -> np.ndarray:
    """The ST weights of cfg, cached per process on the fields ST depends on."""
    d = {k: v for k, v in _quiet(cfg).to_dict().items() if k not in _ST_FIELDS_IGNORED}
    d["log_every"] = max(1, cfg.T)
    return _st_model(tuple(sorted(d.items())))


def _summ(ev: dict) -> dict:
    keys = ("clean_acc", "robust_acc", "robust_acc_pgd", "robust_acc_feature_attack", "gamma", "phi",
            "alignment", "alignment_pgd")
    return {k: float(ev[k]) for k in keys}


def at_point(cfg: Config) -> dict:
    """AT and ST of one config (same data and W^{(0)}), both evaluated under cfg's threat;
    AT's certified robust accuracy (E5 at ``common.BAB_BUDGET``) and RC6 at AT's final W."""
    cfg = _quiet(cfg).replace(log_every=max(1, cfg.T // 10))
    prob = problem(cfg)
    run = run_seed(cfg, ("at",), prob=prob, track_c4=False,      # the one per-seed pipeline
                   evaluate_options={"bab_budget": BAB_BUDGET})["at"]
    res = run.result
    at = _summ(run.evaluation)
    at["certified_robust_acc"] = float(run.evaluation.get("certified_robust_acc", math.nan))
    rc6 = rc6_reach(cfg, res.W, prob.features)
    at["rc6"], at["rc6_met"] = float(rc6.value), bool(rc6.met)
    at["max_loss"] = float(np.nanmax(res.history["loss"])) if res.history["loss"] else math.nan
    at["stopped"] = res.stopped
    at["blew_up"] = bool(res.stopped is not None or not np.isfinite(at["max_loss"])
                         or at["max_loss"] > 10.0)
    st = _summ(evaluate(st_model(cfg), cfg, prob.test, prob.features, eval_rng(cfg, "st")))
    cl = claims({"st": st, "at": at})
    return {"st": st, "at": at, "claims": {k: bool(v) for k, v in cl.items()}}


# sweeps --------------------------------------------------------------------------


def st_preference(q_values, P_values, ratios, seeds, T_of_q=None, base=None, runner=None) -> dict:
    """Grid over (q, P, β/α) of ST runs; α fixed at the base value, β = ratio·α."""
    base = {**SWEEP_BASE, **(base or {})}
    T_of_q = T_of_q or {}
    alpha = Config(**base).alpha
    pts, keys = [], []
    for q in q_values:
        for P in P_values:
            for r in ratios:
                for seed in seeds:
                    cfg = Config(**{**base, "q": float(q), "P": int(P), "beta": float(r * alpha),
                                    "T": int(T_of_q.get(q, base.get("T", 150))), "seed": int(seed)})
                    pts.append(cfg)
                    keys.append((q, P, r, seed))
    res = as_runner(runner).map(st_point, pts, label="ST preference grid")
    shape = (len(q_values), len(P_values), len(ratios), len(seeds))
    ratio_arr = np.full(shape, np.nan)
    for (q, P, r, seed), out in zip(keys, res):
        idx = (list(q_values).index(q), list(P_values).index(P), list(ratios).index(r),
               list(seeds).index(seed))
        ratio_arr[idx] = out["phi"] / out["gamma"] if out["gamma"] > 0 else np.inf
    s = Config(**base).s
    return {"q": list(q_values), "P": list(P_values), "ratio": list(ratios), "seeds": list(seeds),
            "alpha": alpha, "s": s, "T_of_q": {str(q): int(T_of_q.get(q, base.get("T", 150)))
                                               for q in q_values},
            "phi_over_gamma": ratio_arr, "base": base,
            "points": [{"q": k[0], "P": k[1], "ratio": k[2], "seed": k[3], **o} for k, o in zip(keys, res)]}


def preference_agreement(sweep: dict) -> dict:
    """Fraction of grid cells where the measured winner (median over seeds of
    log Φ/Γ > 0) matches the analytic side of (P − s) β^q vs s α^q, per q."""
    out = {}
    for iq, q in enumerate(sweep["q"]):
        agree = tot = 0
        for iP, P in enumerate(sweep["P"]):
            for ir, r in enumerate(sweep["ratio"]):
                vals = sweep["phi_over_gamma"][iq, iP, ir]
                vals = vals[np.isfinite(vals)]
                if not vals.size:
                    continue
                measured = np.median(np.log(vals)) > 0
                predicted = (P - sweep["s"]) * r ** q > sweep["s"]
                agree += int(measured == predicted)
                tot += 1
        out[str(q)] = (agree, tot)
    return out


def susceptibility(eps_values, dN_values, seeds, base=None, runner=None) -> dict:
    base = {**SWEEP_BASE, **(base or {})}
    jobs, keys = [], []
    for dN in dN_values:
        for seed in seeds:
            jobs.append(Config(**{**base, "d_N": int(dN), "seed": int(seed)}))
            keys.append((dN, seed))
    res = as_runner(runner).map(susceptibility_point, jobs, {"eps_values": [float(e) for e in eps_values]},
                                label="susceptibility grid")
    acc = np.full((len(dN_values), len(eps_values), len(seeds)), np.nan)
    clean = np.full((len(dN_values), len(seeds)), np.nan)
    for (dN, seed), out in zip(keys, res):
        i, k = list(dN_values).index(dN), list(seeds).index(seed)
        acc[i, :, k] = out["robust_acc"]
        clean[i, k] = out["clean_acc"]
    return {"eps": list(eps_values), "d_N": list(dN_values), "seeds": list(seeds),
            "beta": Config(**base).beta, "robust_acc": acc, "clean_acc": clean, "base": base,
            "points": [{"d_N": k[0], "seed": k[1], **o} for k, o in zip(keys, res)]}


def susceptibility_agreement(sweep: dict, level: float = 0.5) -> tuple:
    """Cells where (mean robust acc < level) matches (ε √d_N > β)."""
    agree = tot = 0
    for i, dN in enumerate(sweep["d_N"]):
        for j, eps in enumerate(sweep["eps"]):
            m = np.nanmean(sweep["robust_acc"][i, j])
            if not np.isfinite(m):
                continue
            agree += int((m < level) == (eps * math.sqrt(dN) > sweep["beta"]))
            tot += 1
    return agree, tot


def at_success(eps_values, alpha_ratios, seeds, base=None, runner=None) -> dict:
    """Grid ε × α/ε of AT (+ ST) runs at the base regime; α = ratio·ε."""
    base = {**SWEEP_BASE, **(base or {})}
    pts, keys = [], []
    for e in eps_values:
        for r in alpha_ratios:
            for seed in seeds:
                pts.append(Config(**{**base, "eps": float(e), "alpha": float(r * e), "seed": int(seed)}))
                keys.append((e, r, seed))
    res = as_runner(runner).map(at_point, pts, label="AT success grid")
    shape = (len(eps_values), len(alpha_ratios), len(seeds))
    rob, phirat, stphi, stgam, atgam, blown, p4, cert, rc6met = (np.full(shape, np.nan) for _ in range(9))
    for (e, r, seed), out in zip(keys, res):
        idx = (list(eps_values).index(e), list(alpha_ratios).index(r), list(seeds).index(seed))
        rob[idx] = out["at"]["robust_acc"]
        phirat[idx] = out["at"]["phi"] / out["st"]["phi"]
        stphi[idx], stgam[idx], atgam[idx] = out["st"]["phi"], out["st"]["gamma"], out["at"]["gamma"]
        blown[idx] = out["at"]["blew_up"]
        p4[idx] = out["claims"]["P4"]
        cert[idx] = out["at"].get("certified_robust_acc", np.nan)
        rc6met[idx] = out["at"].get("rc6_met", np.nan)
    c = Config(**base)
    return {"eps": list(eps_values), "alpha_ratio": list(alpha_ratios), "seeds": list(seeds),
            "at_robust_acc": rob, "phi_ratio": phirat, "st_phi": stphi, "st_gamma": stgam,
            "at_gamma": atgam, "blew_up": blown, "P4": p4, "at_certified_acc": cert, "rc6_met": rc6met,
            "base": base,
            "leverage_boundary": leverage_boundary(c.P, c.s, c.q), "beta": c.beta, "d_N": c.d_N,
            "points": [{"eps": k[0], "alpha_ratio": k[1], "seed": k[2], **o} for k, o in zip(keys, res)]}


def variants(rows, seeds, base=None, runner=None) -> dict:
    """rows: list of (label, overrides). Runs at_point for each row × seed."""
    base = {**SWEEP_BASE, **(base or {})}
    pts, keys = [], []
    for label, over in rows:
        for seed in seeds:
            pts.append(Config(**{**base, **over, "seed": int(seed)}))
            keys.append((label, seed))
    res = as_runner(runner).map(at_point, pts, label="algorithm variants")
    table = []
    for label, over in rows:
        outs = [o for (lab, _), o in zip(keys, res) if lab == label]
        table.append({"label": label, "overrides": over, "seeds": list(seeds), "runs": outs})
    return {"rows": table, "base": base}


def variant_stats(row: dict) -> dict:
    """Means / stds / fractions over the seeds of one variant row."""
    runs = row["runs"]
    def col(path):
        vals = []
        for r in runs:
            v = r
            for p in path:
                v = v[p]
            vals.append(math.nan if v is None else float(v))
        return np.asarray(vals)
    out = {}
    for name, path in (("at_gamma", ("at", "gamma")), ("at_phi", ("at", "phi")),
                       ("at_clean", ("at", "clean_acc")), ("at_robust", ("at", "robust_acc")),
                       ("st_robust", ("st", "robust_acc")), ("st_phi", ("st", "phi")),
                       ("st_gamma", ("st", "gamma")), ("at_e3", ("at", "alignment"))):
        v = col(path)
        ok = v[np.isfinite(v)]
        out[name] = (float(ok.mean()) if ok.size else math.nan,
                     float(ok.std(ddof=1)) if ok.size > 1 else 0.0)
    out["blew_up"] = float(np.mean([r["at"]["blew_up"] for r in runs]))
    for c in ("P1", "P2", "P3", "P4"):
        out[c] = float(np.mean([r["claims"][c] for r in runs]))
    out["all_P"] = float(np.mean([all(r["claims"].values()) for r in runs]))
    return out
