"""V2 P2 (b) (``reffeat.directions``): projecting perturbations onto span{v}.

Properties (hypothesis): the projected perturbation lies in the threat set;
a perturbation already in span{v} and inside the set is unchanged; the
projection is idempotent; and the flip fraction counts only flipped points.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reffeat import Config, problem, train
from reffeat.attacks import attack, feature_perturbations
from reffeat.directions import project_onto_span, projected_flip_fraction, projected_flips
from reffeat.features import make_features

NORMS = ("linf", "l2-patch", "l2")


def _V(k, d, seed):
    Q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, k)))
    return Q.T.copy()


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), P=st.integers(1, 4), d=st.integers(1, 7), k=st.integers(1, 3),
       eps=st.floats(0.0, 2.0), norm=st.sampled_from(NORMS), seed=st.integers(0, 10_000))
def test_projection_inside_threat_set_and_idempotent(n, P, d, k, eps, norm, seed):
    k = min(k, d)
    rng = np.random.default_rng(seed)
    V = _V(k, d, seed)
    delta = rng.normal(scale=1.0, size=(n, P, d))
    out = project_onto_span(delta, V, eps=eps, norm=norm)
    assert out.shape == delta.shape
    tol = 1e-9 * (1 + eps)
    if norm == "linf":
        assert np.abs(out).max() <= eps + tol, f"ℓ∞ {np.abs(out).max():.3g} > ε = {eps:.3g}"
    elif norm == "l2-patch":
        assert np.linalg.norm(out, axis=2).max() <= eps + tol
    else:
        assert np.linalg.norm(out.reshape(n, -1), axis=1).max() <= eps + tol
    if norm != "linf":       # ℓ2: the ball is convex and Π_V shrinks norms, so the result is in span{v}
        again = project_onto_span(out, V, eps=eps, norm=norm)
        np.testing.assert_allclose(again, out, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), P=st.integers(1, 4), d=st.integers(1, 7), k=st.integers(1, 3),
       eps=st.floats(0.01, 2.0), norm=st.sampled_from(NORMS), seed=st.integers(0, 10_000))
def test_delta_in_span_and_in_set_is_unchanged(n, P, d, k, eps, norm, seed):
    k = min(k, d)
    rng = np.random.default_rng(seed)
    V = _V(k, d, seed)
    delta = rng.normal(size=(n, P, k)) @ V                       # in span{v}, patch by patch
    if norm == "linf":
        delta *= eps / max(np.abs(delta).max(), 1e-300)
    elif norm == "l2-patch":
        delta *= eps / max(np.linalg.norm(delta, axis=2).max(), 1e-300)
    else:
        delta *= eps / max(np.linalg.norm(delta.reshape(n, -1), axis=1).max(), 1e-300)
    out = project_onto_span(delta, V, eps=eps, norm=norm)
    np.testing.assert_allclose(out, delta, atol=1e-12 * (1 + eps))


def test_feature_attack_perturbations_are_kept_in_sparse_dense():
    """E2b's δ_p = ε·sign(v_t − v_y) lies in span{v} for geometry sparse-dense (F2): unchanged."""
    cfg = Config(k=3, d_N=8, P=4)
    _, V = make_features(cfg)
    y = np.array([0, 1, 2, 0])
    for delta in feature_perturbations(V, y, cfg.P, 0.2, "linf"):
        np.testing.assert_allclose(project_onto_span(delta, V, eps=0.2, norm="linf"), delta, atol=1e-12)


def test_orthogonal_perturbation_projects_to_zero_and_fraction_counts_flips():
    cfg = Config(k=2, P=4, d_N=4, m=2, n_train=20, n_test=20, T=30, eta=0.2, eval_restarts=0)
    prob = problem(cfg)
    res = train(cfg, "st", prob, track_c4=False)
    U, V = prob.features
    X, y = prob.test[0], prob.test[1]
    ortho = np.broadcast_to(U[0], X.shape).copy() * 0.3           # along u_0 only: ⟂ span{v}
    assert np.abs(project_onto_span(ortho, V, eps=0.3, norm="linf")).max() == 0.0
    adv = attack(res.W, X, y, q=cfg.q, rho=cfg.rho, eps=1.0, steps=10, step_size=0.25)
    delta = adv - X
    flipped, still = projected_flips(res.W, X, y, delta, V, q=cfg.q, rho=cfg.rho, eps=1.0)
    assert not (still & ~flipped).any(), "a point counted as still flipped that was never flipped"
    frac = projected_flip_fraction(res.W, X, y, delta, V, q=cfg.q, rho=cfg.rho, eps=1.0)
    if flipped.any():
        assert frac == pytest.approx(still.sum() / flipped.sum())
    else:
        assert frac is None
    clean_wrong = projected_flips(res.W, X, y, np.zeros_like(X), V, q=cfg.q, rho=cfg.rho, eps=1.0)[0]
    zero = projected_flip_fraction(res.W, X, y, np.zeros_like(X), V, q=cfg.q, rho=cfg.rho, eps=1.0)
    assert zero == (None if not clean_wrong.any() else 1.0), "δ = 0: a flip stays a flip"


def test_bad_input_is_a_one_line_value_error():
    V = np.eye(2)
    with pytest.raises(ValueError, match="norm"):
        project_onto_span(np.zeros((1, 1, 2)), V, eps=0.1, norm="l3")
    with pytest.raises(ValueError, match="eps"):
        project_onto_span(np.zeros((1, 1, 2)), V, eps=-1.0)
    with pytest.raises(ValueError, match="V must have shape"):
        project_onto_span(np.zeros((1, 1, 3)), V, eps=0.1)
