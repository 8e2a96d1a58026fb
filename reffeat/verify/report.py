"""REPORT.md and the figures of the verify suite.

Pure formatting: every function takes the result dicts produced by the claim
checks and the sweeps and returns Markdown text or writes one PNG. Figures
are named ``verify_*.png``.
"""

from __future__ import annotations

import math

import numpy as np

from reffeat.plots import pyplot as _plt
from reffeat.plots import save_figure

from .common import ClaimResult


# ---------------------------------------------------------------- Markdown helpers
def fmt(x, digits: int = 3) -> str:
    """A number for a table cell ('—' for None/NaN, 'inf' for inf)."""
    if x is None:
        return "—"
    try:
        xf = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(xf):
        return "—"
    if math.isinf(xf):
        return "inf" if xf > 0 else "-inf"
    if abs(xf) < 1e-12:
        xf = 0.0
    if xf != 0 and (abs(xf) < 10 ** -digits or abs(xf) >= 10 ** 5):
        return f"{xf:.{max(digits - 1, 1)}e}"
    return f"{xf:.{digits}f}"


def md_table(header, rows) -> str:
    """A GitHub Markdown table from a header list and rows of cells."""
    head = "| " + " | ".join(str(h) for h in header) + " |"
    sep = "|" + "|".join("---" for _ in header) + "|"
    body = ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join([head, sep] + body)


def claim_table(res: ClaimResult) -> str:
    """Per-seed values, mean ± std, [min, max] of each quantity and the per-seed verdict."""
    header = ["quantity", "mean ± std", "[min, max]"] + [f"s{s}" for s in res.seeds]
    rows = []
    for name, st in res.stats().items():
        rows.append([name, f"{fmt(st.mean)} ± {fmt(st.std)}", f"[{fmt(st.lo)}, {fmt(st.hi)}]"]
                    + [fmt(v) for v in st.values])
    rows.append(["**holds (V1)**", res.describe(), ""] + ["✓" if h else "✗" for h in res.holds])
    if getattr(res, "holds_v2", None) is not None:
        rows.append(["**holds (V2)**", res.describe_v2(), ""] + ["✓" if h else "✗" for h in res.holds_v2])
    return md_table(header, rows)


def verdict_word(res: ClaimResult) -> str:
    """SPEC V1: count, fraction, 95% Wilson interval and the verdict word; then,
    where the claim has one, the same under SPEC V2 ("V1: …<br>V2: …")."""
    v2 = res.describe_v2() if hasattr(res, "describe_v2") else None
    return res.describe() if v2 is None else f"V1: {res.describe()}<br>V2: {v2}"


def summary_table(results: dict) -> str:
    """results: regime label -> {claim name -> ClaimResult}. One row per claim."""
    regimes = list(results)
    names = []
    for reg in regimes:
        for n in results[reg]:
            if n not in names:
                names.append(n)
    rows = []
    for n in names:
        rows.append([n] + [verdict_word(results[r][n]) if n in results[r] else "—" for r in regimes])
    return md_table(["claim"] + regimes, rows)


def variant_table(var: dict, stats_fn) -> str:
    header = ["variant", "Γ(AT)", "Φ(AT)", "clean(AT)", "robust(AT)", "robust(ST)", "E3(AT)",
              "blow-up", "P3", "P4", "P1–P4 all"]
    rows = []
    for row in var["rows"]:
        s = stats_fn(row)
        n = len(row["seeds"])

        def pm(key, s=s):
            return f"{fmt(s[key][0], 2)} ± {fmt(s[key][1], 2)}"

        def frac(key, s=s, n=n):
            return f"{round(s[key] * n)}/{n}"
        rows.append([row["label"], pm("at_gamma"), pm("at_phi"), pm("at_clean"), pm("at_robust"),
                     pm("st_robust"), pm("at_e3"), frac("blew_up"), frac("P3"), frac("P4"),
                     frac("all_P")])
    return md_table(header, rows)


