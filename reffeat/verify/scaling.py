"""verify, section "Scaling": take-off times against the exponents of the
analysis (SPEC §11 RC1/RC4).

Measured: t½_j, the (linearly interpolated) step at which ST's Φ_j (C2, class
j) first reaches half its value at T — and likewise AT's Γ_j — over a grid of
σ0 (4 values spanning a decade, η fixed) and of η (3 values, σ0 fixed, with
η·T fixed so every run has the same time budget), for q = 2 and q = 3, on
several seeds.  Each class is its own race (its own x₀ = Φ_j(0) and rate);
classes whose coefficient did not grow 4× by T are left out (counted in the
report).  Per seed, log t½_j is fitted against log σ0 and log η by least
squares over all (run, class) pairs; the report gives the mean slope over
seeds with its 95% t-interval.  Runs are small (n = 40, σ_ξ = 0, m = 8,
P = 32) so the section takes a few minutes.

Derivation (σ_ξ = 0, so a clean non-robust patch of class y is exactly β v_y).
By C3, on clean data the own-class coefficient of neuron (j, r) moves by

    ΔΦ_{j,r} = η (n_j/n) (1 − logit_j) (P − s) β σ'(β Φ_{j,r}),

(other-class samples and other patches are orthogonal to v_j) and while the
network's outputs are still small, logit_j = 1/k.  In σ's polynomial region
σ'(z) = (z/ρ)^{q−1}, so with x = Φ_{j,r} and c_j = (n_j/n)(1 − 1/k)(P − s)β^q/ρ^{q−1}

    x_{t+1} = x_t + η c_j x_t^{q−1}.

  q > 2: x' = ηc x^{q−1} reaches any fixed level x₁ ≫ x₀ at
         t ≈ [x₀^{−(q−2)} − x₁^{−(q−2)}] / ((q−2) η c): the blow-up time
         1/((q−2) η c x₀^{q−2}) plus a σ0-independent remainder.  x₀ = Φ_j(0) is
         a maximum of m Gaussians of s.d. σ0, so x₀ ∝ σ0 and
         t½ ∝ σ0^{−(q−2)} · η^{−1}: exponent −(q−2) = −1 in σ0 (q = 3), −1 in η.
         Coefficient check: η c_j t½_j against 1/x₀_j (per class) has slope 1.
  q = 2: x_t = x₀ (1 + η c)^t exactly, so t½ = ln(x₁/x₀)/ln(1 + ηc) + (a
         remainder independent of σ0): logarithmic in σ0 — the power-law
         exponent is 0 asymptotically, and locally d ln t½ / d ln σ0 =
         −1/(t½ ln(1 + ηc)).  Coefficient check: ln(1 + ηc_j) t½_j against
         ln x₀_j has slope −1.
  η:     every phase of gradient descent is, in the small-η limit, a function
         of η·t (gradient flow), so t½ ∝ η^{−1}; for q = 2 the discrete map gives
         locally d ln t½ / d ln η = −ηc / ((1 + ηc) ln(1 + ηc)) in the
         exponential phase (−0.95 at ηc = 0.1).

AT's Γ: the same derivation with the robust patch (s α^q, reduced by the
attack) — but the ℓ∞ attack also adds ⟨δ, w_{j,r}⟩ ≈ ±ε‖w_{j,r}‖₁ to every
pre-activation (RC5), a term ∝ σ0 at initialisation.  Every pre-activation
still scales with σ0, so the exponents (−(q−2) in σ0, −1 in η) are predicted
unchanged; the coefficient c is not, and is not checked.
"""

from __future__ import annotations

import math

import numpy as np

from reffeat import Config, problem, train

from .common import read_section_json, write_section_json
from .m1 import ode_time, race_strengths

#: the small base configuration of every scaling run (σ_ξ = 0: see the derivation).
#: ST runs use α = 2 so that ST's race is won by v_j in every class (RC1:
#: (P−s)β^q = 31 against sα^q = 8 for q = 3, 4 for q = 2); AT runs use α = 3.
BASE = dict(k=4, P=32, s=1, d_N=32, beta=1.0, sigma_xi=0.0, n_train=40, n_test=40,
            m=8, rho=1.0, eps=0.2, K=1, eval_restarts=0)
