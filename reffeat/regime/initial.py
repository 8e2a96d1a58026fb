"""§11 RC1–RC5: the conditions on a Config (or a seed's W0), before training.
The common ground of their derivations is the package docstring."""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtri

from ._base import (
    HIGH_PROB,
    P1_FACTOR,
    TAKEOFF_MARGIN,
    Condition,
    _c,
    _drag_amplitude,
    _init_max,
    _integral,
    _make,
    _robust_amplitude,
    _sigma,
    expected_max_normal,
    feature_l1,
    max_normal_quantile,
    takeoff_levels,
)


# ---------------------------------------------------------------- RC1
def rc1_race(cfg, W0=None, features=None) -> Condition:
    """RC1 race: ST must pick the non-robust feature, with P1's factor 5.

    Derivation. Under ST (T1, clean data) (∗) holds for Φ with
    A_Φ = n_N β^q (the n_N non-robust patches) and for Γ with A_Γ = s α^q
    (the s robust patches); both start from the initial maxima x_Φ, x_Γ. For
    q = 2 they grow exponentially at rates ∝ A; for q > 2 they blow up at
    t* = ρ^{q−1}/((q−2) η c A x0^{q−2}). The ratio of blow-up times (of rates
    for q = 2) is the SPEC's margin

        R = A_Φ x_Φ^{q−2} / (A_Γ x_Γ^{q−2}),

    which with the expected maxima (x_Φ = x_Γ) is ``n_N β^q / (s α^q)``:
    the **value**. The **threshold** is the larger of

    * spread: in the worst class the initial maxima differ; the race is won
      by Φ only if R > (x_hi/x_lo)^{q−2}, x_hi and x_lo the (1 − δ) and δ
      quantiles of the max of m normals, δ = (1 − HIGH_PROB)/(2k) (every
      class of a seed covered with probability HIGH_PROB). For q = 2 the
      order of exponential growth does not depend on x0: this term is 1.
    * P1's factor: when Φ reaches its take-off level Φ* (n_N σ(βΦ*) = 1),
      Γ must still be below Φ*/5. From t(x_Φ → Φ*) = t(x_Γ → Γ) by (∗),
      Γ(t_Φ) = Φ*/5 exactly when A_Φ/A_Γ = I(x, Φ*)/I(x, Φ*/5) (expected x).

    Assumptions: A1, A2; after Φ's take-off the loss decays and Γ's growth
    (∝ 1 − logit_y) stalls. With ``W0`` (and ``features``) the seed's own
    per-class maxima are used: value = min_j of A_Φ x_Φ,j^{q−2}/(A_Γ x_Γ,j^{q−2})
    (the seed's maxima replace the spread term) and threshold = max(1, the
    factor-5 term at the expected maximum).
    """
    q = cfg.q
    A_phi = cfg.n_N * cfg.beta ** q
    A_gam = cfg.s * cfg.alpha ** q
    if A_gam == 0:
        return _make("RC1", "race, ST picks the non-robust feature", math.inf, 1.0, ">",
                     "α = 0: no robust feature to race")
    phi_star = takeoff_levels(cfg)["phi_st"]
    xg, xp = _init_max(cfg, W0, features)
    if W0 is None:
        R = A_phi / A_gam
        x = float(xg[0])
        delta = (1 - HIGH_PROB) / (2 * cfg.k)
        hi, lo = max_normal_quantile(cfg.m, 1 - delta), max_normal_quantile(cfg.m, delta)
        spread = (hi / lo) ** (q - 2) if q > 2 else 1.0
        den = _integral(x, phi_star / P1_FACTOR, q)
        factor = _integral(x, phi_star, q) / den if den > 0 else math.inf
        thr = max(spread, factor)
        detail = (f"R = n_N β^q/(s α^q) = {cfg.n_N}·{cfg.beta:g}^{q:g}/({cfg.s}·{cfg.alpha:g}^{q:g}); "
                  f"threshold max(spread {spread:.3g}, P1 factor {factor:.3g}), expected init max {x:.3g}")
        return _make("RC1", "race, ST picks the non-robust feature", R, thr, ">", detail)
    with np.errstate(divide="ignore", invalid="ignore"):
        Rj = np.where((xg > 0) & (xp > 0), A_phi * np.abs(xp) ** (q - 2) / (A_gam * np.abs(xg) ** (q - 2)),
                      np.where(xp <= 0, 0.0, math.inf))
    x = cfg.sigma0 * expected_max_normal(cfg.m)
    den = _integral(x, phi_star / P1_FACTOR, q)
    factor = _integral(x, phi_star, q) / den if den > 0 else math.inf
    thr = max(1.0, factor)
    worst = int(np.argmin(Rj))
    detail = (f"this seed's W0: worst class {worst}, Γ_j(0) = {xg[worst]:.3g}, Φ_j(0) = {xp[worst]:.3g}; "
              f"per-class R {np.round(Rj, 3).tolist()}; threshold max(1, P1 factor {factor:.3g})")
    return _make("RC1", "race, ST picks the non-robust feature", float(Rj[worst]), thr, ">", detail)


