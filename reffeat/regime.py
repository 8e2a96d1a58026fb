"""§11 RC1–RC6: the regime conditions under which P1–P4 are predicted, as
functions of a Config (RC1–RC5) and of the learned weights (RC6).

Each condition is this project's own derivation from the dynamics of SPEC
§3–§7 (written out in the function's docstring), returns a ``Condition``
(value, threshold, met or not) and is cheap (no training).

Common ground (used by RC1, RC4, RC5). Early in training the logits are
≈ 1/k, so by G1 an own-class sample weighs ``1 − 1/k`` and an other-class
sample ``1/k``; a fraction 1/k of the samples is own-class. The noise is
orthogonal to every feature (D4), so by C3 only feature patches move a
feature coefficient. For the neuron with the largest coefficient x (C2's
max_r), whose pre-activation on a patch carrying feature amplitude ``a`` is
``a·x`` (noise and cross terms neglected: assumption A1,
``σ_ξ·sqrt(d − 2k)`` and ``σ_0`` small against the feature amplitudes),

    dx/dt = η · c · A · x^{q−1} / ρ^{q−1},   c = (k − 1)/k²,   A = n_f · a^q     (∗)

with n_f the number of patches carrying the feature (σ'(z) = (z/ρ)^{q−1}
below ρ, N2). The time to go from x0 to x is therefore

    t(x0 → x) = ρ^{q−1} I(x0, x) / (η c A),
    I(x0, x) = ln(x/x0)  (q = 2),   (x^{2−q} − x0^{2−q})/(2 − q)  (q ≠ 2).

A coefficient is "Θ(1)" (taken off) at the level x* where the feature moves
one neuron's class output by 1 (one unit of logit): n_f σ(a x*) = 1; past
it the own-class factor 1 − logit_y starts to decay and growth slows (A2).

Initial maxima: Γ_j(0), Φ_j(0) are maxima of m independent N(0, σ_0²)
variables (N4; the features are orthonormal). Where a condition needs them
this module uses their **expectation** ``σ_0·E[max of m N(0,1)]`` (and, for
the spread over classes, quantiles of that maximum): the regime is then a
property of the Config, and the seeds are the random draws that "with high
probability" is about. Passing ``W0`` (and the features) instead evaluates
RC1, RC4 and RC5 on that seed's actual initial weights: verify uses this to
say which condition explains a failing seed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import ndtr, ndtri

from .claims import THRESHOLDS as _CLAIM_THRESHOLDS
from .output import encode

if TYPE_CHECKING:
    from .config import Config

#: Probability with which the spread over classes must be covered (RC1): the
#: race must be won in every class of a seed on ≥ 95% of seeds.
HIGH_PROB = 0.95
#: P1's factor (SPEC V1: Φ ≥ 5Γ) used by RC1's threshold: taken from the one
#: table of claim thresholds (reffeat.claims), not repeated here.
P1_FACTOR = float(_CLAIM_THRESHOLDS["P1_phi_over_gamma"])
#: RC4: T must exceed the predicted take-off times by this factor.
TAKEOFF_MARGIN = 3.0

NAMES = ("RC1", "RC2", "RC3", "RC4", "RC5", "RC6")


@dataclass(frozen=True)
class Condition:
    """One regime condition: ``value`` compared with ``threshold``.

    ``relation`` is ">" (met when value > threshold) or "<" (met when
    value < threshold); ``detail`` gives the formula with its numbers.
    """
    name: str
    title: str
    value: float
    threshold: float
    relation: str
    met: bool
    detail: str

    def line(self) -> str:
        """One line: name, title, value, relation, threshold, met or not."""
        return (f"{self.name} {self.title}: {_fmt(self.value)} {self.relation} {_fmt(self.threshold)}"
                f"  {'met' if self.met else 'NOT MET'}   ({self.detail})")

    def to_dict(self) -> dict:
        """The fields as a dict for strict JSON: an infinite value or threshold is
        written as the *string* "inf"/"-inf" (NaN as null) — ``reffeat.output.encode``'s
        ``nonfinite="text"`` mode; readers must accept a string there."""
        return encode(asdict(self), nonfinite="text")


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    return f"{x:.3g}"


def _make(name, title, value, threshold, relation, detail) -> Condition:
    value, threshold = float(value), float(threshold)
    met = value > threshold if relation == ">" else value < threshold
    return Condition(name, title, value, threshold, relation, bool(met), detail)


# ---------------------------------------------------------------- helpers
def _sigma(z: float, q: float, rho: float) -> float:
    """N1 for a scalar z >= 0."""
    if z <= 0:
        return 0.0
    return z ** q / (q * rho ** (q - 1)) if z <= rho else z - (1 - 1 / q) * rho


def _sigma_inv(y: float, q: float, rho: float) -> float:
    """The z >= 0 with σ(z) = y (N1 is increasing on z > 0)."""
    if y <= rho / q:
        return (q * rho ** (q - 1) * y) ** (1 / q)
    return y + (1 - 1 / q) * rho


def _integral(x0: float, x: float, q: float) -> float:
    """I(x0, x) = ∫_{x0}^{x} ξ^{1−q} dξ: the time of (∗) in units of ρ^{q−1}/(ηcA)."""
    if x0 <= 0:
        return math.inf                              # a coefficient <= 0 never grows (σ' = 0)
    if x <= x0:
        return 0.0
    if q == 2:
        return math.log(x / x0)
    return (x ** (2 - q) - x0 ** (2 - q)) / (2 - q)


def expected_max_normal(m: int) -> float:
    """E[max of m independent N(0,1)] by quadrature of x·d/dx Φ(x)^m."""
    x = np.linspace(-8.0, 8.0, 4001)
    cdf = ndtr(x) ** m
    dens = np.gradient(cdf, x)
    return float(np.sum(x * dens) * (x[1] - x[0]))


def max_normal_quantile(m: int, p: float) -> float:
    """The p-quantile of the max of m independent N(0,1): Φ^{-1}(p^{1/m})."""
    return float(ndtri(p ** (1.0 / m)))


def feature_l1(cfg, features=None) -> tuple[float, float]:
    """(‖u_j‖₁, ‖v_j‖₁) averaged over j: from the features if given, else
    from the geometry (F2: 1 and sqrt(d_N); basis: 1 and 1; random: the
    expectation sqrt(2d/π) of a random unit vector)."""
    if features is not None:
        U, V = features
        return float(np.abs(U).sum(axis=1).mean()), float(np.abs(V).sum(axis=1).mean())
    if cfg.geometry == "sparse-dense":
        return 1.0, math.sqrt(cfg.d_N)
    if cfg.geometry == "basis":
        return 1.0, 1.0
    r = math.sqrt(2 * cfg.d / math.pi)
    return r, r


def _c(cfg) -> float:
    """c = (1/k)(1 − 1/k): weight of the own-class samples at uniform logits (G1)."""
    return (cfg.k - 1) / cfg.k ** 2


def _robust_amplitude(cfg, features=None) -> float:
    """Robust feature amplitude left after the training attack, α − (largest
    decrease of ⟨x_p, u_y⟩ inside the ball): ε‖u‖₁ for ℓ∞, ε for ℓ2 balls."""
    u1, _ = feature_l1(cfg, features)
    return cfg.alpha - (cfg.eps * u1 if cfg.norm == "linf" else cfg.eps)


def _drag_amplitude(cfg, features=None) -> float:
    """u_j-component the training attack puts on each perturbed patch of an
    other-class sample (it raises F_j): ε‖u‖₁ (ℓ∞, sign attack), ε (per-patch
    ℓ2), ε/sqrt(P) (whole-input ℓ2 spread over the patches)."""
    u1, _ = feature_l1(cfg, features)
    if cfg.norm == "linf":
        return cfg.eps * u1
    return cfg.eps if cfg.norm == "l2-patch" else cfg.eps / math.sqrt(cfg.P)


def _init_max(cfg, W0=None, features=None):
    """Initial maxima (x_Γ per class, x_Φ per class): from W0 if given, else the expectation."""
    if W0 is None:
        x = cfg.sigma0 * expected_max_normal(cfg.m)
        return np.full(cfg.k, x), np.full(cfg.k, x)
    U, V = features
    k = W0.shape[0]
    j = np.arange(k)
    return (W0 @ U.T)[j, :, j].max(axis=1), (W0 @ V.T)[j, :, j].max(axis=1)


def takeoff_levels(cfg, features=None) -> dict:
    """The two take-off levels x* used by RC1/RC4/RC5: ``"phi_st"``, ST's Φ*
    (n_N σ(β Φ*) = 1), and ``"gamma_at"``, AT's Γ* (s σ(a_R Γ*) = 1, a_R the
    robust amplitude left by the attack); ∞ where the feature is absent."""
    q, rho = cfg.q, cfg.rho
    aR = _robust_amplitude(cfg, features)
    return {
        "phi_st": _sigma_inv(1.0 / cfg.n_N, q, rho) / cfg.beta if cfg.n_N and cfg.beta > 0 else math.inf,
        "gamma_at": _sigma_inv(1.0 / cfg.s, q, rho) / aR if aR > 0 else math.inf,
    }


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


# ---------------------------------------------------------------- all
def conditions(cfg, W0=None, features=None, learned=None) -> list[Condition]:
    """RC1–RC5 for a Config (expected initial maxima), or for a seed's W0
    when ``W0`` and ``features`` = (U, V) are given (RC1, RC4, RC5); and RC6
    (``rc6_reach``, variant "r") when ``learned``, the learned weights W
    (k, m, d) (AT's final W, or a step of its trace), is given."""
    calls = [("RC1", "race", lambda: rc1_race(cfg, W0, features)),
             ("RC2", "susceptibility", lambda: rc2_susceptibility(cfg, features)),
             ("RC3", "step size", lambda: rc3_step_size(cfg)),
             ("RC4", "take-off before T", lambda: rc4_takeoff(cfg, W0, features)),
             ("RC5", "reach of the initial weights", lambda: rc5_reach(cfg, W0))]
    if learned is not None:
        if features is None:
            from .features import make_features
            features = make_features(cfg)
        calls.append(("RC6", "reach at the learned weights", lambda: rc6_reach(cfg, learned, features)))
    out = []
    for name, title, call in calls:
        try:
            out.append(call())
        except (OverflowError, ZeroDivisionError) as exc:
            # a Config valid but far outside the analysis' scale (e.g. ε = 1e308): the
            # closed forms overflow; the condition is reported as not met, not a crash
            out.append(Condition(name, title, math.nan, math.nan, ">", False,
                                 f"not computable at this Config's magnitudes ({exc})"))
    return out


def regime(cfg: Config, W0: np.ndarray | None = None, features: tuple | None = None,
           learned: np.ndarray | None = None) -> dict:
    """``summary.json["regime"]``: every condition as a dict, and whether all are met
    (RC6 included when ``learned`` is given, see ``conditions``)."""
    conds = conditions(cfg, W0, features, learned)
    return {"conditions": {c.name: c.to_dict() for c in conds},
            "all_met": all(c.met for c in conds),
            "basis": "this seed's W0" if W0 is not None else "expected initial weights"}


def format_regime(cfg, W0=None, features=None, learned=None) -> str:
    """One line per condition (value, threshold, met or not)."""
    return "\n".join(c.line() for c in conditions(cfg, W0, features, learned))

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
