"""E2c: APGD-CE / APGD-DLR (reffeat.apgd)."""

import numpy as np
import pytest

from reffeat.apgd import apgd, apgd_run, checkpoints, random_start, worst_case
from reffeat.attacks import apgd_losses, attack, dlr_and_grad_F, loss_and_grad_x
from reffeat.model import grad_w, init_weights, per_sample_loss, predict


def _problem(seed=0, n=60, P=6, d=8, k=4, m=3, scale=0.6):
    rng = np.random.default_rng(seed)
    W = init_weights(k, m, d, scale, rng)
    X = rng.uniform(0, 1, (n, P, d))
    y = predict(W, X, q=2.0, rho=1.0)          # labels the model gets right: attacks have work to do
    return W, X, y, rng


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_input_gradient_matches_central_differences(loss):
    W, X, y, rng = _problem(n=5, k=4)
    _, G, _ = loss_and_grad_x(W, X, y, 3.0, 1.0, loss)
    h = 1e-6
    worst = 0.0
    for _ in range(20):
        i, p, c = rng.integers(5), rng.integers(X.shape[1]), rng.integers(X.shape[2])
        Xp, Xm = X.copy(), X.copy()
        Xp[i, p, c] += h; Xm[i, p, c] -= h
        fd = (loss_and_grad_x(W, Xp, y, 3.0, 1.0, loss)[0][i]
              - loss_and_grad_x(W, Xm, y, 3.0, 1.0, loss)[0][i]) / (2 * h)
        worst = max(worst, abs(fd - G[i, p, c]) / max(1e-8, abs(fd) + abs(G[i, p, c])))
    assert worst < 1e-5, f"{loss} input gradient rel err {worst:.2e}"


def test_ce_loss_is_L2():
    W, X, y, _ = _problem(n=7)
    L, _, _ = loss_and_grad_x(W, X, y, 2.0, 1.0, "ce")
    assert np.allclose(L, per_sample_loss(W, X, y, q=2.0, rho=1.0), rtol=1e-12)


def test_dlr_value_and_k2():
    F = np.array([[3.0, 1.0, 0.0, -1.0], [0.0, 5.0, 1.0, 2.0]])
    L, _ = dlr_and_grad_F(F, np.array([0, 0]))
    # row 0: y top, margin 3−1 over π1−π3 = 3−0; row 1: −(0−5)/(5−1)
    assert np.allclose(L, [-2 / 3, 5 / 4])
    with pytest.raises(ValueError, match="k >= 3"):
        dlr_and_grad_F(F[:, :2], np.array([0, 0]))


def test_checkpoints_schedule_of_the_reference():
    # N = 100: first after 22, then h = 19, 16, 13, 10, 7, 6, 6 ... (min 6)
    assert checkpoints(100)[:6] == [22, 41, 57, 70, 80, 87]
    assert all(b - a >= 6 for a, b in zip(checkpoints(100), checkpoints(100)[1:]))
    assert checkpoints(1) == [1]


@pytest.mark.parametrize("loss", ["ce", "dlr"])
@pytest.mark.parametrize("norm,clip", [("linf", (0.0, 1.0)), ("linf", None), ("l2", None)])
def test_best_loss_never_decreases_and_iterates_stay_in_ball_and_box(loss, norm, clip):
    W, X, y, rng = _problem(seed=1)
    eps = 0.15 if norm == "linf" else 0.6
    r = apgd_run(W, X, y, q=2.0, rho=1.0, eps=eps, norm=norm, loss=loss, steps=30,
                 start=random_start(X.shape, eps, norm, rng), clip=clip)
    drops = np.diff(r["loss_best"], axis=0)
    assert drops.min() >= 0, f"best loss decreased by {-drops.min():.3g}"
    assert np.all(r["loss_best"][-1] >= r["loss"].max(axis=0) - 1e-15)
    delta = r["X_adv"] - X
    if norm == "linf":
        assert np.abs(delta).max() <= eps + 1e-12
    else:
        assert np.sqrt((delta ** 2).sum(axis=(1, 2))).max() <= eps * (1 + 1e-9)
    if clip is not None:
        assert r["X_adv"].min() >= 0 and r["X_adv"].max() <= 1
    # "fooled" means exactly that the returned point is misclassified
    assert np.array_equal(r["fooled"], predict(W, r["X_adv"], q=2.0, rho=1.0) != y)
    assert r["step"].max() <= 2 * eps and r["step"].min() > 0


def _trained(seed, n=400, P=4, d=12, k=4, m=4, steps=300, lr=0.5, q=2.0):
    """A small N3 student trained (full-batch GD, G2) on labels of a random N3 teacher."""
    rng = np.random.default_rng(seed)
    teacher = init_weights(k, 3, d, 1.0, rng)
    X = rng.uniform(0, 1, (n, P, d))
    y = predict(teacher, X, q=q, rho=1.0)
    W = init_weights(k, m, d, 0.1, rng)
    for _ in range(steps):
        W -= lr * grad_w(W, X, y, q=q, rho=1.0)[1]
    return W, X, y


