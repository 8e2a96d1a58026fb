"""kernels.py (numba backend) against the numpy reference: N3, L1–L3, G1–G3, T2.

Every fast path must equal its reference twin to ≤ 1e-10 relative in float64 on
random shapes (including n = P = m = d = 1 and sizes that leave a partial last
chunk), and must not depend on the number of threads.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reffeat import attacks, backend, kernels, model

TOL = 1e-10
Q = [1.0, 2.0, 3.0, 4.0, 2.5]


def _problem(seed, n, P, d, k, m, scale=1.0):
    rng = np.random.default_rng(seed)
    W = scale * rng.standard_normal((k, m, d)) / np.sqrt(d)
    X = rng.standard_normal((n, P, d))
    y = rng.integers(0, k, n)
    return rng, W, X, y


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)) if b.size else 0.0


def _both(fn):
    return fn("numba"), fn("reference")


def _check_all(W, X, y, q, rho):
    """Every public model function, both backends, ≤ TOL relative."""
    checks = {
        "forward": lambda b: model.forward(W, X, q=q, rho=rho, backend=b),
        "per_sample_loss": lambda b: model.per_sample_loss(W, X, y, q=q, rho=rho, backend=b),
        "loss": lambda b: model.loss(W, X, y, q=q, rho=rho, backend=b),
        "grad_w.loss": lambda b: model.grad_w(W, X, y, q=q, rho=rho, backend=b)[0],
        "grad_w": lambda b: model.grad_w(W, X, y, q=q, rho=rho, backend=b)[1],
        "grad_x": lambda b: model.grad_x(W, X, y, q=q, rho=rho, backend=b),
        "grad_x_and_loss.losses": lambda b: model.grad_x_and_loss(W, X, y, q, rho, backend=b)[0],
        "grad_x_and_loss.grad": lambda b: model.grad_x_and_loss(W, X, y, q, rho, backend=b)[1],
        "forward_and_slopes.F": lambda b: model.forward_and_slopes(W, X, q, rho, backend=b)[0],
        "forward_and_slopes.slopes": lambda b: model.forward_and_slopes(W, X, q, rho, backend=b)[1],
        "backprop.losses": lambda b: model.backprop(W, X, y, q, rho, backend=b)[0],
        "backprop.A": lambda b: model.backprop(W, X, y, q, rho, backend=b)[1],
    }
    for name, fn in checks.items():
        fast, ref = _both(fn)
        assert np.shape(fast) == np.shape(ref), f"{name}: shape {np.shape(fast)} vs {np.shape(ref)}"
        err = _rel(fast, ref)
        assert err <= TOL, f"{name}: numba vs reference rel err {err:.2e} (shape X {X.shape}, W {W.shape}, q={q})"
    pf, pr = _both(lambda b: model.predict(W, X, q=q, rho=rho, backend=b))
    F = model.forward(W, X, q=q, rho=rho, backend="reference")
    top2 = np.sort(F, axis=1)[:, -2:] if F.shape[1] > 1 else None
    clear = np.ones(len(pf), bool) if top2 is None else (top2[:, 1] - top2[:, 0]) > 1e-9 * (1 + np.abs(F).max())
    assert np.array_equal(pf[clear], pr[clear]), "predict differs between backends"


shapes = st.tuples(st.integers(1, 9), st.integers(1, 7), st.integers(1, 6),
                   st.integers(1, 5), st.integers(1, 5))


@given(shape=shapes, q=st.sampled_from(Q), rho=st.floats(0.2, 2.0), seed=st.integers(0, 10**6),
       scale=st.sampled_from([0.3, 1.0, 3.0]))
def test_model_functions_match_reference(shape, q, rho, seed, scale):
    n, P, d, k, m = shape
    _, W, X, y = _problem(seed, n, P, d, k, m, scale)
    _check_all(W, X, y, q, rho)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1, 1), (1, 1, 1, 2, 1), (1, 5, 3, 3, 1), (4, 1, 2, 2, 3),
                                   (3, 2, 1, 4, 2), (200, 64, 36, 4, 16), (37, 16, 49, 10, 50)])
@pytest.mark.parametrize("q", [1.0, 3.0, 2.5])
def test_edge_and_real_sizes(shape, q):
    _, W, X, y = _problem(sum(shape), *shape)
    _check_all(W, X, y, q, 0.8)


@pytest.mark.parametrize("chunk_bytes", [1, 3000, 1 << 30])
def test_chunking_does_not_change_results(monkeypatch, chunk_bytes):
    """One sample per chunk (many slots), a partial last chunk, and one chunk."""
    monkeypatch.setattr(kernels, "CHUNK_BYTES", chunk_bytes)
    _, W, X, y = _problem(3, 23, 5, 4, 3, 6)
    _check_all(W, X, y, 3.0, 1.0)
    _check_attacks(W, X, y, 3.0, 1.0, 0.3)


def _check_attacks(W, X, y, q, rho, eps):
    k = W.shape[0]
    cases = [
        dict(norm="linf", steps=1),
        dict(norm="linf", steps=4, step_size=eps / 4),
        dict(norm="linf", steps=3, step_size=eps / 2, clip=(-0.5, 0.7)),
        dict(norm="linf", steps=2, ascent="plain"),
        dict(norm="l2", steps=3, step_size=eps / 2),
        dict(norm="l2", steps=2, clip=(-1.0, 1.0), ascent="plain"),
        dict(norm="l2-patch", steps=3, step_size=eps / 3),
        dict(norm="linf", steps=3, step_size=eps / 3, targets=(y + 1) % k),
        dict(norm="l2-patch", steps=2, targets=(y + 1) % k, clip=(-2.0, 2.0)),
        dict(norm="linf", steps=3, step_size=eps / 3, random_start=True, restarts=1),
        dict(norm="l2", steps=2, random_start=True),
    ]
    for kw in cases:
        out = {}
        for b in ("numba", "reference"):
            old = model.set_backend(b)
            try:
                out[b] = attacks.attack(W, X, y, q=q, rho=rho, eps=eps, rng=np.random.default_rng(5), **kw)
            finally:
                model.set_backend(old)
        err = _rel(out["numba"] - X, out["reference"] - X)
        assert err <= TOL, f"attack {kw}: numba vs reference rel err {err:.2e}"


@given(shape=shapes, q=st.sampled_from([2.0, 3.0, 2.5]), seed=st.integers(0, 10**6),
       eps=st.sampled_from([0.05, 0.3]))
def test_attacks_match_reference(shape, q, seed, eps):
    n, P, d, k, m = shape
    _, W, X, y = _problem(seed, n, P, d, max(k, 2), m)
    y = y % W.shape[0]
    _check_attacks(W, X, y, q, 1.0, eps)


def test_attack_default_synthetic_problem():
    """The SPEC's data (exact zeros, ±1/√d_N entries: many sign ties) at a trained-like scale."""
    from reffeat import Config
    from reffeat.train import problem
    prob = problem(Config(n_train=60, n_test=10))
    X, y, _ = prob.train
    W = prob.W0 * 40
    _check_all(W, X, y, 3.0, 1.0)
    _check_attacks(W, X, y, 3.0, 1.0, 0.2)


