"""R2 patches and R3 mini-batch training (checkpoints, resume, validation), and a
tiny end-to-end real-image run on data written here."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reffeat.real.patches import filters_as_images, patchify, unpatchify
from reffeat.real.train import ImageTrainConfig, load_checkpoint, train_images


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), gh=st.integers(1, 4), gw=st.integers(1, 4), p=st.integers(1, 5),
       C=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_patchify_round_trip(n, gh, gw, p, C, seed):
    H, W = gh * p, gw * p
    imgs = np.random.default_rng(seed).random((n, H, W, C))
    X = patchify(imgs, p)
    assert X.shape == (n, gh * gw, p * p * C)
    np.testing.assert_array_equal(unpatchify(X, H, W, C, p), imgs)
    # patch (a, b) of the grid, row-major, is the block imgs[a*p:(a+1)*p, b*p:(b+1)*p]
    a, b = gh - 1, gw - 1
    np.testing.assert_array_equal(X[:, a * gw + b].reshape(n, p, p, C),
                                  imgs[:, a * p:(a + 1) * p, b * p:(b + 1) * p])
    # a permutation of coordinates: norms are preserved (ℓ2/ℓ∞ balls agree)
    assert np.isclose(np.linalg.norm(X), np.linalg.norm(imgs))


def test_mnist_and_cifar_patch_shapes():
    assert patchify(np.zeros((2, 28, 28, 1)), 7).shape == (2, 16, 49)
    assert patchify(np.zeros((2, 32, 32, 3)), 8).shape == (2, 16, 192)


def test_patch_size_must_divide():
    with pytest.raises(ValueError, match=r"p must divide .*p=5, H=28"):
        patchify(np.zeros((1, 28, 28, 1)), 5)
    with pytest.raises(ValueError, match="positive integer"):
        patchify(np.zeros((1, 28, 28, 1)), 0)
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        patchify(np.zeros((28, 28)), 7)
    with pytest.raises(ValueError, match="patches must have shape"):
        unpatchify(np.zeros((1, 16, 48)), 28, 28, 1, 7)


def test_filters_as_images():
    W = np.arange(2 * 3 * 12, dtype=float).reshape(2, 3, 12)
    F = filters_as_images(W, 2, 3)
    assert F.shape == (2, 3, 2, 2, 3) and F[1, 2, 0, 1, 2] == W[1, 2, 5]
    with pytest.raises(ValueError, match="not p²C"):
        filters_as_images(W, 3, 1)


@pytest.mark.parametrize("field,value,msg", [
    ("mode", "xt", "mode must be one of"), ("epochs", 0, "epochs must be"),
    ("lr", -1.0, "lr must be"), ("norm", "l1", "norm must be"), ("eps", -0.1, "eps must be"),
    ("optimizer", "rmsprop", "optimizer must be"), ("momentum", 1.0, "momentum must be"),
    ("lam", 2.0, "lam must be"), ("attack_steps", 0, "attack_steps must be"), ("q", 0.5, "q must be"),
    ("dtype", "float16", "dtype must be one of float64, float32"),
])
def test_config_validation(field, value, msg):
    with pytest.raises(ValueError, match=msg):
        ImageTrainConfig(**{field: value})


def _toy(n=40, seed=0):
    """Two classes of 8x8 images whose 4x4 patches carry a vertical (class 0) or a
    horizontal (class 1) bright bar — a patch-level pattern the N3 network can see."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    imgs = 0.2 * rng.random((n, 8, 8, 1))
    for i in range(n):
        for a in (0, 4):
            if y[i] == 0:
                imgs[i, :, a + 1] += 0.7
            else:
                imgs[i, a + 1, :] += 0.7
    return patchify(imgs, 4), y


