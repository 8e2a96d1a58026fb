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

The numpy bodies below are the *reference*: every pre-activation
⟨w_{j,r}, x_{i,p}⟩ comes from one BLAS product (n·P, d) × (d, k·m), and G2/G3
are the two products of the same "back-propagated" array
A[i,p,j,r] = (logit_j − 1[j=y_i]) σ'(z_{i,p,j,r}) with X and with W.

Backends. Every public function takes ``backend=None|"numba"|"reference"``;
``"numba"`` runs the same-named function of ``kernels.py`` (BLAS products +
numba σ/softmax/G1 passes, nothing of size (n,P,k,m) kept), ``"reference"``
the numpy code in this file, ``None`` the current choice of ``reffeat.backend``
(REFFEAT_BACKEND, ``set_backend``, ``with use_backend(...)``).  The two agree
to ≤ 1e-10 relative in float64 (tests/test_kernels.py, tests/test_backend.py).

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

from numbers import Integral, Real

import numpy as np
from numpy.typing import ArrayLike

from . import backend as _backend
from .activation import smoothed_relu_and_grad
from .backend import BACKENDS, get_backend, set_backend, use_backend  # noqa: F401  (re-exported)
from .constraints import Interval, check, check_array, check_labels, keyword_constants


def _fast(backend):
    """The kernels module if this call runs on numba, else None (``reffeat.backend``)."""
    return _backend.kernels(backend)


_Q = Interval(Real, 1)
_RHO = Interval(Real, 0, closed="neither")
_SIZE = Interval(Integral, 1)
_SIGMA0 = Interval(Real, 0, closed="neither")


#: check_inputs' default: no labels to check (an explicit None for y is refused: labels are missing)
_NO_LABELS = object()


def check_inputs(W, X, q, rho, y=_NO_LABELS, *, need_samples: bool = False):
    """The public boundary of N3, L1–L3 and G1–G3: W (k, m, d) and X (n, P, d)
    real arrays with k, m, d, P >= 1 and the same d, q >= 1 and ρ > 0 finite
    (N1), labels y (n,) integers in [0, k) (floats holding whole numbers are
    converted). ValueError naming the argument otherwise. Cost: the shapes and
    one pass over y — never over W or X."""
    W = check_array("W", W, 3)
    X = check_array("X", X, 3)
    k, m, d = W.shape
    n, P, dx = X.shape
    if min(k, m, d) < 1:
        raise ValueError(f"W must have shape (k, m, d) with k, m, d >= 1 (got shape {W.shape})")
    if P < 1 or dx != d:
        raise ValueError(f"X must have shape (n, P, d) with P >= 1 patches of the d = {d} of W "
                         f"(got shape {X.shape})")
    if need_samples and n < 1:
        raise ValueError(f"X must hold at least one sample for a loss or gradient (got shape {X.shape})")
    check("q", q, _Q)
    check("rho", rho, _RHO)
    if y is _NO_LABELS:
        return None
    if y is None:
        raise ValueError(f"y must be integer class labels in [0, {k}), one per sample (got None)")
    return check_labels("y", y, n, k)


def init_weights(k: int, m: int, d: int, sigma0: float, rng: np.random.Generator) -> np.ndarray:
    """N4: W (k, m, d) with i.i.d. N(0, σ_0²) entries."""
    k, m, d = (check(name, v, _SIZE) for name, v in (("k", k), ("m", m), ("d", d)))
    sigma0 = check("sigma0", sigma0, _SIGMA0)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy Generator, e.g. np.random.default_rng(seed) "
                         f"(got {type(rng).__name__})")
    return sigma0 * rng.standard_normal((k, m, d))


def preactivations(W: np.ndarray, X: np.ndarray, *, backend=None) -> np.ndarray:
    """z_{i,p,j,r} = ⟨w_{j,r}, x_{i,p}⟩.  W (k,m,d), X (n,P,d) -> Z (n,P,k,m).

    One BLAS product on both backends (``backend`` is validated, for symmetry)."""
    _backend.resolve(backend)
    k, m, d = W.shape
    n, P, _ = X.shape
    return (X.reshape(n * P, d) @ W.reshape(k * m, d).T).reshape(n, P, k, m)


def forward_and_slopes(W, X, q, rho, need_grad=True, *, backend=None):
    """N3 and N2 in one pass: F (n,k) and σ'(z) (n,P,k,m) (None if not need_grad)."""
    check_inputs(W, X, q, rho)
    if (kern := _fast(backend)) is not None:
        return kern.forward_and_slopes(W, X, q, rho, need_grad)
    Z = preactivations(W, X)
    S, Sp = smoothed_relu_and_grad(Z, q, rho, overwrite=True)
    F = S.sum(axis=(1, 3))                                   # N3
    return F, (Sp if need_grad else None)


@keyword_constants("q", "rho")
def forward(W: np.ndarray, X: np.ndarray, *, q: float, rho: float, backend: str | None = None) -> np.ndarray:
    """N3: network outputs F (n, k)."""
    check_inputs(W, X, q, rho)
    if (kern := _fast(backend)) is not None:
        return kern.forward(W, X, q, rho)
    return forward_and_slopes(W, X, q, rho, need_grad=False, backend="reference")[0]


