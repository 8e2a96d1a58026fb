"""verify, section "Invariants": the quantities that proofs of feature learning
bound, tracked at every step of whole runs from the C5 trace (SPEC §6).

For each regime (presets default, q3, borderline; high-dim for the residual)
and a few seeds, ST and AT are trained with a per-step callback that keeps
W^{(t)} at every step, and ``reffeat.trace.coefficient_trace`` gives
γ, φ, ν, μ (and ζ, r in high-dim).  Checked, each with its measured maximum
over seeds, steps and neurons, the scale it is compared with, a verdict line
and a figure:

  cross terms   max |γ_{j,r,j'}(t)|, max |φ_{j,r,j'}(t)| over j' ≠ j, against
                σ0·sqrt(log(k·m)) — the scale of the initial cross terms (the
                largest of k·m·k Gaussians of s.d. σ0 is ≈ σ0·sqrt(2 log(k²m)));
                proofs of this kind keep them at that scale up to log factors.
                For ST they can only decrease: on clean data ⟨x_{i,p}, v_{j'}⟩
                = β·1[y_i = j', p ∈ N], so C3 gives Δφ_{j,r,j'} = −(η/n)
                Σ_{i: y_i = j'} logit_j σ'(·) β ≤ 0, and σ' = 0 stops the
                decrease once ⟨w_{j,r}, x_{i,p}⟩ ≤ 0: the change is bounded by
                the initial value plus one step.
  noise μ       max_{i,p} |⟨w^{(t)}_{j,r}, ξ_{i,p}⟩| against its initial value
                μ(0) and against the feature coefficient learned.
  Φ monotone    whether Φ_j = max_r ⟨w_{j,r}, v_j⟩ never decreases during ST's
                first phase (until Φ_j first reaches half its largest value).
                By C3 on clean data ΔΦ_{j,r} = (η/n) Σ_{i: y_i = j}
                (1 − logit_j) Σ_{p ∈ N} σ'(·) β ≥ 0 (noise is orthogonal to v_j),
                so it must hold at every step; a drop larger than rounding is a bug.
  AT residual   ‖r^{(t)}‖ of the C5 decomposition (high-dim only) against the
                own-class |γ_{j,r,j}|: how much of what AT learns lies outside
                span{u, v, ξ}.  For ST it is zero up to rounding.
"""

from __future__ import annotations

import math

import numpy as np

from reffeat import Config, problem, train
from reffeat import presets as _presets
from reffeat.trace import Recorder, noise_vectors

from .common import read_section_json, write_section_json

REGIMES = ("default", "q3", "borderline")


def preset_config(name: str, **overrides) -> Config:
    """Config of preset ``name`` of ``reffeat.presets`` with overrides."""
    return _presets.config(name, **overrides)


def cross_scale(cfg: Config) -> float:
    """σ0·sqrt(log(k·m)): the scale the cross terms are compared with."""
    return cfg.sigma0 * math.sqrt(math.log(cfg.k * cfg.m))


def traced_run(cfg: Config, mode: str, prob=None):
    """Train with a callback that keeps W at every step; return (TrainResult, Trace)."""
    prob = problem(cfg) if prob is None else prob
    rec = Recorder(1)
    res = train(cfg, mode, prob, callback=rec, track_c4=False)
    U, V = prob.features
    tr = rec.finish(res.steps_done, res.W, prob.W0, U, V, prob.train[0])
    return res, tr


def _summarise(tr, cfg: Config) -> dict:
    """Per-step maxima of the invariants from one trace (plain lists, small)."""
    k = cfg.k
    off = ~np.eye(k, dtype=bool)                                   # j' ≠ j
    mask = off[None, :, None, :]                                   # (1, k, 1, k)
    cross_g = np.abs(tr.gamma) * mask                              # diagonal j' = j zeroed
    cross_p = np.abs(tr.phi) * mask
    j = np.arange(k)
    own_g = tr.gamma[:, j, :, j].transpose(1, 0, 2)                 # (L, k, m) γ_{j,r,j}
    Phi = (tr.W @ tr.V.T)[:, j, :, j].transpose(1, 0, 2).max(axis=2)  # (L, k) Φ_j(t) (total)
    Gam = (tr.W @ tr.U.T)[:, j, :, j].transpose(1, 0, 2).max(axis=2)
    out = {
        "steps": tr.steps.tolist(),
        "cross_gamma": cross_g.reshape(len(tr.steps), -1).max(axis=1).tolist(),
        "cross_phi": cross_p.reshape(len(tr.steps), -1).max(axis=1).tolist(),
        "mu": tr.mu.reshape(len(tr.steps), -1).max(axis=1).tolist(),
        "own_gamma": np.abs(own_g).reshape(len(tr.steps), -1).max(axis=1).tolist(),
        "Phi_j": Phi.tolist(),
        "Gamma_j": Gam.tolist(),
        "nu": tr.nu.reshape(len(tr.steps), -1).max(axis=1).tolist(),
        "residual": (None if tr.residual is None
                     else tr.residual.reshape(len(tr.steps), -1).max(axis=1).tolist()),
    }
    return out