# ---------------------------------------------------------------- RC2
def rc2_susceptibility(cfg, features=None) -> Condition:
    """RC2 susceptibility: an ℓ∞ attack can cancel the non-robust feature,
    ε‖v_j‖₁ > β, and cannot cancel the robust one, ε‖u_j‖₁ < α.

    Derivation. Inside the ℓ∞ ball the largest change of ⟨x_p, w⟩ is
    ε‖w‖₁ (Hölder), so ⟨x_p, v_y⟩ can be moved from β to β − ε‖v_y‖₁ < 0
    (ST's dense feature is erased on every non-robust patch: P2's robust
    accuracy ≈ 0) while ⟨x_p, u_y⟩ stays ≥ α − ε‖u_y‖₁ > 0 (the robust
    feature survives: P4 possible). For the ℓ2 balls the dual norm is ℓ2
    (‖u‖₂ = ‖v‖₂ = 1): per patch (``l2-patch``) the conditions read ε > β and
    ε < α; the whole-input ℓ2 ball spends its budget over the n_N patches
    (ε/sqrt(n_N) each, to move all of them) but can put all of it, ε, on the
    one robust patch. The value is the smaller of the two margins,
    cancel_v/β and α/cancel_u (for ℓ∞: ε‖v‖₁/β and α/(ε‖u‖₁)); both must
    exceed 1.
    """
    u1, v1 = feature_l1(cfg, features)
    if cfg.norm == "linf":
        cancel_v, cancel_u = cfg.eps * v1, cfg.eps * u1
    elif cfg.norm == "l2-patch":
        cancel_v, cancel_u = cfg.eps, cfg.eps
    else:
        cancel_v, cancel_u = cfg.eps / math.sqrt(max(cfg.n_N, 1)), cfg.eps
    m_v = cancel_v / cfg.beta if cfg.beta > 0 else math.inf
    m_u = cfg.alpha / cancel_u if cancel_u > 0 else math.inf
    detail = (f"{cfg.norm}: attack moves ⟨x,v⟩ by {cancel_v:.3g} vs β = {cfg.beta:g} (ratio {m_v:.3g}); "
              f"⟨x,u⟩ by {cancel_u:.3g} vs α = {cfg.alpha:g} (ratio {m_u:.3g})")
    return _make("RC2", "susceptibility, attack erases v but not u", min(m_v, m_u), 1.0, ">", detail)


# ---------------------------------------------------------------- RC3
def eta_max(cfg) -> float:
    """RC3's bound η_max = 2ρ / (c · (P − s) · ‖δ_p‖₂²) (see rc3_step_size)."""
    if cfg.norm == "linf":
        energy = (cfg.P - cfg.s) * cfg.eps * cfg.eps * cfg.d       # ‖ε·sign‖₂² = ε² d per patch
    elif cfg.norm == "l2-patch":
        energy = (cfg.P - cfg.s) * cfg.eps * cfg.eps
    else:
        energy = cfg.eps * cfg.eps                                  # the whole input's budget
    return 2 * cfg.rho / (_c(cfg) * energy) if energy > 0 else math.inf


