"""E5 certified robust accuracy: soundness against an exhaustive grid of the
threat set on tiny problems, nesting of the levels, certified ≤ attacked on a
small trained model, argument validation."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reffeat as rf
from reffeat.certify import LEVELS, certify, certify_bounds
from reffeat.model import forward


def _grid(P, d, eps, norm, n_side, rng):
    """Perturbations (G, P, d) covering the threat set: for ℓ∞ the full box
    grid (vertices included); for ℓ2-patch every patch on a grid of its ball
    plus its boundary circle; for whole-input ℓ2 the box grid cut to the ball,
    plus points on the sphere (the grid's rays pushed out, random directions)."""
    ticks = np.linspace(-eps, eps, n_side)
    box = np.array(list(itertools.product(ticks, repeat=P * d))).reshape(-1, P, d)
    if norm == "linf":
        return box
    if norm == "l2-patch":
        one = np.array(list(itertools.product(ticks, repeat=d)))
        one = one[np.linalg.norm(one, axis=1) <= eps + 1e-12]
        if d == 1:
            ring = np.array([[-eps], [eps]])
        else:
            ang = np.linspace(0, 2 * np.pi, 4 * n_side, endpoint=False)
            ring = eps * np.stack([np.cos(ang), np.sin(ang)], 1)
        one = np.concatenate([one, ring])
        return np.array(list(itertools.product(one, repeat=P))).reshape(-1, P, d)
    flat = box.reshape(len(box), -1)
    nr = np.linalg.norm(flat, axis=1)
    inside = flat[nr <= eps + 1e-12]
    rays = flat[nr > 0] / nr[nr > 0, None] * eps
    rand = rng.standard_normal((400, P * d))
    rand *= eps / np.linalg.norm(rand, axis=1, keepdims=True)
    return np.concatenate([inside, rays, rand]).reshape(-1, P, d)


def _grid_min_margin(W, X, y, q, rho, grid):
    """min over the grid and over t ≠ y of F_y − F_t at X + δ -> (n,)."""
    n = X.shape[0]
    out = np.full(n, np.inf)
    for i in range(n):
        F = forward(W, X[i][None] + grid, q=q, rho=rho)               # (G, k)
        other = np.delete(F, y[i], axis=1)
        out[i] = (F[:, y[i]][:, None] - other).min()
    return out


@st.composite
def tiny(draw):
    k = draw(st.integers(2, 3))
    m = draw(st.integers(1, 2))
    d = draw(st.integers(1, 2))
    P = draw(st.integers(1, 2))
    n = draw(st.integers(1, 4))
    q = draw(st.sampled_from([1.0, 2.0, 3.0]))
    rho = draw(st.sampled_from([0.5, 1.0, 2.0]))
    eps = draw(st.sampled_from([0.0, 0.1, 0.3, 0.7]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((k, m, d))
    X = rng.standard_normal((n, P, d))
    y = rng.integers(0, k, n)
    return W, X, y, q, rho, eps, rng


@pytest.mark.parametrize("norm", ["linf", "l2-patch", "l2"])
@settings(max_examples=40, deadline=None)
@given(prob=tiny())
def test_sound_against_exhaustive_grid(norm, prob):
    W, X, y, q, rho, eps, rng = prob
    P, d = X.shape[1:]
    n_side = 9 if P * d >= 4 else 17
    grid = _grid(P, d, eps, norm, n_side, rng)
    true_min = _grid_min_margin(W, X, y, q, rho, grid)
    r = certify_bounds(W, X, y, q=q, rho=rho, eps=eps, norm=norm, level="bab", bab_budget=3)
    for name, low in r["levels"].items():
        bad = low > true_min + 1e-9
        assert not bad.any(), (f"{name} bound {low[bad]} above the grid's worst margin "
                               f"{true_min[bad]} ({norm}, q={q}, eps={eps})")
    assert np.all(r["certified"] <= (true_min > 0)), "a certified point is broken on the grid"
    assert np.all(r["upper"] >= r["lower"] - 1e-9), "upper bound below the lower bound"


@pytest.mark.parametrize("norm", ["linf", "l2-patch", "l2"])
@settings(max_examples=25, deadline=None)
@given(prob=tiny())
def test_levels_nested(norm, prob):
    W, X, y, q, rho, eps, _ = prob
    r = certify_bounds(W, X, y, q=q, rho=rho, eps=eps, norm=norm, level="bab")
    lows = [r["levels"][lv] for lv in LEVELS]
    for lv, (lo, hi) in zip(LEVELS[1:], itertools.pairwise(lows)):
        assert np.all(hi >= lo), f"level {lv} looser than the one before ({norm})"
    sets = [certify(W, X, y, q=q, rho=rho, eps=eps, norm=norm, level=lv) for lv in LEVELS]
    for a, b in itertools.pairwise(sets):
        assert np.all(a <= b), f"certified sets not nested ({norm})"


def test_eps_zero_is_clean_correctness():
    rng = np.random.default_rng(3)
    W = rng.standard_normal((3, 2, 4))
    X = rng.standard_normal((30, 3, 4))
    y = rng.integers(0, 3, 30)
    F = forward(W, X, q=2.0, rho=1.0)
    Fy = F[np.arange(30), y]
    F[np.arange(30), y] = -np.inf
    correct = Fy > F.max(1)
    for norm in ("linf", "l2-patch", "l2"):
        got = certify(W, X, y, q=2.0, rho=1.0, eps=0.0, norm=norm)
        assert np.array_equal(got, correct), f"eps=0 must certify exactly the correct points ({norm})"


@pytest.fixture(scope="module")
def small_trained():
    cfg = rf.Config(k=3, P=8, d_N=8, m=4, n_train=60, n_test=60, T=150, eval_apgd_K=0,
                    eval_restarts=1)
    prob = rf.problem(cfg)
    res = rf.train(cfg, "at", prob)
    return cfg, prob, res.W


# radii near each norm's edge for this model (ℓ∞ 0.6: about a quarter of the points break)
@pytest.mark.parametrize("norm, eps", [("linf", 0.2), ("linf", 0.6), ("l2-patch", 0.6), ("l2", 0.8)])
def test_certified_never_broken_by_pgd(small_trained, norm, eps):
    cfg, prob, W = small_trained
    X, y, _ = prob.test
    cert = certify(W, X, y, q=cfg.q, rho=cfg.rho, eps=eps, norm=norm)
    rng = np.random.default_rng(0)
    Xa = rf.attack(W, X, y, q=cfg.q, rho=cfg.rho, eps=eps, norm=norm, steps=30,
                   step_size=eps / 4, random_start=True, rng=rng, restarts=3)
    survived = rf.predict(W, Xa, q=cfg.q, rho=cfg.rho) == y
    assert np.all(survived[cert]), f"{np.sum(cert & ~survived)} certified points broken by PGD ({norm})"


@pytest.mark.parametrize("kw, word", [
    ({"norm": "l3"}, "norm"),
    ({"eps": -0.1}, "eps"),
    ({"eps": float("nan")}, "eps"),
    ({"level": "exact"}, "level"),
    ({"steps": -1}, "steps"),
    ({"bab_budget": 1.5}, "bab_budget"),
    ({"q": 0.5}, "q"),
    ({"rho": 0.0}, "rho"),
])
def test_bad_arguments(kw, word):
    rng = np.random.default_rng(0)
    W = rng.standard_normal((3, 2, 4))
    X = rng.standard_normal((5, 2, 4))
    y = rng.integers(0, 3, 5)
    args = {"q": 2.0, "rho": 1.0, "eps": 0.1, "norm": "linf"} | kw
    with pytest.raises(ValueError, match=word):
        certify(W, X, y, **args)


@pytest.mark.parametrize("shapes, word", [
    (((3, 2, 4), (5, 2, 3), (5,)), "X"),
    (((3, 2, 4), (5, 2, 4), (4,)), "y"),
    (((3, 2), (5, 2, 4), (5,)), "W"),
])
def test_bad_shapes(shapes, word):
    sw, sx, sy = shapes
    with pytest.raises(ValueError, match=word):
        certify(np.ones(sw), np.ones(sx), np.zeros(sy, int), q=2.0, rho=1.0, eps=0.1)


def test_labels_out_of_range():
    with pytest.raises(ValueError, match="y"):
        certify(np.ones((3, 2, 4)), np.ones((5, 2, 4)), np.full(5, 3), q=2.0, rho=1.0, eps=0.1)


def test_edge_sizes():
    """No samples: an empty answer; one class: every point is trivially correct."""
    got = certify(np.ones((3, 2, 4)), np.ones((0, 2, 4)), np.zeros(0, int), q=2.0, rho=1.0, eps=0.1)
    assert got.shape == (0,) and got.dtype == bool
    got = certify(np.ones((1, 2, 4)), np.ones((2, 2, 4)), np.zeros(2, int), q=2.0, rho=1.0, eps=0.1)
    assert got.all()