def monotone_first_phase(Phi_j) -> dict:
    """Φ_j(t) (L, k) over consecutive steps: in each class's first phase (t up to
    the first step where Φ_j ≥ ½ max_t Φ_j), the number of decreasing steps and
    the largest decrease (relative to max Φ_j)."""
    Phi_j = np.asarray(Phi_j)
    drops, worst, ends = 0, 0.0, []
    for c in range(Phi_j.shape[1]):
        x = Phi_j[:, c]
        end = int(np.argmax(x >= 0.5 * x.max())) if x.max() > 0 else len(x) - 1
        ends.append(end)
        d = np.diff(x[: end + 1])
        scale = max(abs(x).max(), 1e-300)
        bad = d < -1e-12 * scale                      # rounding of a sum of d terms
        drops += int(bad.sum())
        if d.size:
            worst = max(worst, float(-d.min() / scale))
    return {"decreasing_steps": drops, "largest_drop_rel": worst, "phase_end": ends}


def regime_job(cfg: Config, regime: str = "default") -> dict:
    """One (regime, seed): ST and AT traced; summaries only (a ``reffeat.sweep`` job:
    the result is shipped between processes and kept in the result store)."""
    name = regime
    prob = problem(cfg)
    out = {"regime": name, "seed": cfg.seed, "config": cfg.to_dict()}
    xi = noise_vectors(prob.train[0], *prob.features)
    for mode in ("st", "at"):
        res, tr = traced_run(cfg, mode, prob)
        s = _summarise(tr, cfg)
        s["stopped"] = res.stopped
        s["steps_done"] = res.steps_done
        if mode == "st":
            s["monotone"] = monotone_first_phase(s["Phi_j"])
        out[mode] = s
    out["has_noise"] = bool(np.any(xi))
    return out


def _verdict_le(measured: float, scale: float, what: str) -> str:
    if not (np.isfinite(measured) and np.isfinite(scale)) or scale <= 0:
        return f"{what}: not defined"
    r = measured / scale
    if r <= 1:
        return f"{what}: within the scale (max = {r:.2f} × scale)"
    return f"{what}: exceeds the scale by a factor {r:.1f}"


