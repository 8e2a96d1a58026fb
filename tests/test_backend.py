"""reffeat.backend: one switch, four ways to use it (per-call ``backend=``,
``with use_backend(...)``, ``set_backend``, REFFEAT_BACKEND), honoured the same
way by every public numerical function — forward, loss, grad_w, grad_x, attack,
C4, evaluation and the R4 lenses.

For each function and each way: the result under "numba" / "reference" chosen
that way is bit-for-bit the result of the explicit per-call choice (so the way
was honoured), and the two backends agree to ≤ 1e-10 relative.
"""
import contextlib
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reffeat import Config, backend, metrics, model
from reffeat.apgd import apgd
from reffeat.attacks import attack, feature_attack_correct
from reffeat.real import lenses

TOL = 1e-10


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    if not b.size:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _flat(out):
    """Every array / float in a (nested) result, in order, as float64 arrays."""
    if isinstance(out, dict):
        return [x for key in sorted(out) for x in _flat(out[key])]
    if isinstance(out, (tuple, list)):
        return [x for o in out for x in _flat(o)]
    return [np.asarray(out, dtype=float)]


def _problem(seed, n, P, d, k, m, scale=1.0):
    rng = np.random.default_rng(seed)
    W = scale * rng.standard_normal((k, m, d)) / np.sqrt(d)
    X = rng.standard_normal((n, P, d))
    y = rng.integers(0, k, n)
    types = rng.integers(0, 3, (n, P))
    U, V = rng.standard_normal((k, d)), rng.standard_normal((k, d))
    return W, X, y, types, U, V


def _functions(W, X, y, types, U, V, q, rho):
    """name -> f(**choice): every public numerical function on this problem.
    ``choice`` is {} (use the current backend) or {"backend": name}."""
    k = W.shape[0]
    eps = 0.2
    cfg = SimpleNamespace(q=q, rho=rho, eps=eps, norm="linf", eval_K=3, eval_step_size=eps / 2,
                          eval_restarts=1, eval_apgd_K=4)
    fns = {
        "forward": lambda **c: model.forward(W, X, q=q, rho=rho, **c),
        "per_sample_loss": lambda **c: model.per_sample_loss(W, X, y, q=q, rho=rho, **c),
        "loss": lambda **c: model.loss(W, X, y, q=q, rho=rho, **c),
        "grad_w": lambda **c: model.grad_w(W, X, y, q=q, rho=rho, **c),
        "grad_x": lambda **c: model.grad_x(W, X, y, q=q, rho=rho, **c),
        "grad_x_and_loss": lambda **c: model.grad_x_and_loss(W, X, y, q, rho, **c),
        "forward_and_slopes": lambda **c: model.forward_and_slopes(W, X, q, rho, **c),
        "backprop": lambda **c: model.backprop(W, X, y, q, rho, **c),
        "attack pgd": lambda **c: attack(W, X, y, q=q, rho=rho, eps=eps, steps=3, step_size=eps / 2,
                                         random_start=True, rng=np.random.default_rng(1),
                                         restarts=1, **c),
        "attack l2 targeted": lambda **c: attack(W, X, y, q=q, rho=rho, eps=eps, norm="l2", steps=2,
                                                 targets=(y + 1) % k, clip=(-1.0, 1.0), **c),
        "feature_attack_correct": lambda **c: feature_attack_correct(W, X, y, V, q=q, rho=rho,
                                                                     eps=eps, **c),
        "c4_decomposition": lambda **c: metrics.c4_decomposition(W, X, y, types, U, V, q=q, rho=rho,
                                                                 step=0.5, **c),
        "grad_w_and_c4": lambda **c: metrics.grad_w_and_c4(W, X, y, types, U, V, q=q, rho=rho, step=0.5, **c),
        "accuracy": lambda **c: metrics.accuracy(W, X, y, q=q, rho=rho, **c),
        "apgd ce": lambda **c: apgd(W, X, y, q=q, rho=rho, eps=eps, loss="ce", steps=4,
                                    rng=np.random.default_rng(4), **c),
        "lenses.robust_accuracy": lambda **c: lenses.robust_accuracy(
            W, X, y, eps, q=q, rho=rho, steps=2, restarts=1, rng=np.random.default_rng(2),
            clip=None, **c),
        "lenses.match_representation": lambda **c: lenses.match_representation(
            W, X, X[::-1].copy(), q=q, rho=rho, kind="logits", steps=3, clip=None, **c),
        "lenses.match_representation hidden": lambda **c: lenses.match_representation(
            W, X, X[::-1].copy(), q=q, rho=rho, kind="hidden", steps=2, clip=None, **c),
    }
    if k >= 3:
        fns["apgd dlr"] = lambda **c: apgd(W, X, y, q=q, rho=rho, eps=eps, loss="dlr", steps=4,
                                           rng=np.random.default_rng(4), **c)
    fns["robust_correct"] = lambda **c: metrics.robust_correct(W, X, y, V, cfg,
                                                               np.random.default_rng(3), **c)
    return fns


