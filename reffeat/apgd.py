"""E2c: APGD (Croce & Hein 2020, "Reliable evaluation of adversarial robustness
with an ensemble of diverse parameter-free attacks" — the attacks of
AutoAttack) with the cross-entropy (APGD-CE) and the DLR loss (APGD-DLR),
written with G3 (hand-derived input gradients, no autodiff).

    Losses of the outputs F = F(W; X) (n, k) and their ∂/∂F (the G1 slot of G3):
      CE   ℓ = −log logit_y(F)                         ∂ℓ/∂F_j = logit_j − 1[j = y]      (G1)
      DLR  ℓ = −(F_y − max_{i≠y} F_i) / (F_π1 − F_π3 + 1e-12)
           (π1 ≥ π2 ≥ π3 … the outputs sorted decreasingly; needs k ≥ 3)
           with N = F_y − F_o (o = argmax_{i≠y} F_i), D = F_π1 − F_π3 + 1e-12:
           ∂ℓ/∂F_y = −1/D,  ∂ℓ/∂F_o += 1/D,  ∂ℓ/∂F_π1 += N/D²,  ∂ℓ/∂F_π3 −= N/D²
    G3 with a general coefficient c = ∂ℓ/∂F (n, k):
      ∇_{x_p} ℓ = Σ_j c_j Σ_r σ'(⟨w_{j,r}, x_p⟩) w_{j,r}

    APGD iteration (η^{(0)} = 2ε, momentum α = 0.75, α = 1 at the first step):
      z^{(i+1)} = Π( x^{(i)} + η^{(i)} D(∇ℓ(x^{(i)})) )
      x^{(i+1)} = Π( x^{(i)} + α (z^{(i+1)} − x^{(i)}) + (1 − α)(x^{(i)} − x^{(i−1)}) )
    with D and Π of T2 (sign / ℓ2-normalised direction; projection on the ε-ball,
    then the pixel box if ``clip``). Checkpoints: the first after
    h = ⌈0.22·N_iter⌉ (``max(int(0.22 N), 1)``) iterations, then every h
    iterations with h shrinking by max(int(0.03 N), 1) down to
    max(int(0.06 N), 1). At a checkpoint the step of a sample is halved, and
    its iterate (and gradient) reset to its best point so far, if
      condition 1: the loss increased in at most ρ·h of the last h steps (ρ = 0.75), or
      condition 2: its step was not halved at the previous checkpoint and its
                   best loss has not improved since.
    (The step-size schedule and both conditions as in the reference
    implementation, fra31/auto-attack ``autopgd_base.py``; condition 1 there
    uses "at most", the paper "fewer than".)

    Per sample the attack reports whether any iterate (the random start
    included) was misclassified; ``apgd`` returns that iterate, else the
    point of highest loss. With ``restarts`` R > 0 it runs 1 + R times from
    fresh random starts, each time only on the points not yet fooled (as
    AutoAttack does).

k = 2: the DLR loss needs a third output (its denominator F_π1 − F_π3 is
what makes it scale-invariant); with two outputs F_π1 − F_π2 = |N| and the
loss is ±1, a constant with zero gradient. ``apgd(loss="dlr")`` raises for
k < 3 and ``robust_correct`` reports APGD-DLR as skipped (null) there — the
rule lives once, in ``attacks.apgd_losses(k)``. The losses and their input
gradients (``loss_and_grad_x``) live in ``reffeat.attacks`` with T2.

Cost: one iteration is one forward pass and one G3 product (the same as one
PGD step); APGD-CE + APGD-DLR with N iterations cost 2N PGD steps.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

from . import backend as _backend
from .attacks import LOSSES, InputMap, _apply, apgd_losses, direction, loss_and_grad_through, loss_and_grad_x, project
from .constraints import IMAGE_NORMS, NORMS, Interval, Options, check, check_labels
from .model import check_inputs, forward

_EPS = Interval(Real, 0)
_STEPS = Interval(Integral, 1)
_RESTARTS = Interval(Integral, 0)
_UNIT = Interval(Real, 0, 1, closed="right")


# ------------------------------------------------------------------ schedule

def checkpoints(steps: int) -> list[int]:
    """E2c: the iterations (1-based counts) after which the step size is checked.

    First after h0 = max(int(0.22 N), 1), then h shrinks by max(int(0.03 N), 1)
    per checkpoint down to max(int(0.06 N), 1).
    """
    h = max(int(0.22 * steps), 1)
    h_min = max(int(0.06 * steps), 1)
    dec = max(int(0.03 * steps), 1)
    out, t = [], 0
    while t + h <= steps:
        t += h
        out.append(t)
        h = max(h - dec, h_min)
    return out


def random_start(shape, eps, norm, rng):
    """APGD's random start: ε·t/‖t‖ with t uniform in [−1, 1] (ℓ∞: ‖·‖∞, so a
    coordinate sits on the boundary) or Gaussian (ℓ2: on the sphere)."""
    if norm == "linf":
        t = rng.uniform(-1.0, 1.0, size=shape)
        return eps * t / (np.abs(t).max(axis=(1, 2), keepdims=True) + 1e-12)
    t = rng.standard_normal(shape)
    axes = (1, 2) if norm == "l2" else (2,)
    return eps * t / (np.sqrt((t * t).sum(axis=axes, keepdims=True)) + 1e-12)


def _check(eps, norm, loss, steps, restarts, alpha, rho_osc):
    """E2c's parameters at the public boundary (``reffeat.constraints``)."""
    check("norm", norm, Options(NORMS))
    check("loss", loss, Options(LOSSES))
    check("eps", eps, _EPS)
    check("steps", steps, _STEPS)
    check("restarts", restarts, _RESTARTS)
    check("alpha (momentum)", alpha, _UNIT)
    check("rho_osc", rho_osc, _UNIT)


