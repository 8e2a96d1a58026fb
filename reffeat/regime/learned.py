"""§11 RC6: the reach of the adversary at the learned weights, and how well a
condition predicts a claim over seed-runs (the confusion table)."""

from __future__ import annotations

import math

import numpy as np

from ._base import Condition, _make

# ---------------------------------------------------------------- RC6
#: RC6 reach variants, both fixed from the analysis before any measurement:
#: "r" — the SPEC's text: the wrong class gains only through the off-feature
#: part r of its neurons; "w" — the full Hölder bound: through all of w
#: (its own feature parts Γ_t u_t, Φ_t v_t included), see ``rc6_terms``.
#: "rv" — a refinement added after a measured failure (q3 seeds 9 and 12: RC6 "r"
#: met, AT robust 0.06 and 0.32, with Φ(AT) ≈ 0.2–0.25 left, so ε|Φ_t|‖v_t‖₁ ≈
#: 0.22–0.29 per patch, as large as ε‖r‖₁): r plus the residual non-robust
#: feature Φ v of each neuron, a_{j,r} = ε(‖r_{j,r}‖_* + |Φ_{j,r}|‖v_j‖_*).
RC6_VARIANTS = ("r", "w", "rv")


def _sigma_arr(z, q: float, rho: float) -> np.ndarray:
    """N1 elementwise on an array (plain numpy; RC6 is not a hot path)."""
    z = np.asarray(z, dtype=float)
    zp = np.maximum(z, 0.0)
    poly = np.minimum(zp, rho) ** q / (q * rho ** (q - 1))
    return np.where(z <= 0, 0.0, np.where(z <= rho, poly, z - (1 - 1 / q) * rho))


def _dual(A: np.ndarray, norm: str) -> np.ndarray:
    """‖a‖_* over the last axis: ℓ1 for the ℓ∞ threat, ℓ2 for the ℓ2 ones."""
    return np.abs(A).sum(axis=-1) if norm == "linf" else np.sqrt((A * A).sum(axis=-1))