WAYS = {
    "per-call": lambda name: contextlib.nullcontext({"backend": name}),
    "use_backend": lambda name: _ctx(backend.use_backend(name)),
    "set_backend": lambda name: _set(name),
}


@contextlib.contextmanager
def _ctx(cm):
    with cm:
        yield {}


@contextlib.contextmanager
def _set(name):
    old = backend.set_backend(name)
    try:
        yield {}
    finally:
        backend.set_backend(old)


def _check(W, X, y, types, U, V, q, rho):
    fns = _functions(W, X, y, types, U, V, q, rho)
    for fname, fn in fns.items():
        explicit = {b: _flat(fn(backend=b)) for b in backend.BACKENDS}
        for a, b in zip(explicit["numba"], explicit["reference"]):
            assert a.shape == b.shape, f"{fname}: shapes {a.shape} vs {b.shape}"
            if a.dtype == bool or fname in ("accuracy", "feature_attack_correct", "robust_correct",
                                           "lenses.robust_accuracy", "apgd ce", "apgd dlr"):
                continue                      # decisions: compared through the inputs they come from
            err = _rel(a, b)
            assert err <= TOL, f"{fname}: numba vs reference rel err {err:.2e} (X {X.shape}, W {W.shape}, q={q})"
        for way, make in WAYS.items():
            for b in backend.BACKENDS:
                with make(b) as choice:
                    got = _flat(fn(**choice))
                for g, e in zip(got, explicit[b]):
                    assert np.array_equal(g, e, equal_nan=True), \
                        f"{fname} chosen by {way}({b!r}) differs from backend={b!r}"


shapes = st.tuples(st.integers(1, 7), st.integers(1, 6), st.integers(1, 5),
                   st.integers(2, 4), st.integers(1, 4))


@settings(max_examples=12, deadline=None)
@given(shape=shapes, q=st.sampled_from([2.0, 3.0, 2.5]), seed=st.integers(0, 10**6),
       scale=st.sampled_from([0.5, 2.0]))
def test_every_function_honours_every_way(shape, q, seed, scale):
    n, P, d, k, m = shape
    W, X, y, types, U, V = _problem(seed, n, P, d, k, m, scale)
    _check(W, X, y, types, U, V, q, 0.8)


def test_evaluate_honours_the_switch():
    """E1–E4 of a trained-like W: the same numbers on both backends, each chosen four ways."""
    from reffeat.train import problem
    cfg = Config(n_train=30, n_test=25, eval_restarts=1)
    prob = problem(cfg)
    W = prob.W0 * 40

    def ev(**c):
        out = metrics.evaluate(W, cfg, prob.test, prob.features, np.random.default_rng(0), **c)
        return [out[key] for key in ("gamma", "phi", "alignment", "alignment_pgd")] + \
            [out["responses"]["F_robust"], out["responses"]["F_nonrobust"]]

    explicit = {b: _flat(ev(backend=b)) for b in backend.BACKENDS}
    for a, b in zip(*explicit.values()):
        assert _rel(a, b) <= 1e-9, f"evaluate: numba vs reference rel err {_rel(a, b):.2e}"
    for way, make in WAYS.items():
        for b in backend.BACKENDS:
            with make(b) as choice:
                got = _flat(ev(**choice))
            assert all(np.array_equal(g, e, equal_nan=True) for g, e in zip(got, explicit[b])), \
                f"evaluate chosen by {way}({b!r}) differs from backend={b!r}"


