"""C1–C4 (feature coefficients and their one-step decomposition) and E1–E4
(evaluation).

    C1  Γ_{j,r} = ⟨w_{j,r}, u_j⟩, Φ_{j,r} = ⟨w_{j,r}, v_j⟩; cross terms ⟨w_{j,r}, u_j'⟩, ⟨w_{j,r}, v_j'⟩.
    C2  Γ_j = max_r Γ_{j,r}, Φ_j = max_r Φ_{j,r}, Σ_r [Γ_{j,r}]_+, Σ_r [Φ_{j,r}]_+; means over j.
    C3  one step W ← W − η∇L changes them by
        ΔΓ_{j,r} = (η/n) Σ_i (1[y_i=j] − logit_j(X_i)) Σ_p σ'(⟨w_{j,r}, x_{i,p}⟩)⟨x_{i,p}, u_j⟩
        (v_j for ΔΦ), X_i the points the step was taken at.
    C4  C3 split exactly into own-class / other-class samples × R / N / noise patches.
    E1  clean accuracy;  E2 robust accuracy: per point, correct under (a) PGD,
        (b) the feature-aligned attack and (c) APGD-CE and APGD-DLR (worst case);
    E3  alignment a_p of a perturbation with −v_y on non-robust patches;
    E4  responses F(W; ·) to pure robust / pure non-robust inputs.
    E5  certified robust accuracy (``reffeat.certify``): the lower end of the
        interval [E5, E2] the true robust accuracy lies in.
    V2 P2 (b) the fraction of E2's general-purpose flips that still flip after
        projection onto span{v} (``projected_flip_cases``).

This module comes after ``attacks`` in the data flow (E2 needs T2) and before
``train`` (training logs C2 and C4).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import backend as _backend
from .apgd import apgd, worst_case
from .attacks import apgd_losses, attack, feature_attack_correct
from .certify import certify_bounds
from .constraints import keyword_constants
from .directions import projected_flips
from .distribution import NOISE, NONROBUST, ROBUST, pure_inputs
from .model import check_inputs, dloss_dF, forward, forward_and_slopes, grad_w, predict

if TYPE_CHECKING:
    from .config import Config

OWN, OTHER = 0, 1
PATCH_TYPES = (ROBUST, NONROBUST, NOISE)
PART_NAMES = [f"{who}_{pt}" for who in ("own", "other") for pt in ("R", "N", "noise")]


# ---------------------------------------------------------------- C1, C2
def coefficients(W: np.ndarray, U: np.ndarray, V: np.ndarray) -> dict:
    """C1: Γ (k,m), Φ (k,m) and the cross terms ⟨w_{j,r}, u_j'⟩, ⟨w_{j,r}, v_j'⟩ (k,m,k)."""
    cross_u = W @ U.T                                   # (k, m, k)
    cross_v = W @ V.T
    k = W.shape[0]
    j = np.arange(k)
    return {
        "Gamma": cross_u[j, :, j],                       # (k, m): ⟨w_{j,r}, u_j⟩
        "Phi": cross_v[j, :, j],
        "cross_u": cross_u,
        "cross_v": cross_v,
    }


def coefficient_summary(W: np.ndarray, U: np.ndarray, V: np.ndarray) -> dict:
    """C2: per-class max_r and Σ_r [·]_+ of Γ and Φ, and their means over j.

    Returns floats ``gamma`` = mean_j max_r Γ_{j,r}, ``phi`` (same for Φ),
    ``gamma_pos`` = mean_j Σ_r [Γ_{j,r}]_+, ``phi_pos``, and the per-class lists.
    This "gamma" (summary.json's ``summary[mode]["gamma"]``, Γ_{j,r} = ⟨w_{j,r}, u_j⟩
    of the weights) is not the trace's per-neuron ``trace["gamma"]`` (C5: ⟨w − w0, u_j'⟩)
    nor the attack's ascent step (``Config.ascent_step``).
    """
    c = coefficients(W, U, V)
    G, Ph = c["Gamma"], c["Phi"]
    gj, pj = G.max(axis=1), Ph.max(axis=1)
    return {
        "gamma": float(gj.mean()),
        "phi": float(pj.mean()),
        "gamma_pos": float(np.maximum(G, 0).sum(axis=1).mean()),
        "phi_pos": float(np.maximum(Ph, 0).sum(axis=1).mean()),
        "gamma_j": gj.tolist(),
        "phi_j": pj.tolist(),
    }


# ---------------------------------------------------------------- C3, C4
def _check_c4(W, X, y, patch_types, U, V, q, rho) -> None:
    """The public boundary of C4: ``model.check_inputs`` plus patch_types (n, P)
    and U, V (k, d). Shapes only (and one pass over y)."""
    check_inputs(W, X, q, rho, y)
    k, _, d = np.shape(W)
    n, P = np.shape(X)[:2]
    if np.shape(patch_types) != (n, P):
        raise ValueError(f"patch_types must have shape ({n}, {P}) (got {np.shape(patch_types)})")
    if np.shape(U) != (k, d) or np.shape(V) != (k, d):
        raise ValueError(f"U and V must have shape ({k}, {d}) (got {np.shape(U)}, {np.shape(V)})")


@keyword_constants("q", "rho", "step")
def c4_decomposition(W: np.ndarray, X: np.ndarray, y: np.ndarray, patch_types: np.ndarray,
                     U: np.ndarray, V: np.ndarray, *, q: float, rho: float, step: float,
                     backend: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """C4: parts of the one-step change of Γ_{j,r} and Φ_{j,r} (C3).

    ``step`` is the learning-rate factor of this point set (η for ST/AT;
    η(1−λ) and ηλ for the two halves of λ-mixed AT).
    Returns (dGamma, dPhi), each (2, 3, k, m): [own/other, R/N/noise, j, r];
    summing over the first two axes gives the exact C3 change.
    The numba backend computes the same parts with its twin
    ``kernels.c4_decomposition`` (tests/test_kernels.py holds the two equal);
    the code below is the reference.
    """
    _check_c4(W, X, y, patch_types, U, V, q, rho)
    if (kern := _backend.kernels(backend)) is not None:
        return kern.c4_decomposition(W, X, y, patch_types, U, V, q, rho, step)
    n, P, d = X.shape
    k, m, _ = W.shape
    F, Sp = forward_and_slopes(W, X, q, rho, backend="reference")   # (n,k), σ' (n,P,k,m)
    C, _ = dloss_dF(F, y)                                       # logit − 1[j=y]
    push = -(step / n) * C                                      # (n,k): (η/n)(1[y=j] − logit_j)
    own = np.zeros((n, k))
    own[np.arange(n), y] = 1.0
    onehot = np.stack([patch_types == t for t in PATCH_TYPES], axis=-1)   # (n,P,3)
    out = [np.zeros((2, 3, k, m)), np.zeros((2, 3, k, m))]
    for j in range(k):
        # B[i,p,r] = (η/n)(1[y_i=j] − logit_j) σ'(⟨w_{j,r}, x_{i,p}⟩)
        B = (Sp[:, :, j, :] * push[:, None, j, None]).reshape(n * P, m)
        # M[i,p,(f, who, t)] = ⟨x_{i,p}, f_j⟩ · 1[own/other] · 1[type(p) = t]
        proj = np.stack([X @ U[j], X @ V[j]], axis=-1)           # (n,P,2)
        who = np.stack([own[:, j], 1.0 - own[:, j]], axis=-1)    # (n,2)
        M = proj[:, :, :, None, None] * who[:, None, None, :, None] * onehot[:, :, None, None, :]
        parts = (B.T @ M.reshape(n * P, 12)).reshape(m, 2, 2, 3)  # Σ_{i,p}
        out[0][:, :, j, :] = parts[:, 0].transpose(1, 2, 0)
        out[1][:, :, j, :] = parts[:, 1].transpose(1, 2, 0)
    return out[0], out[1]


@keyword_constants("q", "rho", "step")
def grad_w_and_c4(W: np.ndarray, X: np.ndarray, y: np.ndarray, patch_types: np.ndarray,
                  U: np.ndarray, V: np.ndarray, *, q: float, rho: float, step: float,
                  backend: str | None = None) -> tuple[float, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """G2 and C4 of one training step from one backward pass:
    (L_S(W), ∇_W L_S (k, m, d), (dGamma, dPhi)) — exactly ``model.grad_w`` and
    ``c4_decomposition`` (C3 is −``step``·∇_W L_S projected on u_j and v_j, so
    the numba backend, ``kernels.grad_w_and_c4``, reuses the step's own
    back-propagated array instead of a second forward pass).  The reference is
    the two calls below (tests/test_kernels.py holds the two equal).
    """
    _check_c4(W, X, y, patch_types, U, V, q, rho)
    if (kern := _backend.kernels(backend)) is not None:
        return kern.grad_w_and_c4(W, X, y, patch_types, U, V, q, rho, step)
    L, G = grad_w(W, X, y, q=q, rho=rho, backend="reference")
    return L, G, c4_decomposition(W, X, y, patch_types, U, V, q=q, rho=rho, step=step, backend="reference")


def c4_per_step(parts: np.ndarray) -> np.ndarray:
    """C4 summary: parts (steps, 2, 3, k, m) -> (steps, 6), summed over r and
    averaged over j, columns in the order of PART_NAMES."""
    return parts.sum(axis=4).mean(axis=3).reshape(len(parts), 6)


# ---------------------------------------------------------------- E1–E4
@keyword_constants("q", "rho")
def accuracy(W: np.ndarray, X: np.ndarray, y: np.ndarray, *, q: float, rho: float,
             backend: str | None = None) -> float:
    """E1: fraction of points with argmax_j F_j = y.  W (k, m, d), X (n, P, d), y (n,)
    integer labels in [0, k) (ValueError otherwise)."""
    y = check_inputs(W, X, q, rho, y)
    return float((predict(W, X, q=q, rho=rho, backend=backend) == y).mean())


def robust_correct(W: np.ndarray, X: np.ndarray, y: np.ndarray, V: np.ndarray, cfg: Config,
                   rng: np.random.Generator, clip: tuple[float, float] | None = None, *,
                   backend: str | None = None) -> dict:
    """E2: per-point booleans (n,) — ``clean`` (E1), ``pgd`` (a), ``feature`` (b),
    ``apgd_ce`` and ``apgd_dlr`` (c; None when ``cfg.eval_apgd_K`` = 0, and
    APGD-DLR None for k < 3, where the DLR loss is undefined) — and their
    per-point conjunction ``robust``: a point counts only if it survives all.
    Also returns the PGD adversarial inputs as ``X_pgd`` and APGD's as
    ``X_apgd_ce`` / ``X_apgd_dlr`` (None where not run): the perturbations the
    attacks already computed, kept so that V2 P2 (b) can project them; keeping
    them changes no number.

    APGD uses ``cfg.eval_apgd_K`` iterations (default 25, a quarter of
    AutoAttack's 100: the synthetic default run's budget), one run from a random
    start, drawn from ``rng`` after PGD's (so PGD's numbers do not depend on it).
    """
    Xp = attack(W, X, y, q=cfg.q, rho=cfg.rho, eps=cfg.eps, norm=cfg.norm, steps=cfg.eval_K,
                step_size=cfg.eval_step_size, random_start=True, rng=rng,
                restarts=cfg.eval_restarts, clip=clip, backend=backend)
    out = {"clean": predict(W, X, q=cfg.q, rho=cfg.rho, backend=backend) == y,
           "pgd": predict(W, Xp, q=cfg.q, rho=cfg.rho, backend=backend) == y,
           "feature": feature_attack_correct(W, X, y, V, q=cfg.q, rho=cfg.rho, eps=cfg.eps,
                                             norm=cfg.norm, clip=clip, backend=backend),
           "apgd_ce": None, "apgd_dlr": None}
    adv = {"X_apgd_ce": None, "X_apgd_dlr": None}
    if cfg.eval_apgd_K > 0:
        for loss in apgd_losses(W.shape[0]):
            Xa, fooled = apgd(W, X, y, q=cfg.q, rho=cfg.rho, eps=cfg.eps, norm=cfg.norm,
                              loss=loss, steps=cfg.eval_apgd_K, rng=rng, clip=clip, backend=backend)
            out[f"apgd_{loss}"] = ~fooled
            adv[f"X_apgd_{loss}"] = Xa
    out["robust"] = worst_case(out)
    out["X_pgd"] = Xp
    out.update(adv)
    return out


def one_step_perturbation(W, X, y, cfg, *, backend=None) -> np.ndarray:
    """The perturbation of T2 with K=1, γ=ε from the clean point (the theory's object)."""
    return attack(W, X, y, q=cfg.q, rho=cfg.rho, eps=cfg.eps, norm=cfg.norm, steps=1,
                  backend=backend) - X


def alignment(delta: np.ndarray, y: np.ndarray, V: np.ndarray, eps: float, norm: str,
              patch_types: np.ndarray | None = None, which: int = NONROBUST) -> float:
    """E3: mean over the chosen patches (default: non-robust) of
    a_p = ⟨δ_p, −v_y⟩ / (ε‖v_y‖₁) for ℓ∞ and ⟨δ_p, −v_y⟩ / ‖δ_p‖₂ for ℓ2.

    With ``patch_types`` None all patches count. NaN if no patch qualifies
    (or, for ℓ2, every selected δ_p is zero).
    """
    vy = V[y]                                                  # (n,d)
    dot = -np.einsum("ipd,id->ip", delta, vy)
    if norm == "linf":
        a = dot / (eps * np.abs(vy).sum(axis=1))[:, None] if eps > 0 else np.full(dot.shape, np.nan)
    else:
        nrm = np.linalg.norm(delta, axis=2)
        a = np.where(nrm > 0, dot / np.where(nrm > 0, nrm, 1.0), np.nan)
    mask = np.ones(dot.shape, bool) if patch_types is None else (patch_types == which)
    vals = a[mask]
    vals = vals[np.isfinite(vals)]
    return float(vals.mean()) if vals.size else float("nan")


def feature_responses(W: np.ndarray, cfg: Config, features: tuple[np.ndarray, np.ndarray], *,
                      backend: str | None = None) -> dict:
    """E4: F(W; ·) on pure robust and pure non-robust inputs of each class.

    Returns ``F_robust`` and ``F_nonrobust`` (k, k) — row j is the input of
    class j — their diagonal means ``robust`` / ``nonrobust``, and the accuracy
    of the network on the k pure inputs of each kind.
    """
    XR, XN = pure_inputs(cfg, features)
    FR = forward(W, XR, q=cfg.q, rho=cfg.rho, backend=backend)
    FN = forward(W, XN, q=cfg.q, rho=cfg.rho, backend=backend)
    j = np.arange(cfg.k)
    return {
        "robust": float(FR[j, j].mean()),
        "nonrobust": float(FN[j, j].mean()),
        "robust_input_acc": float((FR.argmax(1) == j).mean()),
        "nonrobust_input_acc": float((FN.argmax(1) == j).mean()),
        "F_robust": FR.tolist(),
        "F_nonrobust": FN.tolist(),
    }


#: the E2 attacks whose successful perturbations V2 P2 (b) projects (E2b excluded:
#: see ``projected_flip_cases``), with the key of their adversarial inputs in
#: ``robust_correct``'s result
GENERAL_ATTACKS = (("pgd", "X_pgd"), ("apgd_ce", "X_apgd_ce"), ("apgd_dlr", "X_apgd_dlr"))

#: the E5 level and branch-and-bound budget a run certifies with by default
CERTIFY_LEVEL, CERTIFY_BUDGET = "bab", 4


def projected_flip_cases(W: np.ndarray, X: np.ndarray, y: np.ndarray, V: np.ndarray, rc: dict,
                         cfg: Config, clip: tuple[float, float] | None = None) -> tuple[int, int]:
    """V2 P2 (b) from E2's perturbations: (cases, still) — ``v_projected_flip_frac``
    is still / cases (None when cases = 0).  W (k, m, d), X (n, P, d), y (n,),
    V (k, d), ``rc`` = ``robust_correct``'s result on the same points.

    The rule, fixed by the lead before any result (SPEC §9 V2 P2 (b) says "each
    successful perturbation" but not whose when several attacks flip a point):

    * one case per (point, attack) for every general-purpose attack of E2 —
      PGD (E2a), APGD-CE, APGD-DLR (E2c), those that ran — whose own
      perturbation δ = X_adv − X flips the point (a point flipped by two
      attacks gives two cases; a point no such attack flips gives none);
    * the case counts as "still" when Π_B(Π_V δ) (``directions.projected_flips``:
      patch by patch onto span{v_1..v_k}, then back into the threat set) still
      flips the point.
    * The feature attack E2b is excluded: its perturbations lie in span{v} by
      construction (sparse-dense geometry), so its cases would pass by
      construction; V2 P2 (a) (E2b accuracy ≤ 0.1) already covers it.
    """
    cases = still = 0
    for name, key in GENERAL_ATTACKS:
        if rc.get(name) is None or rc.get(key) is None:
            continue
        flipped, kept = projected_flips(W, X, y, rc[key] - X, V, q=cfg.q, rho=cfg.rho, eps=cfg.eps,
                                        norm=cfg.norm, clip=clip)
        cases += int(flipped.sum())
        still += int(kept.sum())
    return cases, still


def certified_numbers(W: np.ndarray, X: np.ndarray, y: np.ndarray, robust: np.ndarray, cfg: Config, *,
                      level: str = CERTIFY_LEVEL, bab_budget: int = CERTIFY_BUDGET) -> dict:
    """E5 beside E2 on the same points: X (n, P, d), y (n,), ``robust`` (n,) the
    E2 worst case per point.  Returns ``certified_robust_acc`` (mean of
    ``certify``'s per-point proof), ``proven_nonrobust_frac`` (mean of the
    certifier's upper bound ≤ 0: a feasible δ found by the bound breaks the
    point), ``certified_exact_frac`` (fraction of points where certified ==
    attacked-robust, i.e. the interval [E5, E2] is closed on that point),
    ``certified_not_robust`` (points certified yet broken by an attack: a
    sound bound makes it 0) and ``certify_level`` (the level and budget used)."""
    b = certify_bounds(W, X, y, q=cfg.q, rho=cfg.rho, eps=cfg.eps, norm=cfg.norm, level=level,
                       bab_budget=bab_budget)
    cert = np.asarray(b["certified"], dtype=bool)
    robust = np.asarray(robust, dtype=bool)
    return {
        "certified_robust_acc": float(cert.mean()) if cert.size else float("nan"),
        "proven_nonrobust_frac": float((b["upper"] <= 0).mean()) if cert.size else float("nan"),
        "certified_exact_frac": float((cert == robust).mean()) if cert.size else float("nan"),
        "certified_not_robust": int((cert & ~robust).sum()),
        "certify_level": level + (f", budget {bab_budget}" if level == "bab" else ""),
    }


def evaluate(W: np.ndarray, cfg: Config, test: tuple[np.ndarray, np.ndarray, np.ndarray],
             features: tuple[np.ndarray, np.ndarray], rng: np.random.Generator, *,
             backend: str | None = None, certify_level: str = CERTIFY_LEVEL,
             bab_budget: int = CERTIFY_BUDGET) -> dict:
    """E1–E5 of one trained W on a test set ``test`` = (X, y, patch_types), and
    V2 P2 (b)'s ``v_projected_flip_frac`` (``projected_flip_cases``; its case
    count as ``v_projected_flip_cases``).  E5 (``certified_numbers``) runs on the
    same test points as E2 at ``certify_level`` / ``bab_budget``; it draws no
    random numbers, so every E1–E4 number is what it was without it."""
    X, y, types = test
    U, V = features
    backend = _backend.resolve(backend)
    rc = robust_correct(W, X, y, V, cfg, rng, backend=backend)
    d1 = one_step_perturbation(W, X, y, cfg, backend=backend)
    dp = rc["X_pgd"] - X
    summ = coefficient_summary(W, U, V)
    out = {
        "clean_acc": accuracy(W, X, y, q=cfg.q, rho=cfg.rho, backend=backend),
        "robust_acc": float(rc["robust"].mean()),
        "robust_acc_pgd": float(rc["pgd"].mean()),
        "robust_acc_feature_attack": float(rc["feature"].mean()),
        "robust_acc_apgd_ce": None if rc["apgd_ce"] is None else float(rc["apgd_ce"].mean()),
        "robust_acc_apgd_dlr": None if rc["apgd_dlr"] is None else float(rc["apgd_dlr"].mean()),
        "gamma": summ["gamma"],
        "phi": summ["phi"],
        "gamma_pos": summ["gamma_pos"],
        "phi_pos": summ["phi_pos"],
        "gamma_j": summ["gamma_j"],
        "phi_j": summ["phi_j"],
        "alignment": alignment(d1, y, V, cfg.eps, cfg.norm, types, NONROBUST),
        "alignment_pgd": alignment(dp, y, V, cfg.eps, cfg.norm, types, NONROBUST),
        "alignment_robust_patches": alignment(d1, y, V, cfg.eps, cfg.norm, types, ROBUST),
        "responses": feature_responses(W, cfg, features, backend=backend),
    }
    out.update(certified_numbers(W, X, y, rc["robust"], cfg, level=certify_level, bab_budget=bab_budget))
    cases, still = projected_flip_cases(W, X, y, V, rc, cfg)
    out["v_projected_flip_frac"] = still / cases if cases else None
    out["v_projected_flip_cases"] = cases
    return out
