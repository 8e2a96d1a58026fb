"""E5, the pieces: σ's tangents and chords, the per-patch relaxed problems
(interval, linear, optimised slopes) and their dual-norm minima."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

from ..activation import smoothed_relu, smoothed_relu_grad
from ..constraints import Interval

LEVELS = ("interval", "linear", "optimized", "bab")
_EPS = Interval(Real, 0)
_STEPS = Interval(Integral, 0)
_ROUNDING = 1e-10      # relative margin a bound must clear to count as a proof (see certify_bounds)


# ------------------------------------------------------------------ pieces of σ
def _tangent_intercept(lam, q, rho):
    """h(λ): σ(z) ≥ λ z + h(λ) for all z, λ ∈ [0, 1] (−σ*(λ), σ* the conjugate)."""
    if q == 1.0:
        return np.zeros_like(lam)
    return -(1.0 - 1.0 / q) * rho * lam ** (q / (q - 1.0))


def _tangent_point(lam, q, rho):
    """τ(λ) = ρ λ^{1/(q−1)}: where the tangent of slope λ touches σ (0 for q = 1)."""
    if q == 1.0:
        return np.zeros_like(lam)
    return rho * lam ** (1.0 / (q - 1.0))


def _slope(z, q, rho):
    """N2: σ'(z) (with σ'(z) = 0 at z <= 0 also for q = 1)."""
    return smoothed_relu_grad(z, q=q, rho=rho)


def _chord(lo, hi, q, rho):
    """Slope of σ's chord over [lo, hi] (0 where the interval is a point)."""
    return np.divide(smoothed_relu(hi, q=q, rho=rho) - smoothed_relu(lo, q=q, rho=rho), hi - lo,
                     out=np.zeros_like(hi), where=hi > lo)


def _dual_norm(c, norm):
    """‖c‖_* over the last axis: ℓ1 for the ℓ∞ box, ℓ2 for the ℓ2 balls."""
    if norm == "linf":
        return np.abs(c).sum(axis=-1)
    return np.sqrt((c * c).sum(axis=-1))


# ------------------------------------------------------------------ the problems
class _Pairs:
    """The (point, target) pairs to prove: Q = n(k−1) of them, each with P patches.

    a (Q,P,m) class-y pre-activations at the region's centre, b (Q,P,m) class-t
    ones, Wy, Wt (Q,m,d) the two classes' weights; for ℓ∞ sub-boxes, c0 (Q,P,d)
    the box centre offset and e (Q,P,d) its half widths (None: the ε-box/ball).
    """

    def __init__(self, W, X, y, eps, norm):
        n, P, d = X.shape
        k = W.shape[0]
        i, t = np.nonzero(np.arange(k)[None, :] != y[:, None])   # pairs (i, t), t ≠ y_i
        self.i, self.t = i, t
        Z = (X.reshape(n * P, d) @ W.reshape(k * W.shape[1], d).T).reshape(n, P, k, -1)
        self.a = Z[i, :, y[i], :]                 # (Q, P, m)
        self.b = Z[i, :, t, :]
        self.Wy = W[y[i]]                          # (Q, m, d)
        self.Wt = W[t]
        dn = _dual_norm(W, norm)                   # (k, m): ε‖w‖_* = the exact radius of z
        self.ry = np.broadcast_to((eps * dn[y[i]])[:, None, :], self.a.shape)
        self.rt = np.broadcast_to((eps * dn[t])[:, None, :], self.b.shape)
        self.eps, self.norm = eps, norm


def _interval_bound(pr, q, rho):
    """(a) E5 interval level: per patch Σ_r σ(a − r_y) − Σ_r σ(b + r_t). (Q, P)."""
    return (smoothed_relu(pr.a - pr.ry, q=q, rho=rho).sum(-1)
            - smoothed_relu(pr.b + pr.rt, q=q, rho=rho).sum(-1))


