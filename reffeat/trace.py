"""C5: the coefficient trace — what a proof of feature learning tracks, per
logged step t and per neuron (j, r).

    γ_{j,r,j'}(t) = ⟨w_{j,r}^{(t)} − w_{j,r}^{(0)}, u_{j'}⟩          gamma (L, k, m, k)
    φ_{j,r,j'}(t) = ⟨w_{j,r}^{(t)} − w_{j,r}^{(0)}, v_{j'}⟩          phi   (L, k, m, k)
    ν_{j,r}(t)    = ‖Π^⊥(w_{j,r}^{(t)} − w_{j,r}^{(0)})‖₂             nu    (L, k, m)
    μ_{j,r}(t)    = max_{i,p} |⟨w_{j,r}^{(t)}, ξ_{i,p}⟩|               mu    (L, k, m)

(L logged steps; j' = j is the own-class coefficient, j' ≠ j the cross terms;
Π^⊥ projects onto the complement of span{u, v}; ξ_{i,p} are the training
set's noise vectors, recovered exactly as ξ_{i,p} = Π^⊥ x_{i,p} because D4
draws them orthogonal to every feature.)  The key "gamma" is this per-neuron change
γ_{j,r,j'}(t) along u_{j'}: not summary.json's ``summary[mode]["gamma"]``
(C2: mean_j max_r Γ_{j,r} of the weights themselves,
``metrics.coefficient_summary``), nor the attack's ascent step
(``Config.ascent_step``, called ``gamma`` before version 0.2).  Where the n·P noise vectors are
linearly independent (d − 2k ≥ nP and σ_ξ > 0: a high-dimensional config),
the signal–noise decomposition

    w^{(t)} = w^{(0)} + Σ_{j'} γ u_{j'} + Σ_{j'} φ v_{j'} + Σ_{i,p} ζ_{i,p} ξ_{i,p}/‖ξ_{i,p}‖² + r^{(t)},
    r^{(t)} ⟂ span{u, v, ξ}

is unique; ``zeta`` (L, k, m, n, P) and ``residual`` = ‖r^{(t)}‖₂ (L, k, m)
are returned there.  For ST every G2 step is a combination of the training
patches x_{i,p} = (signal) + ξ_{i,p}, so r^{(t)} = 0 up to rounding; for AT it
is the part of the adversarial perturbations δ_{i,p} outside span{u, v, ξ}
that the steps wrote into the weights.

The trace is a pure function of the logged weights (``coefficient_trace``);
``train(cfg, mode, trace=True)`` collects the weights through the training
loop's per-step callback and returns a ``Trace``; ``python -m reffeat.run
--trace`` writes it as ``trace_st.npz`` / ``trace_at.npz`` (``save_trace``,
``load_trace``).  Size: 8 bytes × L × k·m·(d + 2k + 2) (+ k·m·(nP + 1) with
the decomposition), L ≤ ⌊T / log_every⌋ + ⌊log₂ T⌋ + 3 — the logged steps of
the history (``loop.logged_step``: every log_every steps and 0, 1, 2, 4, 8, …),
plus the last step; ``log_every`` bounds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .loop import logged_step

#: keys of a trace file, in the order they are written (``zeta``, ``residual``
#: only where the decomposition is defined)
KEYS = ("steps", "W0", "W", "U", "V", "gamma", "phi", "nu", "mu")
DECOMPOSITION_KEYS = ("zeta", "residual")


def noise_vectors(X: np.ndarray, U: np.ndarray, V: np.ndarray) -> np.ndarray:
    """D4 noise of training patches: ξ_{i,p} = Π^⊥ x_{i,p}.  X (n, P, d) -> (n, P, d).

    Exact for clean training data (D4 draws ξ in the complement of span{u, v}
    and the signal lies in the span).  What is left of a noiseless patch is
    rounding (‖Π^⊥x‖ ≤ 1e-12·‖x‖) and is set to exactly 0, so σ_ξ = 0 gives ξ = 0."""
    B = np.concatenate([U, V])                      # (2k, d) orthonormal rows: Π = BᵀB
    xi = X - (X @ B.T) @ B
    tiny = np.linalg.norm(xi, axis=-1) <= 1e-12 * np.maximum(np.linalg.norm(X, axis=-1), 1.0)
    xi[tiny] = 0.0
    return xi


def noise_basis(xi: np.ndarray, U: np.ndarray, V: np.ndarray, rtol: float = 1e-8):
    """C5 decomposition's basis: (Q, R) with Q (d, nP) orthonormal, ξ-matrix^T = Q R,
    or None where the nP noise vectors are not linearly independent (nP > d − 2k,
    σ_ξ = 0, or numerically rank-deficient: smallest |R_ii| < rtol · largest)."""
    n, P, d = xi.shape
    N = n * P
    if N > d - 2 * U.shape[0]:
        return None
    Xi = xi.reshape(N, d)
    if not np.any(Xi):
        return None
    Q, R = np.linalg.qr(Xi.T)                       # (d, N), (N, N)
    diag = np.abs(np.diag(R))
    if diag.min() < rtol * diag.max():
        return None
    return Q, R


@dataclass
class Trace:
    """C5 trace of one run.  Arrays as in the module docstring; ``steps`` (L,)
    the step index t of each entry (W[l] = W^{(steps[l])}); ``zeta``,
    ``residual`` None where the decomposition is not defined."""
    steps: np.ndarray
    W0: np.ndarray
    W: np.ndarray
    U: np.ndarray
    V: np.ndarray
    gamma: np.ndarray
    phi: np.ndarray
    nu: np.ndarray
    mu: np.ndarray
    zeta: np.ndarray | None = None
    residual: np.ndarray | None = None

    def arrays(self) -> dict:
        """The arrays to write (decomposition keys only where defined)."""
        out = {key: getattr(self, key) for key in KEYS}
        for key in DECOMPOSITION_KEYS:
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.arrays().values()))


def coefficient_trace(steps, Ws, W0, U, V, X_train=None) -> Trace:
    """C5 from logged weights.  steps (L,), Ws (L, k, m, d), W0 (k, m, d),
    U, V (k, d), X_train (n, P, d) the clean training inputs (their noise ξ
    gives μ and the decomposition; without them μ = 0 and no decomposition)."""
    Ws = np.asarray(Ws, dtype=np.float64)
    W0 = np.asarray(W0, dtype=np.float64)
    if Ws.ndim != 4 or Ws.shape[1:] != W0.shape:
        raise ValueError(f"Ws must have shape (L, {', '.join(map(str, W0.shape))}) (got {Ws.shape})")
    D = Ws - W0[None]                                       # w^{(t)} − w^{(0)}
    gamma = D @ U.T                                         # (L, k, m, k)
    phi = D @ V.T
    B = np.concatenate([U, V])                              # Π = BᵀB, never the d×d matrix
    Dperp = D - (D @ B.T) @ B                               # Π^⊥(w^{(t)} − w^{(0)})
    nu = np.linalg.norm(Dperp, axis=-1)
    L, k, m, d = Ws.shape
    mu = np.zeros((L, k, m))
    zeta = residual = None
    if X_train is not None:
        xi = noise_vectors(np.asarray(X_train, dtype=np.float64), U, V)   # (n, P, d)
        n, P, _ = xi.shape
        Xi = xi.reshape(n * P, d)
        if np.any(Xi):                                      # max_{i,p} |⟨w^{(t)}, ξ_{i,p}⟩|, one step
            for l in range(L):                              # at a time: (k, m, nP) stays small
                mu[l] = np.abs(Ws[l] @ Xi.T).max(axis=-1)
        basis = noise_basis(xi, U, V)
        if basis is not None:
            Q, R = basis
            proj = Dperp @ Q                                # (L, k, m, N): coordinates in span ξ
            # Π^⊥Δw = Σ c_{i,p} ξ_{i,p} + r  with  Ξ^T c = Q proj  ⇒  c = R^{-1} proj
            c = np.linalg.solve(R, proj.reshape(-1, n * P).T).T.reshape(L, k, m, n * P)
            zeta = (c * np.sum(Xi * Xi, axis=1)).reshape(L, k, m, n, P)   # ζ = c·‖ξ‖²
            residual = np.linalg.norm(Dperp - proj @ Q.T, axis=-1)
    return Trace(np.asarray(steps, dtype=np.int64), W0, Ws, np.asarray(U), np.asarray(V),
                 gamma, phi, nu, mu, zeta, residual)


def reconstruct(trace: Trace, X_train) -> np.ndarray:
    """C5 decomposition put back together without r^{(t)}: (L, k, m, d) =
    w^{(0)} + Σ γ u + Σ φ v + Σ ζ ξ/‖ξ‖² (the test of uniqueness: for ST this
    is W itself up to rounding)."""
    if trace.zeta is None:
        raise ValueError("this trace has no decomposition (needs linearly independent "
                         "training noise: d − 2k >= n·P and sigma_xi > 0)")
    xi = noise_vectors(np.asarray(X_train, dtype=np.float64), trace.U, trace.V)
    n, P, d = xi.shape
    Xi = xi.reshape(n * P, d)
    L, k, m = trace.nu.shape
    coef = trace.zeta.reshape(L, k, m, n * P) / np.sum(Xi * Xi, axis=1)
    return (trace.W0[None] + trace.gamma @ trace.U + trace.phi @ trace.V + coef @ Xi)


class Recorder:
    """Per-step callback of the training loop that keeps W^{(t)} at every
    logged step (``loop.logged_step``: the history's steps); ``finish`` adds the returned weights and
    computes the trace.  Used by ``train(..., trace=True)``."""

    def __init__(self, log_every: int):
        self.log_every = int(log_every)
        self.steps: list = []
        self.Ws: list = []

    def __call__(self, step) -> None:
        if logged_step(step.t, self.log_every):
            self.steps.append(step.t)
            self.Ws.append(np.array(step.W, dtype=np.float64))

    def finish(self, t_end: int, W_end, W0, U, V, X_train) -> Trace:
        steps, Ws = list(self.steps), list(self.Ws)
        if not steps or steps[-1] != t_end:
            steps.append(t_end)
            Ws.append(np.array(W_end, dtype=np.float64))
        k, m, d = np.shape(W0)
        return coefficient_trace(steps, np.array(Ws).reshape(len(Ws), k, m, d), W0, U, V, X_train)


def save_trace(path, trace: Trace) -> None:
    """Write a trace as .npz (atomically: temp file, then rename)."""
    from .output import atomic_savez
    atomic_savez(str(path), **trace.arrays())


def load_trace(path) -> dict:
    """A trace file as a dict of arrays (keys ``KEYS`` + ``zeta``, ``residual`` where present)."""
    with np.load(path, allow_pickle=False) as z:
        return {key: z[key].copy() for key in z.files}