def test_apgd_at_least_as_strong_as_pgd_with_the_same_budget():
    """Same number of gradient evaluations (30, one run each) on small trained
    models at two radii: APGD-CE fools at least as many points in total as
    PGD-30 (γ = ε/4, random start), and the worst case over APGD-CE/-DLR at
    least as many as PGD on every model."""
    tot_apgd = tot_pgd = 0
    for seed in (0, 1, 3):
        W, X, y = _trained(seed)
        for eps in (0.05, 0.1):
            Xp = attack(W, X, y, q=2.0, rho=1.0, eps=eps, steps=30, step_size=eps / 4,
                        random_start=True, rng=np.random.default_rng(seed), clip=(0.0, 1.0))
            n_pgd = int((predict(W, Xp, q=2.0, rho=1.0) != y).sum())
            f = {loss: apgd(W, X, y, q=2.0, rho=1.0, eps=eps, loss=loss, steps=30,
                            rng=np.random.default_rng(seed), clip=(0.0, 1.0))[1]
                 for loss in ("ce", "dlr")}
            tot_pgd += n_pgd
            tot_apgd += int(f["ce"].sum())
            both = int((f["ce"] | f["dlr"]).sum())
            assert both >= n_pgd, f"seed {seed} eps {eps}: APGD-CE|DLR fooled {both} < PGD {n_pgd}"
    assert tot_apgd >= tot_pgd, f"APGD-CE fooled {tot_apgd} points, PGD {tot_pgd}"
    assert 0 < tot_pgd < 6 * 400, f"uninformative test problem (PGD fooled {tot_pgd})"


def test_worst_case_is_never_above_any_single_attack():
    W, X, y, rng = _problem(seed=3, n=100, scale=0.8)
    eps = 0.06
    Xp = attack(W, X, y, q=2.0, rho=1.0, eps=eps, steps=10, step_size=eps / 4,
                random_start=True, rng=rng, clip=(0.0, 1.0))
    res = {"pgd": predict(W, Xp, q=2.0, rho=1.0) == y}
    for loss in ("ce", "dlr"):
        res[loss] = ~apgd(W, X, y, q=2.0, rho=1.0, eps=eps, loss=loss, steps=20, rng=rng,
                          clip=(0.0, 1.0))[1]
    wc = worst_case(res)
    for name, ok in res.items():
        assert wc.mean() <= ok.mean(), f"worst case {wc.mean()} above {name} {ok.mean()}"
        assert not np.any(wc & ~ok), f"a point counted robust that {name} broke"
    assert worst_case({"a": res["pgd"], "skipped": None}).tolist() == res["pgd"].tolist()


def test_restarts_only_add_fooled_points_and_batch_does_not_matter():
    W, X, y, _ = _problem(seed=5, n=80, scale=0.8)
    kw = dict(q=2.0, rho=1.0, eps=0.05, loss="ce", steps=10, clip=(0.0, 1.0))
    _, f0 = apgd(W, X, y, rng=np.random.default_rng(0), **kw)
    _, f2 = apgd(W, X, y, restarts=2, rng=np.random.default_rng(0), **kw)
    assert np.all(f2 >= f0)
    Xa, fa = apgd(W, X, y, rng=np.random.default_rng(1), batch=7, **kw)
    Xb, fb = apgd(W, X, y, rng=np.random.default_rng(1), batch=500, **kw)
    assert np.array_equal(fa, fb) and np.allclose(Xa, Xb, rtol=0, atol=1e-12)


def test_bad_arguments():
    W, X, y, rng = _problem(n=3, k=2)
    with pytest.raises(ValueError, match="k >= 3"):
        apgd(W, X, y, q=2.0, rho=1.0, eps=0.1, loss="dlr", rng=rng)
    with pytest.raises(ValueError, match="steps"):
        apgd(W, X, y, q=2.0, rho=1.0, eps=0.1, steps=0, rng=rng)
    with pytest.raises(ValueError, match="loss"):
        apgd(W, X, y, q=2.0, rho=1.0, eps=0.1, loss="hinge", rng=rng)


def test_dlr_needs_three_classes_one_rule():
    """The rule "APGD-DLR only for k >= 3" lives in attacks.apgd_losses; apgd obeys it."""
    assert apgd_losses(2) == ("ce",) and apgd_losses(3) == ("ce", "dlr") and apgd_losses(10) == ("ce", "dlr")
    W, X, y = _problem(k=2)[:3]
    with pytest.raises(ValueError, match="k >= 3"):
        apgd(W, X, y, q=3.0, rho=1.0, eps=0.1, loss="dlr", steps=2, rng=np.random.default_rng(0))