def rc3_step_size(cfg) -> Condition:
    """RC3 step size: one AT step must not overshoot the attack's own patches.

    Derivation. For an other-class sample the attack raises F_j: on each of
    the P − s perturbed patches it adds δ_p = ε·sign(g) (ℓ∞, T2), with g
    dominated by the neuron w_{j,r} with the largest slope, so δ_p ≈
    ε·sign(w_{j,r}) and that neuron's pre-activation there is z ≈ ε‖w_{j,r}‖₁
    on all P − s patches at once. By G2 the step (T3) changes w_{j,r} by
    −η · c · (P − s) · σ'(z) · δ_p (c = (k−1)/k²: other-class samples × their
    logit_j ≈ 1/k), i.e. changes z by −η c (P − s) ε² d σ'(z). The next
    attack re-aligns δ with sign(w): if the step moved z by more than 2z the
    coordinates of w flip sign and ‖w‖₁ — hence the next z — grows: the
    step is stable only while the gain

        g = η · c · (P − s) · ‖δ_p‖₂² · σ'(z)/z  < 2.

    σ'(z)/z ≤ 1/ρ for every q ≥ 1 (equality on all of (0, ρ] for q = 2 and at
    z = ρ for q > 2: "all (P − s) perturbed patches entering σ's linear
    region"), so the bound is

        η < η_max = 2ρ / (c (P − s) ‖δ_p‖₂²),   ‖δ_p‖₂² = ε² d (ℓ∞),
        ε² (per-patch ℓ2), ε²/(P − s) (whole-input ℓ2, the budget spread).

    The value is η, the threshold η_max. Assumption: the attack's sign
    pattern is fully aligned with one neuron (the worst case); partial
    alignment raises the η at which blow-ups actually begin.
    """
    emax = eta_max(cfg)
    detail = (f"η_max = 2ρ/(c (P−s) ‖δ_p‖²) with c = {_c(cfg):.3g}, P−s = {cfg.P - cfg.s}, "
              f"{cfg.norm} ε = {cfg.eps:g}, d = {cfg.d}; η/η_max = {cfg.eta / emax if emax > 0 else math.inf:.3g}")
    return _make("RC3", "step size, AT does not overshoot", cfg.eta, emax, "<", detail)


# ---------------------------------------------------------------- RC4
def takeoff_times(cfg, W0=None, features=None) -> dict:
    """Predicted steps for ST's Φ and AT's Γ to reach their take-off levels (∗)
    in the slowest class: from the δ-quantile of the initial maximum
    (δ = (1 − HIGH_PROB)/(2k), as in RC1), or from the seed's smallest
    per-class maximum when ``W0`` is given. P4 needs every class robust, so
    the slowest class is the one that counts; for q > 2 the take-off time is
    ∝ 1/x0^{q−2}, so this matters (a factor ≈ 3 at m = 16, q = 3).

    ST's Φ: A = n_N β^q from the mean initial maximum to Φ*.
    AT's Γ: at the adversarial points the robust patch carries a_R = α − ε‖u‖₁
    (own-class samples: the attack lowers ⟨x, u_y⟩), and every one of the
    P − s perturbed patches of an other-class sample carries +ε‖u‖₁ along
    u_j (the attack raises F_j), which drags Γ_j down with the same weight c:
    A_AT = s a_R^q − (P − s)(ε‖u‖₁)^q. A_AT ≤ 0 means no take-off (∞).
    """
    q, rho = cfg.q, cfg.rho
    c = _c(cfg)
    lv = takeoff_levels(cfg, features)
    xg, xp = _init_max(cfg, W0, features)
    if W0 is None:                   # the slowest class at high probability: the δ-quantile
        delta = (1 - HIGH_PROB) / (2 * cfg.k)
        x_phi = x_gam = cfg.sigma0 * max_normal_quantile(cfg.m, delta)
    else:
        x_phi, x_gam = float(np.min(xp)), float(np.min(xg))
    A_st = cfg.n_N * cfg.beta ** q
    aR, drag = _robust_amplitude(cfg, features), _drag_amplitude(cfg, features)
    A_at = cfg.s * max(aR, 0.0) ** q - (cfg.P - cfg.s) * drag ** q
    t_st = rho ** (q - 1) * _integral(x_phi, lv["phi_st"], q) / (cfg.eta * c * A_st) if A_st > 0 else math.inf
    t_at = rho ** (q - 1) * _integral(x_gam, lv["gamma_at"], q) / (cfg.eta * c * A_at) if A_at > 0 else math.inf
    return {"st_phi": t_st, "at_gamma": t_at, "A_st": A_st, "A_at": A_at, **lv}


