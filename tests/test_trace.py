"""C5 traces: every traced quantity recomputed independently from the traced W,
the high-dim decomposition's reconstruction (ST) and its residual (AT) rebuilt
from the steps' adversarial points."""
import numpy as np
import pytest

from reffeat import Config, problem, train
from reffeat.distribution import NONROBUST, ROBUST
from reffeat.model import dloss_dF, forward_and_slopes
from reffeat.trace import KEYS, coefficient_trace, load_trace, reconstruct, save_trace

SMALL = dict(k=3, P=12, d_N=8, m=4, n_train=30, n_test=40, T=12, log_every=4, eval_restarts=0,
             sigma_xi=0.2, eta=0.5)
#: d − 2k = 131 − 6 = 125 >= n·P = 12·8 = 96: the training noise is linearly independent
HIGH_DIM = dict(k=3, P=8, d_N=128, n_train=12, n_test=20, sigma_xi=0.3, m=4, T=30, eta=0.5,
                log_every=5, eval_restarts=0)


def _noise_from_labels(cfg, X, y, types, U, V):
    """ξ_{i,p} = x_{i,p} − (α u_y on R patches, β v_y on N patches): D3 read backwards."""
    sig = (types == ROBUST)[:, :, None] * (cfg.alpha * U[y])[:, None, :] \
        + (types == NONROBUST)[:, :, None] * (cfg.beta * V[y])[:, None, :]
    return X - sig


@pytest.mark.parametrize("mode", ["st", "at"])
def test_trace_quantities_recomputed_from_W(mode):
    cfg = Config(**SMALL)
    prob = problem(cfg)
    U, V = prob.features
    X, y, types = prob.train
    res = train(cfg, mode, prob, trace=True)
    tr = res.trace
    assert tr.steps.tolist() == res.history["step"] == [0, 1, 2, 4, 8, 12]
    assert np.array_equal(tr.W[-1], res.W) and np.array_equal(tr.W0, res.W0)
    L, k, m, d = tr.W.shape
    xi = _noise_from_labels(cfg, X, y, types, U, V).reshape(-1, d)
    # an orthonormal basis of the complement of span{u, v} from the SVD (not the projector Π)
    comp = np.linalg.svd(np.concatenate([U, V]), full_matrices=True)[2][2 * k:]
    for li in range(L):
        for j in range(k):
            for r in range(m):
                delta = tr.W[li, j, r] - tr.W0[j, r]
                for jp in range(k):
                    assert abs(tr.gamma[li, j, r, jp] - np.dot(delta, U[jp])) < 1e-10
                    assert abs(tr.phi[li, j, r, jp] - np.dot(delta, V[jp])) < 1e-10
                assert abs(tr.nu[li, j, r] - np.linalg.norm(comp @ delta)) < 1e-10
                assert abs(tr.mu[li, j, r] - np.abs(xi @ tr.W[li, j, r]).max()) < 1e-10
    assert tr.zeta is None and tr.residual is None, "n·P > d − 2k: no unique decomposition"
    assert np.abs(tr.mu).max() > 0


def test_high_dim_st_decomposition_reconstructs_w():
    cfg = Config(**HIGH_DIM)
    prob = problem(cfg)
    res = train(cfg, "st", prob, trace=True)
    tr = res.trace
    n, P = cfg.n_train, cfg.P
    assert tr.zeta.shape == (len(tr.steps), cfg.k, cfg.m, n, P)
    err = np.abs(reconstruct(tr, prob.train[0]) - tr.W).max()
    assert err < 1e-10, f"ST: w0 + Σγu + Σφv + Σζξ/‖ξ‖² misses W by {err:.2e}"
    assert tr.residual.max() < 1e-10, f"ST residual {tr.residual.max():.2e} should be rounding"
    assert np.abs(tr.zeta).max() > 1e-3, "ST moved along the noise: ζ must not be trivially zero"


