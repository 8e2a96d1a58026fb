"""N1–N2: the smoothed ReLU of Allen-Zhu & Li and its derivative.

    N1  σ(z) = 0                       z <= 0
             = z^q / (q ρ^{q−1})       0 < z <= ρ
             = z − (1 − 1/q) ρ         z > ρ
    N2  σ'(z) = 0 (z <= 0), (z/ρ)^{q−1} (0 < z <= ρ), 1 (z > ρ)

σ is continuous for every q >= 1 and C¹ for q > 1; q = 1 is the plain ReLU.

These numpy functions are the reference.  The numba backend (``kernels.py``:
``_sigma_pass``, ``_slope_times``) evaluates the same pieces in the same order as
``smoothed_relu_and_grad`` (σ = [z − ρ]_+ + zc·g/q, g = (zc/ρ)^{q−1}), fused
with the reductions of N3, so both agree to rounding.

>>> import numpy as np
>>> smoothed_relu(np.array([-1.0, 0.5, 2.0]), q=2, rho=1.0)
array([0.   , 0.125, 1.5  ])
>>> smoothed_relu_grad(np.array([-1.0, 0.5, 2.0]), q=2, rho=1.0)
array([0. , 0.5, 1. ])
"""

from __future__ import annotations

from numbers import Real

import numpy as np
from numpy.typing import ArrayLike

from .constraints import Interval, check, check_array, keyword_constants

_Q = Interval(Real, 1)
_RHO = Interval(Real, 0, closed="neither")


def _params(q, rho) -> tuple[float, float]:
    """N1's q ≥ 1 and ρ > 0 (ValueError naming the one that is not)."""
    return np.float64(check("q", q, _Q)), np.float64(check("rho", rho, _RHO))   # numpy: no OverflowError


@keyword_constants("q", "rho")
def smoothed_relu(z: ArrayLike, *, q: float, rho: float) -> np.ndarray:
    """N1: σ(z) elementwise. z any shape (float) -> same shape."""
    q, rho = _params(q, rho)
    z = np.asarray(check_array("z", z), dtype=float)
    zc = np.clip(z, 0.0, rho)                      # the polynomial piece sees [0, ρ]
    poly = zc**q / (q * rho ** (q - 1.0))
    return np.where(z > rho, z - (1.0 - 1.0 / q) * rho, poly)


@keyword_constants("q", "rho")
def smoothed_relu_grad(z: ArrayLike, *, q: float, rho: float) -> np.ndarray:
    """N2: σ'(z) elementwise. z any shape -> same shape."""
    q, rho = _params(q, rho)
    z = np.asarray(check_array("z", z), dtype=float)
    zc = np.clip(z, 0.0, rho)
    poly = (zc / rho) ** (q - 1.0)
    # 0**0 = 1 for q = 1: the ReLU's derivative is 0 at z <= 0 by N2, so mask it.
    return np.where(z > rho, 1.0, np.where(z > 0.0, poly, 0.0))


def smoothed_relu_and_grad(z, q: float, rho: float, overwrite: bool = False):
    """N1 and N2 together, sharing the clipped argument (the hot path).

    With zc = clip(z, 0, ρ) and g = (zc/ρ)^{q−1}:  σ'(z) = g for q > 1 (g is 0
    below 0 and 1 above ρ automatically), and σ(z) = zc·g/q + [z − ρ]_+ , which
    equals N1 on all three pieces (above ρ: ρ/q + z − ρ = z − (1 − 1/q)ρ).
    ``overwrite=True`` lets the function reuse z's memory for σ(z): large
    fresh arrays cost more (page faults) than the arithmetic itself.
    """
    z = np.asarray(z, dtype=float)
    zc = np.maximum(z, 0.0, out=np.empty_like(z))   # out= is much faster in numpy 2.4
    np.minimum(zc, rho, out=zc)                    # zc = clip(z, 0, ρ) (np.clip is slower)
    if q == 1.0:
        g = (z > 0.0).astype(float)                # ReLU: 0**0 would give 1 below 0
    else:
        g = np.multiply(zc, 1.0 / rho)
        if q == 3.0:                               # the default: avoid pow
            np.multiply(g, g, out=g)
        elif q != 2.0:
            np.power(g, q - 1.0, out=g)
    s = z if overwrite else np.empty_like(z)
    np.subtract(z, rho, out=s)
    np.maximum(s, 0.0, out=s)                      # [z − ρ]_+
    np.multiply(zc, g, out=zc)
    np.multiply(zc, 1.0 / q, out=zc)
    s += zc
    return s, g