def _relaxed(a, b, ry, rt, Wy, Wt, lam, s, q, rho, c0=None, e=None):
    """The linear relaxation at slopes (λ, s) over one region per patch.

    a, b, ry, rt, lam, s (Q,P,m); Wy, Wt (Q,m,d); c0, e (Q,P,d) for a sub-box
    (ℓ∞ only; a, b are then pre-activations at the clean point, the box is
    c0 ± e).  Returns κ (Q,P) (constant part, at the region centre), c (Q,P,d)
    and the intervals' ends used (l, u) for class t.
    """
    if c0 is not None:
        a = a + np.matmul(c0, np.swapaxes(Wy, 1, 2))
        b = b + np.matmul(c0, np.swapaxes(Wt, 1, 2))
        ry = np.matmul(e, np.swapaxes(np.abs(Wy), 1, 2))
        rt = np.matmul(e, np.swapaxes(np.abs(Wt), 1, 2))
    lo, hi = b - rt, b + rt
    sl, su = smoothed_relu(lo, q=q, rho=rho), smoothed_relu(hi, q=q, rho=rho)
    G = np.maximum(sl - s * lo, su - s * hi)
    kappa = (lam * a + _tangent_intercept(lam, q, rho)).sum(-1) - (s * b + G).sum(-1)
    c = np.matmul(lam, Wy) - np.matmul(s, Wt)
    return kappa, c, lo, hi, a, b, ry


def _linear_term(c, norm, eps, e=None):
    """min over the region of ⟨c_p, δ_p⟩, per patch (Q,P); for "l2" the per-patch
    ℓ2 norms ‖c_p‖ (the caller combines them as −ε(Σ_p ‖c_p‖²)^{1/2})."""
    if e is not None:
        return -(np.abs(c) * e).sum(-1)
    if norm == "l2":
        return np.sqrt((c * c).sum(-1))
    return -eps * _dual_norm(c, norm)


def _minimiser(c, norm, eps, e=None, c0=None, total=None):
    """The δ_p (Q,P,d) at which the relaxed linear part is smallest (a feasible δ)."""
    if norm == "linf":
        d = -np.sign(c) * (eps if e is None else e)
        return d if c0 is None else c0 + d
    if norm == "l2-patch":
        nr = np.sqrt((c * c).sum(-1, keepdims=True))
        return -eps * np.divide(c, nr, out=np.zeros_like(c), where=nr > 0)
    tot = total[:, None, None]                  # whole-input norm of the stacked c
    return -eps * np.divide(c, tot, out=np.zeros_like(c), where=tot > 0)


def _true_g(pr, delta, q, rho):
    """g_p(δ_p) exactly (Q,P): Σ_r σ(a + ⟨w_y, δ⟩) − Σ_r σ(b + ⟨w_t, δ⟩)."""
    za = pr.a + np.matmul(delta, np.swapaxes(pr.Wy, 1, 2))
    zb = pr.b + np.matmul(delta, np.swapaxes(pr.Wt, 1, 2))
    return smoothed_relu(za, q=q, rho=rho).sum(-1) - smoothed_relu(zb, q=q, rho=rho).sum(-1)


def _bound_at(pr, lam, s, q, rho, c0=None, e=None, a=None, b=None, Wy=None, Wt=None, ry=None,
              rt=None):
    """Per-patch (separable norms) or per-pair (l2) bound and its pieces."""
    a = pr.a if a is None else a
    b = pr.b if b is None else b
    Wy = pr.Wy if Wy is None else Wy
    Wt = pr.Wt if Wt is None else Wt
    ry = pr.ry if ry is None else ry
    rt = pr.rt if rt is None else rt
    kappa, c, lo, hi, ac, bc, ry = _relaxed(a, b, ry, rt, Wy, Wt, lam, s, q, rho, c0, e)
    lin = _linear_term(c, pr.norm, pr.eps, e)
    return kappa, c, lin, lo, hi, ac, bc, ry


