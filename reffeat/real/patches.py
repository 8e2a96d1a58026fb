"""R2: an H×W×C image cut into p×p patches, and back (for R5 figures).

    R2  non-overlapping p×p patches, row-major over the (H/p)×(W/p) grid; each
        patch is flattened in (row, column, channel) order: P = (H/p)(W/p),
        d = p²C. The network N3 is used unchanged.

>>> import numpy as np
>>> imgs = np.arange(2 * 4 * 4 * 1, dtype=float).reshape(2, 4, 4, 1)
>>> X = patchify(imgs, 2)
>>> X.shape
(2, 4, 4)
>>> bool(np.array_equal(unpatchify(X, 4, 4, 1, 2), imgs))
True
"""

from __future__ import annotations

import numpy as np


def _check_patch(H: int, W: int, p) -> None:
    if not isinstance(p, (int, np.integer)) or p < 1:
        raise ValueError(f"patch size p must be a positive integer (got {p!r})")
    if H % p or W % p:
        raise ValueError(f"patch size p must divide the image height and width "
                         f"(p={p}, H={H}, W={W}; allowed: common divisors of {H} and {W})")


def patchify(images: np.ndarray, p: int) -> np.ndarray:
    """R2: images (N, H, W, C) -> patches (N, P, d), P = (H/p)(W/p), d = p²C."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, H, W, C) (got shape {images.shape})")
    N, H, W, C = images.shape
    _check_patch(H, W, p)
    gh, gw = H // p, W // p
    x = images.reshape(N, gh, p, gw, p, C).transpose(0, 1, 3, 2, 4, 5)
    return np.ascontiguousarray(x.reshape(N, gh * gw, p * p * C))


def unpatchify(X: np.ndarray, H: int, W: int, C: int, p: int) -> np.ndarray:
    """R2 inverse: patches (N, P, d) -> images (N, H, W, C) (for visualisation)."""
    X = np.asarray(X)
    _check_patch(H, W, p)
    gh, gw = H // p, W // p
    if X.ndim != 3 or X.shape[1] != gh * gw or X.shape[2] != p * p * C:
        raise ValueError(f"patches must have shape (N, {gh * gw}, {p * p * C}) for "
                         f"H={H}, W={W}, C={C}, p={p} (got {X.shape})")
    N = X.shape[0]
    x = X.reshape(N, gh, gw, p, p, C).transpose(0, 1, 3, 2, 4, 5)
    return np.ascontiguousarray(x.reshape(N, H, W, C))


def filters_as_images(Wt: np.ndarray, p: int, C: int) -> np.ndarray:
    """R5: filters w_{j,r} (k, m, d) as p×p×C image patches (k, m, p, p, C)."""
    k, m, d = Wt.shape
    if d != p * p * C:
        raise ValueError(f"filter dimension d={d} is not p²C = {p * p * C}")
    return Wt.reshape(k, m, p, p, C)
