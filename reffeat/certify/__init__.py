"""E5: certified robust accuracy — a sound lower bound on the robust accuracy.

    E5  point i is certified when a sound bound proves, for every target t ≠ y_i
        and every δ in the threat set,   F_y(X_i + δ) − F_t(X_i + δ) > 0.

The run's attacks (E2) give an upper bound on the true robust accuracy; E5 gives
a lower bound; the truth lies in ``[E5, E2]``.

Structure (SPEC E5).  For a fixed target t the margin separates over patches,

    F_y(X+δ) − F_t(X+δ) = Σ_p g_p(δ_p),
    g_p(δ_p) = Σ_r σ(a_{p,r} + ⟨w_{y,r}, δ_p⟩) − Σ_r σ(b_{p,r} + ⟨w_{t,r}, δ_p⟩),

a_{p,r} = ⟨w_{y,r}, x_p⟩, b_{p,r} = ⟨w_{t,r}, x_p⟩, each a difference of two
convex functions of δ_p (σ of N1 is convex and nondecreasing).  The threat sets
are those of ``reffeat.attacks`` (``constraints.NORMS``), with no pixel box (the
synthetic model attacks X + δ unclipped):

    "linf"      ‖δ‖_∞ ≤ ε            (a product of per-patch boxes)
    "l2-patch"  ‖δ_p‖₂ ≤ ε for every p (a product of per-patch balls)
    "l2"        ‖δ‖₂ ≤ ε, δ the whole (P, d) input (couples the patches)

For the two product sets, min over the set of Σ_p g_p = Σ_p min g_p, so any
per-patch lower bound summed over p is a lower bound of the worst margin.

Linear relaxation (the common form of every level).  σ is convex, so for any
slope λ ∈ [0, 1] its tangent of slope λ is a global lower bound:
σ(z) ≥ λ z + h(λ), h(λ) = −(1 − 1/q) ρ λ^{q/(q−1)} (h = 0 for q = 1; the
tangent point is τ(λ) = ρ λ^{1/(q−1)}).  On an interval [l, u] ∋ z, the line of
slope s ≥ 0 through the higher of the two end points is an upper bound:
σ(z) ≤ s z + G(s), G(s) = max(σ(l) − s l, σ(u) − s u) (s = chord slope gives the
chord, s = 0 the constant σ(u)).  With λ_r for class y's neurons and s_r for
class t's (intervals [l, u] = the exact range of b_{p,r} + ⟨w_{t,r}, δ_p⟩ over
the patch's region), g_p(δ_p) ≥ κ_p + ⟨c_p, δ_p⟩ with

    κ_p = Σ_r [λ_r a_r + h(λ_r)] − Σ_r [s_r b_r + G_r(s_r)],
    c_p = Σ_r λ_r w_{y,r} − Σ_r s_r w_{t,r},

whose minimum over the region is exact: κ_p − ε‖c_p‖₁ (ℓ∞ box), κ_p − ε‖c_p‖₂
(ℓ2 patch ball).  Whole-input ℓ2: each δ_p of the ball has ‖δ_p‖₂ ≤ ε, so each
patch relaxation (built on its ε-ball) holds on the whole ball, and
min_{‖δ‖≤ε} Σ_p (κ_p + ⟨c_p, δ_p⟩) = Σ_p κ_p − ε (Σ_p ‖c_p‖₂²)^{1/2} exactly
(Cauchy–Schwarz on the stacked c).  This is the Lagrangian split of the budget,
max_{μ≥0} Σ_p min_{δ_p} [κ_p + ⟨c_p, δ_p⟩ + μ‖δ_p‖²] − με² (weak duality makes
it a lower bound for every μ), at its best multiplier μ = ‖c‖₂/(2ε), so no
search over μ is needed.  Every choice of (λ, s) gives a sound
bound; the bound is concave in (λ, s) (h concave, G convex, −‖c‖ concave).

Levels (``level``), each at least as tight as the one before, on the same
inputs (each keeps the best of its own bound and the previous level's):

    "interval"   each neuron moved on its own: Σ_r σ(a_r − ε‖w_{y,r}‖_*) −
                 Σ_r σ(b_r + ε‖w_{t,r}‖_*) per patch (‖·‖_* = ℓ1 for ℓ∞, ℓ2
                 for ℓ2); for whole-input ℓ2 the per-patch sums are again a
                 bound (each δ_p lies in the patch's ε-ball).
    "linear"     tangent at the clean pre-activation (λ = σ'(a)) for class y,
                 chord over [l, u] for class t, one joint dual norm per patch.
    "optimized"  (λ, s) improved by projected supergradient ascent on the
                 concave bound (the α-CROWN idea), best iterate kept; the
                 supergradient moves each tangent toward the relaxation's own
                 minimiser (any tangent point is sound).
    "bab"        (ℓ∞ only; for ℓ2 it equals "optimized") branch and bound:
                 for the (point, target) pairs not yet proven, every patch box
                 is split in half along the coordinate that most widens its
                 curved neurons' intervals, both halves re-bounded with slopes
                 warm-started from the parent, for ``bab_budget`` rounds (each
                 round splits every leaf; a pair leaves once proven).  A
                 patch's bound is the minimum over its leaves, which tile its
                 box; a leaf keeps its parent's bound if that is better.  Why
                 every patch and not a few: at the defaults the gap of the
                 linear relaxation is spread evenly over the P − s dense
                 patches (the target's Γ-neurons all read the one coordinate
                 u_t, which the adversary sets to +ε on every patch), and one
                 split along u_t closes most of it.

Pairs of a point that a feasible δ already breaks are not refined (the point
is decided).  Cost grows with the undecided pairs: 0.3–3 s for the 300 test
points at the defaults (seeds 0–3), ~20–30 s where many points are undecided
(``--set eps=0.3``, ``--preset q3``).

Also, from the same work, a true *upper* bound on the worst margin: the value
Σ_p g_p at the relaxation's minimisers (feasible δ's, so real perturbations).
When it is ≤ 0 the point is proven non-robust (``certify_bounds``): E5 and
this bound together decide a point exactly.

Shapes: W (k, m, d), X (n, P, d), y (n,) -> bool (n,).
"""