def analyse(records: list) -> dict:
    """Per regime: the measured maxima, their scales, ratios and verdict lines."""
    by = {}
    for rec in records:
        by.setdefault(rec["regime"], []).append(rec)
    out = {}
    for name, recs in by.items():
        cfg = Config(**recs[0]["config"])
        scale = cross_scale(cfg)
        row = {"seeds": [r["seed"] for r in recs], "scale_cross": scale, "config": recs[0]["config"]}
        for mode in ("st", "at"):
            cg = max(max(r[mode]["cross_gamma"]) for r in recs)
            cp = max(max(r[mode]["cross_phi"]) for r in recs)
            mu_max = max(max(r[mode]["mu"]) for r in recs)
            mu0 = max(r[mode]["mu"][0] for r in recs)
            feat = max(max(max(x) for x in r[mode]["Phi_j" if mode == "st" else "Gamma_j"]) for r in recs)
            row[mode] = {
                "cross_gamma_max": cg, "cross_phi_max": cp,
                "cross_gamma_ratio": cg / scale, "cross_phi_ratio": cp / scale,
                "verdict_cross_gamma": _verdict_le(cg, scale, f"{mode.upper()} |γ_{{j,r,j'}}|, j' ≠ j"),
                "verdict_cross_phi": _verdict_le(cp, scale, f"{mode.upper()} |φ_{{j,r,j'}}|, j' ≠ j"),
                "mu_max": mu_max, "mu_init": mu0,
                "mu_growth": mu_max / mu0 if mu0 > 0 else math.nan,
                "feature_max": feat,
                "stopped": [r[mode]["stopped"] for r in recs],
            }
            if not recs[0]["has_noise"]:
                row[mode]["verdict_mu"] = f"{mode.upper()} μ: no training noise (σ_ξ = 0), μ ≡ 0"
            else:
                g = row[mode]["mu_growth"]
                row[mode]["verdict_mu"] = (
                    f"{mode.upper()} μ: max μ(t) = {mu_max:.3g} = {g:.2f} × μ(0) and "
                    f"{mu_max / feat:.2f} × the largest {'Φ_j' if mode == 'st' else 'Γ_j'} "
                    + ("(memorisation stays at the initial scale)" if g <= 2 else
                       f"(noise memorised: μ grew {g:.1f}×)"))
            if recs[0][mode].get("residual") is not None:
                res_max = max(max(r[mode]["residual"]) for r in recs)
                own = max(max(r[mode]["own_gamma"]) for r in recs)
                row[mode]["residual_max"] = res_max
                row[mode]["own_gamma_max"] = own
                row[mode]["residual_ratio"] = res_max / own if own > 0 else math.nan
        mono = [r["st"]["monotone"] for r in recs]
        drops = sum(m["decreasing_steps"] for m in mono)
        worst = max(m["largest_drop_rel"] for m in mono)
        row["monotone"] = {"decreasing_steps": drops, "largest_drop_rel": worst,
                           "verdict": ("ST Φ_j monotone in the first phase: holds (no decreasing step)"
                                       if drops == 0 else
                                       f"ST Φ_j monotone in the first phase: FAILS ({drops} decreasing "
                                       f"steps, largest drop {worst:.2e} of max Φ_j)")}
        out[name] = row
    return out


def run(seeds=(0, 1, 2), regimes=REGIMES, runner=None, quick: bool = False) -> dict:
    """Trace runs of every regime and the high-dim residual run (jobs of ``runner``,
    see ``common.as_runner``); analysis and raw summaries."""
    from .common import as_runner
    cfgs, kws = [], []
    for name in tuple(regimes) + ("high-dim",):
        over = {"n_test": 100, "eval_restarts": 0}
        if quick and name != "high-dim":
            over["n_train"] = 40
        base = preset_config(name, **over)
        for s in seeds:
            cfgs.append(base.replace(seed=int(s)))
            kws.append({"regime": name})
    records = as_runner(runner).map(regime_job, cfgs, kws, label="invariants (traced ST+AT)")
    return {"analysis": analyse(records), "records": records}


# ---------------------------------------------------------------- report
def _fmt(x):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:.3g}"