ALPHA = {"st": 2.0, "at": 3.0}
#: per (q, mode): the σ0 grid (at eta_ref, T_ref steps) and the η grid (at
#: sigma0_ref, η·T = eta_ref·T_ref).  AT's robust coefficient takes off later,
#: so its σ0 grid sits a factor 2 higher.
GRIDS = {
    (3, "st"): dict(sigma0s=(0.005, 0.01, 0.02, 0.05), etas=(0.05, 0.1, 0.2), sigma0_ref=0.02,
                    eta_ref=0.1, T_ref=800),
    (3, "at"): dict(sigma0s=(0.01, 0.02, 0.05, 0.1), etas=(0.05, 0.1, 0.2), sigma0_ref=0.05,
                    eta_ref=0.1, T_ref=1600),
    (2, "st"): dict(sigma0s=(0.005, 0.01, 0.02, 0.05), etas=(0.0125, 0.025, 0.05), sigma0_ref=0.02,
                    eta_ref=0.025, T_ref=600),
    (2, "at"): dict(sigma0s=(0.01, 0.02, 0.05, 0.1), etas=(0.0125, 0.025, 0.05), sigma0_ref=0.05,
                    eta_ref=0.025, T_ref=1200),
}
#: a class counts as taken off when by T its coefficient grew at least this factor
TAKEOFF = 4.0
QUICK_SEEDS = (0, 1, 2)
SEEDS = (0, 1, 2, 3, 4)


def half_time(path) -> float:
    """First (linearly interpolated) step at which ``path`` (T+1,) reaches half its
    last value; NaN if the last value is not positive or it is never reached."""
    x = np.asarray(path, dtype=float)
    h = 0.5 * x[-1]
    if not (np.isfinite(h) and h > 0) or x[0] >= h:
        return math.nan
    i = int(np.argmax(x >= h))
    if x[i] < h:
        return math.nan
    return (i - 1) + (h - x[i - 1]) / (x[i] - x[i - 1])


def rate(cfg: Config, n_j, which: str) -> np.ndarray:
    """c_j of the derivation: (n_j/n)(1 − 1/k)·A/ρ^{q−1}, A = (P−s)β^q (ST's Φ)
    or s α^q (the robust patch, for reference)."""
    A_N, A_R = race_strengths(cfg)
    A = A_N if which == "phi" else A_R
    return np.asarray(n_j, float) / cfg.n_train * (1 - 1 / cfg.k) * A / cfg.rho ** (cfg.q - 1)


def takeoff_job(cfg: Config, mode: str = "st") -> dict:
    """One run (a ``reffeat.sweep`` job) with a per-step callback recording ST's Φ_j
    or AT's Γ_j (C2, per class) at every step; per-class half-times."""
    prob = problem(cfg)
    U, V = prob.features
    F = V if mode == "st" else U
    j = np.arange(cfg.k)
    path = [(prob.W0 @ F.T)[j, :, j].max(axis=1)]

    def cb(step):
        path.append((step.W_next @ F.T)[j, :, j].max(axis=1))
    res = train(cfg, mode, prob, callback=cb, track_c4=False)
    P_ = np.array(path)                                             # (steps+1, k)
    x0, fin = P_[0], P_[-1]
    return {"config": cfg.to_dict(), "mode": mode,
            "n_j": np.bincount(prob.train[1], minlength=cfg.k).tolist(),
            "x0_j": x0.tolist(), "final_j": fin.tolist(),
            "took_off_j": [bool(0 < TAKEOFF * a <= b) for a, b in zip(x0, fin)],
            "t_half_j": [half_time(P_[:, c]) for c in range(cfg.k)],
            "stopped": res.stopped, "steps_done": res.steps_done}


