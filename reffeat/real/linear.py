"""R4 baseline: a linear softmax classifier on the same inputs (clean and robust).

    f(x) = V x + b,  V (k, D), b (k,), x the flattened input (D = P·d; patch
    space and image space differ by a permutation of coordinates, so this is
    the linear classifier on the pixels after R2's preprocessing).
    Loss L2 on f; gradient (hand-derived, G1 then the chain rule):
        ∇_V ℓ = (logit − e_y) xᵀ,   ∇_b ℓ = logit − e_y,   ∇_x ℓ = Vᵀ (logit − e_y).
    Training: mini-batch Adam (as R3), ST on clean inputs or AT on the one-step
    T2 example (FGSM / FGM, clipped to the box), the paper's algorithm.

Robust accuracy is exact for ℓ∞ (no attack needed): for a target j ≠ y the
margin m_j(x) = (v_y − v_j)·x + b_y − b_j is linear, and the ε-ball
intersected with the pixel box is a box, so its minimum over the box is taken
coordinatewise, δ_i = −ε·sign((v_y − v_j)_i) clipped to [lo − x_i, hi − x_i];
x is robust iff min_j of these minima > 0. For ℓ2 without a box it is exact
too (m_j(x) > ε‖v_y − v_j‖₂); for ℓ2 with a box this bound ignores the box,
so it is a lower bound on the robust accuracy.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np

from .. import seeding
from ..constraints import MODES, Interval, Options, check
from ..model import log_softmax
from .train import LR_SCHEDULES


def _flat(X):
    X = np.asarray(X)
    return X.reshape(X.shape[0], -1)


def linear_outputs(V, b, X) -> np.ndarray:
    """f(x) = V x + b for every row: X (n, P, d) or (n, D) -> (n, k)."""
    return _flat(X) @ V.T + b


def linear_loss_grads(V, b, X, y):
    """L3 of the linear model and its hand-derived gradients: (L, ∇_V (k, D), ∇_b (k,))."""
    X2 = _flat(X)
    lp = log_softmax(linear_outputs(V, b, X2))
    C = np.exp(lp)
    rows = np.arange(len(y))
    C[rows, y] -= 1.0
    n = len(y)
    return float(-lp[rows, y].mean()), C.T @ X2 / n, C.sum(axis=0) / n


def linear_grad_x(V, b, X, y) -> np.ndarray:
    """∇_x ℓ per sample, shaped like X: Vᵀ (logit − e_y)."""
    X2 = _flat(X)
    C = np.exp(log_softmax(linear_outputs(V, b, X2)))
    C[np.arange(len(y)), y] -= 1.0
    return (C @ V).reshape(np.shape(X))


def linear_fgsm(V, b, X, y, eps, norm="linf", clip=(0.0, 1.0)) -> np.ndarray:
    """T2 with K = 1, γ = ε on the linear model (FGSM for ℓ∞, FGM for ℓ2)."""
    g = _flat(linear_grad_x(V, b, X, y))
    if norm == "linf":
        step = eps * np.sign(g)
    else:
        nrm = np.sqrt((g * g).sum(axis=1, keepdims=True))
        step = eps * np.divide(g, nrm, out=np.zeros_like(g), where=nrm > 0)
    Xa = _flat(X) + step
    if clip is not None:
        np.clip(Xa, clip[0], clip[1], out=Xa)
    return Xa.reshape(np.shape(X))


def linear_robust_correct(V, b, X, y, eps, norm="linf", clip=(0.0, 1.0)) -> np.ndarray:
    """Exact (ℓ∞; ℓ2 without box) per-point robustness of the linear model (n,) bool.

    See the module docstring; ε = 0 gives clean correctness.
    """
    X2 = _flat(X)
    n, k = len(y), V.shape[0]
    F = linear_outputs(V, b, X2)
    ok = np.ones(n, dtype=bool)
    for j in range(k):
        other = y != j
        if not other.any():
            continue
        idx = np.flatnonzero(other)
        Dv = V[y[idx]] - V[j]                               # (n', D): ∇ of the margin
        marg = F[idx, y[idx]] - F[idx, j]
        if norm == "linf":
            delta = -eps * np.sign(Dv)
            if clip is not None:
                delta = np.clip(X2[idx] + delta, clip[0], clip[1]) - X2[idx]
            worst = marg + (Dv * delta).sum(axis=1)
        else:
            worst = marg - eps * np.sqrt((Dv * Dv).sum(axis=1))
        ok[idx] &= worst > 0
    return ok


def train_linear(X, y, k, *, mode="st", eps=0.1, norm="linf", epochs=10, batch_size=128,
                 lr=0.003, seed=0, clip=(0.0, 1.0), dtype="float32", lr_schedule="constant"):
    """Mini-batch Adam on L3 of the linear model, ST or one-step AT (T3 with K = 1),
    with R3's learning-rate schedules ("constant" or "cosine" decay to 0).

    Returns (V (k, D), b (k,), history dict with per-epoch mean loss).
    """
    check("mode", mode, Options(MODES))
    check("epochs", epochs, Interval(Integral, 1))
    check("lr_schedule", lr_schedule, Options(LR_SCHEDULES))
    X2 = _flat(X).astype(dtype, copy=False)
    y = np.asarray(y)
    n, D = X2.shape
    rng = seeding.rng(seed, "real-linear", mode)
    V, b = np.zeros((k, D), dtype=dtype), np.zeros(k, dtype=dtype)
    mV, vV, mb, vb = np.zeros_like(V), np.zeros_like(V), np.zeros_like(b), np.zeros_like(b)
    total = epochs * -(-n // batch_size)
    t, hist = 0, {"epoch": [], "loss": []}
    for e in range(1, epochs + 1):
        order = rng.permutation(n)
        tot = 0.0
        for s in range(0, n, batch_size):
            idx = order[s:s + batch_size]
            Xb, yb = X2[idx], y[idx]
            if mode == "at" and eps > 0:
                Xb = linear_fgsm(V, b, Xb, yb, eps, norm, clip)
            L, gV, gb = linear_loss_grads(V, b, Xb, yb)
            t += 1
            lr_t = lr if lr_schedule == "constant" else lr * 0.5 * (1 + np.cos(np.pi * (t - 1) / total))
            for P_, g, M, S in ((V, gV, mV, vV), (b, gb, mb, vb)):
                M *= 0.9; M += 0.1 * g
                S *= 0.999; S += 0.001 * g * g
                P_ -= (lr_t * (M / (1 - 0.9 ** t)) / (np.sqrt(S / (1 - 0.999 ** t)) + 1e-8)).astype(dtype)
            tot += L * len(idx)
        hist["epoch"].append(e)
        hist["loss"].append(tot / n)
    return V.astype(np.float64), b.astype(np.float64), hist
