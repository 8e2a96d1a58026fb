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

from numbers import Integral, Real

import numpy as np

from .activation import smoothed_relu, smoothed_relu_grad
from .constraints import NORMS, Interval, Options, check
from .model import check_inputs

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
    return smoothed_relu_grad(z, q, rho)


def _chord(lo, hi, q, rho):
    """Slope of σ's chord over [lo, hi] (0 where the interval is a point)."""
    return np.divide(smoothed_relu(hi, q, rho) - smoothed_relu(lo, q, rho), hi - lo,
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
    return (smoothed_relu(pr.a - pr.ry, q, rho).sum(-1)
            - smoothed_relu(pr.b + pr.rt, q, rho).sum(-1))


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
    sl, su = smoothed_relu(lo, q, rho), smoothed_relu(hi, q, rho)
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
    return smoothed_relu(za, q, rho).sum(-1) - smoothed_relu(zb, q, rho).sum(-1)


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
    sl, su = smoothed_relu(lo, q, rho), smoothed_relu(hi, q, rho)
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
    sl, su = smoothed_relu(lo, q, rho), smoothed_relu(hi, q, rho)
    chord = np.divide(su - sl, hi - lo, out=np.zeros_like(hi), where=hi > lo)
    lam_b = np.where(pr.a > 0, np.minimum(np.clip(pr.a, 0, rho) / rho, 1.0) ** (q - 1.0), 0.0)
    if q == 1.0:
        lam_b = (pr.a > 0).astype(float)
    la = pr.a - pr.ry
    lam_a = np.where(la > 0, np.minimum(np.clip(la, 0, rho) / rho, 1.0) ** (q - 1.0), 0.0)
    if q == 1.0:
        lam_a = (la > 0).astype(float)
    return (lam_b, chord), (lam_a, np.zeros_like(chord))


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
    size = (smoothed_relu(np.abs(pr.a) + pr.ry, q, rho).sum((1, 2))
            + smoothed_relu(np.abs(pr.b) + pr.rt, q, rho).sum((1, 2)))
    tol = np.zeros(n)
    np.maximum.at(tol, pr.i, _ROUNDING * (1.0 + size))
    return {"lower": lower, "upper": up, "certified": lower > tol, "levels": levels}


def _open(pair, upper, pr, n):
    """Pairs still worth work: not proven (bound ≤ 0) and of a point that no
    feasible δ found so far breaks (a point with upper ≤ 0 on some target is
    decided: not robust).  -> indices into the pairs."""
    broken = _per_point(upper, pr, n) <= 0
    return np.nonzero((pair <= 0) & ~broken[pr.i])[0]


def _per_point(pair, pr, n):
    """min over the targets of each point -> (n,)."""
    out = np.full(n, np.inf)
    np.minimum.at(out, pr.i, pair)
    return out


def _subset(pr, idx):
    """The pairs idx of pr (a shallow _Pairs)."""
    sub = _Pairs.__new__(_Pairs)
    for name in ("i", "t", "a", "b", "Wy", "Wt", "ry", "rt"):
        setattr(sub, name, getattr(pr, name)[idx])
    sub.eps, sub.norm = pr.eps, pr.norm
    return sub


def _bab(pr, per, pair, slopes, q, rho, steps, budget, todo):
    """(c2) E5 branch and bound for ℓ∞.  per (Q,P) patch bounds, pair (Q,).

    For every pair not yet proven (bound ≤ 0), every patch box is refined for
    ``budget`` rounds: each leaf box c0 ± e is split in half along the
    coordinate that most widens its ambiguous neurons' intervals (largest
    e_i · Σ_r |w_{r,i}| over neurons whose interval meets (0, ρ), where σ is
    curved), and both halves are re-bounded with slopes warm-started from the
    parent and optimised.  A leaf's bound is the larger of its own and its
    parent's (the parent's holds on the half too); a patch's bound is the
    minimum over its leaves, which tile its ε-box.  A pair stops being refined
    once its summed bound is > 0.  Only the pairs ``todo`` (indices) are
    refined, a chunk at a time (at most 2^16 leaves in memory).
    Returns the new pair bounds (Q,) and an upper bound (Q,) (the true margin at
    the best leaf minimisers found, a feasible δ).
    """
    pair = pair.copy()
    upper = np.full(pair.shape, np.inf)
    # memory: a chunk holds chunk·P·2^budget leaves of d floats per array; cap it at 2^16 leaves
    chunk = max(1, min(64, 2**16 // (pr.a.shape[1] * 2**budget)))
    for start in range(0, todo.size, chunk):
        idx = todo[start:start + chunk]
        sub = _subset(pr, idx)
        low, up = _bab_chunk(sub, per[idx], slopes[0][idx], slopes[1][idx], q, rho, steps, budget)
        pair[idx] = np.maximum(pair[idx], low)
        upper[idx] = up
    return pair, upper


def _bab_chunk(sub, per, lam, s, q, rho, steps, budget):
    """_bab on one chunk of pairs: leaves kept on the patch axis, (T, L, ·).

    Every round splits every leaf, so leaf ℓ belongs to patch ℓ mod P; rows
    (pairs) whose summed bound is > 0 leave the computation."""
    eps = sub.eps
    T, P = sub.a.shape[:2]
    # the feasible point of the optimised relaxation: an upper bound on the worst margin
    _, c, *_ = _bound_at(sub, lam, s, q, rho)
    upper = _true_g(sub, _minimiser(c, "linf", eps), q, rho).sum(-1)
    result = per.sum(-1)
    rows = np.arange(T)
    Wy, Wt = sub.Wy, sub.Wt
    a, b = sub.a, sub.b
    c0 = np.zeros(a.shape[:2] + (Wy.shape[2],))
    e = np.full(c0.shape, eps)
    val = per.copy()
    for _ in range(budget):
        WyT, WtT = np.swapaxes(Wy, 1, 2), np.swapaxes(Wt, 1, 2)
        aWy, aWt = np.abs(Wy), np.abs(Wt)
        ac, bc = a + np.matmul(c0, WyT), b + np.matmul(c0, WtT)
        ra, rb = np.matmul(e, np.swapaxes(aWy, 1, 2)), np.matmul(e, np.swapaxes(aWt, 1, 2))
        amb_a = ((ac + ra > 0) & (ac - ra < rho)).astype(float)
        amb_b = ((bc + rb > 0) & (bc - rb < rho)).astype(float)
        score = e * (np.matmul(amb_a, aWy) + np.matmul(amb_b, aWt))        # (T,L,d)
        coord = score.argmax(-1)                                           # (T,L)
        ti, li = np.nonzero(np.ones(coord.shape, bool))
        ci = coord[ti, li]
        half = e[ti, li, ci] / 2.0
        L = coord.shape[1]
        c0 = np.concatenate([c0, c0], axis=1)
        e = np.concatenate([e, e], axis=1)
        c0[ti, li, ci] -= half
        c0[ti, L + li, ci] += half
        e[ti, li, ci] = half
        e[ti, L + li, ci] = half
        a, b = np.concatenate([a, a], axis=1), np.concatenate([b, b], axis=1)
        lam, s = np.concatenate([lam, lam], axis=1), np.concatenate([s, s], axis=1)
        val = np.concatenate([val, val], axis=1)          # the parent's bound holds on its halves
        leaf = _Pairs.__new__(_Pairs)
        leaf.eps, leaf.norm = eps, "linf"
        leaf.a, leaf.b, leaf.Wy, leaf.Wt, leaf.ry, leaf.rt = a, b, Wy, Wt, None, None
        val, lam, s = _optimise(leaf, lam, s, q, rho, steps, c0=c0, e=e, best=val)   # warm-started
        patch = val.reshape(len(rows), -1, P).min(axis=1)  # min over the leaves tiling each patch
        total = np.maximum(patch, per[rows]).sum(-1)
        result[rows] = np.maximum(result[rows], total)
        keep = total <= 0
        if not keep.any():
            break
        rows = rows[keep]
        Wy, Wt, a, b, c0, e = Wy[keep], Wt[keep], a[keep], b[keep], c0[keep], e[keep]
        lam, s, val = lam[keep], s[keep], val[keep]
    return result, upper


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
