"""R4 lenses on tiny models: representation gradients, D_R / D_NR builders,
Fourier filters, accuracy across ε."""

from __future__ import annotations

import numpy as np
import pytest

from reffeat.model import init_weights, predict
from reffeat.real import lenses
from reffeat.real.patches import patchify

Q, RHO = 2.0, 1.0


def _tiny(seed=0, n=12, k=3, m=4, P=4, d=9, scale=0.5):
    rng = np.random.default_rng(seed)
    W = init_weights(k, m, d, scale, rng)
    X = rng.random((n, P, d))
    y = np.arange(n) % k
    return W, X, y, rng


@pytest.mark.parametrize("kind", lenses.REPS)
def test_representation_gradient_matches_central_differences(kind):
    W, X, _, rng = _tiny()
    tgt = lenses.representation(W, rng.random(X.shape), Q, RHO, kind)
    loss, G = lenses._rep_loss_grad(W, X, tgt, Q, RHO, kind)
    h = 1e-6
    for _ in range(6):
        i, p, j = (int(rng.integers(s)) for s in X.shape)
        Xp, Xm = X.copy(), X.copy()
        Xp[i, p, j] += h
        Xm[i, p, j] -= h
        num = (lenses._rep_loss_grad(W, Xp, tgt, Q, RHO, kind)[0][i]
               - lenses._rep_loss_grad(W, Xm, tgt, Q, RHO, kind)[0][i]) / (2 * h)
        assert abs(num - G[i, p, j]) <= 1e-5 * max(1.0, abs(num)), f"{kind}: {num} vs {G[i, p, j]}"


def test_representation_shapes():
    W, X, _, _ = _tiny()
    assert lenses.representation(W, X, Q, RHO, "hidden").shape == (12, 4, 3, 4)
    assert lenses.representation(W, X, Q, RHO, "pre").shape == (12, 4, 3, 4)
    F = lenses.representation(W, X, Q, RHO, "logits")
    assert F.shape == (12, 3)
    np.testing.assert_allclose(F, lenses.representation(W, X, Q, RHO, "hidden").sum(axis=(1, 3)))


def test_match_representation_reduces_the_residual_and_stays_in_box():
    W, X, _, rng = _tiny()
    start = rng.random(X.shape)
    t0 = lenses.representation(W, X, Q, RHO, "pre")
    r0 = np.linalg.norm((lenses.representation(W, start, Q, RHO, "pre") - t0).reshape(12, -1), axis=1)
    out, rel = lenses.match_representation(W, X, start, q=Q, rho=RHO, kind="pre", steps=60,
                                           step_size=0.5)
    assert out.min() >= 0 and out.max() <= 1
    r1 = rel * np.linalg.norm(t0.reshape(12, -1), axis=1)
    assert np.all(r1 <= r0 + 1e-12) and np.median(r1 / r0) < 0.3, (r0, r1)
    with pytest.raises(ValueError, match="kind must be one of"):
        lenses.match_representation(W, X, start, q=Q, rho=RHO, kind="penultimate")


def test_build_robust_dataset_keeps_target_labels_and_uses_other_class_starts():
    W, X, y, rng = _tiny()
    XR, yR, info = lenses.build_robust_dataset(W, X, y, rng, q=Q, rho=RHO, steps=10)
    np.testing.assert_array_equal(yR, y)
    assert XR.shape == X.shape and info["start_label_agreement"] == 0.0
    assert 0 <= info["rel_residual_median"] < 1.5


def test_build_nonrobust_dataset_targets_and_ball():
    W, X, y, rng = _tiny(scale=1.0)
    eps = 0.1
    XN, t, info = lenses.build_nonrobust_dataset(W, X, y, 3, rng, q=Q, rho=RHO, eps=eps, steps=10)
    assert np.all(t != y) and set(np.unique(t)) <= {0, 1, 2}
    assert np.abs(XN - X).max() <= eps + 1e-12
    assert XN.min() >= 0 and XN.max() <= 1
    assert info["target_success"] == float((predict(W, XN, q=Q, rho=RHO) == t).mean())


def test_targeted_attack_moves_toward_the_target():
    W, X, y, rng = _tiny(scale=1.0)
    from reffeat.model import per_sample_loss
    XN, t2, _ = lenses.build_nonrobust_dataset(W, X, y, 3, np.random.default_rng(0), q=Q, rho=RHO,
                                               eps=0.2, steps=10)
    assert np.all(per_sample_loss(W, XN, t2, q=Q, rho=RHO) <= per_sample_loss(W, X, t2, q=Q, rho=RHO) + 1e-12)


def test_fourier_filters_split_the_image():
    rng = np.random.default_rng(0)
    imgs = rng.random((3, 8, 8, 2))
    for r in (0, 1.5, 3, 10):
        lo = lenses.fourier_filter(imgs, r, "low")
        hi = lenses.fourier_filter(imgs, r, "high")
        np.testing.assert_allclose(lo + hi, imgs, atol=1e-12)
    np.testing.assert_allclose(lenses.fourier_filter(imgs, 0, "low"),
                               np.broadcast_to(imgs.mean(axis=(1, 2), keepdims=True), imgs.shape), atol=1e-12)
    np.testing.assert_allclose(lenses.fourier_filter(imgs, 0, "high").mean(axis=(1, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(lenses.fourier_filter(imgs, 100, "low"), imgs, atol=1e-12)
    with pytest.raises(ValueError, match="kind must be"):
        lenses.fourier_filter(imgs, 1, "band")
    with pytest.raises(ValueError, match="radius must be"):
        lenses.fourier_filter(imgs, -1, "low")


def test_filtered_accuracy_and_accuracy_vs_eps():
    rng = np.random.default_rng(1)
    imgs = rng.random((10, 8, 8, 1))
    y = np.arange(10) % 3
    W = init_weights(3, 2, 16, 0.5, rng)
    out = lenses.filtered_accuracy(W, imgs, y, [0, 2, 8], p=4, q=Q, rho=RHO, patchify=patchify)
    assert len(out["low"]) == 3 and out["low"][-1] == lenses.accuracy(W, patchify(imgs, 4), y, Q, RHO)
    X = patchify(imgs, 4)
    accs = lenses.accuracy_vs_eps(W, X, y, [0.0, 0.05, 0.5], q=Q, rho=RHO, steps=5, restarts=1,
                                  rng=np.random.default_rng(0))
    assert accs[0] == lenses.accuracy(W, X, y, Q, RHO)
    assert accs[2] <= accs[0]