def jobs(q: int, seeds) -> list:
    """(Config, mode) of one q: per mode the σ0 sweep and the η sweep (shared point once)."""
    out = []
    for mode in ("st", "at"):
        g = GRIDS[(q, mode)]
        cfgs = {}
        for s in seeds:
            base = dict(BASE, q=float(q), alpha=ALPHA[mode], seed=int(s))
            for s0 in g["sigma0s"]:
                cfgs[(s, s0, g["eta_ref"])] = Config(**base, sigma0=s0, eta=g["eta_ref"],
                                                     T=g["T_ref"], log_every=g["T_ref"])
            for eta in g["etas"]:
                T = int(round(g["eta_ref"] * g["T_ref"] / eta))
                cfgs[(s, g["sigma0_ref"], eta)] = Config(**base, sigma0=g["sigma0_ref"], eta=eta,
                                                         T=T, log_every=T)
        out += [(c, mode) for c in cfgs.values()]
    return out


def _t_interval(vals):
    """Mean and 95% t-interval of per-seed values (NaNs dropped)."""
    from scipy import stats
    v = np.asarray([x for x in vals if np.isfinite(x)], float)
    if v.size == 0:
        return math.nan, (math.nan, math.nan), 0
    if v.size == 1:
        return float(v[0]), (math.nan, math.nan), 1
    half = stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
    return float(v.mean()), (float(v.mean() - half), float(v.mean() + half)), int(v.size)