@pytest.mark.parametrize("mode,opt", [("st", "sgd"), ("at", "adam"), ("at", "sgd")])
def test_training_learns_a_toy_problem(mode, opt):
    X, y = _toy()
    cfg = ImageTrainConfig(mode=mode, epochs=15, batch_size=8, lr=0.05 if opt == "adam" else 0.02,
                           optimizer=opt, momentum=0.5 if opt == "sgd" else 0.0, m=4, sigma0=0.1,
                           eps=0.05, seed=1)
    r = train_images(X, y, 2, cfg, progress=False)
    assert r.stopped is None and r.epochs_done == 15
    assert r.snapshots.shape == (16, 2, 4, 16)
    assert r.history["train_acc"][-1] >= 0.9, r.history
    assert np.all(np.isfinite(r.history["loss"]))


@pytest.mark.parametrize("opt,steps", [("adam", 1), ("sgd", 3)])
def test_float32_training_stays_float32_and_tracks_float64(opt, steps):
    """dtype="float32": W, snapshots and the optimizer state stay float32 through
    AT (incl. PGD from a random start, whose float64 noise must not widen the
    batch), and the weights stay close to the float64 run's from the same W0."""
    X, y = _toy()
    kw = dict(mode="at", epochs=3, batch_size=8, lr=0.01, optimizer=opt, m=4, sigma0=0.1,
              eps=0.05, attack_steps=steps, seed=2)
    r64 = train_images(X, y, 2, ImageTrainConfig(**kw), progress=False)
    r32 = train_images(X, y, 2, ImageTrainConfig(dtype="float32", **kw), progress=False)
    assert r32.W.dtype == np.float32 and r32.snapshots.dtype == np.float32
    assert r64.W.dtype == np.float64
    np.testing.assert_array_equal(r32.snapshots[0], r64.snapshots[0].astype(np.float32))
    rel = np.abs(r32.W - r64.W).max() / np.abs(r64.W).max()
    assert rel < 1e-5, f"float32 training drifted from float64 by {rel:.1e} (relative) in 3 epochs"
    assert rel > 0, "float32 run is bit-identical to float64: the float32 path did not run"
    assert r32.history["train_acc"] == pytest.approx(r64.history["train_acc"], abs=0.05)


def test_resume_gives_the_same_weights(tmp_path):
    X, y = _toy()
    kw = dict(mode="at", batch_size=8, lr=0.05, optimizer="adam", m=3, sigma0=0.1, eps=0.05,
              attack_steps=2, random_start=True, seed=3)
    full = train_images(X, y, 2, ImageTrainConfig(epochs=3, **kw), progress=False)
    ck = tmp_path / "ck.npz"
    # a run stopped after epoch 2 (its checkpoint on disk), then resumed to 3 epochs
    first = train_images(X, y, 2, ImageTrainConfig(epochs=2, **kw), progress=False, checkpoint=ck)
    meta = load_checkpoint(ck)
    assert meta["epoch"] == 2 and meta["config"]["mode"] == "at"
    resumed = train_images(X, y, 2, ImageTrainConfig(epochs=3, **kw), progress=False,
                           checkpoint=ck, resume=True)
    np.testing.assert_array_equal(first.W, resumed.snapshots[2])
    np.testing.assert_array_equal(resumed.W, full.W)
    np.testing.assert_array_equal(resumed.snapshots, full.snapshots)
    assert resumed.history["epoch"] == [1, 2, 3]


def test_resume_refuses_other_config_or_data(tmp_path):
    X, y = _toy(n=10)
    ck = tmp_path / "ck.npz"
    train_images(X, y, 2, ImageTrainConfig(epochs=1, m=2, lr=0.01), progress=False, checkpoint=ck)
    with pytest.raises(ValueError, match="different config"):
        train_images(X, y, 2, ImageTrainConfig(epochs=1, m=2, lr=0.02), progress=False,
                     checkpoint=ck, resume=True)
    with pytest.raises(ValueError, match="other data"):
        train_images(X + 0.01, y, 2, ImageTrainConfig(epochs=1, m=2, lr=0.01), progress=False,
                     checkpoint=ck, resume=True)


