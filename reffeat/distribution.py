"""D1–D4: the data distribution 𝒟 of k-class inputs made of P patches, and the
pure inputs of E4.

    D1  y ~ Uniform([k]).
    D2  robust patch set R ⊂ [P], |R| = s, uniform; non-robust set N = [P] \\ R
        (or, with n_nonrobust < P − s, a uniform subset of the rest; the
        remaining patches carry noise only).
    D3  x_p = α u_y + ξ_p (p ∈ R);  x_p = β v_y + ξ_p (p ∈ N);  x_p = ξ_p otherwise.
    D4  ξ_p ~ N(0, σ_ξ² (I_d − Π)), Π the projector onto span{u_j, v_j}.

Patch types are coded ROBUST = 0, NONROBUST = 1, NOISE = 2.

>>> import numpy as np
>>> from reffeat.config import Config
>>> cfg = Config(k=2, P=4, d_N=4)
>>> X, y = sample(cfg, 3, np.random.default_rng(0))
>>> X.shape, y.shape
((3, 4, 6), (3,))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .features import make_features

if TYPE_CHECKING:
    from .config import Config

ROBUST, NONROBUST, NOISE = 0, 1, 2


def sample(cfg: Config, n: int, rng: np.random.Generator,
           features: tuple[np.ndarray, np.ndarray] | None = None,
           return_patch_types: bool = False) -> tuple[np.ndarray, ...]:
    """D1–D4: draw n points. Returns X (n, P, d), y (n,) int64
    [, patch_types (n, P) int8 if ``return_patch_types``].

    ``features`` = (U, V) from make_features (computed from cfg if omitted).
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1 (got {n!r})")
    U, V = make_features(cfg) if features is None else features
    k, P, s, d = cfg.k, cfg.P, cfg.s, cfg.d
    y = rng.integers(0, k, size=n)                                   # D1
    # D2: a uniform random permutation per sample; its first s entries are R,
    # the next n_N are N, the rest noise-only.
    order = np.argsort(rng.random((n, P)), axis=1)
    types = np.full((n, P), NOISE, dtype=np.int8)
    rows = np.arange(n)[:, None]
    types[rows, order[:, :s]] = ROBUST
    types[rows, order[:, s : s + cfg.n_N]] = NONROBUST
    # D3
    X = np.zeros((n, P, d))
    X += (types == ROBUST)[:, :, None] * (cfg.alpha * U[y])[:, None, :]
    X += (types == NONROBUST)[:, :, None] * (cfg.beta * V[y])[:, None, :]
    # D4: noise in the orthogonal complement of the features
    if cfg.sigma_xi > 0:
        # ξ − Πξ with Π = BᵀB (B = [U; V], orthonormal rows) applied as (ξBᵀ)B: (n, P, 2k)
        # in between instead of the d × d projector (d = 131072 would be 128 GiB)
        B = np.concatenate([U, V], axis=0)
        xi = cfg.sigma_xi * rng.standard_normal((n, P, d))
        X += xi - (xi @ B.T) @ B
    if return_patch_types:
        return X, y, types
    return X, y


def pure_inputs(cfg: Config, features: tuple[np.ndarray, np.ndarray] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """E4: pure robust inputs (α u_j in s patches, zeros elsewhere) and pure
    non-robust inputs (β v_j in |N| patches, zeros elsewhere), one per class.

    Returns (X_robust, X_nonrobust), each (k, P, d); row j belongs to class j.
    Because N3 sums over patches, which patches carry the feature does not matter.
    """
    U, V = make_features(cfg) if features is None else features
    k, P, d = cfg.k, cfg.P, cfg.d
    XR = np.zeros((k, P, d))
    XN = np.zeros((k, P, d))
    XR[:, : cfg.s, :] = cfg.alpha * U[:, None, :]
    XN[:, cfg.s : cfg.s + cfg.n_N, :] = cfg.beta * V[:, None, :]
    return XR, XN