def rc4_takeoff(cfg, W0=None, features=None) -> Condition:
    """RC4 take-off: both coefficients reach Θ(1) well before T.

    Derivation: (∗) integrated from the initial maximum to the take-off
    level, t = ρ^{q−1} I(x0, x*) / (η c A), for ST's Φ (A = n_N β^q, x* = Φ*)
    and AT's Γ (A = s(α − ε‖u‖₁)^q − (P − s)(ε‖u‖₁)^q, x* = Γ*; see
    ``takeoff_times``). The value is T / max(t_ST, t_AT); the threshold is
    TAKEOFF_MARGIN = 3 (the take-off must happen in the first third of
    training, leaving the rest for the margins to grow), both for the
    slowest class (``takeoff_times``).
    """
    t = takeoff_times(cfg, W0, features)
    worst = max(t["st_phi"], t["at_gamma"])
    value = cfg.T / worst if worst > 0 else math.inf
    detail = (f"predicted take-off ST Φ at step {t['st_phi']:.3g}, AT Γ at step {t['at_gamma']:.3g} "
              f"(A_AT = {t['A_at']:.3g}); T = {cfg.T}")
    return _make("RC4", "take-off before T", value, TAKEOFF_MARGIN, ">", detail)


# ---------------------------------------------------------------- RC5
def init_l1_max(cfg, W0=None) -> float:
    """max over the k·m neurons of ‖w^{(0)}_{j,r}‖_* (the dual norm of the
    threat: ℓ1 for ℓ∞, ℓ2 for the ℓ2 balls): from W0, or its approximate
    expectation mean + sd·(the 1 − 1/(km) normal quantile) — ‖w‖₁ of an
    N(0, σ_0² I_d) vector has mean σ_0 d sqrt(2/π) and sd σ_0 sqrt(d(1 − 2/π))."""
    if W0 is not None:
        if cfg.norm == "linf":
            return float(np.abs(W0).sum(axis=2).max())
        return float(np.sqrt((W0 ** 2).sum(axis=2)).max())
    d, s0, km = cfg.d, cfg.sigma0, cfg.k * cfg.m
    z = float(ndtri(1 - 1 / (km + 1)))
    if cfg.norm == "linf":
        mean, sd = s0 * d * math.sqrt(2 / math.pi), s0 * math.sqrt(d * (1 - 2 / math.pi))
    else:
        mean, sd = s0 * math.sqrt(d), s0 / math.sqrt(2)
    return mean + sd * z


def rc5_reach(cfg, W0=None) -> Condition:
    """RC5 reach of the initial weights: the adversary's gain through the
    random initial components must stay below the robust margin.

    Derivation. An ℓ∞ perturbation moves a neuron's pre-activation on a patch
    by up to ε‖w‖₁ (Hölder); through the random part w^{(0)} alone that is
    ε·max_r ‖w^{(0)}_{j,r}‖₁, on each of the P − s non-robust/noise patches at
    once. Since N3 sums σ over patches, the adversary raises an other class's
    output by up to

        reach = (P − s) · σ(ε · max ‖w^{(0)}‖₁)

    (the SPEC's ε(P − s)·max‖w^{(0)}‖₁ is the linear bound σ(z) ≤ z of this;
    σ is used because these small pre-activations sit in σ's polynomial
    piece, where the linear bound overstates the reach by orders of
    magnitude). The robust margin AT builds is, at take-off, one unit of
    logit: s σ((α − ε‖u‖₁) Γ*) = 1 by the definition of Γ* (module
    docstring). The value is the reach, the threshold that margin (1):
    beyond it AT can learn Γ and still not be robust. Expectation of the
    maximum by default (``init_l1_max``), or the seed's own W0.
    """
    M = init_l1_max(cfg, W0)
    if cfg.norm == "linf":
        z = cfg.eps * M
        reach = (cfg.P - cfg.s) * _sigma(z, cfg.q, cfg.rho)
    elif cfg.norm == "l2-patch":
        z = cfg.eps * M
        reach = (cfg.P - cfg.s) * _sigma(z, cfg.q, cfg.rho)
    else:                                   # whole-input ℓ2: best of concentrating and spreading
        z = cfg.eps * M
        reach = max(_sigma(z, cfg.q, cfg.rho),
                    (cfg.P - cfg.s) * _sigma(z / math.sqrt(cfg.P - cfg.s), cfg.q, cfg.rho))
    src = "this seed's W0" if W0 is not None else "expected"
    detail = f"(P−s)·σ(ε·max‖w0‖) with {src} max‖w0‖ = {M:.3g}, ε·max = {z:.3g}; margin s·σ(a_R Γ*) = 1"
    return _make("RC5", "reach of the initial weights", reach, 1.0, "<", detail)