def apgd_run(W, X, y, *, q, rho, eps, norm="linf", loss="ce", steps=100, start, clip=None,
             alpha=0.75, rho_osc=0.75, backend=None, view: InputMap | None = None):
    """E2c: one APGD run from the perturbation ``start`` (n, P, d) (see ``random_start``).

    ``view``: an ``attacks.InputMap`` that is not a permutation (see ``apgd``): X
    and ``start`` are then arrays of its space (any shape with its per-sample
    size) and the gradient is ``attacks.loss_and_grad_through`` (G3 folded back).

    Returns a dict: ``X_adv`` (n, P, d) — per sample the first misclassified
    iterate if any, else the point of highest loss; ``fooled`` (n,) bool;
    ``loss_best`` (steps + 1, n) — the best loss after each iteration (row 0:
    the start); ``step`` (n,) the final step sizes; ``loss`` (steps + 1, n)
    the loss at each iterate.
    """
    n = X.shape[0]
    X = np.asarray(X, dtype=np.float64)
    shape = X.shape
    if view is not None and view.permutation:
        view = None
    if view is not None:                  # images: ℓ∞ / whole-input ℓ2 do not care about the layout
        X, start = X.reshape(n, 1, -1), np.reshape(start, (n, 1, -1))
    ckpts = set(checkpoints(steps))
    Xa = _apply(X, start, clip)
    backend = _backend.resolve(backend)
    def grad(W, A, y, q, rho, loss, backend):
        if view is None:
            return loss_and_grad_x(W, A, y, q, rho, loss, backend=backend)
        return loss_and_grad_through(view, W, A, y, q, rho, loss, backend=backend)

    L, G, F = grad(W, Xa, y, q, rho, loss, backend=backend)
    fooled = F.argmax(axis=1) != y
    X_adv = Xa.copy()
    X_best, G_best, L_best = Xa.copy(), G.copy(), L.copy()
    trace = np.empty((steps + 1, n)); trace[0] = L
    best_trace = np.empty((steps + 1, n)); best_trace[0] = L_best
    eta = np.full((n, 1, 1), 2.0 * eps)
    X_old = Xa.copy()
    last_ck, L_best_last = 0, L_best.copy()
    reduced_last = np.ones(n, dtype=bool)
    for i in range(steps):
        a = alpha if i > 0 else 1.0
        Z = _apply(X, project(Xa + eta * direction(G, norm) - X, eps, norm), clip)
        Xn = _apply(X, project(Xa + a * (Z - Xa) + (1.0 - a) * (Xa - X_old) - X, eps, norm), clip)
        X_old, Xa = Xa, Xn
        L, G, F = grad(W, Xa, y, q, rho, loss, backend=backend)
        wrong = F.argmax(axis=1) != y
        new = wrong & ~fooled
        X_adv[new] = Xa[new]
        fooled |= wrong
        better = L > L_best
        X_best[better], G_best[better], L_best[better] = Xa[better], G[better], L[better]
        trace[i + 1], best_trace[i + 1] = L, L_best
        t = i + 1
        if t in ckpts:
            h = t - last_ck
            ups = (trace[last_ck + 1:t + 1] > trace[last_ck:t]).sum(axis=0)
            cond1 = ups <= rho_osc * h
            cond2 = ~reduced_last & (L_best_last >= L_best)
            red = cond1 | cond2
            eta[red] /= 2.0
            Xa[red], G[red] = X_best[red], G_best[red]
            reduced_last, L_best_last, last_ck = red, L_best.copy(), t
    X_adv[~fooled] = X_best[~fooled]
    return {"X_adv": X_adv.reshape(shape), "fooled": fooled, "loss_best": best_trace, "loss": trace,
            "step": eta[:, 0, 0].copy()}


