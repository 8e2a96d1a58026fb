"""R1: SVHN cropped digits from ``train_32x32.mat`` / ``test_32x32.mat``.

MATLAB v5 files read with ``scipy.io.loadmat``: ``X`` is uint8 of shape
(32, 32, 3, N) and ``y`` is (N, 1) with labels 1..10, where 10 means digit 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._common import DataError

SPLIT_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}


def read_split(path: Path):
    """(images uint8 (N, 32, 32, 3), labels int64 (N,) in 0..9) from one .mat file."""
    import scipy.io
    path = Path(path)
    try:
        m = scipy.io.loadmat(path)
    except Exception as e:  # scipy raises ValueError/TypeError/OSError on damaged files
        raise DataError(f"{path}: not a readable MATLAB .mat file ({type(e).__name__}: {e})") from None
    if "X" not in m or "y" not in m:
        raise DataError(f"{path}: an SVHN file holds variables X and y "
                        f"(found {sorted(k for k in m if not k.startswith('__'))})")
    X, y = np.asarray(m["X"]), np.asarray(m["y"]).reshape(-1)
    if X.ndim != 4 or X.shape[:3] != (32, 32, 3):
        raise DataError(f"{path}: X must have shape (32, 32, 3, N) (got {X.shape})")
    if y.shape[0] != X.shape[3]:
        raise DataError(f"{path}: {y.shape[0]} labels for {X.shape[3]} images")
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() > 10):
        raise DataError(f"{path}: labels must be 1..10 (10 = digit 0); found {y.min()}..{y.max()}")
    y[y == 10] = 0
    if X.dtype != np.uint8:
        if X.size and (X.min() < 0 or X.max() > 255):
            raise DataError(f"{path}: pixel values must be 0..255")
        X = X.astype(np.uint8)
    return np.ascontiguousarray(X.transpose(3, 0, 1, 2)), y