# ---------------------------------------------------------------- figures
def _save(fig, path):
    """Atomic PNG write (reffeat.plots.save_figure), then close the figure."""
    save_figure(fig, path)
    _plt().close(fig)
    return path


def fig_claims(results: dict, path: str) -> str:
    """Per-seed Γ, Φ and robust accuracy of ST vs AT in each regime."""
    plt = _plt()
    regs = [r for r in results if "P3" in results[r]]
    fig, axes = plt.subplots(len(regs), 3, figsize=(13, 3.2 * len(regs)), squeeze=False)
    for i, reg in enumerate(regs):
        p3, p4 = results[reg]["P3"], results[reg]["P4"]
        seeds = np.arange(len(p3.seeds))
        for ax, (key_st, key_at, title, log) in zip(axes[i], (
                ("Γ(ST)", "Γ(AT)", "Γ = mean_j max_r ⟨w_jr,u_j⟩", True),
                ("Φ(ST)", "Φ(AT)", "Φ = mean_j max_r ⟨w_jr,v_j⟩", True),
                ("robust acc (ST)", "robust acc (AT)", "robust accuracy (E2)", False))):
            src = p4 if "acc" in key_st else p3
            ax.plot(seeds, src.quantities[key_st], "o", color="tab:blue", label="ST")
            ax.plot(seeds, src.quantities[key_at], "s", color="tab:red", label="AT")
            for s, h in zip(seeds, (p4 if "acc" in key_st else p3).holds):
                ax.axvspan(s - 0.4, s + 0.4, color="tab:green" if h else "tab:gray", alpha=0.12, lw=0)
            if log:
                ax.set_yscale("log")
            ax.set_xticks(seeds, [str(s) for s in p3.seeds])
            ax.set_xlabel("seed (green band: claim holds)")
            ax.set_title(f"{title}\n[{reg}]", fontsize=9)
            ax.legend(fontsize=8)
    fig.suptitle("P3 (Γ, Φ) and P4 (robust accuracy): per seed, ST vs AT", y=1.02)
    fig.tight_layout()
    return _save(fig, path)


