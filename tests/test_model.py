"""N3, L1–L3, G1–G3: outputs, loss and hand-derived gradients vs central differences."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from reffeat import forward, grad_w, grad_x, loss, per_sample_loss, smoothed_relu
from reffeat.model import grad_x_and_loss


def _problem(seed, n, P, d, k, m):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((k, m, d))
    X = rng.standard_normal((n, P, d))
    y = rng.integers(0, k, n)
    return rng, W, X, y


def _kink_distance(W, X, rho):
    Z = np.einsum("ipd,jrd->ipjr", X, W)
    return min(np.abs(Z).min(), np.abs(Z - rho).min())


shapes = st.tuples(st.integers(1, 5), st.integers(1, 6), st.integers(1, 5),
                   st.integers(2, 4), st.integers(1, 4))


def test_forward_matches_definition():
    rng, W, X, y = _problem(0, 3, 4, 5, 3, 2)
    F = forward(W, X, q=3.0, rho=0.8)
    Fd = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            Fd[i, j] = sum(smoothed_relu(W[j, r] @ X[i, p], q=3.0, rho=0.8) for r in range(2) for p in range(4))
    assert np.allclose(F, Fd, rtol=1e-13)


def test_loss_is_cross_entropy_and_stable():
    rng, W, X, y = _problem(1, 4, 3, 4, 3, 2)
    F = forward(W, X, q=2.0, rho=1.0)
    ref = -np.log(np.exp(F[np.arange(4), y]) / np.exp(F).sum(1))
    assert np.allclose(per_sample_loss(W, X, y, q=2.0, rho=1.0), ref)
    big = per_sample_loss(W * 1e3, X, y, q=1.0, rho=1.0)            # huge logits: no overflow
    assert np.all(np.isfinite(big))


@given(shape=shapes, q=st.sampled_from([1.0, 2.0, 3.0, 4.0]), rho=st.floats(0.2, 2.0),
       seed=st.integers(0, 10**6))
def test_grad_w_central_difference(shape, q, rho, seed):
    n, P, d, k, m = shape
    rng, W, X, y = _problem(seed, n, P, d, k, m)
    if _kink_distance(W, X, rho) < 1e-4:
        return                                     # a pre-activation sits on a kink
    L, G = grad_w(W, X, y, q=q, rho=rho)
    assert np.isclose(L, loss(W, X, y, q=q, rho=rho), rtol=1e-13)
    h = 1e-6
    E = rng.standard_normal(W.shape)
    fd = (loss(W + h * E, X, y, q=q, rho=rho) - loss(W - h * E, X, y, q=q, rho=rho)) / (2 * h)
    an = float((G * E).sum())
    assert abs(fd - an) <= 1e-6 * max(abs(an), 1e-3), f"grad_w: FD {fd} vs {an} (q={q})"


@given(shape=shapes, q=st.sampled_from([1.0, 2.0, 3.0, 4.0]), rho=st.floats(0.2, 2.0),
       seed=st.integers(0, 10**6))
def test_grad_x_central_difference(shape, q, rho, seed):
    n, P, d, k, m = shape
    rng, W, X, y = _problem(seed, n, P, d, k, m)
    if _kink_distance(W, X, rho) < 1e-4:
        return
    Gx = grad_x(W, X, y, q=q, rho=rho)
    assert Gx.shape == X.shape
    h = 1e-6
    E = rng.standard_normal(X.shape)
    fd = (per_sample_loss(W, X + h * E, y, q=q, rho=rho) - per_sample_loss(W, X - h * E, y, q=q, rho=rho)) / (2 * h)
    an = (Gx * E).sum(axis=(1, 2))
    scale = np.maximum(np.abs(an), 1e-3)
    assert np.all(np.abs(fd - an) <= 1e-6 * scale), f"grad_x rel err {np.max(np.abs(fd - an) / scale):.2e}"
    losses, Gx2 = grad_x_and_loss(W, X, y, q, rho)
    assert np.allclose(Gx2, Gx, rtol=1e-14, atol=0) and np.allclose(losses, per_sample_loss(W, X, y, q=q, rho=rho))


def test_grad_w_full_fd_matrix():
    """Every entry of G2 against its own central difference (one small problem)."""
    rng, W, X, y = _problem(7, 3, 4, 3, 3, 2)
    q, rho = 3.0, 0.9
    _, G = grad_w(W, X, y, q=q, rho=rho)
    h = 1e-6
    for idx in np.ndindex(W.shape):
        E = np.zeros_like(W); E[idx] = h
        fd = (loss(W + E, X, y, q=q, rho=rho) - loss(W - E, X, y, q=q, rho=rho)) / (2 * h)
        assert abs(fd - G[idx]) < 1e-7 + 1e-6 * abs(G[idx]), f"G2{idx}: {G[idx]} vs FD {fd}"