from __future__ import annotations

import numpy as np

from ..activation import smoothed_relu
from ..constraints import NORMS, Options, check
from ..model import check_inputs
from ._bab import _bab, _open, _per_point, _subset
from ._relax import (
    _EPS,
    _ROUNDING,
    _STEPS,
    LEVELS,
    _bound_at,
    _initial_slopes,
    _interval_bound,
    _minimiser,
    _optimise,
    _Pairs,
    _true_g,
)

__all__ = ["LEVELS", "certify", "certify_bounds"]


def certify_bounds(W: np.ndarray, X: np.ndarray, y: np.ndarray, *, q: float, rho: float, eps: float,
                   norm: str = "linf",
                   level: str = "bab", steps: int = 20, bab_budget: int = 4) -> dict:
    """E5 with its numbers.  W (k,m,d), X (n,P,d), y (n,) ->

    ``lower`` (n,): a sound lower bound on min_{t≠y} min_δ (F_y − F_t)(X+δ);
    ``upper`` (n,): that margin at a feasible δ found along the way (≥ the true
    worst margin; ≤ 0 proves the point non-robust, or misclassified);
    ``certified`` (n,) bool = lower > 1e-10·(1 + the summed size of the terms)
    (a proof must clear the rounding of its own arithmetic); ``levels``: the (n,) lower bound after
    each level run ("interval", "linear", ...).
    """
    _check(eps, norm, level, steps, bab_budget)
    y = check_inputs(W, X, q, rho, y)
    W = np.asarray(W, dtype=float)
    X = np.asarray(X, dtype=float)
    q, rho = float(q), float(rho)
    n, k = X.shape[0], W.shape[0]
    if n == 0:
        empty = np.zeros(0)
        return {"lower": empty, "upper": empty, "certified": np.zeros(0, bool), "levels": {}}
    if k == 1:                       # no target to beat: every point is correct
        ones = np.full(n, np.inf)
        return {"lower": ones, "upper": ones, "certified": np.ones(n, bool), "levels": {}}
    pr = _Pairs(W, X, y, eps, norm)
    upto = LEVELS.index(level)
    levels = {}

    # (a) interval
    per = _interval_bound(pr, q, rho)                    # (Q,P): sound per patch for every norm
    pair = per.sum(-1)
    levels["interval"] = _per_point(pair, pr, n)
    # feasible point: the clean input (upper bound on the worst margin)
    upper = _true_g(pr, np.zeros(pr.a.shape[:2] + (X.shape[2],)), q, rho).sum(-1)

    if upto >= 1:                    # (b) linear: best of the two classical slope choices
        vals = []
        for lam, s in _initial_slopes(pr, q, rho):
            kappa, c, lin, *_ = _bound_at(pr, lam, s, q, rho)
            if norm == "l2":
                tot = np.sqrt((lin * lin).sum(-1))
                vals.append(kappa.sum(-1) - eps * tot)
            else:
                tot = None
                vals.append(kappa + lin)
            delta = _minimiser(c, norm, eps, total=tot)
            upper = np.minimum(upper, _true_g(pr, delta, q, rho).sum(-1))
        (lam_b, s_b), (lam_a, s_a) = _initial_slopes(pr, q, rho)
        take = vals[1] > vals[0]                         # the interval-like slopes do better
        best = np.maximum(vals[0], vals[1])
        slopes = [lam_b.copy(), s_b.copy()]
        slopes[0][take], slopes[1][take] = lam_a[take], s_a[take]
        if norm == "l2":
            pair = np.maximum(pair, best)
        else:
            per = np.maximum(per, best)
            pair = np.maximum(pair, per.sum(-1))
        levels["linear"] = _per_point(pair, pr, n)

    if upto >= 2:                    # (c1) optimised slopes, only on pairs still open
        todo = _open(pair, upper, pr, n)
        if todo.size:
            sub = _subset(pr, todo)
            lam0, s0 = slopes[0][todo], slopes[1][todo]
            start = best[todo]
            val, lam1, s1 = _optimise(sub, lam0, s0, q, rho, steps, best=start)
            slopes[0][todo], slopes[1][todo] = lam1, s1
            if norm == "l2":
                pair[todo] = np.maximum(pair[todo], val)
            else:
                per[todo] = np.maximum(per[todo], val)
                pair[todo] = np.maximum(pair[todo], per[todo].sum(-1))
        levels["optimized"] = _per_point(pair, pr, n)

    if upto >= 3:                    # (c2) branch and bound on the ℓ∞ boxes
        if norm == "linf":
            pair, up2 = _bab(pr, per, pair, slopes, q, rho, steps, bab_budget,
                             _open(pair, upper, pr, n))
            upper = np.minimum(upper, up2)
        levels["bab"] = _per_point(pair, pr, n)

    lower = _per_point(pair, pr, n)
    up = np.full(n, np.inf)
    np.minimum.at(up, pr.i, upper)
    # floating point: a bound is a sum of O(P·m) terms each at most σ(|z| + radius);
    # require it to clear their rounding, not just 0
    size = (smoothed_relu(np.abs(pr.a) + pr.ry, q=q, rho=rho).sum((1, 2))
            + smoothed_relu(np.abs(pr.b) + pr.rt, q=q, rho=rho).sum((1, 2)))
    tol = np.zeros(n)
    np.maximum.at(tol, pr.i, _ROUNDING * (1.0 + size))
    return {"lower": lower, "upper": up, "certified": lower > tol, "levels": levels}


def _check(eps, norm, level, steps, bab_budget):
    """E5's parameters at the public boundary (``reffeat.constraints``)."""
    check("norm", norm, Options(NORMS))
    check("eps", eps, _EPS)
    check("level", level, Options(LEVELS))
    check("steps", steps, _STEPS)
    check("bab_budget", bab_budget, _STEPS)


def certify(W: np.ndarray, X: np.ndarray, y: np.ndarray, *, q: float, rho: float, eps: float,
            norm: str = "linf",
            level: str = "bab", steps: int = 20, bab_budget: int = 4) -> np.ndarray:
    """E5: bool (n,), True only where a sound bound proves F_y(X+δ) > F_t(X+δ)
    for every t ≠ y and every δ of the threat set (``norm``, radius ``eps``; no
    pixel box).  W (k,m,d), X (n,P,d), y (n,).  ``level``: see the module
    docstring ("interval" ⊆ "linear" ⊆ "optimized" ⊆ "bab" as sets of
    certified points).  The mean of the result is the certified robust accuracy.
    """
    return certify_bounds(W, X, y, q=q, rho=rho, eps=eps, norm=norm, level=level, steps=steps,
                          bab_budget=bab_budget)["certified"]