def log_softmax(F: np.ndarray) -> np.ndarray:
    """L1 in log form: log logit_j(F) = F_j − logsumexp(F), max-shifted. (n,k)->(n,k)."""
    Fmax = F.max(axis=1, keepdims=True)
    return F - Fmax - np.log(np.exp(F - Fmax).sum(axis=1, keepdims=True))


@keyword_constants("q", "rho")
def per_sample_loss(W: np.ndarray, X: np.ndarray, y: ArrayLike, *, q: float, rho: float,
                    backend: str | None = None) -> np.ndarray:
    """L2: ℓ(W; X_i, y_i) for every i -> (n,)."""
    yy = check_inputs(W, X, q, rho, y)
    assert yy is not None
    F = forward(W, X, q=q, rho=rho, backend=backend)
    return -log_softmax(F)[np.arange(len(yy)), yy]


@keyword_constants("q", "rho")
def loss(W: np.ndarray, X: np.ndarray, y: ArrayLike, *, q: float, rho: float,
         backend: str | None = None) -> float:
    """L3: empirical risk L_S(W) (a float)."""
    check_inputs(W, X, q, rho, y, need_samples=True)
    return float(per_sample_loss(W, X, y, q=q, rho=rho, backend=backend).mean())


@keyword_constants("q", "rho")
def predict(W: np.ndarray, X: np.ndarray, *, q: float, rho: float, backend: str | None = None) -> np.ndarray:
    """argmax_j F_j(W; X) -> (n,) int."""
    return forward(W, X, q=q, rho=rho, backend=backend).argmax(axis=1)


def dloss_dF(F: np.ndarray, y: np.ndarray):
    """G1: ∂ℓ/∂F_j = logit_j − 1[j=y], and the per-sample losses. F (n,k) -> ((n,k), (n,))."""
    logp = log_softmax(F)
    rows = np.arange(len(y))
    C = np.exp(logp)
    C[rows, y] -= 1.0
    return C, -logp[rows, y]


def backprop(W, X, y, q: float, rho: float, *, backend=None):
    """Shared forward/backward pass for G2 and G3.

    Returns (losses (n,), A (n,P,k,m)) with
    A[i,p,j,r] = (logit_j(X_i) − 1[j=y_i]) σ'(⟨w_{j,r}, x_{i,p}⟩)   (G1 × N2).
    """
    y = check_inputs(W, X, q, rho, y)
    if (kern := _fast(backend)) is not None:
        return kern.backprop(W, X, y, q, rho)
    F, Sp = forward_and_slopes(W, X, q, rho, need_grad=True, backend="reference")
    C, losses = dloss_dF(F, y)
    Sp *= C[:, None, :, None]
    return losses, Sp


@keyword_constants("q", "rho")
def grad_w(W: np.ndarray, X: np.ndarray, y: ArrayLike, *, q: float, rho: float,
           backend: str | None = None) -> tuple[float, np.ndarray]:
    """G2: (L_S(W), ∇_W L_S) with the gradient shaped like W (k, m, d)."""
    y = check_inputs(W, X, q, rho, y, need_samples=True)
    if (kern := _fast(backend)) is not None:
        return kern.grad_w(W, X, y, q, rho)
    k, m, d = W.shape
    n, P, _ = X.shape
    losses, A = backprop(W, X, y, q, rho, backend="reference")
    G = A.reshape(n * P, k * m).T @ X.reshape(n * P, d)
    return float(losses.mean()), (G / n).reshape(k, m, d)


@keyword_constants("q", "rho")
def grad_x(W: np.ndarray, X: np.ndarray, y: ArrayLike, *, q: float, rho: float,
           backend: str | None = None) -> np.ndarray:
    """G3: per-sample input gradient ∇_X ℓ(W; X_i, y_i), shape of X (n, P, d).

    Not divided by n: row i is the gradient of sample i's own loss.
    """
    y = check_inputs(W, X, q, rho, y)
    if (kern := _fast(backend)) is not None:
        return kern.grad_x(W, X, y, q, rho)
    _, A = backprop(W, X, y, q, rho, backend="reference")
    return backward_x(W, A)


def grad_x_and_loss(W, X, y, q: float, rho: float, *, backend=None):
    """G3 and L2 in one pass: (per-sample losses (n,), ∇_X ℓ (n,P,d))."""
    y = check_inputs(W, X, q, rho, y)
    if (kern := _fast(backend)) is not None:
        return kern.grad_x_and_loss(W, X, y, q, rho)
    losses, A = backprop(W, X, y, q, rho, backend="reference")
    return losses, backward_x(W, A)


def backward_x(W, A) -> np.ndarray:
    """G3's last product: ∇_{x_p} = Σ_j Σ_r A[i,p,j,r] w_{j,r} for any array
    A (n,P,k,m) of ∂(loss)/∂z_{i,p,j,r} (G3 has A = (logit_j − 1[j=y]) σ'(z)).
    One BLAS product on both backends.  W (k,m,d), A (n,P,k,m) -> (n,P,d)."""
    k, m, d = W.shape
    n, P = A.shape[:2]
    return (A.reshape(n * P, k * m) @ W.reshape(k * m, d)).reshape(n, P, d)