def markdown(res: dict, figures: dict) -> str:
    """The "Invariants" section of REPORT.md."""
    an = res["analysis"]
    L = ["## Invariants", "",
         "The quantities proofs of feature learning bound, tracked at every step from the C5 trace "
         "(`reffeat.trace`; `reffeat/verify/invariants.py`), maxima over seeds "
         f"{an[next(iter(an))]['seeds']}, all steps and all neurons. Cross terms are the change since "
         "initialisation, γ_{j,r,j'} = ⟨w_{j,r}^{(t)} − w_{j,r}^{(0)}, u_{j'}⟩ (φ with v_{j'}), j' ≠ j, "
         "compared with σ0·sqrt(log(k·m)); μ = max_{i,p} |⟨w_{j,r}^{(t)}, ξ_{i,p}⟩| is compared with μ(0) "
         "and with the learned feature; Φ_j's monotonicity is checked over ST's first phase (until Φ_j "
         "first reaches half its largest value); the AT residual r^{(t)} of the C5 decomposition exists "
         "only where the n·P noise vectors are independent (high-dim).", ""]
    header = ["regime", "quantity", "ST max", "AT max", "scale", "ST / scale", "AT / scale"]
    rows = []
    for name, row in an.items():
        if name == "high-dim":
            continue
        sc = row["scale_cross"]
        rows.append([name, "cross |γ_{j,r,j'}|", _fmt(row["st"]["cross_gamma_max"]),
                     _fmt(row["at"]["cross_gamma_max"]), f"σ0·sqrt(log km) = {sc:.3g}",
                     _fmt(row["st"]["cross_gamma_ratio"]), _fmt(row["at"]["cross_gamma_ratio"])])
        rows.append([name, "cross |φ_{j,r,j'}|", _fmt(row["st"]["cross_phi_max"]),
                     _fmt(row["at"]["cross_phi_max"]), f"{sc:.3g}",
                     _fmt(row["st"]["cross_phi_ratio"]), _fmt(row["at"]["cross_phi_ratio"])])
        rows.append([name, "noise μ", _fmt(row["st"]["mu_max"]), _fmt(row["at"]["mu_max"]),
                     f"μ(0) = {_fmt(row['st']['mu_init'])}", _fmt(row["st"]["mu_growth"]),
                     _fmt(row["at"]["mu_growth"])])
        rows.append([name, "ST Φ_j decreasing steps (phase 1)", str(row["monotone"]["decreasing_steps"]),
                     "", "0", "", ""])
    from .report import md_table
    L.append(md_table(header, rows))
    L.append("")
    for name, row in an.items():
        if name == "high-dim":
            continue
        cfgd = row["config"]
        L.append(f"**{name}** (q = {cfgd['q']:g}, σ0 = {cfgd['sigma0']:g}, σ_ξ = {cfgd['sigma_xi']:g}, "
                 f"η = {cfgd['eta']:g}, T = {cfgd['T']}, n = {cfgd['n_train']}):")
        for mode in ("st", "at"):
            L.append(f"- {row[mode]['verdict_cross_gamma']}; {row[mode]['verdict_cross_phi']}")
            L.append(f"- {row[mode]['verdict_mu']}")
            stops = [s for s in row[mode]["stopped"] if s]
            if stops:
                L.append(f"- {mode.upper()} stopped early on {len(stops)} seed(s): {stops[0]}")
        L.append(f"- {row['monotone']['verdict']}")
        if name in figures:
            L.append(f"\n![invariants, {name}]({figures[name]})")
        L.append("")
    hd = an.get("high-dim")
    if hd:
        c = hd["config"]
        L.append(f"**AT residual (high-dim**: k = {c['k']}, P = {c['P']}, d = {c['k'] + c['d_N']}, "
                 f"n = {c['n_train']}, n·P = {c['n_train'] * c['P']} ≤ d − 2k = {c['d_N'] - c['k']}, "
                 f"σ_ξ = {c['sigma_xi']:g}, q = {c['q']:g}, η = {c['eta']:g}, T = {c['T']}):")
        L.append("")
        L.append(md_table(["mode", "max ‖r^{(t)}‖", "max \\|γ_{j,r,j}\\|", "‖r‖ / \\|γ\\|"], [
            [m.upper(), _fmt(hd[m].get("residual_max")), _fmt(hd[m].get("own_gamma_max")),
             _fmt(hd[m].get("residual_ratio"))] for m in ("st", "at")]))
        st_r, at_r = hd["st"].get("residual_max"), hd["at"].get("residual_ratio")
        L.append("")
        L.append(f"Verdict: ST's residual is {_fmt(st_r)} (zero up to rounding, as C5 says); AT's "
                 f"residual reaches {_fmt(at_r)} × its largest own-class γ — the part of what AT writes "
                 "into the weights that no signal–noise decomposition of the training data can express.")
        if "high-dim" in figures:
            L.append(f"\n![AT residual, high-dim]({figures['high-dim']})")
        L.append("")
    return "\n".join(L)


