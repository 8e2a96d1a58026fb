"""V2 (P2 (b)): do the adversarial flips come through the non-robust directions?

For the points that the E2 worst case flips, each successful perturbation δ
(n, P, d) is projected patch by patch onto span{v_1..v_k} and then back into
the threat set; the measured number is the fraction of those points that
the projected perturbation still flips (SPEC §9 V2, P2 (b); E2 supplies δ):

    Π_V δ_p = Σ_j ⟨δ_p, v_j⟩ v_j = δ_p Vᵀ V        (V (k, d), orthonormal rows, F1)
    δ'      = Π_B(Π_V δ)                           (ℓ∞: clip to [−ε, ε] per coordinate;
                                                    l2-patch: rescale each patch into its
                                                    ε-ball; l2: rescale the whole input)
    flip fraction = #{i : argmax F(X_i + δ'_i) ≠ y_i} / #{i : argmax F(X_i + δ_i) ≠ y_i}

Which δ is passed decides the number, and SPEC's "each successful
perturbation" does not say which attack's when several flip a point (the
wiring must fix this from the SPEC's text, not from the numbers). Seen on
cached default ST models (seeds 0–2, /work/rc6runs/v2b_preview.py): with
PGD's δ (E2a) 0.01, 0.34 and 0.38 of the flips survive the projection; E2b's
δ_p = ε·sign(v_t − v_y) lies in span{v} for geometry sparse-dense and is kept
unchanged (fraction 1 on the points it flips); q3 seeds 0, 1 with PGD's δ:
1.0 and 0.96.

For the ℓ2 balls the orthogonal projection never increases a norm, so δ' =
Π_V δ there; for ℓ∞ it can leave the box (a dense v has entries
±1/sqrt(d_N)), and the clip is what "back into the threat set" means.

>>> import numpy as np
>>> V = np.array([[0.0, 1.0, 0.0]])
>>> project_onto_span(np.array([[[0.3, -0.2, 0.1]]]), V, eps=0.1, norm="linf")
array([[[ 0. , -0.1,  0. ]]])
"""

from __future__ import annotations

from numbers import Real

import numpy as np

from .attacks import _apply, project
from .constraints import NORMS, Interval, Options, check
from .model import predict


def _check_shapes(delta: np.ndarray, V: np.ndarray) -> None:
    if delta.ndim != 3:
        raise ValueError(f"delta must have shape (n, P, d) (got {delta.shape})")
    if V.ndim != 2 or V.shape[1] != delta.shape[2]:
        raise ValueError(f"V must have shape (k, d) with d = {delta.shape[2]} (got {V.shape})")


def project_onto_span(delta, V, *, eps: float, norm: str = "linf") -> np.ndarray:
    """V2 (b): δ (n, P, d) -> Π_B(Π_V δ) (n, P, d): each patch's perturbation
    projected onto span{v_1..v_k} (V (k, d), orthonormal rows), then back
    into the threat set of radius ``eps`` (``reffeat.attacks.project``)."""
    check("norm", norm, Options(NORMS))
    check("eps", eps, Interval(Real, 0))
    delta, V = np.asarray(delta, dtype=float), np.asarray(V, dtype=float)
    _check_shapes(delta, V)
    return project((delta @ V.T) @ V, eps, norm)


def projected_flips(W, X, y, delta, V, *, q: float, rho: float, eps: float, norm: str = "linf",
                    clip=None) -> tuple[np.ndarray, np.ndarray]:
    """V2 (b) per point: (flipped, still) boolean (n,) — ``flipped``: X + δ is
    misclassified (δ the E2 worst-case perturbation of the point);
    ``still``: flipped and X + Π_B(Π_V δ) is misclassified too.
    W (k, m, d), X (n, P, d), y (n,), δ (n, P, d), V (k, d)."""
    X, delta = np.asarray(X, dtype=float), np.asarray(delta, dtype=float)
    if delta.shape != X.shape:
        raise ValueError(f"delta must have the shape of X {X.shape} (got {delta.shape})")
    proj = project_onto_span(delta, V, eps=eps, norm=norm)
    y = np.asarray(y)
    flipped = predict(W, _apply(X, delta, clip), q=q, rho=rho) != y
    still = flipped & (predict(W, _apply(X, proj, clip), q=q, rho=rho) != y)
    return flipped, still


def projected_flip_fraction(W, X, y, delta, V, *, q: float, rho: float, eps: float, norm: str = "linf",
                            clip=None) -> float | None:
    """V2 (b), SPEC §9 P2 (V2), from E2's perturbations: the fraction of the
    points that δ flips which Π_B(Π_V δ) still flips; None when δ flips no
    point (the fraction is undefined; the claim then counts as not met).
    Pass, for each point, the perturbation of the attack that flipped it
    (points that no attack flipped may be passed with any δ: they are not
    counted unless that δ flips them)."""
    flipped, still = projected_flips(W, X, y, delta, V, q=q, rho=rho, eps=eps, norm=norm, clip=clip)
    n = int(flipped.sum())
    return None if n == 0 else float(still.sum()) / n
