"""F1–F3 and D1–D4."""
import numpy as np
import pytest

from reffeat import Config, make_features, sample
from reffeat.distribution import NOISE, NONROBUST, ROBUST, pure_inputs


@pytest.mark.parametrize("geometry", ["sparse-dense", "basis", "random"])
@pytest.mark.parametrize("k,d_N", [(2, 4), (4, 32), (7, 8)])
def test_features_orthonormal(geometry, k, d_N):
    U, V = make_features(Config(k=k, d_N=d_N, geometry=geometry))
    B = np.concatenate([U, V])
    err = np.abs(B @ B.T - np.eye(2 * k)).max()
    assert err < 1e-12, f"{geometry}: max |B B^T − I| = {err:.2e}"


@pytest.mark.parametrize("k,d_N", [(2, 4), (4, 32), (5, 64)])
def test_sparse_dense_signs(k, d_N):
    U, V = make_features(Config(k=k, d_N=d_N))
    block = V[:, k:]
    assert np.array_equal(np.sign(block), np.sqrt(d_N) * block), "sign(v_j) != sqrt(d_N) v_j"
    assert np.all(V[:, :k] == 0) and np.all(np.count_nonzero(U, axis=1) == 1)


def test_exact_patch_counts_and_values():
    cfg = Config(k=3, P=10, s=2, d_N=8, n_nonrobust=5, alpha=2.0, beta=0.5, sigma_xi=0.0)   # exact values: no noise
    U, V = make_features(cfg)
    X, y, types = sample(cfg, 400, np.random.default_rng(0), return_patch_types=True)
    assert np.all((types == ROBUST).sum(1) == 2)
    assert np.all((types == NONROBUST).sum(1) == 5)
    assert np.all((types == NOISE).sum(1) == 3)
    i, p = np.nonzero(types == ROBUST)
    assert np.allclose(X[i, p], 2.0 * U[y[i]])
    i, p = np.nonzero(types == NONROBUST)
    assert np.allclose(X[i, p], 0.5 * V[y[i]])
    assert np.all(X[types == NOISE] == 0)


def test_noise_orthogonal_to_features():
    cfg = Config(sigma_xi=0.7, k=3, d_N=16, n_nonrobust=40)
    U, V = make_features(cfg)
    X, y, types = sample(cfg, 300, np.random.default_rng(1), return_patch_types=True)
    noise = X[types == NOISE]
    assert np.abs(noise @ np.concatenate([U, V]).T).max() < 1e-12
    # on feature patches the only component along the features is the feature itself
    i, p = np.nonzero(types == NONROBUST)
    xi = X[i, p] - cfg.beta * V[y[i]]
    assert np.abs(xi @ np.concatenate([U, V]).T).max() < 1e-12
    assert abs(noise.std() - 0.7 * np.sqrt((cfg.d - 6) / cfg.d)) < 0.02   # variance of (I−Π) ξ


def test_label_balance():
    cfg = Config(k=5, d_N=8, P=4)
    _, y = sample(cfg, 50000, np.random.default_rng(2))
    freq = np.bincount(y, minlength=5) / 50000
    assert np.abs(freq - 0.2).max() < 0.01, f"label frequencies {freq}"


def test_robust_set_uniform():
    cfg = Config(k=2, d_N=4, P=8)
    _, _, types = sample(cfg, 40000, np.random.default_rng(3), return_patch_types=True)
    pos = (types == ROBUST).mean(0)
    assert np.abs(pos - 1 / 8).max() < 0.01, f"robust patch position frequencies {pos}"


def test_pure_inputs():
    cfg = Config(k=3, d_N=8, P=6, s=2)
    U, V = make_features(cfg)
    XR, XN = pure_inputs(cfg)
    assert np.allclose(XR.sum(1), 2 * cfg.alpha * U)
    assert np.allclose(XN.sum(1), (cfg.P - cfg.s) * cfg.beta * V)


def test_sample_rejects_bad_n():
    with pytest.raises(ValueError, match="n must be"):
        sample(Config(), 0, np.random.default_rng(0))
