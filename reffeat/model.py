"""N3–N4, L1–L3, G1–G3: the two-layer smoothed-ReLU CNN, its loss and its
hand-derived gradients (no autodiff anywhere).

    N3  F_j(W; X) = Σ_{r∈[m]} Σ_{p∈[P]} σ(⟨w_{j,r}, x_p⟩),  W ∈ R^{k×m×d}
    N4  w_{j,r}^{(0)} ~ N(0, σ_0² I_d)
    L1  logit_j(F) = exp(F_j) / Σ_i exp(F_i)           (max-shifted)
    L2  ℓ(W; X, y) = −log logit_y(F(W; X))              (log-sum-exp)
    L3  L_S(W) = (1/n) Σ_i ℓ(W; X_i, y_i)
    G1  ∂ℓ/∂F_j = logit_j − 1[j = y]
    G2  ∇_{w_{j,r}} L_S = (1/n) Σ_i (logit_j(X_i) − 1[j=y_i]) Σ_p σ'(⟨w_{j,r}, x_{i,p}⟩) x_{i,p}
    G3  ∇_{x_p} ℓ(W; X, y) = Σ_j (logit_j − 1[j=y]) Σ_r σ'(⟨w_{j,r}, x_p⟩) w_{j,r}

Shapes: W (k, m, d), X (n, P, d), y (n,) ints in [0, k), F (n, k).

This file is the plain-numpy *reference*: every pre-activation
⟨w_{j,r}, x_{i,p}⟩ comes from one BLAS product (n·P, d) × (d, k·m), and G2/G3
are the two products of the same "back-propagated" array
A[i,p,j,r] = (logit_j − 1[j=y_i]) σ'(z_{i,p,j,r}) with X and with W.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> W = init_weights(3, 2, 5, 0.5, rng)
>>> X = rng.standard_normal((4, 6, 5)); y = np.array([0, 1, 2, 0])
>>> forward(W, X, q=3, rho=1.0).shape
(4, 3)
>>> L, G = grad_w(W, X, y, q=3, rho=1.0)
>>> bool(np.isclose(L, loss(W, X, y, q=3, rho=1.0))), G.shape
(True, (3, 2, 5))
"""

from __future__ import annotations

import numpy as np

from .activation import smoothed_relu_and_grad


def init_weights(k: int, m: int, d: int, sigma0: float, rng: np.random.Generator) -> np.ndarray:
    """N4: W (k, m, d) with i.i.d. N(0, σ_0²) entries."""
    return sigma0 * rng.standard_normal((k, m, d))


def preactivations(W: np.ndarray, X: np.ndarray) -> np.ndarray:
    """z_{i,p,j,r} = ⟨w_{j,r}, x_{i,p}⟩.  W (k,m,d), X (n,P,d) -> Z (n,P,k,m)."""
    k, m, d = W.shape
    n, P, _ = X.shape
    return (X.reshape(n * P, d) @ W.reshape(k * m, d).T).reshape(n, P, k, m)


def forward_and_slopes(W, X, q, rho, need_grad=True):
    """N3 and N2 in one pass: F (n,k) and σ'(z) (n,P,k,m) (None if not need_grad)."""
    Z = preactivations(W, X)
    S, Sp = smoothed_relu_and_grad(Z, q, rho, overwrite=True)
    F = S.sum(axis=(1, 3))                                   # N3
    return F, (Sp if need_grad else None)


def forward(W: np.ndarray, X: np.ndarray, q: float, rho: float) -> np.ndarray:
    """N3: network outputs F (n, k)."""
    return forward_and_slopes(W, X, q, rho, need_grad=False)[0]


def log_softmax(F: np.ndarray) -> np.ndarray:
    """L1 in log form: log logit_j(F) = F_j − logsumexp(F), max-shifted. (n,k)->(n,k)."""
    Fmax = F.max(axis=1, keepdims=True)
    return F - Fmax - np.log(np.exp(F - Fmax).sum(axis=1, keepdims=True))


def per_sample_loss(W, X, y, q: float, rho: float) -> np.ndarray:
    """L2: ℓ(W; X_i, y_i) for every i -> (n,)."""
    F = forward(W, X, q, rho)
    return -log_softmax(F)[np.arange(len(y)), y]


def loss(W, X, y, q: float, rho: float) -> float:
    """L3: empirical risk L_S(W) (a float)."""
    return float(per_sample_loss(W, X, y, q, rho).mean())


def predict(W, X, q: float, rho: float) -> np.ndarray:
    """argmax_j F_j(W; X) -> (n,) int."""
    return forward(W, X, q, rho).argmax(axis=1)


def dloss_dF(F: np.ndarray, y: np.ndarray):
    """G1: ∂ℓ/∂F_j = logit_j − 1[j=y], and the per-sample losses. F (n,k) -> ((n,k), (n,))."""
    logp = log_softmax(F)
    rows = np.arange(len(y))
    C = np.exp(logp)
    C[rows, y] -= 1.0
    return C, -logp[rows, y]


def backprop(W, X, y, q: float, rho: float):
    """Shared forward/backward pass for G2 and G3.

    Returns (losses (n,), A (n,P,k,m)) with
    A[i,p,j,r] = (logit_j(X_i) − 1[j=y_i]) σ'(⟨w_{j,r}, x_{i,p}⟩)   (G1 × N2).
    """
    F, Sp = forward_and_slopes(W, X, q, rho, need_grad=True)
    C, losses = dloss_dF(F, y)
    Sp *= C[:, None, :, None]
    return losses, Sp


def grad_w(W, X, y, q: float, rho: float):
    """G2: (L_S(W), ∇_W L_S) with the gradient shaped like W (k, m, d)."""
    k, m, d = W.shape
    n, P, _ = X.shape
    losses, A = backprop(W, X, y, q, rho)
    G = A.reshape(n * P, k * m).T @ X.reshape(n * P, d)
    return float(losses.mean()), (G / n).reshape(k, m, d)


def grad_x(W, X, y, q: float, rho: float) -> np.ndarray:
    """G3: per-sample input gradient ∇_X ℓ(W; X_i, y_i), shape of X (n, P, d).

    Not divided by n: row i is the gradient of sample i's own loss.
    """
    k, m, d = W.shape
    n, P, _ = X.shape
    _, A = backprop(W, X, y, q, rho)
    return (A.reshape(n * P, k * m) @ W.reshape(k * m, d)).reshape(n, P, d)


def grad_x_and_loss(W, X, y, q: float, rho: float):
    """G3 and L2 in one pass: (per-sample losses (n,), ∇_X ℓ (n,P,d))."""
    k, m, d = W.shape
    n, P, _ = X.shape
    losses, A = backprop(W, X, y, q, rho)
    return losses, (A.reshape(n * P, k * m) @ W.reshape(k * m, d)).reshape(n, P, d)