def rc6_terms(Ws, cfg, features, variant: str = "r") -> dict:
    """RC6 per class pair, for one W (k, m, d) or a stack Ws (..., k, m, d)
    (a trace: any leading shape). features = (U, V), each (k, d).

    Returns arrays: ``margin`` (..., k) the clean robust margin M_y;
    ``gain_t`` (..., k, k) [y, t] the wrong class's output bound;
    ``loss_y`` (..., k) the decrease of M_y the adversary gets;
    ``ratio`` (..., k, k) [y, t] = (gain_t + loss_y)/M_y (NaN on y = t);
    ``value`` (...,) the max of ratio over y ≠ t. RC6 is met when value < 1.

    Derivation (N3, D3, ℓ∞ threat of radius ε; ℓ2 with the dual norm ℓ2).
    Split each neuron w_{j,r} = Γ_{j,r} u_j + Φ_{j,r} v_j + r_{j,r} (C1;
    r = the cross terms, the memorised noise and what is left of W⁽⁰⁾).
    Take the noise-free point of class y (D3 with ξ = 0: α u_y on the s
    robust patches, β v_y on the n_N non-robust ones, 0 on the n_0 = P − s − n_N
    noise-only patches) and a target t ≠ y. An ℓ∞ perturbation moves ⟨w, x_p⟩
    by at most ε‖w‖₁ on every patch at once (Hölder), and σ is increasing, so:

    * the wrong class. For t ≠ y the features of class t are orthogonal to
      x_p, so ⟨w_{t,r}, x_p⟩ = ⟨r_{t,r}, x_p⟩ and

          F_t(X + δ) ≤ Σ_r [ s σ(α⟨r_{t,r}, u_y⟩ + a_{t,r}) + n_N σ(β⟨r_{t,r}, v_y⟩ + a_{t,r})
                            + n_0 σ(a_{t,r}) ]  =: gain_t,

      a_{t,r} = ε‖r_{t,r}‖₁ (variant "r", the SPEC's reach through r),
      ε‖w_{t,r}‖₁ (variant "w": class t's own features also serve the
      adversary, e.g. the drag ε Γ_t ‖u_t‖₁ on all P − s patches) or
      ε(‖r_{t,r}‖₁ + |Φ_{t,r}|‖v_t‖₁) (variant "rv": r and what AT left of
      the non-robust feature, which the E2b direction sign(v_t − v_y) uses);
    * the true class. Its robust part after the attack erodes u_y is
      M_y = s Σ_r σ(Γ_{y,r} a_R), a_R = α − ε‖u_y‖₁ (the clean robust margin
      at the attacked robust amplitude, as in RC4/RC5); through r the
      adversary lowers it further, to s Σ_r σ(Γ_{y,r} a_R − ε‖r_{y,r}‖₁)
      (variant "w": s Σ_r σ(Γ_{y,r} α − ε‖w_{y,r}‖₁); "rv": a_{y,r} of
      variant "rv" in place of ε‖r_{y,r}‖₁); loss_y is the
      difference. F_y's other terms (≥ 0) are dropped: conservative.

    The class-y point is robust against target t (by this bound) when
    gain_t < M_y − loss_y, i.e. ratio = (gain_t + loss_y)/M_y < 1. RC5 is the
    same comparison at W⁽⁰⁾ with the initial reach alone; RC6 evaluates it
    at the learned weights, where r holds what training put off the
    features. M_y = 0 (no robust coefficient learned) gives ratio ∞.
    Assumptions: the test noise ξ is neglected (its mean effect on a convex σ
    is an increase of the wrong class's output, so the bound is optimistic
    there); the bound per neuron is taken for every neuron at once (the
    adversary's δ_p is shared by the neurons of a class, so the bound is
    pessimistic there). Whole-input ℓ2: every δ_p lies in the ε-ball, so the
    per-patch ℓ2 formula is used (sound, loose).

    Measured (how well "RC6 met" predicts P4 per seed; 102 seed-runs, 17 each
    of presets default, q3, high-dim, borderline and default with ε = 0.16,
    0.25, seeds 0–16; script /work/rc6runs/measure.py, table by ``confusion``):
    variant "r" agrees with P4 (V1) on 98/102 (96.1%) and with P4 (V2) on
    95/102 (93.1%); "w" on 80/102 (78.4%) and 85/102; "rv" on 96/102 (94.1%)
    and 95/102. RC1–RC5 all met agrees with P4 (V1) on 45/102 (44.1%).
    """
    if variant not in RC6_VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(RC6_VARIANTS)} (got {variant!r})")
    U, V = features
    Ws = np.asarray(Ws, dtype=float)
    if Ws.ndim < 3 or Ws.shape[-3:] != (cfg.k, cfg.m, cfg.d):
        raise ValueError(f"W must have shape (..., k, m, d) = (..., {cfg.k}, {cfg.m}, {cfg.d}) (got {Ws.shape})")
    q, rho, eps, norm = cfg.q, cfg.rho, cfg.eps, cfg.norm
    k = cfg.k
    G = np.einsum("...jmd,jd->...jm", Ws, U)
    F = np.einsum("...jmd,jd->...jm", Ws, V)
    R = Ws - G[..., None] * U[:, None, :] - F[..., None] * V[:, None, :]
    a_r = eps * _dual(R, norm)                                   # (..., k, m)
    a_w = eps * _dual(Ws, norm)
    Ru = np.einsum("...tmd,yd->...ytm", R, U)                    # ⟨r_{t,r}, u_y⟩, [y, t, r]
    Rv = np.einsum("...tmd,yd->...ytm", R, V)
    v_dual = _dual(V, norm)                                      # (k,): ‖v_j‖_*
    a_rv = a_r + eps * np.abs(F) * v_dual[:, None]
    a_own = {"r": a_r, "w": a_w, "rv": a_rv}[variant]            # (..., k, m)
    a_t = a_own[..., None, :, :]                                 # broadcast over y
    s, n_N = cfg.s, cfg.n_N
    n_0 = cfg.P - s - n_N
    gain = (s * _sigma_arr(cfg.alpha * Ru + a_t, q, rho) + n_N * _sigma_arr(cfg.beta * Rv + a_t, q, rho)
            + n_0 * _sigma_arr(a_t, q, rho)).sum(axis=-1)        # (..., y, t)
    u1 = float(_dual(U, norm).mean())
    a_R = cfg.alpha - eps * u1
    margin = s * _sigma_arr(G * a_R, q, rho).sum(axis=-1)        # (..., k)
    if variant == "w":
        attacked = s * _sigma_arr(G * cfg.alpha - a_w, q, rho).sum(axis=-1)
    else:
        attacked = s * _sigma_arr(G * a_R - a_own, q, rho).sum(axis=-1)
    loss = margin - attacked
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(margin[..., :, None] > 0, (gain + loss[..., :, None]) / margin[..., :, None], np.inf)
    off = ~np.eye(k, dtype=bool)
    ratio = np.where(off, ratio, np.nan)
    value = ratio[..., off].max(axis=-1) if k > 1 else np.full(ratio.shape[:-2], -np.inf)
    return {"margin": margin, "gain_t": gain, "loss_y": loss, "ratio": ratio, "value": value}