_ENV_SCRIPT = """
import json, numpy as np
from reffeat import backend, metrics, model
from reffeat.attacks import attack
rng = np.random.default_rng(0)
W = rng.standard_normal((3, 4, 5)); X = rng.standard_normal((6, 4, 5)); y = rng.integers(0, 3, 6)
types = rng.integers(0, 3, (6, 4)); U = rng.standard_normal((3, 5)); V = rng.standard_normal((3, 5))
out = {"backend": backend.get_backend(),
       "F": model.forward(W, X, 3.0, 1.0).tolist(),
       "G": model.grad_w(W, X, y, 3.0, 1.0)[1].ravel().tolist(),
       "gx": model.grad_x(W, X, y, 3.0, 1.0).ravel().tolist(),
       "Xa": attack(W, X, y, q=3.0, rho=1.0, eps=0.2, steps=3, step_size=0.1).ravel().tolist(),
       "c4": np.concatenate([a.ravel() for a in
                             metrics.c4_decomposition(W, X, y, types, U, V, 3.0, 1.0, 0.5)]).tolist()}
print(json.dumps(out))
"""


def test_environment_variable_chooses_the_backend():
    outs = {}
    for b in backend.BACKENDS:
        env = dict(os.environ, REFFEAT_BACKEND=b, PYTHONPATH=os.pathsep.join(sys.path))
        res = subprocess.run([sys.executable, "-c", _ENV_SCRIPT], env=env, capture_output=True,
                             text=True)
        assert res.returncode == 0, res.stderr[-2000:]
        outs[b] = json.loads(res.stdout)
        assert outs[b]["backend"] == b
    rng = np.random.default_rng(0)
    W = rng.standard_normal((3, 4, 5)); X = rng.standard_normal((6, 4, 5)); y = rng.integers(0, 3, 6)
    for b in backend.BACKENDS:                 # the env-chosen run equals the explicit choice here
        assert np.array_equal(outs[b]["F"], model.forward(W, X, q=3.0, rho=1.0, backend=b).tolist())
        assert np.array_equal(outs[b]["G"], model.grad_w(W, X, y, q=3.0, rho=1.0, backend=b)[1].ravel())
    for key in ("F", "G", "gx", "Xa", "c4"):
        err = _rel(outs["numba"][key], outs["reference"][key])
        assert err <= TOL, f"{key}: REFFEAT_BACKEND numba vs reference rel err {err:.2e}"


def test_bad_choices_name_the_allowed_values():
    with pytest.raises(ValueError, match="backend must be one of numba, reference"):
        backend.set_backend("cuda")
    with pytest.raises(ValueError, match="backend must be one of"):
        with backend.use_backend("fast"):
            pass
    with pytest.raises(ValueError, match="backend must be one of"):
        attack(np.ones((2, 1, 1)), np.ones((1, 1, 1)), np.array([0]), q=3.0, rho=1.0, eps=0.1,
               backend="gpu")
    env = dict(os.environ, REFFEAT_BACKEND="cuda", PYTHONPATH=os.pathsep.join(sys.path))
    res = subprocess.run([sys.executable, "-c", "import reffeat"], env=env, capture_output=True,
                         text=True)
    assert res.returncode != 0 and "REFFEAT_BACKEND must be one of numba, reference" in res.stderr


def test_use_backend_restores_on_error():
    before = backend.get_backend()
    with pytest.raises(RuntimeError):
        with backend.use_backend("reference"):
            assert backend.get_backend() == "reference"
            raise RuntimeError("boom")
    assert backend.get_backend() == before


def test_reference_backend_does_not_import_numba():
    code = ("import sys\nfrom reffeat import Config, train\n"
            "from reffeat.train import problem\nimport numpy as np\n"
            "cfg = Config(n_train=10, n_test=10, T=3, log_every=1)\n"
            "train(cfg, 'at', problem(cfg))\nprint('numba' in sys.modules, 'reffeat.kernels' in sys.modules)")
    env = dict(os.environ, REFFEAT_BACKEND="reference", PYTHONPATH=os.pathsep.join(sys.path))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["False", "False"], "the reference backend imported the kernels"