def test_float32_path_close_to_float64():
    _, W, X, y = _problem(11, 40, 16, 49, 10, 50)
    W32, X32 = W.astype(np.float32), X.astype(np.float32)
    L32, G32 = model.grad_w(W32, X32, y, q=3.0, rho=1.0, backend="numba")
    L64, G64 = model.grad_w(W32.astype(float), X32.astype(float), y, q=3.0, rho=1.0, backend="reference")
    assert G32.dtype == np.float32
    assert abs(L32 - L64) <= 1e-5 * max(1.0, abs(L64)), f"float32 loss {L32} vs {L64}"
    assert _rel(G32, G64) <= 1e-4, f"float32 G2 rel err {_rel(G32, G64):.2e}"
    l32, g32 = model.grad_x_and_loss(W32, X32, y, 3.0, 1.0, backend="numba")
    l64, g64 = model.grad_x_and_loss(W32.astype(float), X32.astype(float), y, 3.0, 1.0, backend="reference")
    assert _rel(g32, g64) <= 1e-4, f"float32 G3 rel err {_rel(g32, g64):.2e}"


def test_non_finite_inputs_propagate():
    _, W, X, y = _problem(2, 3, 4, 5, 3, 2)
    X[1, 2, 3] = np.nan
    Ff, Fr = _both(lambda b: model.forward(W, X, q=3.0, rho=1.0, backend=b))
    assert np.array_equal(np.isnan(Ff), np.isnan(Fr)) and np.isnan(Ff[1]).all()
    L, G = model.grad_w(W, X, y, q=3.0, rho=1.0, backend="numba")
    assert not np.isfinite(L), "a NaN input must give a non-finite loss (training stops on it)"