def rc6_values(Ws, cfg, features, variant: str = "r") -> np.ndarray:
    """RC6 value along a trace: Ws (T', k, m, d) (or a list of W's) -> (T',);
    RC6 is met at a step when its value is < 1 (see ``rc6_terms``)."""
    return rc6_terms(np.asarray(Ws, dtype=float), cfg, features, variant)["value"]


def rc6_reach(cfg, W, features, variant: str = "r") -> Condition:
    """RC6 reach at the learned weights W (k, m, d) (the final AT weights, or
    any step of a trace): the adversary's reach through the off-feature part
    of the neurons against the robust margin, max over class pairs (y, t);
    met when < 1. Derivation in ``rc6_terms``."""
    if variant not in RC6_VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(RC6_VARIANTS)} (got {variant!r})")
    title = "reach at the learned weights" + {"r": "", "w": " (full ‖w‖)", "rv": " (r and Φv)"}[variant]
    if not np.all(np.isfinite(np.asarray(W, dtype=float))):
        return Condition("RC6", title, math.nan, 1.0, "<", False, "the weights are not finite (training diverged)")
    t = rc6_terms(W, cfg, features, variant)
    value = float(t["value"])
    k = cfg.k
    if k > 1 and math.isfinite(value):
        ratio = np.where(np.isnan(t["ratio"]), -np.inf, t["ratio"])
        y, tt = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
        detail = (f"worst pair y={y}, t={tt}: wrong-class bound {t['gain_t'][y, tt]:.3g} + robust-margin "
                  f"loss {t['loss_y'][y]:.3g} vs robust margin s·Σ_r σ(Γ_y,r·a_R) = {t['margin'][y]:.3g} "
                  f"(reach through {variant}, ε = {cfg.eps:g}, {cfg.norm})")
    elif k > 1:
        detail = "no robust margin learned in some class (Σ_r σ(Γ_y,r a_R) = 0)"
    else:
        detail = "k = 1: no wrong class"
    return _make("RC6", title, value, 1.0, "<", detail)


def confusion(records, predictor: str = "rc6_met", outcome: str = "p4") -> dict:
    """How well a condition predicts a claim, per seed: the confusion table.

    ``records``: iterable of dicts, one per seed-run, each with at least
    ``predictor`` (bool: the condition met) and ``outcome`` (bool: the claim
    holds), e.g. {"preset": "q3", "seed": 1, "rc6_value": 3.2, "rc6_met": False,
    "p4": False}. Returns {"n", "met_holds", "met_fails", "not_met_holds",
    "not_met_fails", "agreement" (fraction of seeds where met == holds; NaN
    for n = 0), "by_preset": {preset: same counts}} — plain ints/floats.
    """
    def table(rs):
        c = {"met_holds": 0, "met_fails": 0, "not_met_holds": 0, "not_met_fails": 0}
        for r in rs:
            c[("met" if r[predictor] else "not_met") + ("_holds" if r[outcome] else "_fails")] += 1
        n = sum(c.values())
        return {"n": n, **c,
                "agreement": (c["met_holds"] + c["not_met_fails"]) / n if n else math.nan}
    records = list(records)
    out = table(records)
    presets = sorted({str(r.get("preset")) for r in records})
    out["by_preset"] = {p: table([r for r in records if str(r.get("preset")) == p]) for p in presets}
    return out


def format_confusion(table: dict, predictor: str = "RC6 met", outcome: str = "P4 holds") -> str:
    """The confusion table as Markdown, then one line per preset."""
    t = table
    lines = [f"| | {outcome} | not {outcome} |", "|---|---|---|",
             f"| {predictor} | {t['met_holds']} | {t['met_fails']} |",
             f"| not {predictor} | {t['not_met_holds']} | {t['not_met_fails']} |",
             "", f"agreement {t['met_holds'] + t['not_met_fails']}/{t['n']} = {t['agreement']:.1%}", "",
             f"| preset | n | {outcome} | {predictor} | agree |", "|---|---|---|---|---|"]
    for p, b in t.get("by_preset", {}).items():
        lines.append(f"| {p} | {b['n']} | {b['met_holds'] + b['not_met_holds']} | "
                     f"{b['met_holds'] + b['met_fails']} | {b['met_holds'] + b['not_met_fails']} |")
    return "\n".join(lines)
