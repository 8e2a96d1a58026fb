"""R4 evaluation on real images: the E2 worst case (PGD, APGD-CE, APGD-DLR),
the linear baseline, the learning-rate schedule, --seeds statistics, --quick."""

import itertools
import json

import numpy as np
import pytest

from reffeat.model import init_weights, predict
from reffeat.real import lenses
from reffeat.real.linear import linear_grad_x, linear_loss_grads, linear_outputs, linear_robust_correct, train_linear
from reffeat.real.train import ImageTrainConfig, _Optimizer


def test_linear_gradients_match_central_differences():
    rng = np.random.default_rng(0)
    V, b = rng.standard_normal((3, 8)), rng.standard_normal(3)
    X, y = rng.random((5, 2, 4)), np.array([0, 1, 2, 0, 1])
    L, gV, gb = linear_loss_grads(V, b, X, y)
    h = 1e-6
    for idx in [(0, 0), (2, 5), (1, 7)]:
        Vp, Vm = V.copy(), V.copy()
        Vp[idx] += h; Vm[idx] -= h
        fd = (linear_loss_grads(Vp, b, X, y)[0] - linear_loss_grads(Vm, b, X, y)[0]) / (2 * h)
        assert abs(fd - gV[idx]) < 1e-7, f"dL/dV{idx}: fd {fd} vs {gV[idx]}"
    gx = linear_grad_x(V, b, X, y)
    Xp, Xm = X.copy(), X.copy()
    Xp[1, 1, 2] += h; Xm[1, 1, 2] -= h
    per = lambda Z: -np.log(np.exp(linear_outputs(V, b, Z))[1] / np.exp(linear_outputs(V, b, Z))[1].sum())[y[1]]
    assert abs((per(Xp) - per(Xm)) / (2 * h) - gx[1, 1, 2]) < 1e-7


def test_linear_exact_robustness_equals_brute_force_over_box_corners():
    """ℓ∞ with box: the minimum of a linear margin over the box is at a corner, so
    enumerating all 2^D corners of (ε-ball ∩ [0,1]) decides robustness exactly."""
    rng = np.random.default_rng(1)
    D, k, eps = 6, 3, 0.08
    V, b = 3 * rng.standard_normal((k, D)), 0.1 * rng.standard_normal(k)
    X = rng.random((40, D))
    y = linear_outputs(V, b, X).argmax(1)
    y[:5] = (y[:5] + 1) % k                               # a few misclassified points
    exact = linear_robust_correct(V, b, X, y, eps, "linf")
    lo, hi = np.clip(X - eps, 0, 1), np.clip(X + eps, 0, 1)
    brute = np.ones(len(y), bool)
    for corner in itertools.product((0, 1), repeat=D):
        c = np.array(corner, bool)
        Z = np.where(c, hi, lo)
        brute &= linear_outputs(V, b, Z).argmax(1) == y
    assert np.array_equal(exact, brute), f"exact {exact.sum()} vs brute force {brute.sum()} robust"
    assert not exact[:5].any() and 0 < exact.sum() < len(y)
    assert np.array_equal(linear_robust_correct(V, b, X, y, 0.0), linear_outputs(V, b, X).argmax(1) == y)


def test_linear_training_learns_and_at_is_more_robust():
    rng = np.random.default_rng(2)
    k, D, n = 3, 20, 600
    means = rng.random((k, D))
    y = rng.integers(0, k, n)
    X = np.clip(means[y] + 0.15 * rng.standard_normal((n, D)), 0, 1)
    Vs, bs, hs = train_linear(X, y, k, mode="st", epochs=15, lr=0.01, lr_schedule="cosine")
    Va, ba, _ = train_linear(X, y, k, mode="at", eps=0.1, epochs=15, lr=0.01, lr_schedule="cosine")
    assert hs["loss"][-1] < hs["loss"][0]
    assert (linear_outputs(Vs, bs, X).argmax(1) == y).mean() > 0.9
    rs, ra = linear_robust_correct(Vs, bs, X, y, 0.1).mean(), linear_robust_correct(Va, ba, X, y, 0.1).mean()
    assert ra >= rs, f"AT linear robust {ra} < ST {rs}"
    with pytest.raises(ValueError, match="lr_schedule"):
        train_linear(X, y, k, lr_schedule="step")


def test_cosine_schedule_decays_to_zero_and_constant_is_constant():
    cfg = ImageTrainConfig(lr=0.01, lr_schedule="cosine", optimizer="sgd")
    opt = _Optimizer(cfg, (1,), total_steps=10)
    lrs = []
    for _ in range(10):
        opt.t += 1
        lrs.append(opt.lr)
    assert lrs[0] == pytest.approx(0.01) and all(a > b for a, b in zip(lrs, lrs[1:]))
    assert lrs[-1] < 0.01 * 0.03
    opt = _Optimizer(ImageTrainConfig(lr=0.01), (1,), total_steps=10)
    opt.t = 7
    assert opt.lr == 0.01
    with pytest.raises(ValueError, match="lr_schedule"):
        ImageTrainConfig(lr_schedule="step")


