"""F1–F3: robust features u_1..u_k and non-robust features v_1..v_k in R^d.

    F1  all 2k vectors orthonormal.
    F2  geometry "sparse-dense" (default): d = k + d_N, u_j = e_j (sparse);
        v_j = 0 on the first k coordinates and H[j]/sqrt(d_N) on the last d_N,
        H the Sylvester–Hadamard matrix of order d_N, rows 1..k (row 0 skipped).
        Hence sign(v_j) = sqrt(d_N)·v_j on its block (dense).
    F3  geometry "basis": u_j = e_j, v_j = e_{k+j};
        geometry "random": QR of a Gaussian d × 2k matrix.

Rows are features: U[j] = u_j, V[j] = v_j, each (k, d). Class indices are
0-based in code (j = 0..k−1 stands for the SPEC's 1..k).

>>> from reffeat.config import Config
>>> U, V = make_features(Config(k=2, d_N=4))
>>> V * 2
array([[ 0.,  0.,  1., -1.,  1., -1.],
       [ 0.,  0.,  1.,  1., -1., -1.]])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import seeding
from .constraints import PowerOfTwo, check

if TYPE_CHECKING:
    from .config import Config


def hadamard_rows(rows, order: int) -> np.ndarray:
    """Rows of the Sylvester–Hadamard matrix H_order without building it:
    H[r, c] = (−1)^popcount(r AND c). (len(rows), order) entries ±1; memory
    O(len(rows)·order), not order² (d_N = 131072 would need 137 GB)."""
    order = check("hadamard order", order, PowerOfTwo(1))
    c = np.arange(order, dtype=np.int64)
    out = np.empty((len(rows), order))
    for i, r in enumerate(rows):
        x = np.bitwise_and(c, int(r))
        parity = np.zeros(order, dtype=np.int64)
        while x.any():
            parity ^= x & 1
            x >>= 1
        out[i] = 1.0 - 2.0 * parity
    return out


def make_features(cfg: Config, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """F1–F3: return (U, V), each (k, d) with orthonormal rows.

    ``rng`` is used only by geometry "random" (default: seeded from cfg.seed).
    """
    k, d, d_N = cfg.k, cfg.d, cfg.d_N
    U = np.zeros((k, d))
    V = np.zeros((k, d))
    if cfg.geometry == "sparse-dense":
        U[np.arange(k), np.arange(k)] = 1.0
        V[:, k:] = hadamard_rows(range(1, k + 1), d_N) / np.sqrt(d_N)
    elif cfg.geometry == "basis":
        U[np.arange(k), np.arange(k)] = 1.0
        V[np.arange(k), k + np.arange(k)] = 1.0
    elif cfg.geometry == "random":
        if rng is None:
            rng = seeding.rng(cfg.seed, "features-default")
        Q, R = np.linalg.qr(rng.standard_normal((d, 2 * k)))
        Q = Q * np.sign(np.diag(R))                 # unique QR: positive diagonal of R
        U, V = Q[:, :k].T.copy(), Q[:, k:].T.copy()
    else:  # pragma: no cover - Config validates the name
        raise ValueError(f"geometry must be one of sparse-dense, basis, random (got {cfg.geometry!r})")
    return U, V


def feature_projector(U: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Π of D4: the orthogonal projector (d, d) onto span{u_j, v_j} (rows orthonormal)."""
    B = np.concatenate([U, V], axis=0)
    return B.T @ B