def fig_m1(records, cfg, m1_res, path: str) -> str:
    """Φ_j(t), Γ_j(t) of ST for every seed and class (from C4 paths), with the ODE prediction."""
    from .m1 import race_strengths
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(18, 4.6))
    fig.subplots_adjust(wspace=0.32)
    ax = axes[2]
    if m1_res is not None and m1_res.extra.get("race_j"):
        Rj = np.asarray(m1_res.extra["race_j"])
        gg = np.asarray(m1_res.extra["gamma_growth_j"])
        ax.scatter(Rj, gg, s=14, c=np.where(gg >= 4, "tab:blue", "tab:red"))
        ax.axvline(1, color="k", ls="--", lw=1, label="R_j = 1 (the predicted boundary)")
        ax.axhline(4, color="gray", ls=":", lw=1, label="Γ_j grew 4× (ST learned u_j)")
        # linear axes from 0: at q = 2 every R_j is the same number ((P−s)β²/(sα²)), so
        # a log axis would only crowd its tick labels around one point
        ax.set_xlim(0, 1.15 * max(float(Rj.max()), 1.0))
        ax.set_ylim(0, 1.15 * max(float(gg.max()), 4.0))
        ax.set_xlabel("R_j = (P−s)β^q Φ_j(0)^(q−2) / (sα^q Γ_j(0)^(q−2))")
        ax.set_ylabel("Γ_j(T) / Γ_j(0) after ST")
        same = " (q = 2: the same R_j for every class)" if cfg.q == 2 else ""
        ax.set_title(f"M1: the race class by class, all seeds{same}", fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
    ax = axes[0]
    for r in records:
        ph, ga = np.asarray(r["st"]["phi_path"]), np.asarray(r["st"]["gamma_path"])
        t = np.arange(len(ph))
        ax.plot(t, ph.mean(axis=1), color="tab:red", alpha=0.5, lw=1)
        ax.plot(t, ga.mean(axis=1), color="tab:blue", alpha=0.5, lw=1)
    # ODE of the tensor-power picture from the mean initial scale
    A_N, A_R = race_strengths(cfg)
    k = cfg.k
    c = cfg.eta * (1 / k) * (1 - 1 / k) / cfg.rho ** (cfg.q - 1)
    x0p = np.mean([np.mean(np.asarray(r["st"]["phi_path"])[0]) for r in records])
    x0g = np.mean([np.mean(np.asarray(r["st"]["gamma_path"])[0]) for r in records])
    T = len(np.asarray(records[0]["st"]["phi_path"]))
    for x0, A, col, lab in ((x0p, A_N, "darkred", "Φ"), (x0g, A_R, "navy", "Γ")):
        xs, x = [x0], x0
        for _ in range(T - 1):
            x = min(x + c * A * x ** (cfg.q - 1), 10.0)
            xs.append(x)
        ax.plot(np.arange(T), xs, "--", color=col, lw=1.5,
                label=f"{lab} alone, tensor-power ODE (leaves the axis: no saturation)")
    ax.plot([], [], color="tab:red", label="Φ (mean_j), ST, per seed")
    ax.plot([], [], color="tab:blue", label="Γ (mean_j), ST, per seed")
    ax.set_yscale("log")
    ax.set_ylim(5e-3, 5)
    ax.set_xlabel("step")
    ax.set_ylabel("Φ_j = max_r ⟨w_j,r, v_j⟩, Γ_j = max_r ⟨w_j,r, u_j⟩\n(C2, mean over classes j; log scale)")
    ax.set_title(f"M1: the race in ST  ((P−s)β^q = {A_N:.3g} vs sα^q = {A_R:.3g})", fontsize=10)
    ax.legend(fontsize=7)
    ax = axes[1]
    parts = np.stack([np.asarray(r["st"]["c4_phi_sum"]).mean(axis=3) for r in records])  # (seeds,S,2,3)
    cum = np.cumsum(parts, axis=1).mean(axis=0)
    names = [("own", "R"), ("own", "N"), ("own", "noise"), ("other", "R"), ("other", "N"), ("other", "noise")]
    for a in range(2):
        for b in range(3):
            ax.plot(cum[:, a, b], label=f"{names[3 * a + b][0]}-class, {names[3 * a + b][1]} patches",
                    ls="-" if a == 0 else "--")
    ax.set_xlabel("step")
    ax.set_ylabel("cumulative C4 part of ΔΦ\n(Σ_r, mean over j and seeds)")
    ax.set_title("M1: C4 decomposition of Φ's growth in ST", fontsize=10)
    ax.legend(fontsize=7)
    return _save(fig, path)


def fig_m2(reg_records: dict, path: str) -> str:
    """AT: cumulative C4 parts of ΔΦ and the training E3 over time, per regime."""
    plt = _plt()
    regs = list(reg_records)
    fig, axes = plt.subplots(2, len(regs), figsize=(6 * len(regs), 7), squeeze=False)
    for i, reg in enumerate(regs):
        recs = [r for r in reg_records[reg] if r["at"].get("c4_phi_sum") is not None]
        if not recs:
            continue
        ax = axes[0, i]
        L = min(len(r["at"]["c4_phi_sum"]) for r in recs)
        parts = np.stack([np.asarray(r["at"]["c4_phi_sum"])[:L].mean(axis=3) for r in recs])
        cum = np.cumsum(parts, axis=1)                              # (seeds, S, 2, 3)
        cols = {"R": "tab:blue", "N": "tab:red", "noise": "tab:gray"}
        for a, who in enumerate(("own", "other")):
            for b, pt in enumerate(("R", "N", "noise")):
                m = cum[:, :, a, b]
                if np.allclose(m, 0):
                    continue
                ax.plot(np.median(m, axis=0), color=cols[pt], ls="-" if a == 0 else "--",
                        label=f"{who}-class, {pt} patches (median over seeds)")
        ax.plot(np.median(cum.sum(axis=3)[:, :, 0], axis=0), color="k", lw=2, label="own-class total")
        ax.plot(np.median(cum.sum(axis=3)[:, :, 1], axis=0), color="k", lw=2, ls="--", label="other-class total")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"M2: cumulative C4 parts of ΔΦ in AT [{reg}]", fontsize=10)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
        ax = axes[1, i]
        for r in recs:
            ax.plot(r["at"]["snap_steps"], r["at"]["e3_train_N"], "-o", ms=3, alpha=0.6,
                    label=f"seed {r['seed']}")
        ax.axhline(0.5, color="k", lw=0.5, ls=":")
        ax.set_ylim(-1.05, 1.05)
        ax.set_xlabel("step")
        ax.set_ylabel("E3 of the training FGSM perturbation (N patches)")
        ax.legend(fontsize=6, ncol=2)
    return _save(fig, path)