def figures(res: dict, out_dir: str, prefix: str = "verify_invariants") -> dict:
    """One figure per regime (cross terms, μ, Φ_j) and one for the high-dim residual."""
    import os

    from reffeat.plots import pyplot, save_figure
    plt = pyplot()
    written = {}
    by = {}
    for rec in res["records"]:
        by.setdefault(rec["regime"], []).append(rec)
    an = res["analysis"]
    for name, recs in by.items():
        row = an[name]
        path = os.path.join(out_dir, f"{prefix}_{name}.png")
        if name == "high-dim":
            fig, ax = plt.subplots(1, 1, figsize=(6, 3.6))
            for rec in recs:
                for mode, col in (("st", "tab:blue"), ("at", "tab:red")):
                    s = rec[mode]
                    lab = rec["seed"] == recs[0]["seed"]
                    ax.semilogy(s["steps"], np.maximum(s["residual"], 1e-18), color=col, lw=1,
                                label=f"{mode.upper()} max ‖r(t)‖" if lab else None)
                    ax.semilogy(s["steps"], np.maximum(s["own_gamma"], 1e-18), color=col, ls="--",
                                lw=1, label=f"{mode.upper()} max |γ_jrj(t)|" if lab else None)
            ax.set_xlabel("step t")
            ax.set_ylabel("norm / coefficient")
            ax.set_title(f"C5 residual outside span{{u, v, ξ}} vs own-class γ\n"
                         f"[high-dim preset, seeds {row['seeds']}]", fontsize=9)
            ax.legend(fontsize=7)
        else:
            fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
            sc = row["scale_cross"]
            for rec in recs:
                lab = rec["seed"] == recs[0]["seed"]
                for mode, col in (("st", "tab:blue"), ("at", "tab:red")):
                    s = rec[mode]
                    axes[0].plot(s["steps"], s["cross_gamma"], color=col, lw=1,
                                 label=f"{mode.upper()} max |γ_jrj'|" if lab else None)
                    axes[0].plot(s["steps"], s["cross_phi"], color=col, lw=1, ls="--",
                                 label=f"{mode.upper()} max |φ_jrj'|" if lab else None)
                    axes[1].plot(s["steps"], s["mu"], color=col, lw=1,
                                 label=f"{mode.upper()} max μ_jr" if lab else None)
                st = np.asarray(rec["st"]["Phi_j"])
                for c in range(st.shape[1]):
                    axes[2].plot(rec["st"]["steps"], st[:, c], lw=1, color=f"C{c}",
                                 label=f"class {c}" if lab else None)
                    e = rec["st"]["monotone"]["phase_end"][c]
                    axes[2].plot(rec["st"]["steps"][e], st[e, c], "o", color=f"C{c}", ms=3)
            axes[0].axhline(sc, color="k", lw=0.8, ls=":", label="σ0·sqrt(log km)")
            axes[0].set_yscale("log")
            axes[0].set_title("cross terms (j' ≠ j), change since init", fontsize=9)
            axes[1].set_title("noise memorisation μ = max |⟨w, ξ⟩|", fontsize=9)
            axes[2].set_title("ST: Φ_j(t) = max_r ⟨w_jr, v_j⟩ (dot: end of phase 1)", fontsize=9)
            for ax in axes:
                ax.set_xlabel("step t")
                ax.legend(fontsize=7)
            axes[0].set_ylabel("max over j, r, j'")
            axes[1].set_ylabel("max over j, r")
            axes[2].set_ylabel("Φ_j")
            fig.suptitle(f"Invariants over the whole run — preset {name}, seeds {row['seeds']} "
                         "(ST blue, AT red)", y=1.03)
        fig.tight_layout()
        save_figure(fig, path)
        plt.close(fig)
        written[name] = os.path.basename(path)
    return written


JSON_NAME = "invariants.json"


def _title(quick: bool) -> str:
    cmd = f"`python -m reffeat.verify --only invariants{' --quick' if quick else ''} --out DIR`"
    return f"## Invariants\n\nRegenerate this section alone with {cmd}.\n"


def section(quick: bool, runner, fig_dir: str, rel, out_dir: str) -> str:
    """Run the section, write its figures and ``invariants.json`` (lossless strict
    JSON, ``reffeat.output.encode(..., lossless=True)``) into ``out_dir``; return its Markdown (figure
    links made relative by ``rel``)."""
    import os
    seeds = (0, 1) if quick else (0, 1, 2)
    res = run(seeds=seeds, runner=runner, quick=quick)
    os.makedirs(fig_dir, exist_ok=True)
    figs = figures(res, fig_dir)
    stored = {"quick": quick, "figures": figs, "result": res}
    write_section_json(out_dir, JSON_NAME, stored)
    return markdown(res, {k: rel(os.path.join(fig_dir, v)) for k, v in figs.items()}).replace(
        "## Invariants\n", _title(quick), 1)


def section_from_json(out_dir: str, fig_dir: str, rel) -> str | None:
    """The section's Markdown from the ``invariants.json`` an earlier run left in
    ``out_dir`` (None if there is none), so ``--only`` runs of other sections keep it."""
    import os
    stored = read_section_json(out_dir, JSON_NAME)
    if stored is None:
        return None
    figs = {k: rel(os.path.join(fig_dir, v)) for k, v in stored["figures"].items()}
    return markdown(stored["result"], figs).replace("## Invariants\n", _title(stored["quick"]), 1)