def test_backend_switch_and_validation(monkeypatch):
    assert model.get_backend() in model.BACKENDS
    old = model.set_backend("reference")
    try:
        assert model.get_backend() == "reference"
        assert backend.kernels(None) is None and backend.kernels("numba") is kernels
    finally:
        model.set_backend(old)
    with pytest.raises(ValueError, match="backend must be one of"):
        model.set_backend("cuda")
    with pytest.raises(ValueError, match="backend must be one of"):
        model.forward(np.ones((2, 1, 1)), np.ones((1, 1, 1)), q=3.0, rho=1.0, backend="fast")
    _, W, X, y = _problem(0, 3, 2, 2, 2, 2)
    with pytest.raises(ValueError, match=r"y must be integer class labels in \[0, 2\) \(got 2\)"):
        model.grad_w(W, X, np.array([0, 2, 1]), q=3.0, rho=1.0, backend="numba")


def test_env_var_selects_backend():
    code = "import reffeat.model as m; print(m.get_backend())"
    env = dict(os.environ, REFFEAT_BACKEND="reference", PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "reference"


_THREADS_SCRIPT = """
import json, os, sys
if sys.argv[1] == "cpu64":
    os.cpu_count = lambda: 64                    # a bigger machine, as the kernels would see it
import numpy as np
from reffeat import attacks, kernels, metrics, model
if sys.argv[1] != "unconfigured":
    kernels.configure_threads()
rng = np.random.default_rng(0)
W = rng.standard_normal((10, 50, 49)) / 7; X = rng.random((61, 16, 49)); y = rng.integers(0, 10, 61)
L, G = model.grad_w(W, X, y, 3.0, 1.0)
l, gx = model.grad_x_and_loss(W, X, y, 3.0, 1.0)
Xa = attacks.attack(W, X, y, q=3.0, rho=1.0, eps=0.1, steps=5, step_size=0.03, clip=(0, 1))
types = rng.integers(0, 3, (61, 16)); U = rng.standard_normal((10, 49)); V = rng.standard_normal((10, 49))
_, _, (c4g, c4p) = metrics.grad_w_and_c4(W, X, y, types, U, V, 3.0, 1.0, 0.5)
# the default's size: 50 chunks on all SLOTS slots, several chunks per slot
Wb = rng.standard_normal((4, 16, 36)) / 6; Xb = rng.standard_normal((200, 64, 36)); yb = rng.integers(0, 4, 200)
Lb, Gb = model.grad_w(Wb, Xb, yb, 2.0, 1.0)
Xab = attacks.attack(Wb, Xb, yb, q=2.0, rho=1.0, eps=0.2, steps=2, step_size=0.1)
# the bench's mnist and cifar sizes: the ascent's blocks of slots (10 and 15 slots, short last chunk)
Xm = attacks.attack(W, rng.random((128, 16, 49)), rng.integers(0, 10, 128), q=3.0, rho=1.0, eps=0.1,
                    clip=(0, 1))
Wc = rng.standard_normal((10, 50, 192)) / 14
Xc = attacks.attack(Wc, rng.random((128, 16, 192)), rng.integers(0, 10, 128), q=3.0, rho=1.0, eps=0.02,
                    steps=2, step_size=0.01, clip=(0, 1))
print(json.dumps({"threads": kernels.threads(), "slots": kernels._layout(200, 64, 36, 64, np.float64)[1],
                  "per_slot": kernels._partials(kernels.SLOTS, 2, 64 * 36 * 8)[1],
                  "L": L, "G": G.ravel().tolist(),
                  "gx": gx.ravel()[::7].tolist(), "Xa": Xa.ravel()[::7].tolist(),
                  "c4": c4g.ravel().tolist() + c4p.ravel().tolist(),
                  "Lb": Lb, "Gb": Gb.ravel().tolist(), "Xab": Xab.ravel()[::11].tolist(),
                  "Xm": Xm.ravel()[::5].tolist(), "Xc": Xc.ravel()[::13].tolist()}))
"""


def test_results_do_not_depend_on_threads_or_cores():
    """Bit-identical results with 1, 2 and 3 threads (NUMBA_NUM_THREADS; 3 does not
    divide the slots), with the library's own default, and on a machine reporting
    64 cores: the work split depends only on the shapes."""
    outs = {}
    for name, threads, arg in (("1 thread", "1", "configured"), ("2 threads", "2", "configured"),
                               ("3 threads", "3", "configured"),
                               ("default", None, "unconfigured"), ("64 cores", None, "cpu64")):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        for var in ("REFFEAT_BACKEND", "REFFEAT_THREADS", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS"):
            env.pop(var, None)
        if threads:
            env["NUMBA_NUM_THREADS"] = threads
        res = subprocess.run([sys.executable, "-c", _THREADS_SCRIPT, arg], env=env,
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr[-2000:]
        outs[name] = json.loads(res.stdout)
    assert [outs[f"{t} thread{'s' * (t > 1)}"]["threads"] for t in (1, 2, 3)] == [1, 2, 3]
    assert outs["1 thread"]["slots"] == kernels.SLOTS        # the big case uses every slot
    assert outs["1 thread"]["per_slot"]     # ... and at 2 or 3 threads one partial per slot
    for name, out in outs.items():
        for key in ("L", "G", "gx", "Xa", "c4", "Lb", "Gb", "Xab", "Xm", "Xc"):
            assert out[key] == outs["1 thread"][key], \
                f"{key}: {name} differs from 1 thread (max abs diff " \
                f"{np.max(np.abs(np.subtract(out[key], outs['1 thread'][key]))):.2e})"


_IMPORT_SCRIPT = """
import ctypes, glob, json, os
import numba, scipy
libs = sorted(glob.glob(os.path.join(os.path.dirname(os.path.dirname(scipy.__file__)), "scipy.libs", "*openblas*.so*")))
get = None
for path in libs:
    lib = ctypes.CDLL(path)
    get = getattr(lib, "scipy_openblas_get_num_threads", None) or getattr(lib, "openblas_get_num_threads", None)
    if get is not None:
        break
before = {"omp": os.environ.get("OMP_WAIT_POLICY"), "numba": numba.get_num_threads(),
          "blas": get() if get else None}
import reffeat.kernels
after_import = {"omp": os.environ.get("OMP_WAIT_POLICY"), "numba": numba.get_num_threads(),
                "blas": get() if get else None}
import numpy as np
from reffeat import model
rng = np.random.default_rng(0)
model.grad_w(rng.standard_normal((3, 4, 5)), rng.standard_normal((7, 6, 5)), rng.integers(0, 3, 7), 3.0, 1.0)
after_call = {"omp": os.environ.get("OMP_WAIT_POLICY"), "numba": numba.get_num_threads(),
              "blas": get() if get else None}
print(json.dumps([before, after_import, after_call]))
"""


def test_import_and_calls_leave_the_process_alone():
    """Importing the kernels (and calling them) sets no OMP_WAIT_POLICY, no numba
    thread count and leaves scipy's OpenBLAS thread count as it was."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    for var in ("OMP_WAIT_POLICY", "REFFEAT_BACKEND"):
        env.pop(var, None)
    res = subprocess.run([sys.executable, "-c", _IMPORT_SCRIPT], env=env, capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    before, after_import, after_call = json.loads(res.stdout)
    assert after_import == before, f"import changed the process: {before} -> {after_import}"
    assert after_call == before, f"a kernel call left the process changed: {before} -> {after_call}"


def test_work_split_depends_only_on_shapes(monkeypatch):
    """The (chunk size, slot count) rule never reads the machine."""
    before = {shape: kernels._layout(*shape, np.float64) for shape in
              [(200, 64, 36, 64), (128, 16, 192, 500), (1, 1, 1, 1), (7, 3, 2, 2)]}
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    kernels.configure_threads(1)
    try:
        for shape, layout in before.items():
            assert kernels._layout(*shape, np.float64) == layout
    finally:
        kernels.configure_threads()


@pytest.mark.parametrize("scale", [1.0, 40.0])
def test_c4_twin_matches_metrics_reference(scale):
    """kernels.c4_decomposition is the twin of metrics.c4_decomposition (C4), all three patch types."""
    from reffeat import Config
    from reffeat.metrics import c4_decomposition
    from reffeat.train import problem
    cfg = Config(n_train=37, n_test=5, P=12, n_nonrobust=7, sigma_xi=0.1)
    prob = problem(cfg)
    X, y, types = prob.train
    U, V = prob.features
    W = prob.W0 * scale
    old = model.set_backend("reference")
    try:
        ref = c4_decomposition(W, X, y, types, U, V, q=cfg.q, rho=cfg.rho, step=0.5)
    finally:
        model.set_backend(old)
    fast = kernels.c4_decomposition(W, X, y, types, U, V, cfg.q, cfg.rho, 0.5)
    for name, a, b in zip(("dGamma", "dPhi"), fast, ref):
        assert a.shape == b.shape == (2, 3, cfg.k, cfg.m)
        err = _rel(a, b)
        assert err <= TOL, f"C4 {name}: kernel vs reference rel err {err:.2e} (W scale {scale})"


@pytest.mark.parametrize("scale", [1.0, 40.0])
def test_grad_w_and_c4_matches_reference(scale):
    """metrics.grad_w_and_c4 (one backward pass, numba) equals the reference's
    model.grad_w + metrics.c4_decomposition, and its C4 parts sum to the C3 change
    −step·⟨∇_W L, u_j⟩ (resp. v_j)."""
    from reffeat import Config
    from reffeat.metrics import grad_w_and_c4
    from reffeat.train import problem
    cfg = Config(n_train=41, n_test=5, P=12, n_nonrobust=7, sigma_xi=0.1)
    prob = problem(cfg)
    X, y, types = prob.train
    U, V = prob.features
    W = prob.W0 * scale
    out = {}
    for b in ("numba", "reference"):
        old = model.set_backend(b)
        try:
            out[b] = grad_w_and_c4(W, X, y, types, U, V, q=cfg.q, rho=cfg.rho, step=0.5)
        finally:
            model.set_backend(old)
    (Lf, Gf, (gf, pf)), (Lr, Gr, (gr, pr)) = out["numba"], out["reference"]
    assert abs(Lf - Lr) <= TOL * abs(Lr)
    for name, a, b in (("G2", Gf, Gr), ("dGamma", gf, gr), ("dPhi", pf, pr)):
        assert a.shape == b.shape
        err = _rel(a, b)
        assert err <= TOL, f"{name}: one-pass kernel vs reference rel err {err:.2e} (W scale {scale})"
    Lg, Gg = model.grad_w(W, X, y, q=cfg.q, rho=cfg.rho, backend="numba")
    assert Lg == Lf and np.array_equal(Gg, Gf)          # the same G2 as grad_w, bit for bit
    dgam = -0.5 * np.einsum("jrd,jd->jr", Gf, U)
    assert _rel(gf.sum(axis=(0, 1)), dgam) <= 1e-9
    dphi = -0.5 * np.einsum("jrd,jd->jr", Gf, V)
    assert _rel(pf.sum(axis=(0, 1)), dphi) <= 1e-9


@given(shape=shapes, q=st.sampled_from(Q), seed=st.integers(0, 10**6),
       scale=st.sampled_from([0.3, 3.0]), step=st.floats(0.01, 2.0))
def test_grad_w_and_c4_random_shapes(shape, q, seed, scale, step):
    """The one-pass G2 + C4 kernel against the reference on random shapes (n, P,
    d, k, m down to 1) and random patch types, including a code outside R/N/noise
    (skipped by both)."""
    from reffeat.metrics import grad_w_and_c4
    n, P, d, k, m = shape
    rng, W, X, y = _problem(seed, n, P, d, k, m, scale)
    types = rng.integers(0, 4, (n, P))
    U, V = rng.standard_normal((k, d)), rng.standard_normal((k, d))
    out = {}
    for b in ("numba", "reference"):
        old = model.set_backend(b)
        try:
            out[b] = grad_w_and_c4(W, X, y, types, U, V, q=q, rho=0.8, step=step)
        finally:
            model.set_backend(old)
    (Lf, Gf, (gf, pf)), (Lr, Gr, (gr, pr)) = out["numba"], out["reference"]
    assert abs(Lf - Lr) <= TOL * max(abs(Lr), 1e-300)
    for name, a, b in (("G2", Gf, Gr), ("dGamma", gf, gr), ("dPhi", pf, pr)):
        assert a.shape == b.shape
        err = _rel(a, b)
        assert err <= TOL, f"{name}: rel err {err:.2e} (n, P, d, k, m = {shape}, q={q})"


_CACHE_SCRIPT = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from reffeat import kernels
assert kernels.__file__.startswith(sys.argv[1]), kernels.__file__
a = np.zeros((2, 3)); kernels._step(a, a.copy(), np.ones((2, 3)), 1, 0.1, 0.2, 0, False, 0.0, 1.0, False)
st = kernels._step.stats
print(json.dumps({"hits": sum(st.cache_hits.values()), "misses": sum(st.cache_misses.values()),
                  "dir": kernels.cache_dir()}))
"""


def test_cache_does_not_depend_on_where_the_package_is(tmp_path):
    """Two copies of the package at different paths share one compiled cache
    (numba's default keys the cache by the source path: a checkout and an
    installed copy compiled twice)."""
    import shutil
    src = os.path.dirname(os.path.dirname(os.path.abspath(kernels.__file__)))
    outs = []
    for name in ("checkout", "site-packages"):
        dst = tmp_path / name
        shutil.copytree(os.path.join(src, "reffeat"), dst / "reffeat",
                        ignore=shutil.ignore_patterns("__pycache__"))
        env = dict(os.environ, REFFEAT_CACHE_DIR=str(tmp_path / "cache"))
        env.pop("NUMBA_CACHE_DIR", None)
        env.pop("PYTHONPATH", None)
        res = subprocess.run([sys.executable, "-c", _CACHE_SCRIPT, str(dst)], env=env,
                             capture_output=True, text=True, cwd=str(tmp_path))
        assert res.returncode == 0, res.stderr[-2000:]
        outs.append(json.loads(res.stdout))
    assert outs[0]["dir"] == outs[1]["dir"] and outs[0]["dir"].startswith(str(tmp_path / "cache"))
    assert outs[0]["misses"] == 1, outs[0]
    assert outs[1] == {**outs[1], "hits": 1, "misses": 0}, f"second copy compiled again: {outs[1]}"


def test_slot_count_override_is_scoped():
    """``kernels._slot_count`` (the bench's SLOTS-vs-2 comparison) changes the slot
    count only inside its block, and the fast paths still equal the reference."""
    assert kernels._layout(200, 64, 36, 64, np.float64)[1] == min(kernels.SLOTS, 50)
    with kernels._slot_count(2):
        assert kernels._layout(200, 64, 36, 64, np.float64)[1] == 2
        _, W, X, y = _problem(7, 41, 5, 4, 3, 6)
        _check_all(W, X, y, 3.0, 1.0)
    assert kernels.SLOTS == 16 and kernels._layout(200, 64, 36, 64, np.float64)[1] == 16
    with pytest.raises(ValueError, match="slots must be an integer >= 1"):
        with kernels._slot_count(0):
            pass


def test_slot_blocks_share_the_rows_evenly(monkeypatch):
    """Calls without per-thread partials deal the slots in blocks of consecutive
    slots (``_threads.slot_blocks``): every slot in exactly one block; with equal
    slots no thread runs more than ⌈S/T⌉ of them (S ≤ SLOTS, 2 ≤ T ≤ S; the
    bench's mnist ascent, 10 slots on 2 threads, was cut 2, 3, 2, 3 and one thread
    ran 6); on the layouts' own rows per slot (a short last chunk) the last thread
    finishes no later than with either even cut in slot order; ``run_slots`` calls
    the kernel on exactly these blocks."""
    from reffeat import _threads
    for S in range(1, kernels.SLOTS + 1):
        for T in range(2, S + 1):
            nb = min(S, _threads._BLOCKS_PER_THREAD * T)
            blocks = _threads.slot_blocks((1,) * S, nb, T)
            assert len(blocks) == nb and sorted(s for b in blocks for s in range(*b)) == list(range(S))
            assert all(s0 < s1 for s0, s1 in blocks)
            assert _threads._finish((1,) * S, blocks, T) == -(-S // T), (S, T, blocks)
    for n in range(1, 300, 7):
        for P, km, d in [(16, 500, 49), (16, 500, 192), (64, 64, 36), (64, 16, 132)]:
            b, S = kernels._layout(n, P, d, km, np.float64)
            rows = kernels._slot_rows(n, P, b, S)
            assert sum(rows) == n * P
            for T in range(2, min(S, 4) + 1):
                nb = min(S, _threads._BLOCKS_PER_THREAD * T)
                even = [[(i * S) // nb for i in range(nb + 1)],
                        [i * (S // nb) + min(i, S % nb) for i in range(nb + 1)]]
                best = min(_threads._finish(rows, [(c[i], c[i + 1]) for i in range(nb)], T) for c in even)
                assert _threads._finish(rows, _threads.slot_blocks(rows, nb, T), T) <= best
    mnist = kernels._slot_rows(128, 16, *kernels._layout(128, 16, 49, 500, np.float64))
    cifar = kernels._slot_rows(128, 16, *kernels._layout(128, 16, 192, 500, np.float64))
    assert mnist == (208,) * 9 + (176,) and cifar == (144,) * 14 + (32,)
    assert _threads._finish(mnist, _threads.slot_blocks(mnist, 4, 2), 2) == 5 * 208
    assert _threads._finish(cifar, _threads.slot_blocks(cifar, 4, 2), 2) == 7 * 144 + 32
    kernels.configure_threads(2)
    try:
        calls = []
        _threads.run_slots(lambda s0, s1, t, f: calls.append((s0, s1)), 10, 2, rows=mnist)
        assert sorted(calls) == sorted(_threads.slot_blocks(mnist, 4, 2))
        seen = []                                       # the ascent passes its rows per slot
        monkeypatch.setattr(kernels, "run_slots", lambda *a, **kw: seen.append(kw.get("rows")))
        X = np.random.default_rng(0).random((128, 16, 49))
        kernels.ascent_run(np.ones((10, 50, 49)), X, np.zeros(128, dtype=int), 3.0, 1.0, 0.1, "linf", 1,
                           0.1, X.copy(), "sign", None, 1.0)
        assert seen == [mnist]
    finally:
        kernels.configure_threads()


def test_run_slots_folds_in_slot_order_and_propagates_errors():
    """``_threads.run_slots`` with 3 threads: every slot runs once, the folds come in
    slot order whatever order the slots finish in, and an error in one slot is raised
    (the threads waiting for their turn to fold do not hang)."""
    import time

    from reffeat import _threads
    kernels.configure_threads(3)
    try:
        ran, folded = [], []

        def kern(s0, s1, t, fold_here):
            assert (s1, fold_here) == (s0 + 1, False)
            time.sleep(0.002 * ((7 * s0) % 5))          # slots finish out of order
            ran.append(s0)

        _threads.run_slots(kern, 16, 3, fold=lambda s, t: folded.append(s))
        assert sorted(ran) == list(range(16)) and folded == list(range(16))
        covered = []                                    # no partials: blocks of slots per call
        _threads.run_slots(lambda s0, s1, t, f: covered.extend(range(s0, s1)), 16, 3)
        assert sorted(covered) == list(range(16))

        def bad(s0, s1, t, fold_here):
            time.sleep(0.001 * (s0 % 3))
            if s0 == 5:
                raise RuntimeError("slot 5 failed")

        with pytest.raises(RuntimeError, match="slot 5 failed"):
            _threads.run_slots(bad, 16, 3, fold=lambda s, t: None)
    finally:
        kernels.configure_threads()