def apgd(W, X, y, *, q: float, rho: float, eps: float, norm: str = "linf", loss: str = "ce",
         steps: int = 100, restarts: int = 0, rng: np.random.Generator, clip=None,
         alpha: float = 0.75, rho_osc: float = 0.75, batch: int = 500, backend=None,
         view: InputMap | None = None):
    """E2c: APGD-CE (``loss="ce"``) or APGD-DLR (``loss="dlr"``, k ≥ 3).

    X (n, P, d), y (n,) -> (X_adv (n, P, d), fooled (n,) bool). 1 + ``restarts``
    runs, each on the points not yet fooled, from random starts drawn for all of
    them at once; points are then processed in batches of ``batch`` (the result
    does not depend on ``batch``).

    ``view``: an ``attacks.InputMap`` (R2's ``reffeat.real.patches.ImageMap``) or None. X
    and X_adv are then in the map's space: for a map that is not a
    permutation, images (n, H, W, C) on which the ball and the box act, with
    the gradient fold(G3 at view.inputs(X)); a permutation map changes nothing.
    """
    _check(eps, norm, loss, steps, restarts, alpha, rho_osc)
    if loss not in apgd_losses(W.shape[0]):
        raise ValueError(f"APGD-DLR needs k >= 3 classes (got k={W.shape[0]})")
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    backend = _backend.resolve(backend)
    if view is not None and not view.permutation:
        check("norm", norm, Options(IMAGE_NORMS))     # a per-patch ball means nothing on the image
        check_inputs(W, view.inputs(X[:1]), q, rho)
        check_labels("y", y, X.shape[0], W.shape[0])
        shape = X.shape
        X = X.reshape(shape[0], 1, -1)       # ℓ∞ / whole-input ℓ2: the layout does not matter
        X_adv, fooled = _apgd(W, X, y, q, rho, eps, norm, loss, steps, restarts, rng, clip, alpha,
                              rho_osc, batch, backend, view)
        return X_adv.reshape(shape), fooled
    check_inputs(W, X, q, rho, y)
    return _apgd(W, X, y, q, rho, eps, norm, loss, steps, restarts, rng, clip, alpha, rho_osc,
                 batch, backend, None)


def _apgd(W, X, y, q, rho, eps, norm, loss, steps, restarts, rng, clip, alpha, rho_osc, batch,
          backend, view):
    """apgd() after validation; ``view`` None (patches) or a non-permutation image map."""
    X_adv = _apply(X, None, clip)
    inputs = X_adv if view is None else view.inputs(X_adv)
    fooled = forward(W, inputs, q=q, rho=rho, backend=backend).argmax(axis=1) != y
    if eps == 0:
        return X_adv, fooled
    for _ in range(restarts + 1):
        todo = np.flatnonzero(~fooled)
        starts = random_start((len(todo),) + X.shape[1:], eps, norm, rng)
        for b in range(0, len(todo), batch):
            idx = todo[b:b + batch]
            r = apgd_run(W, X[idx], y[idx], q=q, rho=rho, eps=eps, norm=norm, loss=loss,
                         steps=steps, start=starts[b:b + batch], clip=clip, alpha=alpha,
                         rho_osc=rho_osc, backend=backend, view=view)
            X_adv[idx] = r["X_adv"]
            fooled[idx] = r["fooled"]
    return X_adv, fooled


def worst_case(correct: dict) -> np.ndarray:
    """E2: per-point conjunction of the attacks' boolean (n,) "still correct"
    arrays (None entries — skipped attacks — are ignored): a point counts as
    robust only if it survives every attack."""
    arrays = [np.asarray(v, dtype=bool) for v in correct.values() if v is not None]
    if not arrays:
        raise ValueError("worst_case needs at least one attack's result")
    out = arrays[0].copy()
    for a in arrays[1:]:
        out &= a
    return out