def _optimise(pr, lam, s, q, rho, steps, c0=None, e=None, a=None, b=None, Wy=None, Wt=None,
              best=None, lr=0.25, decay=0.85):
    """Projected supergradient ascent on the concave bound in (λ, s): sign steps,
    each slope kept in its useful range (λ ∈ [σ'(l_y), σ'(u_y)], s ∈ [0, σ'(u_t)]).

    Returns the best per-patch bound found (Q,P) (for "l2": per-pair (Q,)) and
    the slopes that gave it.  Sound at every iterate; only improvements are
    kept (``best``: bounds already known for these regions, or None).
    """
    norm, eps = pr.norm, pr.eps
    a = pr.a if a is None else a
    b = pr.b if b is None else b
    Wy = pr.Wy if Wy is None else Wy
    Wt = pr.Wt if Wt is None else Wt
    WyT, WtT = np.swapaxes(Wy, 1, 2), np.swapaxes(Wt, 1, 2)
    # everything that depends on the region only, once
    if c0 is not None:
        ac, bc = a + np.matmul(c0, WyT), b + np.matmul(c0, WtT)
        ry = np.matmul(e, np.swapaxes(np.abs(Wy), 1, 2))
        rt = np.matmul(e, np.swapaxes(np.abs(Wt), 1, 2))
    else:
        ac, bc, ry, rt = a, b, pr.ry, pr.rt
    lo, hi = bc - rt, bc + rt
    sl, su = smoothed_relu(lo, q=q, rho=rho), smoothed_relu(hi, q=q, rho=rho)
    chord = _chord(lo, hi, q, rho)
    lam_lo, lam_hi = _slope(ac - ry, q, rho), _slope(ac + ry, q, rho)
    smax = _slope(hi, q, rho)
    lam, s = lam.copy(), s.copy()
    best_lam, best_s = lam.copy(), s.copy()
    for it in range(steps + 1):
        G = np.maximum(sl - s * lo, su - s * hi)
        kappa = (lam * ac + _tangent_intercept(lam, q, rho)).sum(-1) - (s * bc + G).sum(-1)
        c = np.matmul(lam, Wy) - np.matmul(s, Wt)
        lin = _linear_term(c, norm, eps, e)
        tot = None
        if norm == "l2":
            tot = np.sqrt((lin * lin).sum(-1))
            val = kappa.sum(-1) - eps * tot                 # (Q,)
        else:
            val = kappa + lin                               # (Q,P)
        better = val > best if best is not None else np.ones(val.shape, bool)
        best = val if best is None else np.maximum(best, val)
        best_lam[better], best_s[better] = lam[better], s[better]
        if it == steps:
            break
        delta = _minimiser(c, norm, eps, e, None, tot)      # argmin of the linear part (offset)
        za = ac + np.matmul(delta, WyT)                     # pre-activations at δ*
        zb = bc + np.matmul(delta, WtT)
        # supergradients: ∂/∂λ = z_y(δ*) − τ(λ);  ∂/∂s = pivot − z_t(δ*)
        gl = za - _tangent_point(lam, q, rho)
        gs = np.where(s < chord, hi, lo) - zb
        step = lr * decay ** it
        lam = np.clip(lam + step * (lam_hi - lam_lo) * np.sign(gl), lam_lo, lam_hi)
        s = np.clip(s + step * smax * np.sign(gs), 0.0, smax)
    return best, best_lam, best_s


def _initial_slopes(pr, q, rho):
    """The two classical slope choices: (tangent at the clean point, chord) — the
    "linear" level — and (tangent at l, s = 0), which reproduces the interval bound."""
    lo, hi = pr.b - pr.rt, pr.b + pr.rt
    sl, su = smoothed_relu(lo, q=q, rho=rho), smoothed_relu(hi, q=q, rho=rho)
    chord = np.divide(su - sl, hi - lo, out=np.zeros_like(hi), where=hi > lo)
    lam_b = np.where(pr.a > 0, np.minimum(np.clip(pr.a, 0, rho) / rho, 1.0) ** (q - 1.0), 0.0)
    if q == 1.0:
        lam_b = (pr.a > 0).astype(float)
    la = pr.a - pr.ry
    lam_a = np.where(la > 0, np.minimum(np.clip(la, 0, rho) / rho, 1.0) ** (q - 1.0), 0.0)
    if q == 1.0:
        lam_a = (la > 0).astype(float)
    return (lam_b, chord), (lam_a, np.zeros_like(chord))
