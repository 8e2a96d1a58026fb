"""T1, T3, C3–C4 bookkeeping, determinism, NaN handling."""
import importlib

import numpy as np
import pytest

from reffeat import Config, c4_decomposition, coefficients, grad_w, problem, train

SMALL = dict(k=3, P=12, d_N=8, m=4, n_train=40, n_test=60, T=12, log_every=4, eval_restarts=0)


@pytest.mark.parametrize("extra", [dict(), dict(sigma_xi=0.2, n_nonrobust=6)])
def test_c4_parts_sum_to_actual_change(extra):
    cfg = Config(**SMALL, **extra)
    prob = problem(cfg)
    U, V = prob.features
    X, y, types = prob.train
    W = prob.W0 * 40                                # past the polynomial region: all parts active
    _, G = grad_w(W, X, y, q=cfg.q, rho=cfg.rho)
    dG, dP = c4_decomposition(W, X, y, types, U, V, q=cfg.q, rho=cfg.rho, step=cfg.eta)
    c0, c1 = coefficients(W, U, V), coefficients(W - cfg.eta * G, U, V)
    for parts, key in ((dG, "Gamma"), (dP, "Phi")):
        err = np.abs(parts.sum(axis=(0, 1)) - (c1[key] - c0[key])).max()
        assert err < 1e-10, f"C4 parts of {key} miss the actual change by {err:.2e}"


@pytest.mark.parametrize("mode,extra", [("st", {}), ("at", {}), ("at", dict(lam=0.5)),
                                        ("at", dict(K=3, ascent_step=0.1, random_start=True))])
def test_c4_over_training_sums_to_trajectory(mode, extra):
    cfg = Config(**SMALL, **extra)
    res = train(cfg, mode)
    U, V = problem(cfg).features
    c_end, c_0 = coefficients(res.W, U, V), coefficients(res.W0, U, V)
    for arr, key in ((res.c4_gamma, "Gamma"), (res.c4_phi, "Phi")):
        assert arr.shape == (cfg.T, 2, 3, cfg.k, cfg.m)
        err = np.abs(arr.sum(axis=(0, 1, 2)) - (c_end[key] - c_0[key])).max()
        assert err < 1e-10, f"{mode}: Σ C4 parts of {key} differ from Γ/Φ(T) − Γ/Φ(0) by {err:.2e}"


@pytest.mark.parametrize("mode", ["st", "at"])
def test_same_seed_same_history(mode):
    cfg = Config(**SMALL, random_start=True)
    a, b = train(cfg, mode), train(cfg, mode)
    assert a.history == b.history
    assert np.array_equal(a.W, b.W)
    c = train(cfg.replace(seed=1), mode)
    assert not np.array_equal(a.W, c.W)


def test_history_logging_steps():
    cfg = Config(**SMALL)
    res = train(cfg, "st")
    assert res.history["step"] == [0, 1, 2, 4, 8, 12]      # every log_every, and 0, 1, 2, 4, 8, … (dense start)
    assert res.steps_done == 12 and res.stopped is None
    assert all(len(v) == 6 for v in res.history.values())


def test_nan_stops_cleanly(monkeypatch):
    tr = importlib.import_module("reffeat.train")   # the package exports the function `train`
    lp = importlib.import_module("reffeat.loop")    # the one loop's objective calls G2 there
    cfg = Config(**{**SMALL, "T": 50, "log_every": 1})
    calls = {"n": 0}
    real, real_c4 = lp.grad_w, lp.grad_w_and_c4

    def poisoned(W, X, y, *, q, rho):
        calls["n"] += 1
        L, G = real(W, X, y, q=q, rho=rho)
        return (L, G * np.nan) if calls["n"] >= 4 else (L, G)

    def poisoned_c4(W, X, y, types, U, V, *, q, rho, step):   # the training step's G2 (with C4)
        calls["n"] += 1
        L, G, parts = real_c4(W, X, y, types, U, V, q=q, rho=rho, step=step)
        return (L, G * np.nan, parts) if calls["n"] >= 4 else (L, G, parts)

    monkeypatch.setattr(lp, "grad_w", poisoned)
    monkeypatch.setattr(lp, "grad_w_and_c4", poisoned_c4)
    res = tr.train(cfg, "at")
    assert res.stopped is not None and "non-finite" in res.stopped
    assert np.all(np.isfinite(res.W)), "kept weights must be the last finite ones"
    assert res.steps_done == 3 and res.history["step"] == [0, 1, 2, 3]


def test_overflowing_weights_stop_cleanly():
    cfg = Config(**{**SMALL, "T": 5})
    prob = problem(cfg)
    res = train(cfg, "st", prob, W0=np.full_like(prob.W0, np.inf))
    assert res.stopped is not None and "non-finite" in res.stopped and res.steps_done == 0


def test_keyboard_interrupt_keeps_results(monkeypatch):
    tr = importlib.import_module("reffeat.train")   # the package exports the function `train`
    lp = importlib.import_module("reffeat.loop")
    cfg = Config(**SMALL)
    calls = {"n": 0}
    real = lp.grad_w_and_c4                 # the training step's G2 (with C4)

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(lp, "grad_w_and_c4", flaky)
    res = tr.train(cfg, "st")
    assert res.stopped.startswith("interrupted")
    assert 0 < res.steps_done < cfg.T and len(res.c4_gamma) == res.steps_done


def test_bad_mode():
    with pytest.raises(ValueError, match="mode must be one of st, at"):
        train(Config(**SMALL), "xt")
