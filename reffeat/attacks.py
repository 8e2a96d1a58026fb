"""T2 (gradient-ascent adversarial examples) and the E2b feature-aligned attack.

    T2  X^{(0)} = X  (or uniform in the ball, option)
        X^{(s+1)} = Π_{B(X,ε)}( X^{(s)} + γ · D(∇_X ℓ(W; X^{(s)}, y)) ),  s < K
        D(g) = sign(g)          for ℓ∞   ("linf")
             = g / ‖g‖₂         for ℓ2   ("l2", norm of the whole input)
             = g_p / ‖g_p‖₂     per patch ("l2-patch", ball = product of patch balls)
        ascent="plain" uses D(g) = g (the un-normalised step; a pitfall of SPEC §9).
        K=1, γ=ε is FGSM (ℓ∞) / FGM (ℓ2).
    E2b ℓ∞: δ_p = ε·sign(v_j − v_y) on every patch for every target j ≠ y, and
        δ_p = −ε·sign(v_y); for ℓ2 the same directions scaled to the ℓ2 ball.

Targeted attacks (``targets``) descend the loss of the target class instead.
``clip=(lo, hi)`` keeps adversarial inputs in a box (images: [0, 1]).

>>> import numpy as np
>>> d = project(np.array([[[0.5, -0.1]]]), eps=0.2, norm="linf")
>>> d
array([[[ 0.2, -0.1]]])
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike

from . import backend as _backend
from .constraints import ASCENTS, IMAGE_NORMS, NORMS, Box, Interval, NoneOr, Options, check, check_labels
from .model import check_inputs, dloss_dF, forward_and_slopes, grad_x_and_loss, per_sample_loss, predict

_EPS = Interval(Real, 0)
_STEPS = Interval(Integral, 1)
_STEP_SIZE = NoneOr(Interval(Real, 0, closed="neither"))
_RESTARTS = Interval(Integral, 0)


# ------------------------------------------------------------------ E2c losses and gradients
#: APGD's losses (E2c): cross-entropy and DLR.
LOSSES = ("ce", "dlr")


def apgd_losses(k: int) -> tuple[str, ...]:
    """E2c: the APGD losses defined for k classes — the one home of the rule
    "skip DLR when k < 3" (its denominator F_π1 − F_π3 needs a third output;
    with two the loss is a constant ±1 with zero gradient)."""
    return LOSSES if k >= 3 else ("ce",)



def ce_and_grad_F(F: np.ndarray, y: np.ndarray):
    """E2c / L2, G1: CE loss per sample (n,) and ∂ℓ/∂F (n, k)."""
    C, losses = dloss_dF(F, y)
    return losses, C


def dlr_and_grad_F(F: np.ndarray, y: np.ndarray):
    """E2c: DLR loss per sample (n,) and its hand-derived ∂/∂F (n, k). Needs k ≥ 3.

    ℓ = −(F_y − max_{i≠y} F_i) / (F_π1 − F_π3 + 1e-12); see ``reffeat.apgd``.
    """
    n, k = F.shape
    if "dlr" not in apgd_losses(k):
        raise ValueError(f"the DLR loss needs k >= 3 classes (got k={k})")
    rows = np.arange(n)
    order = np.argsort(-F, axis=1, kind="stable")
    p1, p3 = order[:, 0], order[:, 2]
    Fo = F.copy()
    Fo[rows, y] = -np.inf
    o = Fo.argmax(axis=1)                                  # the strongest other class
    N = F[rows, y] - F[rows, o]
    D = F[rows, p1] - F[rows, p3] + 1e-12
    losses = -N / D
    C = np.zeros_like(F)
    np.add.at(C, (rows, y), -1.0 / D)
    np.add.at(C, (rows, o), 1.0 / D)
    np.add.at(C, (rows, p1), N / D ** 2)
    np.add.at(C, (rows, p3), -N / D ** 2)
    return losses, C


_LOSS_FN = {"ce": ce_and_grad_F, "dlr": dlr_and_grad_F}


def loss_and_grad_x(W, X, y, q: float, rho: float, loss: str = "ce", *, backend=None):
    """E2c with G3: (per-sample loss (n,), ∇_X ℓ (n, P, d), F (n, k)) for loss "ce" or "dlr".

    ∇_{x_p} ℓ = Σ_j c_j Σ_r σ'(⟨w_{j,r}, x_p⟩) w_{j,r}, c = ∂ℓ/∂F (G1 for CE).
    """
    k, m, d = W.shape
    n, P, _ = X.shape
    kern = _backend.kernels(backend)
    if loss == "ce" and kern is not None:
        F, losses, G = kern.forward_and_grad_x(W, X, y, q, rho)     # fused G1 × N2 × G3
        return losses, G, F
    F, Sp = forward_and_slopes(W, X, q, rho, need_grad=True, backend=backend)
    losses, C = _LOSS_FN[loss](F, y)
    Sp *= C[:, None, :, None]                     # Sp is a fresh array: scale in place
    G = (Sp.reshape(n * P, k * m) @ W.reshape(k * m, d).astype(Sp.dtype, copy=False)).reshape(n, P, d)
    return losses, G, F


@runtime_checkable
class InputMap(Protocol):
    """What the attacks need of a map from the attacked space to the model's
    patches (R2's image map, ``reffeat.real.patches.ImageMap``, is one): threats
    (the ball, the box) act on arrays A of the space; the model sees
    ``inputs(A)`` (n, P, d); ``fold_like(G, A)`` carries a gradient w.r.t. the
    inputs back to the space (the adjoint of ``inputs``), shaped like A.
    ``permutation``: ``inputs`` only permutes coordinates (then the attacks run
    on the patches directly); ``shape``: one sample's shape in the space."""

    @property
    def permutation(self) -> bool: ...

    @property
    def shape(self) -> tuple[int, ...]: ...

    def inputs(self, A: np.ndarray) -> np.ndarray: ...

    def fold_like(self, G: np.ndarray, A: np.ndarray) -> np.ndarray: ...


def loss_and_grad_through(view: InputMap, W, A, y, q: float, rho: float, loss: str = "ce", *,
                          backend=None):
    """E2c/G3 on the map's space: (per-sample loss (n,), ∇_A ℓ shaped like A, F (n, k)),
    ∇_A ℓ = fold_like(∇_X ℓ(W; inputs(A), y)) — loss "ce" (L2, G1) or "dlr" (E2c)."""
    losses, G, F = loss_and_grad_x(W, view.inputs(A), y, q, rho, loss, backend=backend)
    return losses, view.fold_like(G, A), F


def _check(eps, norm, steps, step_size, ascent):
    """T2's parameters at the public boundary (``reffeat.constraints``)."""
    check("norm", norm, Options(NORMS))
    check("eps", eps, _EPS)
    check("steps", steps, _STEPS)
    check("step_size", step_size, _STEP_SIZE)
    check("ascent", ascent, Options(ASCENTS))


def _l2(a: np.ndarray, norm: str) -> np.ndarray:
    """ℓ2 norms with broadcastable shape: per sample (n,1,1) or per patch (n,P,1)."""
    if norm == "l2":
        return np.sqrt((a * a).sum(axis=(1, 2), keepdims=True))
    return np.sqrt((a * a).sum(axis=2, keepdims=True))


def direction(g: np.ndarray, norm: str, ascent: str = "sign") -> np.ndarray:
    """T2: the step direction D(g) for a gradient g (n, P, d)."""
    if ascent == "plain":
        return g
    if norm == "linf":
        return np.sign(g)
    nrm = _l2(g, norm)
    return np.divide(g, nrm, out=np.zeros_like(g), where=nrm > 0)


def project(delta: np.ndarray, eps: float, norm: str) -> np.ndarray:
    """T2: Π onto the ε-ball of the threat, applied to the perturbation δ (n, P, d)."""
    if norm == "linf":
        return np.clip(delta, -eps, eps)
    nrm = _l2(delta, norm)
    scale = np.where(nrm > eps, eps / np.maximum(nrm, 1e-300), 1.0)
    return delta * scale


def random_start(shape, eps: float, norm: str, rng: np.random.Generator) -> np.ndarray:
    """A perturbation uniform in the ε-ball (ℓ∞ box, ℓ2 ball of the input or of each patch)."""
    if norm == "linf":
        if eps > np.finfo(float).max / 2:    # uniform(-ε, ε) overflows its width 2ε: same law, scaled
            return eps * rng.uniform(-1.0, 1.0, size=shape)
        return rng.uniform(-eps, eps, size=shape)
    g = rng.standard_normal(shape)
    g /= np.maximum(_l2(g, norm), 1e-300)
    n, P, d = shape
    if norm == "l2":
        r = rng.random((n, 1, 1)) ** (1.0 / (P * d))
    else:
        r = rng.random((n, P, 1)) ** (1.0 / d)
    return eps * r * g


def _apply(X, delta, clip):
    """X + δ (a new array), clipped to the box if ``clip``; δ = None means δ = 0."""
    Xa = X.copy() if delta is None else X + delta
    if clip is not None:
        np.clip(Xa, clip[0], clip[1], out=Xa)
    return Xa


def _ascent_run(W, X, y, q, rho, eps, norm, steps, gamma, start, ascent, clip, targets,
                backend=None, view=None):
    """One T2 run from perturbation `start` (n,P,d; None: from X itself). Returns X^{(K)}.

    On the numba backend the loop runs in its twin ``kernels.ascent_run``
    (chunked GEMM → σ'/G1 → GEMM (G3) → step, same arithmetic); the numpy loop
    below is the reference.  With an image map ``view`` (not a permutation) X
    holds flattened images and the loop steps on them with the folded G3
    gradient ``loss_and_grad_through`` (G3 on the numba backend if chosen).
    """
    sign = 1.0
    yy = y
    if targets is not None:                 # targeted: descend ℓ(W; X, t)
        sign, yy = -1.0, targets
    Xa = _apply(X, start, clip)
    kern = _backend.kernels(backend)
    if kern is not None and view is None:   # norm and ascent were validated by attack()
        return kern.ascent_run(W, X, yy, q, rho, eps, norm, steps, gamma, Xa, ascent, clip, sign)
    if view is not None:                    # keep the data's precision (as the kernel does)
        Xa = Xa.astype(X.dtype, copy=False)
    for _ in range(steps):
        if view is None:
            _, g = grad_x_and_loss(W, Xa, yy, q, rho, backend="reference")
        else:
            _, g, _ = loss_and_grad_through(view, W, Xa, yy, q, rho, backend=backend)
        delta = project(Xa - X + sign * gamma * direction(g, norm, ascent), eps, norm)
        Xa = _apply(X, delta, clip)
    return Xa


def attack(W: np.ndarray, X: np.ndarray, y: ArrayLike, *, q: float, rho: float, eps: float,
           norm: str = "linf", steps: int = 1,
           step_size: float | None = None, random_start: bool = False,
           rng: np.random.Generator | None = None, restarts: int = 0, ascent: str = "sign",
           clip: tuple[float, float] | None = None, targets: ArrayLike | None = None,
           backend: str | None = None, view: InputMap | None = None) -> np.ndarray:
    """T2: adversarial inputs X_adv (n, P, d) in B(X, ε) by K steps of gradient ascent.

    ``step_size`` γ defaults to ε. With ``restarts`` R > 0 the attack is run
    1 + R times (restarts from random starts); per sample the run that
    misclassifies (reaches the target, if targeted) — else the one with the
    highest loss — is kept.  ``backend``: see ``reffeat.backend``.

    ``view``: an ``InputMap`` (R2's ``reffeat.real.patches.ImageMap``) or None. X
    and the result are then in the map's space: for a map that is not a
    permutation (stride < p or centring) these are images (n, H, W, C), the
    ball and the box act on the image and the gradient is
    fold(G3 at view.inputs(X)); a permutation map changes nothing.
    """
    _check(eps, norm, steps, step_size, ascent)
    backend = _backend.resolve(backend)
    check("restarts", restarts, _RESTARTS)
    clip = check("clip", clip, Box())               # a box with lo >= hi holds no point
    _check_rng(rng)
    if view is not None and not view.permutation:
        return _through_view(view, W, X, y, q=q, rho=rho, eps=eps, norm=norm, steps=steps,
                             step_size=step_size, random_start=random_start, rng=rng,
                             restarts=restarts, ascent=ascent, clip=clip, targets=targets,
                             backend=backend)
    if targets is None:
        y = check_inputs(W, X, q, rho, y)
    else:
        targets = check_inputs(W, X, q, rho, targets)
    return _attack(W, X, y, q, rho, eps, norm, steps, step_size, random_start, rng, restarts,
                   ascent, clip, targets, backend, None)


def _through_view(view, W, X, y, *, targets, q, rho, **kw):
    """T2 on images through an image map: flatten to (n, 1, H·W·C) (ℓ∞ and whole-input
    ℓ2 do not care about the layout), attack, reshape back."""
    X = np.asarray(X)
    H, Wd, C = view.shape
    if X.ndim < 2 or X[0].size != H * Wd * C:
        raise ValueError(f"X must hold images of shape {view.shape} for the image map (got {X.shape})")
    check("norm", kw["norm"], Options(IMAGE_NORMS))   # a per-patch ball means nothing on the image
    Xf = X.reshape(X.shape[0], 1, -1)
    head = view.inputs(Xf[:1])
    check_inputs(W, head, q, rho)
    n = Xf.shape[0]
    if targets is None:
        y = check_labels("y", y, n, W.shape[0])
    else:
        targets = check_labels("targets", targets, n, W.shape[0])
    out = _attack(W, Xf, y, q, rho, kw["eps"], kw["norm"], kw["steps"], kw["step_size"],
                  kw["random_start"], kw["rng"], kw["restarts"], kw["ascent"], kw["clip"], targets,
                  kw["backend"], view)
    return out.reshape(X.shape).astype(X.dtype, copy=False)


def _attack(W, X, y, q, rho, eps, norm, steps, step_size, random_start, rng, restarts, ascent,
            clip, targets, backend, view):
    """attack() after validation; ``view`` None (patches) or a non-permutation image map."""
    inputs = (lambda A: A) if view is None else view.inputs
    gamma = eps if step_size is None else step_size
    if (random_start or restarts > 0) and rng is None:
        raise ValueError("rng must be a numpy Generator when random_start or restarts is used")
    if eps == 0:
        return _apply(X, None, clip)
    best = None
    for run in range(restarts + 1):
        rs = random_start if run == 0 else True
        start = _random_start(X.shape, eps, norm, rng) if rs else None
        Xa = _ascent_run(W, X, y, q, rho, eps, norm, steps, gamma, start, ascent, clip, targets,
                         backend, view)
        if restarts == 0:
            return Xa
        Xin = inputs(Xa)
        pred = predict(W, Xin, q=q, rho=rho, backend=backend)
        if targets is None:
            success = pred != y
            score = per_sample_loss(W, Xin, y, q=q, rho=rho, backend=backend)
        else:
            success = pred == targets
            score = -per_sample_loss(W, Xin, targets, q=q, rho=rho, backend=backend)
        if best is None:
            best, best_ok, best_score = Xa, success, score
            continue
        take = (success & ~best_ok) | ((success == best_ok) & (score > best_score))
        best = np.where(take[:, None, None], Xa, best)
        best_ok = best_ok | success
        best_score = np.where(take, score, best_score)
    return best


_random_start = random_start     # attack()'s keyword ``random_start`` shadows the function


def _check_rng(rng) -> None:
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy Generator (np.random.default_rng(seed)) or None "
                         f"(got {type(rng).__name__})")


