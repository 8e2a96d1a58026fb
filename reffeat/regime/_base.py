"""§11: what every regime condition shares — the ``Condition`` record, the
smoothed-ReLU scalars, the tensor-power ODE (∗) of the package docstring, the
expected initial maxima and the feature amplitudes."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import ndtr, ndtri

from ..claims import THRESHOLDS as _CLAIM_THRESHOLDS
from ..output import encode

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