def _model(seed=0, n=60, P=4, d=9, k=4, m=3):
    rng = np.random.default_rng(seed)
    W = init_weights(k, m, d, 0.8, rng)
    X = rng.random((n, P, d))
    y = predict(W, X, q=2.0, rho=1.0)
    y[:4] = (y[:4] + 1) % k
    return W, X, y


def test_robust_eval_worst_case_cascade_and_each_attack():
    W, X, y = _model()
    kw = dict(q=2.0, rho=1.0, steps=5, restarts=0, apgd_steps=8)
    full = lenses.robust_eval(W, X, y, 0.05, rng=np.random.default_rng(0), **kw)
    for key in ("pgd", "apgd_ce", "apgd_dlr", "clean"):
        assert full["robust"] <= full[key], f"worst case {full['robust']} above {key} {full[key]}"
    assert full["correct"].mean() == full["robust"] and not full["correct"][:4].any()
    casc = lenses.robust_eval(W, X, y, 0.05, rng=np.random.default_rng(0), cascade=True, **kw)
    assert casc["pgd"] is None and 0 <= casc["robust"] <= full["clean"]
    zero = lenses.robust_eval(W, X, y, 0.0, rng=np.random.default_rng(0), **kw)
    assert zero["robust"] == zero["clean"]
    two = lenses.robust_eval(W[:2], X, np.minimum(y, 1), 0.05, rng=np.random.default_rng(0), **kw)
    assert two["apgd_dlr"] is None and two["apgd_ce"] is not None   # DLR needs k >= 3


def test_stats_mean_std_and_t_interval():
    from reffeat.experiments.real_seeds import stats
    s = stats([0.5, 0.7, 0.6])
    assert s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(0.1)
    half = 4.302652729911275 * 0.1 / np.sqrt(3)           # t_{0.975, 2}
    assert s["ci95"] == pytest.approx([0.6 - half, 0.6 + half])
    one = stats([0.4, None])
    assert one["n"] == 1 and one["std"] is None and one["ci95"] is None


def test_quick_never_overrides_a_user_value():
    from reffeat.cli.real import build_parser, resolve
    c = resolve(build_parser().parse_args(["--dataset", "mnist", "--quick", "--epochs", "3",
                                            "--eval-steps", "7", "--apgd-steps", "9", "--eps-grid", "0,0.05,0.1,0.2"]))
    assert (c["epochs"], c["eval_steps"], c["apgd_steps"]) == (3, 7, 9)
    assert c["eps_grid"] == [0.0, 0.05, 0.1, 0.2]
    assert c["n_eval"] == 20 and c["dr_steps"] == 5        # not set by the user: quick sizes
    assert resolve(build_parser().parse_args(["--dataset", "mnist"]))["epochs"] > 1


def test_results_json_is_strict_and_has_every_attack(tmp_path, band_digits, capsys):
    """One quick run on synthetic MNIST-format digits: results.json parses as strict
    JSON (no NaN), records reffeat's version, each attack beside the worst case,
    and the linear baseline; --seeds 2 writes the mean/std/interval summary."""
    from reffeat.cli import real
    out = tmp_path / "run"
    rc = real.main(["--dataset", "mnist", "--data-dir", str(band_digits), "--out", str(out),
                    "--quick", "--classes", "0,3,7", "--dr-steps", "3", "--eps-grid", "0,0.1",
                    "--seeds", "2", "--n-lens", "6"])
    assert rc == 0, capsys.readouterr().err

    def no_nan(x):
        raise AssertionError(f"non-strict JSON constant {x}")
    agg = json.loads((out / "results.json").read_text(), parse_constant=no_nan)
    assert agg["seeds"] == [0, 1] and "reffeat" in agg["versions"]
    s = agg["summary"]["at_robust"]
    assert s["n"] == 2 and s["ci95"][0] <= s["mean"] <= s["ci95"][1]
    r0 = json.loads((out / "seed0" / "results.json").read_text(), parse_constant=no_nan)
    hl = r0["headline"]["at"]
    assert {"clean", "pgd", "apgd_ce", "apgd_dlr", "robust"} <= set(hl)
    assert hl["robust"] <= min(hl["pgd"], hl["apgd_ce"], hl["apgd_dlr"])
    assert {"clean", "robust", "acc_vs_eps"} <= set(r0["linear"]["st"])
    assert "APGD" in r0["lenses"]["acc_vs_eps"]["attack"]
    assert (out / "acc_vs_eps_seeds.png").stat().st_size > 0
