"""E5, branch and bound (ℓ∞): the patch boxes of the unproven (point, target)
pairs split and re-bounded, in chunks of bounded memory."""

from __future__ import annotations

import numpy as np

from ._relax import _bound_at, _minimiser, _optimise, _Pairs, _true_g


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