def _slope(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        return math.nan
    return float(np.polyfit(x[ok], y[ok], 1)[0])


def _points(records, mode, sweep, g, seed):
    """(x, t½_j) of the classes that took off, for one seed's sweep."""
    xs, ts = [], []
    for r in records:
        c = r["config"]
        if r["mode"] != mode or c["seed"] != seed:
            continue
        if (sweep == "sigma0" and c["eta"] != g["eta_ref"]) or (sweep == "eta" and c["sigma0"] != g["sigma0_ref"]):
            continue
        for ok, th in zip(r["took_off_j"], r["t_half_j"]):
            if ok and np.isfinite(th) and th > 0:
                xs.append(c[sweep])
                ts.append(th)
    return xs, ts


def analyse(q: int, records: list) -> dict:
    """Per-seed log-log slopes of the per-class half-times (σ0 and η sweeps, ST's Φ_j
    and AT's Γ_j), their means and 95% intervals, the predicted exponents and
    the coefficient check."""
    seeds = sorted({r["config"]["seed"] for r in records})
    out = {"q": q, "seeds": seeds, "grids": {m: GRIDS[(q, m)] for m in ("st", "at")}, "rows": {}}
    preds = {"sigma0": -(q - 2.0), "eta": -1.0}
    for mode in ("st", "at"):
        g = GRIDS[(q, mode)]
        for sweep in ("sigma0", "eta"):
            per_seed, points = [], []
            for s in seeds:
                xs, ts = _points(records, mode, sweep, g, s)
                points.append((xs, ts))
                per_seed.append(_slope(np.log(xs), np.log(ts)) if len(set(xs)) >= 2 else math.nan)
            mean, ci, n = _t_interval(per_seed)
            row = {"per_seed": per_seed, "mean": mean, "ci": ci, "n": n, "predicted": preds[sweep],
                   "points": points}
            if q == 2 and sweep == "sigma0":
                row["predicted_note"] = "0 (logarithmic law)"
            out["rows"][f"{mode}_{sweep}"] = row
    g = GRIDS[(q, "st")]
    # local exponent in σ0 (ST's Φ): the derivation fixes how t½_j depends on x₀_j —
    # g(x₀) = x₀^{−(q−2)}/((q−2)ηc_j) for q > 2, −ln x₀/ln(1+ηc_j) for q = 2 — but
    # not the σ0-independent remainder C_j (the phases after take-off); with C_j set to
    # the class's mean of t½_j − g(x₀_j), the same log-log fit on C_j + g(x₀_j) gives the
    # exponent the derivation predicts over this finite grid.
    loc = []
    for s_ in seeds:
        by_class = {}
        for r in records:
            cfg = Config(**r["config"])
            if r["mode"] != "st" or r["config"]["seed"] != s_ or cfg.eta != g["eta_ref"]:
                continue
            for c, (cj, x0, th, ok) in enumerate(zip(rate(cfg, r["n_j"], "phi"), r["x0_j"],
                                                     r["t_half_j"], r["took_off_j"])):
                if ok and np.isfinite(th) and x0 > 0:
                    a_ = cfg.eta * cj
                    # q > 2: the ODE's time from x0 to blow-up (reffeat.regime's integral);
                    # q = 2: the discrete map x <- (1 + a) x, whose rate is ln(1 + a), not a
                    gx = ode_time(x0, math.inf, q, a_) if q > 2 else -math.log(x0) / math.log1p(a_)
                    by_class.setdefault(c, []).append((cfg.sigma0, th, gx))
        xs, ts = [], []
        for pts in by_class.values():
            if len(pts) < 2:
                continue
            C = float(np.mean([th - gx for _, th, gx in pts]))
            for s0, _, gx in pts:
                if C + gx > 0:
                    xs.append(s0)
                    ts.append(C + gx)
        loc.append(_slope(np.log(xs), np.log(ts)) if len(set(xs)) >= 2 else math.nan)
    out["rows"]["st_sigma0"]["predicted_local"] = float(np.nanmean(loc)) if np.any(np.isfinite(loc)) else math.nan
    if q == 2:   # η, exponential phase of the discrete map: −ηc/((1+ηc) ln(1+ηc))
        loc_e = [-a / ((1 + a) * math.log1p(a))
                 for r in records if r["mode"] == "st" and r["config"]["sigma0"] == g["sigma0_ref"]
                 for a in Config(**r["config"]).eta * rate(Config(**r["config"]), r["n_j"], "phi")]
        out["rows"]["st_eta"]["predicted_local"] = float(np.mean(loc_e)) if loc_e else math.nan
    # coefficient check for ST's Φ per class over the σ0 sweep: slope 1 (q=3) / −1 (q=2)
    per_seed = []
    for s in seeds:
        X, Y = [], []
        for r in records:
            cfg = Config(**r["config"])
            if r["mode"] != "st" or r["config"]["seed"] != s or cfg.eta != g["eta_ref"]:
                continue
            c = rate(cfg, r["n_j"], "phi")
            for cj, x0, th, ok in zip(c, r["x0_j"], r["t_half_j"], r["took_off_j"]):
                if not ok or not np.isfinite(th):
                    continue
                if q > 2:
                    X.append(x0 ** -(q - 2))
                    Y.append((q - 2) * cfg.eta * cj * th)
                else:
                    X.append(math.log(x0))
                    Y.append(math.log1p(cfg.eta * cj) * th)
        per_seed.append(_slope(X, Y))
    mean, ci, n = _t_interval(per_seed)
    out["coefficient"] = {"per_seed": per_seed, "mean": mean, "ci": ci, "n": n,
                          "predicted": 1.0 if q > 2 else -1.0,
                          "what": ("(q−2)·η·c_j·t½_j against x₀_j^{−(q−2)}" if q > 2 else
                                   "ln(1+η c_j)·t½_j against ln x₀_j")}
    out["stopped"] = sorted({r["stopped"] for r in records if r["stopped"]})
    out["classes"] = {m: (sum(sum(r["took_off_j"]) for r in records if r["mode"] == m),
                          sum(len(r["took_off_j"]) for r in records if r["mode"] == m))
                      for m in ("st", "at")}
    return out


def run(seeds=SEEDS, qs=(2, 3), runner=None) -> dict:
    """The take-off runs of each q (jobs of ``runner``, see ``common.as_runner``) and their analysis."""
    from .common import as_runner
    res = {}
    for q in qs:
        js = jobs(q, seeds)
        recs = as_runner(runner).map(takeoff_job, [c for c, _ in js], [{"mode": m} for _, m in js],
                                     label=f"scaling q={q}")
        res[q] = {"analysis": analyse(q, recs), "records": recs}
    return res


# ---------------------------------------------------------------- report
def _ci(row):
    lo, hi = row["ci"]
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{row['mean']:.3f}"
    return f"{row['mean']:.3f} [{lo:.3f}, {hi:.3f}]"


def _agree(row, pred):
    lo, hi = row["ci"]
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "—"
    if lo <= pred <= hi:
        return "agrees (inside the interval)"
    off = abs(pred - row["mean"])
    rel = f" ({off / abs(pred) * 100:.2g}% of the prediction)" if pred != 0 else ""
    return f"disagrees: off by {off:.2g}{rel}"


def markdown(res: dict, figures: dict) -> str:
    L = ["## Scaling", "",
         "t½ = the step at which ST's Φ_j (C2, per class) — and AT's Γ_j — first reaches half its value at T, "
         "measured with a per-step callback; log t½ fitted against log σ0 (η fixed) and log η (σ0 fixed, "
         "η·T fixed) per seed over the classes that took off; the table gives the mean slope over seeds and "
         "its 95% t-interval, beside the "
         "exponent derived in `reffeat/verify/scaling.py` (RC4: blow-up time ∝ 1/(η A x₀^{q−2}) for q > 2, "
         "x₀ ∝ σ0; exponential growth with t = ln(x₁/x₀)/ln(1+ηc) for q = 2). Runs: "
         + ", ".join(f"{k}={v}" for k, v in BASE.items())
         + f"; α = {ALPHA['st']:g} for ST (a clean race, RC1) and {ALPHA['at']:g} for AT.", ""]
    from .report import md_table
    rows = []
    for q, r in res.items():
        an = r["analysis"]
        for key, label in (("st_sigma0", "ST Φ, σ0"), ("st_eta", "ST Φ, η"),
                           ("at_sigma0", "AT Γ, σ0"), ("at_eta", "AT Γ, η")):
            row = an["rows"][key]
            pred = row["predicted"]
            ptxt = f"{pred:g}" if "predicted_note" not in row else row["predicted_note"]
            verdict = "asymptotic: " + _agree(row, pred)
            if "predicted_local" in row:
                loc = row["predicted_local"]
                ptxt += f"; on this grid {loc:.3f}"
                verdict += f"; on this grid: {_agree(row, loc)}"
            sweep = key.split("_")[1]
            g = an["grids"][key.split("_")[0]]
            grid = (f"σ0 ∈ {list(g['sigma0s'])}, η = {g['eta_ref']}" if sweep == "sigma0" else
                    f"η ∈ {list(g['etas'])}, σ0 = {g['sigma0_ref']}")
            rows.append([f"q = {q}", label, grid, _ci(row), ptxt, verdict])
    L.append(md_table(["q", "exponent of t½ in", "grid", "measured slope (95% CI, seeds)",
                       "predicted", "verdict"], rows))
    L.append("")
    L.append("\"Asymptotic\" is the exponent for x₀ → 0 (or η → 0) alone. \"On this grid\" for σ0 adds "
             "the σ0-independent remainder of t½ (the phases after take-off, not predicted: set per class to "
             "its mean) and refits the same log-log line to the predicted times; for η with q = 2 it is the "
             "discrete map's local exponent −ηc/((1+ηc) ln(1+ηc)) in the exponential phase. ST's η exponent "
             "sits a few % above −1 because gradient descent with a finite step lags gradient flow (the "
             "Euler step x + ηc x^{q−1} under-shoots a convex increasing solution), a correction the "
             "flow-limit derivation leaves out; AT's rows have wide intervals because only the classes "
             "whose robust coefficient took off by T enter.")
    L.append("")
    L.append("Coefficient check (ST's Φ, per class, σ0 sweep; the rate c_j = (n_j/n)(1 − 1/k)(P − s)β^q/ρ^{q−1} "
             "comes from the derivation, nothing is fitted):")
    L.append("")
    crow = []
    for q, r in res.items():
        c = r["analysis"]["coefficient"]
        crow.append([f"q = {q}", c["what"], _ci(c), f"{c['predicted']:g}", _agree(c, c["predicted"])])
    L.append(md_table(["q", "regression", "measured slope (95% CI)", "predicted", "verdict"], crow))
    L.append("")
    for q, r in res.items():
        an = r["analysis"]
        if an["stopped"]:
            L.append(f"- q = {q}: some runs stopped early: {an['stopped'][:3]}")
        for m, (ok, tot) in an["classes"].items():
            if ok < tot:
                L.append(f"- q = {q}, {m.upper()}: {tot - ok} of {tot} (run, class) pairs did not take off "
                         f"(coefficient grown < {TAKEOFF:g}× at T) and are left out of the fits")
    if "scaling" in figures:
        L.append(f"\n![scaling]({figures['scaling']})")
    L.append("")
    return "\n".join(L)


def figure(res: dict, out_dir: str, name: str = "verify_scaling.png") -> dict:
    """t½ against σ0 and η (log-log, every seed), with the fitted mean slope and the
    predicted slope drawn through the data's centre."""
    import os

    from reffeat.plots import pyplot, save_figure
    plt = pyplot()
    qs = list(res)
    fig, axes = plt.subplots(len(qs), 2, figsize=(11, 3.8 * len(qs)), squeeze=False)
    for i, q in enumerate(qs):
        an = res[q]["analysis"]
        for jcol, sweep in enumerate(("sigma0", "eta")):
            ax = axes[i][jcol]
            for mode, col, mk in (("st", "tab:blue", "o"), ("at", "tab:red", "s")):
                row = an["rows"][f"{mode}_{sweep}"]
                allx, ally = [], []
                for si, (xs, ts) in enumerate(row["points"]):
                    ax.loglog(xs, ts, mk, color=col, ms=4, alpha=0.6,
                              label=f"{'ST Φ' if mode == 'st' else 'AT Γ'} t½ (seeds)" if si == 0 else None)
                    allx += list(xs)
                    ally += list(ts)
                allx, ally = np.asarray(allx, float), np.asarray(ally, float)
                ok = np.isfinite(ally) & (ally > 0)
                if ok.sum() >= 2:
                    cx, cy = np.exp(np.log(allx[ok]).mean()), np.exp(np.log(ally[ok]).mean())
                    xx = np.array([allx[ok].min(), allx[ok].max()])
                    ax.loglog(xx, cy * (xx / cx) ** row["mean"], "-", color=col, lw=1.5,
                              label=f"fit, slope {row['mean']:.2f}")
                    pred = row.get("predicted_local", row["predicted"])
                    ax.loglog(xx, cy * (xx / cx) ** pred, ":", color=col, lw=1.5,
                              label=f"predicted slope {pred:.2f}")
            ax.set_xlabel("σ0 (η fixed)" if sweep == "sigma0" else "η (σ0 fixed, η·T fixed)")
            ax.set_ylabel("t½ (steps)")
            ax.set_title(f"q = {q}: time to half the final coefficient vs "
                         f"{'σ0' if sweep == 'sigma0' else 'η'} [seeds {an['seeds']}]", fontsize=9)
            ax.legend(fontsize=7)
    fig.suptitle("Scaling of the take-off time (ST's Φ, AT's Γ): measured vs RC4's exponents", y=1.01)
    fig.tight_layout()
    path = os.path.join(out_dir, name)
    save_figure(fig, path)
    plt.close(fig)
    return {"scaling": name}


JSON_NAME = "scaling.json"


def _title(quick: bool) -> str:
    cmd = f"`python -m reffeat.verify --only scaling{' --quick' if quick else ''} --out DIR`"
    return f"## Scaling\n\nRegenerate this section alone with {cmd}.\n"


def section(quick: bool, runner, fig_dir: str, rel, out_dir: str) -> str:
    """Run the section, write its figure and ``scaling.json`` (lossless strict JSON,
    ``reffeat.output.encode(..., lossless=True)``) into ``out_dir``; return its Markdown (figure link
    made relative by ``rel``)."""
    import os
    res = run(seeds=QUICK_SEEDS if quick else SEEDS, runner=runner)
    os.makedirs(fig_dir, exist_ok=True)
    figs = figure(res, fig_dir)
    stored = {"quick": quick, "figures": figs, "result": {str(q): r for q, r in res.items()}}
    write_section_json(out_dir, JSON_NAME, stored)
    return markdown(res, {k: rel(os.path.join(fig_dir, v)) for k, v in figs.items()}).replace(
        "## Scaling\n", _title(quick), 1)


def section_from_json(out_dir: str, fig_dir: str, rel) -> str | None:
    """The section's Markdown from the ``scaling.json`` an earlier run left in
    ``out_dir`` (None if there is none), so ``--only`` runs of other sections keep it."""
    import os
    stored = read_section_json(out_dir, JSON_NAME)
    if stored is None:
        return None
    res = {int(q): r for q, r in stored["result"].items()}
    figs = {k: rel(os.path.join(fig_dir, v)) for k, v in stored["figures"].items()}
    return markdown(res, figs).replace("## Scaling\n", _title(stored["quick"]), 1)
