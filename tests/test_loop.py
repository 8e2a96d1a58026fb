"""The one training loop (reffeat.loop): its objective with λ, its stop policy
(non-finite, divergence, Ctrl-C) and its per-step callback, in full-batch
(T1/T3) and mini-batch (R3) training."""
import numpy as np
import pytest

from reffeat import Config, attack, grad_w, loss, problem, train
from reffeat.loop import MAX_WEIGHT, descend, objective, objective_points
from reffeat.real.train import ImageTrainConfig, train_images

SMALL = dict(k=3, P=12, d_N=8, m=4, n_train=40, n_test=60, T=12, log_every=4, eval_restarts=0)


def _toy_evaluate(grads):
    """An evaluate(t, W) that returns the given gradient of step t (loss 1)."""
    def evaluate(t, W):
        G = grads(t, W)
        return {"points": [], "y": None, "loss": float(np.sum(G)) if np.isnan(G).any() else 1.0,
                "grad": G}
    return evaluate


def test_objective_is_the_lambda_mix():
    cfg = Config(**SMALL, lam=0.3)
    prob = problem(cfg)
    X, y, _ = prob.train
    W = prob.W0 * 30
    Xa = attack(W, X, y, q=cfg.q, rho=cfg.rho, eps=cfg.eps, norm="linf", steps=1)
    pts = objective_points(W, X, y, "at", cfg.lam, lambda W, X, y: Xa)
    assert len(pts) == 2 and pts[0][0] is X and pts[1][0] is Xa
    obj, G, _ = objective(W, pts, y, cfg.q, cfg.rho)
    (Lc, Gc), (La, Ga) = grad_w(W, X, y, q=cfg.q, rho=cfg.rho), grad_w(W, Xa, y, q=cfg.q, rho=cfg.rho)
    assert abs(obj - (0.7 * Lc + 0.3 * La)) < 1e-12
    assert np.abs(G - (0.7 * Gc + 0.3 * Ga)).max() < 1e-12
    assert objective_points(W, X, y, "st", 0.3, None) == [(X, 1.0)]
    assert objective_points(W, X, y, "at", 0.0, lambda *a: 1 / 0) == [(X, 1.0)], "λ = 0 never attacks"


def test_descend_stops_on_nan_and_keeps_last_finite_weights():
    W0 = np.ones((2, 2, 3))
    W, done, why = descend(W0, range(10), _toy_evaluate(
        lambda t, W: np.full_like(W, np.nan if t == 4 else 0.1)), lambda W, G: W - G)
    assert why.startswith("non-finite") and done == 4
    assert np.allclose(W, 1 - 0.4) and np.all(np.isfinite(W))


def test_descend_stops_on_divergent_weights_and_loss():
    W0 = np.zeros((2, 2, 3))
    W, done, why = descend(W0, range(10), _toy_evaluate(lambda t, W: np.full_like(W, -10.0 ** t)),
                           lambda W, G: W - G)
    # W after t steps = Σ_{s<t} 10^s: the step that takes it past 1e3 is t = 3 (1111)
    assert why.startswith("diverged after step 3") and done == 3 and np.allclose(W, 111)
    W, done, why = descend(W0, range(10), lambda t, W: {"points": [], "y": None, "loss": 10.0 ** t,
                                                         "grad": np.zeros_like(W)},
                           lambda W, G: W - G, max_loss=1e4)
    assert why.startswith("diverged at step 5") and done == 5


def test_descend_keyboard_interrupt_keeps_completed_steps():
    def evaluate(t, W):
        if t == 5:
            raise KeyboardInterrupt
        return {"points": [], "y": None, "loss": 1.0, "grad": np.ones_like(W)}
    seen = []
    W, done, why = descend(np.zeros(3), range(10), evaluate, lambda W, G: W + G,
                           callback=lambda s: seen.append(s.t))
    assert why.startswith("interrupted") and done == 5 and np.allclose(W, 5) and seen == [0, 1, 2, 3, 4]


def test_huge_step_size_stops_with_a_message_and_keeps_results():
    cfg = Config(**{**SMALL, "eta": 1e6})
    prob = problem(cfg)
    for mode in ("st", "at"):
        res = train(cfg, mode, prob)
        assert res.stopped is not None and res.stopped.startswith("diverged"), res.stopped
        assert np.abs(res.W).max() <= MAX_WEIGHT and np.all(np.isfinite(res.W))
        assert res.history["step"][-1] == res.steps_done
        assert all(abs(v) < 1e6 for v in res.history["loss"])


@pytest.mark.parametrize("mode,extra", [("st", {}), ("at", {}), ("at", {"lam": 0.5})])
def test_callback_sees_every_step_and_its_points(mode, extra):
    cfg = Config(**SMALL, **extra)
    prob = problem(cfg)
    X, y, _ = prob.train
    steps = []
    res = train(cfg, mode, prob, callback=steps.append)
    assert [s.t for s in steps] == list(range(cfg.T))
    assert np.array_equal(steps[0].W, prob.W0) and np.array_equal(steps[-1].W_next, res.W)
    for a, b in zip(steps[:-1], steps[1:]):
        assert np.array_equal(a.W_next, b.W)
    for s in steps:
        assert np.allclose(s.W_next, s.W - cfg.eta * s.grad, rtol=0, atol=1e-15)
        obj = sum(wgt * loss(s.W, Xs, y, q=cfg.q, rho=cfg.rho) for Xs, wgt in s.points)
        assert abs(obj - s.loss) < 1e-10
        if mode == "st":
            assert len(s.points) == 1 and s.points[0][0] is X
        else:
            Xa = s.points[-1][0]
            assert np.abs(Xa - X).max() == pytest.approx(cfg.eps), "AT steps are taken at X + δ, |δ|∞ = ε"


def test_minibatch_loop_callback_and_divergence():
    rng = np.random.default_rng(0)
    X = rng.random((50, 4, 6))
    y = rng.integers(0, 3, 50)
    cfg = ImageTrainConfig(mode="at", epochs=2, batch_size=16, m=3, eps=0.05)
    seen = []
    res = train_images(X, y, 3, cfg, progress=False, callback=seen.append)
    assert [s.t for s in seen] == list(range(8)), "4 batches per epoch, 2 epochs"
    assert sorted(np.concatenate([s.batch for s in seen[:4]]).tolist()) == list(range(50))
    assert np.array_equal(seen[-1].W_next, res.W)
    bad = ImageTrainConfig(mode="st", epochs=3, batch_size=16, m=3, lr=1e9)
    res = train_images(X, y, 3, bad, progress=False)
    assert res.stopped == "diverged" and res.extra["stop_reason"].startswith("diverged")
    assert np.array_equal(res.W, res.snapshots[-1]) and np.abs(res.W).max() < MAX_WEIGHT