def test_training_input_validation():
    X, y = _toy(n=10)
    with pytest.raises(ValueError, match="labels in"):
        train_images(X, y + 5, 2, ImageTrainConfig(epochs=1), progress=False)
    with pytest.raises(ValueError, match=r"\(n, P, d\)"):
        train_images(X[0], y, 2, ImageTrainConfig(epochs=1), progress=False)


def test_tiny_end_to_end_real_run(tmp_path, band_digits, capsys):
    """A few npm-format digits imported, ST and AT for one epoch, all lenses and figures."""
    from reffeat.cli import real
    out = tmp_path / "run"
    rc = real.main(["--dataset", "mnist", "--data-dir", str(band_digits), "--out", str(out),
                    "--quick", "--classes", "0,3,7", "--figures-dir", str(tmp_path / "figs"),
                    "--dr-steps", "3", "--eps-grid", "0,0.1"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    res = json.loads((out / "results.json").read_text())
    assert res["stopped"] is None and res["data"]["k"] == 3
    assert res["stages_done"][-1] == "figures"
    assert set(res["versions"]) >= {"numpy", "scipy", "python"} and res["wall_time"] > 0
    assert res["data"]["train"]["canonical"] is False
    for key in ("acc_vs_eps", "datasets", "frequency", "curves"):
        assert key in res["lenses"]
    assert len(res["lenses"]["curves"]["st"]["epoch"]) == 2          # W0 and epoch 1
    for f in res["figures"]:
        assert (out / f).stat().st_size > 0 and (tmp_path / "figs" / f"real_mnist_{f}").exists()
    assert "epoch 1/1" in cap.err and "Traceback" not in cap.err


def test_real_cli_bad_input_exit_2(tmp_path, capsys, monkeypatch):
    from reffeat.cli import real
    monkeypatch.setenv("REFFEAT_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert real.main(["--dataset", "imagenet"]) == 2
    assert "invalid choice: 'imagenet'" in capsys.readouterr().err
    assert real.main(["--dataset", "mnist", "--data-dir", str(tmp_path), "--epochs", "0"]) == 2
    assert "--epochs must be an integer >= 1" in capsys.readouterr().err
    assert real.main(["--dataset", "mnist", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte.gz" in err and "--from" in err and "Traceback" not in err


def test_tiny_end_to_end_colour_run(tmp_path, monkeypatch, capsys):
    """CIFAR-10 format (pickle batches, 32x32x3, p=8 -> P=16, d=192) through the whole pipeline."""
    import hashlib
    import pickle

    from reffeat.cli import real
    monkeypatch.setenv("REFFEAT_DATA", str(tmp_path / "env"))
    d = tmp_path / "data" / "cifar10" / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    hashes = {}
    for b in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = np.arange(20) % 10
        imgs = 0.3 * rng.random((20, 32, 32, 3))
        imgs[labels % 2 == 0, :, :, 0] += 0.6           # even classes reddish
        data = (imgs.clip(0, 1) * 255).astype(np.uint8).transpose(0, 3, 1, 2).reshape(20, 3072)
        (d / b).write_bytes(pickle.dumps({b"data": data, b"labels": labels.tolist()}, protocol=2))
        hashes[b] = hashlib.sha256((d / b).read_bytes()).hexdigest()
    (d.parent / "SOURCE.json").write_text(json.dumps({"canonical": False, "source": "test", "sha256": hashes}))
    out = tmp_path / "run"
    rc = real.main(["--dataset", "cifar10", "--data-dir", str(tmp_path / "data"), "--out", str(out),
                    "--quick", "--classes", "0,1,2,3", "--n-train", "40", "--dr-steps", "3"])
    err = capsys.readouterr().err
    assert rc == 0, err
    res = json.loads((out / "results.json").read_text())
    assert res["data"]["P"] == 16 and res["data"]["d"] == 192 and res["config"]["eps"] == 4 / 255
    assert (out / "filters.png").stat().st_size > 0