def fig_m3(m3_res: ClaimResult, path: str) -> str:
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ax = axes[0]
    for steps, pN, pR in zip(m3_res.extra["snap_steps"], m3_res.extra["e3_train_N_path"],
                             m3_res.extra["e3_train_R_path"]):
        ax.plot(steps, pN, color="tab:red", alpha=0.5)
        ax.plot(steps, pR, color="tab:blue", alpha=0.5)
    ax.plot([], [], color="tab:red", label="non-robust patches")
    ax.plot([], [], color="tab:blue", label="robust patch")
    ax.set_title("M3: E3 of the one-step perturbation of ST over training", fontsize=10)
    ax.set_xlabel("training step")
    ax.set_ylim(-1.05, 1.05)
    ax.legend(fontsize=8)
    ax = axes[1]
    for traj in m3_res.extra["pgd_traj"]:
        s = [t["steps"] for t in traj]
        ax.plot(s, [t["e3"] for t in traj], color="tab:red", alpha=0.5)
        ax.plot(s, [t["b_new_class"] for t in traj], color="tab:green", alpha=0.5)
        ax.plot(s, [t["flipped"] for t in traj], color="k", alpha=0.3, ls=":")
    ax.plot([], [], color="tab:red", label="E3: ⟨δ,−v_y⟩/(ε‖v_y‖₁)")
    ax.plot([], [], color="tab:green", label="⟨δ,+v_ŷ⟩/(ε‖v_ŷ‖₁), flipped points")
    ax.plot([], [], color="k", ls=":", label="fraction flipped")
    ax.set_xscale("log")
    ax.set_xlabel("PGD iterations (γ = ε/4, random start)")
    ax.set_title("M3: PGD on the ST model departs from −v_y", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[2]
    q = m3_res.quantities
    labels = ["clean", "−ε·sign(v_y)", "targeted\nε·sign(v_j−v_y)", "PGD-20"]
    keys = [None, "ST acc under −ε·sign(v_y)", "ST acc under targeted ε·sign(v_j−v_y)", None]
    vals = []
    for k in keys:
        vals.append(np.asarray(q[k], float) if k else None)
    pgd = 1 - np.asarray(q["PGD-20 flipped fraction"], float)
    vals[3] = pgd
    vals[0] = np.ones_like(pgd) * np.nan
    data = [v for v in vals[1:]]
    ax.boxplot(data)
    ax.set_xticks(np.arange(1, len(data) + 1), labels[1:])
    for i, v in enumerate(data):
        ax.plot(np.full(len(v), i + 1) + np.linspace(-0.1, 0.1, len(v)), v, "o", ms=3, alpha=0.6)
    ax.set_ylabel("ST accuracy (per seed)")
    ax.set_title("M3: ST under the three attacks", fontsize=10)
    return _save(fig, path)


def fig_st_preference(sw: dict, path: str) -> str:
    from .sweeps import preference_boundary
    plt = _plt()
    qs = sw["q"]
    fig, axes = plt.subplots(1, len(qs), figsize=(5 * len(qs), 4), squeeze=False)
    P = np.asarray(sw["P"], float)
    R = np.asarray(sw["ratio"], float)
    for i, q in enumerate(qs):
        ax = axes[0, i]
        val = np.log10(np.nanmedian(sw["phi_over_gamma"][i], axis=2))      # (P, ratio)
        im = ax.pcolormesh(np.arange(len(P) + 1) - 0.5, np.arange(len(R) + 1) - 0.5, val.T,
                           cmap="RdBu_r", vmin=-2, vmax=2, shading="flat")
        # analytic curve in index coordinates (interpolate β/α onto the row index)
        Pf = np.linspace(P.min(), P.max(), 200)
        bf = preference_boundary(Pf, sw["s"], q)
        xi = np.interp(Pf, P, np.arange(len(P)))
        yi = np.interp(bf, R, np.arange(len(R)), left=-0.5, right=len(R) - 0.5)
        ax.plot(xi, yi, "k-", lw=2, label="(P−s)β^q = sα^q")
        for a in range(len(P)):
            for b in range(len(R)):
                if np.isfinite(val[a, b]):
                    ax.text(a, b, f"{val[a, b]:.1f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(np.arange(len(P)), [str(int(p)) for p in P])
        ax.set_yticks(np.arange(len(R)), [f"{r:.2f}" for r in R])
        ax.set_xlabel("P (patches)")
        ax.set_ylabel("β/α")
        ax.set_title(f"q = {q}, T = {sw['T_of_q'][str(q)]}: log10 Φ/Γ after ST", fontsize=10)
        ax.legend(fontsize=8, loc="upper right")
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle("ST preference: red = non-robust feature wins, blue = robust feature wins "
                 f"(α = {sw['alpha']}, s = {sw['s']}, median over {len(sw['seeds'])} seeds)", fontsize=10)
    return _save(fig, path)


def fig_susceptibility(sw: dict, path: str) -> str:
    from .sweeps import susceptibility_boundary
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    E = np.asarray(sw["eps"], float)
    D = np.asarray(sw["d_N"], float)
    val = np.nanmean(sw["robust_acc"], axis=2)                         # (dN, eps)
    im = ax.pcolormesh(np.arange(len(E) + 1) - 0.5, np.arange(len(D) + 1) - 0.5, val,
                       cmap="viridis", vmin=0, vmax=1, shading="flat")
    Df = np.geomspace(D.min(), D.max(), 200)
    ef = susceptibility_boundary(Df, sw["beta"])
    ax.plot(np.interp(ef, E, np.arange(len(E)), left=-0.5, right=len(E) - 0.5),
            np.interp(np.log(Df), np.log(D), np.arange(len(D))), "w-", lw=2, label="ε·√d_N = β")
    for a in range(len(D)):
        for b in range(len(E)):
            ax.text(b, a, f"{val[a, b]:.2f}", ha="center", va="center", fontsize=7,
                    color="w" if val[a, b] < 0.5 else "k")
    ax.set_xticks(np.arange(len(E)), [f"{e:g}" for e in E])
    ax.set_yticks(np.arange(len(D)), [str(int(d)) for d in D])
    ax.set_xlabel("ε (ℓ∞)")
    ax.set_ylabel("d_N")
    ax.legend(fontsize=8, loc="upper right")
    fig.colorbar(im, ax=ax, label="ST robust accuracy (E2)")
    ax.set_title(f"Susceptibility of ST (β = {sw['beta']}, mean over {len(sw['seeds'])} seeds)", fontsize=10)
    return _save(fig, path)


def fig_at_success(sw: dict, path: str) -> str:
    """AT's attacked (E2) and certified (E5) robust accuracy and the fraction of seeds
    with P4 over the (ε, α/ε) grid; RC6's predicted boundary (the cells where AT's
    learned reach is below the robust margin on a majority of seeds) drawn on each."""
    plt = _plt()
    E = np.asarray(sw["eps"], float)
    A = np.asarray(sw["alpha_ratio"], float)
    n = len(sw["seeds"])
    panels = [(np.nanmean(sw["at_robust_acc"], axis=2), "AT robust accuracy, attacked (E2), mean"),
              (np.nanmean(np.asarray(sw.get("at_certified_acc", np.full_like(sw["at_robust_acc"], np.nan)),
                                     float), axis=2), "AT robust accuracy, certified (E5), mean"),
              (np.nanmean(sw["P4"], axis=2), "fraction of seeds where P4 holds (V1)")]
    rc6 = sw.get("rc6_met")
    rc6_frac = None if rc6 is None else np.nanmean(np.asarray(rc6, float), axis=2)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for ax, (val, lab) in zip(axes, panels):
        im = ax.pcolormesh(np.arange(len(E) + 1) - 0.5, np.arange(len(A) + 1) - 0.5, val.T,
                           cmap="viridis", vmin=0, vmax=1, shading="flat")
        for a in range(len(E)):
            for b in range(len(A)):
                v = val[a, b]
                ax.text(a, b, "—" if not np.isfinite(v) else f"{v:.2f}", ha="center", va="center",
                        fontsize=8, color="k" if np.isfinite(v) and v > 0.6 else "w")
        if rc6_frac is not None and np.isfinite(rc6_frac).all() and rc6_frac.min() < 0.5 < rc6_frac.max():
            ax.contour(np.arange(len(E)), np.arange(len(A)), rc6_frac.T, levels=[0.5], colors="red",
                       linewidths=2)
            ax.plot([], [], color="red", lw=2, label="RC6 boundary (met on half the seeds)")
        eb = sw["beta"] / math.sqrt(sw["d_N"])
        ax.axvline(np.interp(eb, E, np.arange(len(E)), left=-0.5, right=len(E) - 0.5), color="w",
                   lw=2, ls="--", label=f"RC2: ε·√d_N = β (ε = {eb:.3f})")
        ax.set_xticks(np.arange(len(E)), [f"{e:g}" for e in E])
        ax.set_yticks(np.arange(len(A)), [f"{a:g}" for a in A])
        ax.set_xlabel("attack radius ε (ℓ∞)")
        ax.set_ylabel("robust signal per unit of radius α/ε")
        ax.legend(fontsize=7, loc="upper right", framealpha=0.8)
        fig.colorbar(im, ax=ax)
        ax.set_title(lab, fontsize=10)
    fig.suptitle(f"AT success over ε and α/ε: {n} seed{'s' if n != 1 else ''} per cell "
                 f"(seeds {sw['seeds'][0]}–{sw['seeds'][-1]}), ℓ∞ threat", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def fig_stability(var: dict, labels, path: str) -> str:
    """Per-seed AT robust accuracy for the η rows (ηT fixed), blow-ups marked."""
    plt = _plt()
    rows = [r for r in var["rows"] if r["label"] in labels]
    seeds = rows[0]["seeds"]
    M = np.array([[run["at"]["robust_acc"] for run in r["runs"]] for r in rows])
    B = np.array([[run["at"]["blew_up"] for run in r["runs"]] for r in rows])
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(seeds), 0.5 + 0.55 * len(rows)))
    im = ax.imshow(M, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            ax.text(j, i, ("✗" if B[i, j] else "") + f"{M[i, j]:.2f}", ha="center", va="center",
                    fontsize=7, color="w" if M[i, j] < 0.5 else "k")
    ax.set_yticks(np.arange(len(rows)), [r["label"] for r in rows], fontsize=8)
    ax.set_xticks(np.arange(len(seeds)), [str(s) for s in seeds])
    ax.set_xlabel("seed   (✗ = loss blew up > 10 during AT)")
    fig.colorbar(im, ax=ax, label="AT robust accuracy (E2)")
    ax.set_title("Stability of one-step AT vs learning rate (η·T = 75 fixed)", fontsize=10)
    return _save(fig, path)
