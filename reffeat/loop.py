"""The one gradient-descent loop of reffeat: its objective (T1/T3 with λ), its
stop policy and its per-step callback.  Full-batch training (T1/T3,
``reffeat.train``) and mini-batch training on real images (R3,
``reffeat.real.train``) both run their steps through ``descend``.

    T1  ST:  objective L_S(W) at the clean points X.
    T3  AT:  objective (1−λ)·L_S(W; X) + λ·L_S(W; X^adv),  X^adv from T2 at W,
             held fixed (no gradient through the attack); λ = 1 by default.
    R3  the same objective on one mini-batch at a time.

Stop policy (the same for every loop), checked at every step t:
  * the objective or its gradient at W^{(t)} is NaN/inf          -> "non-finite ..."
  * the objective at W^{(t)} exceeds ``max_loss``                 -> "diverged ..."
  * W^{(t+1)} has a NaN/inf entry                                 -> "non-finite ..."
  * max |W^{(t+1)}| exceeds ``max_weight``                        -> "diverged ..."
  * Ctrl-C (KeyboardInterrupt) during a step                      -> "interrupted ..."
In every case the loop returns W^{(t)}, the last weights that passed the
checks, and the number of completed steps; nothing computed is thrown away.

Why these bounds.  ``MAX_WEIGHT`` = 1e3: the analysis (SPEC §6, §11) is about
coefficients of order 1 (up to log factors), and the largest weights of the
project's finite runs, unstable ones included (the AT variants of verify at
η = 0.5 and 1: FGSM, PGD-3/10 with a large ascent step, ℓ2 whole-input and
per-patch threats; seeds 0–2), are ≤ 30.  A weight of
1e3 puts pre-activations α·w and logit margins in the thousands, beyond
float64's exp range (e^{−745} underflows): the loss and its gradient are then
exactly 0 or inf for most points and a step no longer computes anything.
(``--set eta=1e6`` moves the weights to ~2e3 in its first step.)
``MAX_LOSS`` = 1e6: the objective is a cross-entropy, log k at
initialisation; the largest finite spikes seen are ≤ 1.1e4 (same runs).  Both
are keyword arguments of ``descend`` and of the training functions.

The callback, if given, is called once per completed step with a ``Step``:
t, W^{(t)}, the point sets the step was taken at (clean X for ST, X^adv for
AT, both with weights for λ-mixing — the X_i of C3), their labels, the
mini-batch indices (None for full batch), the objective, its gradient and
W^{(t+1)}.  Callbacks must not modify the arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .metrics import grad_w_and_c4
from .model import grad_w

#: objective and max |w| beyond which a run counts as diverged (see module docstring)
MAX_LOSS = 1e6
MAX_WEIGHT = 1e3


@dataclass
class Step:
    """What one step of the loop used and produced (passed to callbacks).

    t: step index (W is W^{(t)}, W_next is W^{(t+1)}); points: list of
    (X_s (n, P, d), weight) — the objective is Σ_s weight·L_S(W; X_s, y);
    y (n,); batch: indices into the training set (None: full batch);
    loss: the objective at W; grad: its gradient (k, m, d); extra: what the
    caller attached (e.g. the C4 parts of the step).
    """
    t: int
    W: np.ndarray
    points: list
    y: np.ndarray
    batch: np.ndarray | None
    loss: float
    grad: np.ndarray
    W_next: np.ndarray
    extra: dict = field(default_factory=dict)


def objective_points(W, X, y, mode: str, lam: float, adversary) -> list:
    """T1/T3: the point sets of the step's objective with their weights:
    [(X, 1)] for ST (or when λ = 0 or there is no adversary), [(X^adv, 1)]
    for AT with λ = 1, [(X, 1−λ), (X^adv, λ)] otherwise.  ``adversary(W, X, y)``
    returns X^adv (T2 at the current W)."""
    if mode == "st" or lam == 0 or adversary is None:
        return [(X, 1.0)]
    Xa = adversary(W, X, y)
    return [(Xa, 1.0)] if lam == 1.0 else [(X, 1.0 - lam), (Xa, lam)]


def objective(W, points, y, q: float, rho: float, c4=None):
    """T3 objective Σ_s weight_s · L_S(W; X_s, y) (L3) and its gradient (G2).

    ``c4`` = (patch_types, U, V, η) also returns the C4 parts of the step −η·G
    (summed over the point sets, each scaled by its weight), else None.
    Returns (objective, G (k, m, d), (dGamma, dPhi) or None).
    """
    G = np.zeros_like(W)
    obj = 0.0
    parts = None
    for Xs, wgt in points:
        if c4 is not None:                   # G2 and C4 from one backward pass
            types, U, V, eta = c4
            L, Gs, (dg, dp) = grad_w_and_c4(W, Xs, y, types, U, V, q=q, rho=rho, step=eta * wgt)
            parts = (dg, dp) if parts is None else (parts[0] + dg, parts[1] + dp)
        else:
            L, Gs = grad_w(W, Xs, y, q=q, rho=rho)
        G += wgt * Gs
        obj += wgt * L
    return obj, G, parts


def check_objective(t: int, loss: float, G, bound: float = MAX_LOSS) -> str | None:
    """Stop policy, before the update: why step t must not be taken, or None."""
    if not (np.isfinite(loss) and np.all(np.isfinite(G))):
        return f"non-finite loss or gradient at step {t} (loss={loss}); kept W of step {t}"
    if loss > bound:
        return (f"diverged at step {t}: objective {loss:.3g} > {bound:.3g}; kept W of step {t} "
                "(try a smaller eta)")
    return None


def check_weights(t: int, W_next, bound: float = MAX_WEIGHT) -> str | None:
    """Stop policy, after the update: why W^{(t+1)} must not be kept, or None."""
    if not np.all(np.isfinite(W_next)):
        return f"non-finite weights after step {t}; kept W of step {t}"
    big = float(np.max(np.abs(W_next))) if W_next.size else 0.0
    if big > bound:
        return (f"diverged after step {t}: max |w| = {big:.3g} > {bound:.3g}; kept W of step {t} "
                "(try a smaller eta)")
    return None


def descend(W, steps, evaluate, update, *, callback=None, max_loss: float = MAX_LOSS,
            max_weight: float = MAX_WEIGHT):
    """The loop.  For t in ``steps``: ``evaluate(t, W)`` -> Step fields
    (points, y, batch, loss, grad, extra) as a dict; the stop policy; W_next =
    ``update(W, grad)``; the stop policy; ``callback(Step)``; W = W_next.

    Returns (W, t, stopped): the last weights that passed the checks, the
    index of the first step not completed (len(steps) when all ran; steps
    are counted from their first value) and the reason for stopping or None.
    """
    steps = list(steps)
    done = 0
    t = steps[0] if steps else 0
    try:
        for t in steps:
            ev = evaluate(t, W)
            stopped = check_objective(t, ev["loss"], ev["grad"], max_loss)
            if stopped:
                return W, done, stopped
            W_next = update(W, ev["grad"])
            stopped = check_weights(t, W_next, max_weight)
            if stopped:
                return W, done, stopped
            if callback is not None:
                callback(Step(t=t, W=W, W_next=W_next, points=ev["points"], y=ev["y"],
                              batch=ev.get("batch"), loss=ev["loss"], grad=ev["grad"],
                              extra=ev.get("extra", {})))
            W = W_next
            done += 1
    except KeyboardInterrupt:
        return W, done, f"interrupted by user at step {t}"
    return W, done, None


def logged_step(t: int, log_every: int) -> bool:
    """Whether step t is logged in the training history: every ``log_every``
    steps, and densely at the start — t = 0, 1, 2, 4, 8, 16, … (powers of two)
    — so the take-off of the coefficients shows even when ``log_every`` is
    large.  Logging draws no random numbers: it changes the history's length,
    never the trained weights."""
    return t % log_every == 0 or (t > 0 and t & (t - 1) == 0)


def chain(*callbacks):
    """One callback that calls each given one (None entries skipped) in order."""
    cbs = [c for c in callbacks if c is not None]
    if not cbs:
        return None
    if len(cbs) == 1:
        return cbs[0]

    def call(step):
        for c in cbs:
            c(step)
    return call