def test_high_dim_at_residual_is_what_the_perturbations_put_outside_the_span():
    cfg = Config(**HIGH_DIM)
    prob = problem(cfg)
    U, V = prob.features
    X, y, types = prob.train
    steps = []
    res = train(cfg, "at", prob, trace=True, callback=lambda s: steps.append(s))
    tr = res.trace
    # the complement of span{u, v, ξ} from an SVD of the stacked vectors (ξ from D3 read backwards)
    xi = _noise_from_labels(cfg, X, y, types, U, V).reshape(-1, cfg.d)
    B = np.concatenate([U, V, xi])
    comp = np.linalg.svd(B, full_matrices=True)[2][len(B):]
    Qc = comp.T @ comp
    r = np.zeros_like(prob.W0)
    rebuilt = {0: np.zeros((cfg.k, cfg.m))}
    for s in steps:
        (Xa, wgt), = s.points                      # λ = 1: one point set, the adversarial one
        F, Sp = forward_and_slopes(s.W, Xa, cfg.q, cfg.rho)
        C, _ = dloss_dF(F, y)                      # logit − 1[j = y], (n, k)
        Qd = (Xa - X) @ Qc                         # the perturbations' part outside the span
        r += -(cfg.eta * wgt / len(y)) * np.einsum("ij,ipjr,ipd->jrd", C, Sp, Qd)
        rebuilt[s.t + 1] = np.linalg.norm(r, axis=-1)
    want = np.array([rebuilt[int(t)] for t in tr.steps])
    assert want.max() > 1e-4, "the AT residual should not vanish in this config"
    err = np.abs(want - tr.residual).max()
    assert err < 1e-10 * max(1.0, want.max()), f"AT residual differs from the rebuilt one by {err:.2e}"


def test_trace_file_round_trip(tmp_path):
    cfg = Config(**HIGH_DIM)
    prob = problem(cfg)
    tr = train(cfg, "at", prob, trace=True).trace
    path = tmp_path / "trace_at.npz"
    save_trace(path, tr)
    z = load_trace(path)
    assert set(z) == set(KEYS) | {"zeta", "residual"}
    for key in z:
        assert np.array_equal(z[key], getattr(tr, key)), key


def test_coefficient_trace_rejects_bad_shapes():
    W0 = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="Ws must have shape"):
        coefficient_trace([0], np.zeros((1, 2, 3, 5)), W0, np.eye(4)[:2], np.eye(4)[2:])


def _cli_trace(tmp_path, *sets):
    from reffeat.cli.run import main
    out = tmp_path / "traced"
    args = ["--out", str(out), "--no-figures", "--quiet", "--trace"]
    for s in ("T=12", "log_every=4", "n_train=30", "n_test=40", "eval_restarts=0", "m=4") + sets:
        args += ["--set", s]
    assert main(args) == 0
    return out


def test_run_trace_writes_both_files_and_gamma_phi_nu_agree(tmp_path, capsys):
    out = _cli_trace(tmp_path)
    for mode in ("st", "at"):
        z = load_trace(out / f"trace_{mode}.npz")
        assert set(KEYS) <= set(z), f"missing keys in trace_{mode}.npz: {set(KEYS) - set(z)}"
        D = z["W"] - z["W0"][None]
        U, V = z["U"], z["V"]
        assert np.abs(z["gamma"] - np.einsum("ljrd,ed->ljre", D, U)).max() < 1e-10
        assert np.abs(z["phi"] - np.einsum("ljrd,ed->ljre", D, V)).max() < 1e-10
        off = D - np.einsum("ljre,ed->ljrd", np.einsum("ljrd,ed->ljre", D, np.concatenate([U, V])),
                            np.concatenate([U, V]))
        assert np.abs(z["nu"] - np.linalg.norm(off, axis=-1)).max() < 1e-10
        assert z["steps"].tolist() == [0, 1, 2, 4, 8, 12]


def test_readme_lemma_snippet_runs_on_a_trace(tmp_path, capsys, monkeypatch):
    import pathlib
    import re
    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"<!-- lemma-snippet[^\n]*-->\n```python\n(.*?)```", readme, re.S)
    assert block, "README lost its lemma snippet"
    code = block.group(1)
    assert len(code.strip().splitlines()) <= 10, "the snippet should stay within 10 lines"
    _cli_trace(tmp_path / "runs", "sigma_xi=0.1")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README lemma snippet", "exec"), {})