def feature_perturbations(V: np.ndarray, y: np.ndarray, P: int, eps: float,
                          norm: str = "linf") -> list[np.ndarray]:
    """E2b: the k feature-aligned perturbations, each (n, P, d) (read-only broadcast views).

    Candidate t (t = 0..k−1) uses the direction c = v_t − v_y for t ≠ y and
    c = −v_y for t = y, on every patch; ℓ∞: δ_p = ε·sign(c); ℓ2: δ_p = ε c/‖c‖/√P
    (whole input of norm ε); l2-patch: δ_p = ε c/‖c‖.
    """
    check("norm", norm, Options(NORMS))             # by exact name: "L2" is not "l2"
    check("eps", eps, Interval(Real, 0))
    check("P", P, Interval(Integral, 1))
    V = np.asarray(V, dtype=float) if not isinstance(V, np.ndarray) else V
    if V.ndim != 2:
        raise ValueError(f"V must have shape (k, d) (got {np.shape(V)})")
    k, d = V.shape
    y = check_labels("y", y, len(np.atleast_1d(y)), k)
    n = len(y)
    out = []
    for t in range(k):
        c = V[t][None, :] - V[y]                      # (n, d)
        own = y == t
        c[own] = -V[y[own]]
        if norm == "linf":
            dp = eps * np.sign(c)
        else:
            nrm = np.linalg.norm(c, axis=1, keepdims=True)
            dp = eps * c / np.maximum(nrm, 1e-300)
            if norm == "l2":
                dp /= np.sqrt(P)
        out.append(np.broadcast_to(dp[:, None, :], (n, P, d)))      # read-only view: same δ on every patch
    return out


def feature_attack_correct(W: np.ndarray, X: np.ndarray, y: np.ndarray, V: np.ndarray, *, q: float,
                           rho: float, eps: float, norm: str = "linf",
                           clip: tuple[float, float] | None = None,
                           backend: str | None = None) -> np.ndarray:
    """E2b: boolean (n,) — True where the point is classified correctly under
    every feature-aligned perturbation."""
    clip = check("clip", clip, Box())
    check_inputs(W, X, q, rho)
    X = np.asarray(X)
    y = check_labels("y", y, X.shape[0], np.shape(W)[0])
    ok = np.ones(len(y), dtype=bool)
    for delta in feature_perturbations(V, y, X.shape[1], eps, norm):
        ok &= predict(W, _apply(X, delta, clip), q=q, rho=rho, backend=backend) == y
    return ok
