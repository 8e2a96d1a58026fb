"""R2 with stride and centring: patchify / fold (its exact transpose), the one
image → network input map (``ImageMap``), gradients through it, and attacks on
the image that agree with the patch-space attacks when the map is a permutation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reffeat.apgd import apgd, apgd_run
from reffeat.apgd import random_start as apgd_start
from reffeat.attacks import InputMap, attack, loss_and_grad_through
from reffeat.backend import use_backend
from reffeat.model import init_weights, per_sample_loss, predict
from reffeat.real import lenses
from reffeat.real.patches import ImageMap, allowed_strides, check_stride, fold, patchify, unpatchify
from reffeat.real.train import ImageTrainConfig, load_checkpoint, train_images

Q, RHO = 2.0, 1.0


@st.composite
def _geometry(draw):
    """(N, H, W, C, p, t) with t an allowed stride (t ≤ p, (H−p)/t and (W−p)/t integers)."""
    p = draw(st.integers(1, 5))
    t = draw(st.integers(1, p))
    gh, gw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    if gh == gw == 1:
        t = p                        # one patch: only t = p is allowed
    H, W = p + (gh - 1) * t, p + (gw - 1) * t
    return draw(st.integers(1, 3)), H, W, draw(st.integers(1, 3)), p, t


@settings(max_examples=80, deadline=None)
@given(g=_geometry(), seed=st.integers(0, 2**16))
def test_fold_is_the_exact_transpose_of_patchify(g, seed):
    N, H, W, C, p, t = g
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, H, W, C))
    X = patchify(x, p, t)
    gh, gw = (H - p) // t + 1, (W - p) // t + 1
    assert X.shape == (N, gh * gw, p * p * C)
    G = rng.standard_normal(X.shape)
    lhs, rhs = np.vdot(X, G), np.vdot(x, fold(G, H, W, C, p, t))
    assert abs(lhs - rhs) <= 1e-12 * (1 + np.abs(X).sum() * np.abs(G).max()), \
        f"<patchify(x), G> = {lhs!r} but <x, fold(G)> = {rhs!r} (H={H}, W={W}, p={p}, t={t})"
    # patch (a, b) of the row-major grid is the block at (a t, b t)
    a, b = gh - 1, gw - 1
    np.testing.assert_array_equal(X[:, a * gw + b].reshape(N, p, p, C),
                                  x[:, a * t:a * t + p, b * t:b * t + p])
    # fold of all ones counts the patches that hold each pixel (every pixel in at least one)
    cover = fold(np.ones_like(X), H, W, C, p, t)
    assert cover.min() >= 1 and cover.sum() == X.size


def test_stride_p_is_the_non_overlapping_permutation():
    x = np.random.default_rng(0).random((2, 28, 28, 1))
    np.testing.assert_array_equal(patchify(x, 7, 7), patchify(x, 7))
    X = patchify(x, 7)
    np.testing.assert_array_equal(fold(X, 28, 28, 1, 7, 7), unpatchify(X, 28, 28, 1, 7))
    assert patchify(x, 14, 7).shape == (2, 9, 196)              # SPEC R2: P = ((28-14)/7+1)^2
    assert patchify(np.zeros((1, 32, 32, 3)), 8, 4).shape == (1, 49, 192)


def test_bad_stride_is_one_line_naming_it_and_the_allowed_values():
    x = np.zeros((1, 28, 28, 1))
    for bad in (3, 0, 15, 2.0, True):
        with pytest.raises(ValueError, match=r"^stride must .*allowed 1, 2, 7, 14; got") as e:
            patchify(x, 14, bad)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"allowed 28; got 7"):
        patchify(x, 28, 7)                              # one patch: only t = p
    assert allowed_strides(32, 32, 8) == [1, 2, 3, 4, 6, 8]
    assert check_stride(28, 28, 7, None) == 7
    with pytest.raises(ValueError, match="--stride must"):
        check_stride(28, 28, 14, 5, name="--stride")
    with pytest.raises(ValueError, match="positive integer"):
        patchify(x, 0)
    with pytest.raises(ValueError, match="must divide"):
        patchify(x, 10)                                 # t = p needs p | 28
    assert patchify(x, 10, 9).shape == (1, 9, 100)      # ... a stride does not


def test_image_map_inputs_and_space():
    rng = np.random.default_rng(1)
    imgs = rng.random((30, 8, 8, 2))
    perm = ImageMap.from_training(imgs, 4)
    assert perm.permutation and perm.mean is None and (perm.P, perm.d) == (4, 32)
    np.testing.assert_array_equal(perm.space(imgs), patchify(imgs, 4))
    np.testing.assert_array_equal(perm.inputs(perm.space(imgs)), patchify(imgs, 4))
    np.testing.assert_array_equal(perm.images(perm.space(imgs)), imgs)
    v = ImageMap.from_training(imgs, 4, 2, center=True)
    assert not v.permutation and (v.P, v.d) == (9, 32)
    np.testing.assert_allclose(v.mean, imgs.mean(axis=0), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(v.space(imgs), imgs)
    np.testing.assert_array_equal(v.to_input(imgs), patchify(imgs - v.mean, 4, 2))
    np.testing.assert_array_equal(v.inputs(imgs.reshape(30, 1, -1)), v.to_input(imgs))  # flattened too
    lo, hi = v.pixel_box()
    np.testing.assert_array_equal(lo, -v.mean.ravel())
    np.testing.assert_array_equal(v.pixels(imgs), (imgs - v.mean).reshape(30, -1))
    assert ImageMap((8, 8, 2), 4, 4, np.zeros((8, 8, 2))).permutation is False   # centred by 0
    d = v.to_dict()
    assert d["stride"] == 2 and d["center"] is True and d["P"] == 9
    with pytest.raises(ValueError, match="mean must be"):
        ImageMap((8, 8, 2), 4, 2, np.zeros((8, 8)))


@pytest.mark.parametrize("loss", ["ce", "dlr"])
@pytest.mark.parametrize("p,t,center", [(4, 2, False), (4, 4, True), (6, 2, True)])
def test_image_gradient_matches_central_differences(loss, p, t, center):
    """∇_x ℓ(W; patchify(x − μ, p, t), y) = fold(G3) (μ a shift), in float64."""
    rng = np.random.default_rng(2)
    imgs = rng.random((4, 8, 12, 1))
    v = ImageMap.from_training(rng.random((20, 8, 12, 1)), p, t, center)
    W = init_weights(3, 4, v.d, 0.7, rng)
    y = np.array([0, 1, 2, 1])
    L, G, F = loss_and_grad_through(v, W, imgs, y, 3.0, 0.5, loss)
    assert G.shape == imgs.shape
    h, worst = 1e-6, 0.0
    for idx in [(0, 0, 0, 0), (1, 3, 4, 0), (2, 7, 11, 0), (3, 5, 2, 0), (1, 2, 6, 0)]:
        e = np.zeros_like(imgs); e[idx] = h
        fd = (loss_and_grad_through(v, W, imgs + e, y, 3.0, 0.5, loss)[0][idx[0]]
              - loss_and_grad_through(v, W, imgs - e, y, 3.0, 0.5, loss)[0][idx[0]]) / (2 * h)
        worst = max(worst, abs(fd - G[idx]) / max(abs(fd), 1e-6))   # floor: saturated DLR has ∇ ≈ 1e-13
    assert worst < 1e-5, f"{loss} image gradient rel err {worst:.2e} at p={p}, t={t}, center={center}"


def _problem(seed=3, n=12, side=8, p=4, k=3):
    rng = np.random.default_rng(seed)
    imgs = rng.random((n, side, side, 1))
    W = init_weights(k, 5, p * p, 0.8, rng)
    y = rng.integers(0, k, n)
    return rng, imgs, W, y


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("steps,targeted", [(1, False), (5, False), (4, True)])
def test_attack_through_the_image_equals_patch_attack_when_stride_is_p(norm, steps, targeted):
    """t = p, μ = 0: the image path (centring by zero, so not the permutation
    shortcut) gives the same adversarial images as the patch-space attack — exactly
    on the reference backend, to rounding on numba."""
    rng, imgs, W, y = _problem()
    eps = 0.1 if norm == "linf" else 0.5
    tg = (y + 1) % 3 if targeted else None
    v0 = ImageMap((8, 8, 1), 4, 4, np.zeros((8, 8, 1)))
    assert not v0.permutation
    for backend in ("reference", "numba"):
        kw = dict(q=Q, rho=RHO, eps=eps, norm=norm, steps=steps, step_size=eps / 2, clip=(0.0, 1.0),
                  targets=tg, backend=backend)
        Xp = attack(W, patchify(imgs, 4), y, **kw)
        Xi = attack(W, imgs, y, view=v0, **kw)
        assert Xi.shape == imgs.shape
        if backend == "reference" and norm == "linf":
            np.testing.assert_array_equal(patchify(Xi, 4), Xp)
        else:
            np.testing.assert_allclose(patchify(Xi, 4), Xp, rtol=0, atol=1e-12)


def test_permutation_map_changes_nothing():
    rng, imgs, W, y = _problem(seed=4)
    perm = ImageMap((8, 8, 1), 4)
    X = perm.space(imgs)
    kw = dict(q=Q, rho=RHO, eps=0.1, steps=3, step_size=0.05, random_start=True, restarts=1,
              clip=(0.0, 1.0))
    a = attack(W, X, y, rng=np.random.default_rng(0), **kw)
    b = attack(W, X, y, rng=np.random.default_rng(0), view=perm, **kw)
    np.testing.assert_array_equal(a, b)
    a = apgd(W, X, y, q=Q, rho=RHO, eps=0.1, steps=6, rng=np.random.default_rng(1), clip=(0, 1))
    b = apgd(W, X, y, q=Q, rho=RHO, eps=0.1, steps=6, rng=np.random.default_rng(1), clip=(0, 1), view=perm)
    np.testing.assert_array_equal(a[0], b[0]); np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_apgd_through_the_image_equals_patch_apgd_when_stride_is_p(loss):
    rng, imgs, W, y = _problem(seed=5)
    v0 = ImageMap((8, 8, 1), 4, 4, np.zeros((8, 8, 1)))
    S = apgd_start((len(y), 4, 16), 0.1, "linf", rng)
    with use_backend("reference"):
        rp = apgd_run(W, patchify(imgs, 4), y, q=Q, rho=RHO, eps=0.1, loss=loss, steps=12, start=S,
                      clip=(0.0, 1.0))
        ri = apgd_run(W, imgs, y, q=Q, rho=RHO, eps=0.1, loss=loss, steps=12, start=unpatchify(S, 8, 8, 1, 4),
                      clip=(0.0, 1.0), view=v0)
    np.testing.assert_array_equal(patchify(ri["X_adv"], 4), rp["X_adv"])
    np.testing.assert_array_equal(ri["fooled"], rp["fooled"])
    np.testing.assert_array_equal(ri["loss_best"], rp["loss_best"])


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_attacks_on_the_image_stay_in_the_ball_and_the_box(norm):
    """Stride < p and centring: PGD, APGD-CE/DLR, D_NR and D_R act on the image:
    ‖x_adv − x‖ ≤ ε and x_adv ∈ [0, 1] per pixel (in image space, μ added back)."""
    rng, imgs, W, y = _problem(seed=6, n=10)
    v = ImageMap.from_training(rng.random((50, 8, 8, 1)), 4, 2, center=True)
    W = init_weights(3, 5, v.d, 0.8, rng)
    eps = 0.08 if norm == "linf" else 0.6
    outs = [attack(W, imgs, y, q=Q, rho=RHO, eps=eps, norm=norm, steps=5, step_size=eps / 4,
                   random_start=True, rng=rng, restarts=1, clip=(0.0, 1.0), view=v)]
    for loss in ("ce", "dlr"):
        outs.append(apgd(W, imgs, y, q=Q, rho=RHO, eps=eps, norm=norm, loss=loss, steps=8, rng=rng,
                         clip=(0.0, 1.0), view=v)[0])
    outs.append(lenses.build_nonrobust_dataset(W, imgs, y, 3, rng, q=Q, rho=RHO, eps=eps, norm=norm,
                                               steps=4, view=v)[0])
    for Xa in outs:
        assert Xa.shape == imgs.shape
        dev = np.abs(Xa - imgs).max() if norm == "linf" else np.sqrt(((Xa - imgs) ** 2).sum(axis=(1, 2, 3))).max()
        assert dev <= eps * (1 + 1e-9), f"{norm} perturbation {dev} > eps {eps}"
        assert Xa.min() >= 0 and Xa.max() <= 1, f"outside the pixel box: [{Xa.min()}, {Xa.max()}]"
    # the attacks do something: PGD's loss is above the clean loss on average
    adv_loss = per_sample_loss(W, v.inputs(outs[0]), y, q=Q, rho=RHO).mean()
    assert adv_loss > per_sample_loss(W, v.inputs(imgs), y, q=Q, rho=RHO).mean()
    XR, _, info = lenses.build_robust_dataset(W, imgs, y, rng, q=Q, rho=RHO, steps=10, view=v)
    assert XR.shape == imgs.shape and XR.min() >= 0 and XR.max() <= 1
    # accuracy through the map equals accuracy on the map's inputs
    assert lenses.accuracy(W, imgs, y, Q, RHO, view=v) == float(
        (predict(W, v.to_input(imgs), q=Q, rho=RHO) == y).mean())


def test_training_through_the_image_with_stride_p_equals_patch_training():
    """R3 AT with the image path (μ = 0, t = p) and the patch path give the same
    weights (reference backend: the same arithmetic on permuted coordinates)."""
    rng, imgs, _, y = _problem(seed=7, n=40)
    v0 = ImageMap((8, 8, 1), 4, 4, np.zeros((8, 8, 1)))
    cfg = ImageTrainConfig(mode="at", epochs=2, batch_size=16, m=4, lr=0.01, optimizer="adam", eps=0.1)
    with use_backend("reference"):
        a = train_images(patchify(imgs, 4), y, 3, cfg, progress=False)
        b = train_images(imgs, y, 3, cfg, progress=False, view=v0)
    np.testing.assert_array_equal(a.W, b.W)
    assert a.history["train_acc"] == b.history["train_acc"]


def test_checkpoint_keeps_the_mean_and_refuses_another_map(tmp_path):
    rng, imgs, _, y = _problem(seed=8, n=30)
    v = ImageMap.from_training(imgs, 4, 2, center=True)
    cfg = ImageTrainConfig(mode="at", epochs=1, batch_size=10, m=3, lr=0.01, optimizer="adam", eps=0.05)
    ck = tmp_path / "ck.npz"
    train_images(imgs, y, 3, cfg, checkpoint=ck, progress=False, view=v)
    meta = load_checkpoint(ck)
    np.testing.assert_array_equal(meta["mean"], v.mean)
    assert meta["image_map"]["stride"] == 2 and meta["image_map"]["center"] is True
    cfg2 = ImageTrainConfig(**dict(cfg.to_dict(), epochs=2, clip=(0.0, 1.0)))
    r = train_images(imgs, y, 3, cfg2, checkpoint=ck, resume=True, progress=False, view=v)
    assert r.epochs_done == 2
    for other in (ImageMap.from_training(imgs, 4, 4, center=True), ImageMap.from_training(imgs, 4, 2)):
        with pytest.raises(ValueError, match="other data"):
            train_images(imgs, y, 3, cfg2, checkpoint=ck, resume=True, progress=False, view=other)
    with pytest.raises(ValueError, match=r"images of shape \(n, 8, 8, 1\)"):
        train_images(patchify(imgs, 4, 2), y, 3, cfg, progress=False, view=v)


# ------------------------------------------------------------------ the command

def test_cli_stride_and_center_options_are_validated_recorded_and_kept_by_quick(capsys):
    from reffeat.cli.real import build_parser, main, resolve
    c = resolve(build_parser().parse_args(["--dataset", "fashion-mnist", "--quick", "--patch", "14",
                                           "--stride", "7", "--center"]))
    assert (c["p"], c["stride"], c["center"]) == (14, 7, True)
    c = resolve(build_parser().parse_args(["--dataset", "mnist", "--quick"]))
    assert (c["stride"], c["center"]) == (None, True)          # the 28×28 grey default: centred
    c = resolve(build_parser().parse_args(["--dataset", "mnist", "--quick", "--no-center"]))
    assert (c["stride"], c["center"]) == (None, False)
    c = resolve(build_parser().parse_args(["--dataset", "cifar10", "--quick"]))
    assert (c["stride"], c["center"]) == (None, False)
    for argv, msg in ((["--patch", "14", "--stride", "3"], "--stride must be one of 1, 2, 7, 14 or none (got 3)"),
                      (["--stride", "0"], "--stride must be an integer >= 1"),
                      (["--patch", "28", "--stride", "7"], "--stride must be one of 28 or none (got 7)"),
                      (["--patch", "10"], "--patch must divide the image side 28"),
                      (["--center", "yes"], "unrecognized arguments")):
        assert main(["--dataset", "mnist"] + argv) == 2
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, err
    help_text = build_parser().format_help()
    assert "--stride" in help_text and "default none (t = p)" in help_text and "--center" in help_text


def test_tiny_end_to_end_run_with_stride_and_center(tmp_path, band_digits, capsys):
    """--patch 14 --stride 7 --center through the whole pipeline: every lens and
    figure, μ recorded (mean.npy, its hash in results.json, in the checkpoints)."""
    import hashlib
    import json

    from reffeat.cli import real
    out = tmp_path / "run"
    rc = real.main(["--dataset", "mnist", "--data-dir", str(band_digits), "--out", str(out),
                    "--quick", "--classes", "0,3,7", "--patch", "14", "--stride", "7", "--center",
                    "--dr-steps", "3", "--eps-grid", "0,0.1"])
    err = capsys.readouterr().err
    assert rc == 0, err
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["stride"] == 7 and res["config"]["center"] is True
    im = res["data"]["image_map"]
    assert (im["stride"], im["P"], im["d"], res["data"]["P"]) == (7, 9, 196, 9)
    mu = np.load(out / "mean.npy")
    assert mu.shape == (28, 28, 1) and im["mean_sha256"] == hashlib.sha256(mu.tobytes()).hexdigest()
    np.testing.assert_array_equal(load_checkpoint(out / "checkpoint_at.npz")["mean"], mu)
    assert res["stages_done"][-1] == "figures" and "Traceback" not in err
    assert np.load(out / "W_st.npy").shape == (3, 50, 196)
    for f in res["figures"]:
        assert (out / f).stat().st_size > 0


def test_linear_baseline_with_centring_is_the_same_classifier_on_the_image():
    """Centring is a shift: the linear model V(x − μ) + b with the box [−μ, 1 − μ]
    is the model Vx + (b − Vμ) with the box [0, 1]; their exact ℓ∞ robustness agrees."""
    from reffeat.real.linear import linear_robust_correct
    rng = np.random.default_rng(9)
    imgs = rng.random((60, 4, 4, 1))
    v = ImageMap.from_training(imgs, 2, 1, center=True)
    V, b = 2 * rng.standard_normal((3, 16)), 0.1 * rng.standard_normal(3)
    y = (v.pixels(imgs) @ V.T + b).argmax(1)
    y[:6] = (y[:6] + 1) % 3
    for eps in (0.02, 0.1):
        a = linear_robust_correct(V, b, v.pixels(imgs), y, eps, clip=v.pixel_box())
        c = linear_robust_correct(V, b - V @ v.mean.ravel(), imgs.reshape(60, -1), y, eps)
        assert np.array_equal(a, c), f"eps={eps}: {a.sum()} vs {c.sum()} robust"
        assert 0 < a.sum() < 60


def test_image_map_is_the_core_s_input_map():
    """real.patches.ImageMap implements the interface the core defines (attacks.InputMap);
    the core imports nothing from real/."""
    assert isinstance(ImageMap((8, 8, 1), 4, 2), InputMap)
