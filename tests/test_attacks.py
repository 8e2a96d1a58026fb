"""T2 attacks and the E2b feature-aligned attack."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reffeat import Config, attack, feature_perturbations, grad_x, make_features, per_sample_loss, project
from reffeat.attacks import direction, random_start

NORMS = ["linf", "l2", "l2-patch"]


def _model(seed, n=5, P=4, d=6, k=3, m=3):
    rng = np.random.default_rng(seed)
    return rng, rng.standard_normal((k, m, d)), rng.standard_normal((n, P, d)), rng.integers(0, k, n)


def _norm(delta, norm):
    if norm == "linf":
        return np.abs(delta).max(axis=(1, 2))
    if norm == "l2":
        return np.sqrt((delta ** 2).sum(axis=(1, 2)))
    return np.sqrt((delta ** 2).sum(axis=2)).max(axis=1)


@given(norm=st.sampled_from(NORMS), eps=st.floats(0.01, 2.0), steps=st.integers(1, 6),
       gamma=st.floats(0.01, 3.0), rs=st.booleans(), seed=st.integers(0, 10**6))
def test_attack_stays_in_ball(norm, eps, steps, gamma, rs, seed):
    rng, W, X, y = _model(seed)
    Xa = attack(W, X, y, q=3, rho=1.0, eps=eps, norm=norm, steps=steps, step_size=gamma,
                random_start=rs, rng=rng)
    assert np.all(_norm(Xa - X, norm) <= eps * (1 + 1e-12)), f"{norm}: left the ε-ball"


@given(norm=st.sampled_from(NORMS), eps=st.floats(0.01, 2.0), seed=st.integers(0, 10**6))
def test_projection_idempotent_and_identity_inside(norm, eps, seed):
    rng = np.random.default_rng(seed)
    delta = 3 * rng.standard_normal((4, 3, 5))
    p1 = project(delta, eps, norm)
    assert np.allclose(project(p1, eps, norm), p1, rtol=1e-13, atol=1e-15)
    inside = random_start((4, 3, 5), eps, norm, rng)
    assert np.allclose(project(inside, eps, norm), inside)


def test_fgsm_is_one_ascent_step():
    rng, W, X, y = _model(3)
    eps = 0.3
    Xa = attack(W, X, y, q=3, rho=1.0, eps=eps, norm="linf", steps=1)
    g = grad_x(W, X, y, q=3, rho=1.0)
    assert np.allclose(Xa, X + eps * np.sign(g), rtol=0, atol=1e-15)
    Xl2 = attack(W, X, y, q=3, rho=1.0, eps=eps, norm="l2", steps=1)
    gn = g / np.sqrt((g ** 2).sum(axis=(1, 2), keepdims=True))
    assert np.allclose(Xl2, X + eps * gn, atol=1e-15)


@pytest.mark.parametrize("norm", NORMS)
def test_ascent_step_does_not_decrease_loss_first_order(norm):
    rng, W, X, y = _model(4, n=20)
    g = grad_x(W, X, y, q=3, rho=1.0)
    step = direction(g, norm)
    first_order = (g * step).sum(axis=(1, 2))         # directional derivative of ℓ_i
    assert np.all(first_order >= 0)
    t = 1e-6
    gain = per_sample_loss(W, X + t * step, y, q=3, rho=1.0) - per_sample_loss(W, X, y, q=3, rho=1.0)
    assert np.all(gain >= -1e-12), f"loss decreased by {gain.min():.2e}"


def test_restarts_keep_the_strongest():
    rng, W, X, y = _model(5, n=30)
    base = attack(W, X, y, q=3, rho=1.0, eps=0.5, steps=5, step_size=0.2, random_start=True,
                  rng=np.random.default_rng(0))
    strong = attack(W, X, y, q=3, rho=1.0, eps=0.5, steps=5, step_size=0.2, random_start=True,
                    rng=np.random.default_rng(0), restarts=3)
    lb, ls = per_sample_loss(W, base, y, q=3, rho=1.0), per_sample_loss(W, strong, y, q=3, rho=1.0)
    from reffeat import predict
    wrong_b = predict(W, base, q=3, rho=1.0) != y
    wrong_s = predict(W, strong, q=3, rho=1.0) != y
    assert np.all(wrong_s | ~wrong_b), "a restart lost a successful attack"
    assert np.all((ls >= lb - 1e-12) | (wrong_s & ~wrong_b))


def test_feature_perturbations_linf():
    cfg = Config(k=3, d_N=8, P=5)
    U, V = make_features(cfg)
    y = np.array([0, 2])
    deltas = feature_perturbations(V, y, cfg.P, 0.1, "linf")
    assert len(deltas) == 3
    assert np.allclose(deltas[0][0, 0], -0.1 * np.sign(V[0]))             # own class: −ε sign(v_y)
    assert np.allclose(deltas[1][0, 3], 0.1 * np.sign(V[1] - V[0]))       # target 1 ≠ y=0
    for dl in deltas:
        assert np.abs(dl).max() <= 0.1 + 1e-15


@pytest.mark.parametrize("bad,match", [(dict(eps=-1.0), "eps"), (dict(norm="l3"), "norm"),
                                       (dict(steps=0), "steps"), (dict(step_size=0.0), "step_size"),
                                       (dict(random_start=True), "rng")])
def test_attack_bad_input(bad, match):
    rng, W, X, y = _model(6)
    kw = dict(q=3, rho=1.0, eps=0.1)
    kw.update(bad)
    with pytest.raises(ValueError, match=match):
        attack(W, X, y, **kw)
