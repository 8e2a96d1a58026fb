"""R4: three lenses on robust vs non-robust feature learning on real images.

(a) Accuracy under attack across ε in the pixel box [0, 1]: the E2 worst case
    per point over the clean input, PGD (T2, E2a: K steps, γ = ε/4, random
    start, restarts) and APGD-CE / APGD-DLR (E2c, ``reffeat.apgd``), for a list
    of radii (``robust_eval``; each attack's own accuracy is reported beside the
    worst case at the headline ε).
(b) Ilyas et al. (2019) datasets.
    D_R  — "robust" dataset from the AT model by representation matching: for
           each target image x_t (label y_t), start from an independent image
           x_s of another class and minimise
               ½‖φ(x) − φ(x_t)‖² / ‖φ(x_t)‖²   over x ∈ [0, 1]^D
           by normalised projected gradient descent, with φ one of
             "hidden":  σ(⟨w_{j,r}, x_p⟩) for every (p, j, r)   (N1; the hidden layer)
             "logits":  F_j = Σ_r Σ_p σ(⟨w_{j,r}, x_p⟩)          (N3; per-class activations)
             "pre":     ⟨w_{j,r}, x_p⟩                           (patch-level pre-activations)
           and label the result y_t. Default "logits": the per-class activations
           are this network's bottleneck. The hidden layer is overcomplete
           (k·m units per d-dim patch, 500 vs 49 on MNIST), so matching it
           rebuilds the target image itself (seen on MNIST: D_R ≈ the targets,
           median relative residual 0.11), which says nothing about features.
    D_NR — "non-robust" dataset from the ST model: targeted PGD (T2 with the
           loss of a random target class t ≠ y descended) within ε, relabelled t.
    Reported: ST and AT accuracy on D_R and D_NR, and clean/robust test
    accuracy of fresh models trained (ST, R3) on D_R and on D_NR.
(c) Frequency: accuracy on low-pass and high-pass filtered test images. The
    mask is a disc of radius r (in integer frequency units, DC at 0) in the
    2-D DFT of each channel: low-pass keeps |f| ≤ r, high-pass keeps |f| > r.
    Filtered images are not clipped (high-pass images are zero-mean).
(d) Curves of (a)–(c) over epochs from the per-epoch weight snapshots.

Uses N1–N3 (activation, forward), the model's G3 machinery for ∇_x of the
matching loss (``model.forward_and_slopes`` + ``model.backward_x``), T2
(attack).  Every function takes ``backend=`` (see ``reffeat.backend``).
"""

from __future__ import annotations

import numpy as np

from ..activation import smoothed_relu_and_grad
from ..apgd import apgd, worst_case
from ..attacks import apgd_losses, attack
from ..model import backward_x, forward, forward_and_slopes, preactivations, predict
from .patches import through

REPS = ("hidden", "logits", "pre")
BATCH = 500


def _batches(n: int, size: int = BATCH):
    for b in range(0, n, size):
        yield slice(b, min(b + size, n))


def _inputs(view, A):
    """Network inputs of arrays in the map's space (the arrays themselves without a map)."""
    return A if view is None else view.inputs(A)


def predict_batched(W, X, q, rho, *, backend=None, view=None) -> np.ndarray:
    """argmax_j F_j per point, in batches; X in the space of ``view`` (R2 image map) if given."""
    out = np.empty(X.shape[0], dtype=np.int64)
    for s in _batches(X.shape[0]):
        out[s] = predict(W, _inputs(view, X[s]), q=q, rho=rho, backend=backend)
    return out


def accuracy(W, X, y, q, rho, *, backend=None, view=None) -> float:
    """E1 on given data: fraction with argmax_j F_j = y (X in the space of ``view`` if given)."""
    if not len(y):
        return float("nan")
    return float((predict_batched(W, X, q, rho, backend=backend, view=view) == y).mean())


def robust_accuracy(W, X, y, eps: float, *, q, rho, norm="linf", steps=10, step_size=None,
                    restarts=1, rng, clip=(0.0, 1.0), backend=None, view=None) -> float:
    """(a) accuracy under PGD-K (random start, ``restarts`` extra runs), γ = ε/4 by default.
    ``view``: the R2 image map (the attack acts on the image; see ``attacks.attack``)."""
    if eps == 0:
        return accuracy(W, X, y, q, rho, backend=backend, view=view)
    gamma = eps / 4 if step_size is None else step_size
    correct = 0
    for s in _batches(X.shape[0]):
        Xa = attack(W, X[s], y[s], q=q, rho=rho, eps=eps, norm=norm, steps=steps,
                    step_size=gamma, random_start=True, rng=rng, restarts=restarts, clip=clip,
                    backend=backend, view=view)
        correct += int((predict(W, _inputs(view, Xa), q=q, rho=rho, backend=backend) == y[s]).sum())
    return correct / len(y)


def robust_eval(W, X, y, eps: float, *, q, rho, norm="linf", steps=20, restarts=1,
                apgd_steps=100, rng, clip=(0.0, 1.0), cascade=False, view=None) -> dict:
    """(a), E2 on real images: per-point worst case over clean, PGD-K (γ = ε/4,
    random start, ``restarts`` extra runs), APGD-CE and APGD-DLR (``apgd_steps``
    iterations each, one run; DLR skipped for k < 3).

    Returns accuracies ``clean``, ``pgd``, ``apgd_ce``, ``apgd_dlr`` (each attack
    on every point; None if skipped) and ``robust`` (the per-point worst case),
    plus ``correct`` (n,) bool of the worst case. With ``cascade`` each attack
    runs only on the points that survived the ones before (same worst case,
    much cheaper; the per-attack numbers are then None). ``view``: the R2
    image map (X in its space; every attack acts on the image).
    """
    n = len(y)
    ok = predict_batched(W, X, q, rho, view=view) == y
    res = {"clean": float(ok.mean()) if n else float("nan"), "pgd": None, "apgd_ce": None,
           "apgd_dlr": None}
    if eps == 0:
        return dict(res, robust=res["clean"], correct=ok)
    per = {"clean": ok}

    def todo():
        return np.flatnonzero(worst_case(per)) if cascade else np.arange(n)

    idx = todo()
    got = np.zeros(len(idx), bool)
    for s in _batches(len(idx)):
        sel = idx[s]
        Xa = attack(W, X[sel], y[sel], q=q, rho=rho, eps=eps, norm=norm, steps=steps,
                    step_size=eps / 4, random_start=True, rng=rng, restarts=restarts, clip=clip,
                    view=view)
        got[s] = predict(W, _inputs(view, Xa), q=q, rho=rho) == y[sel]
    pg = np.zeros(n, bool)
    pg[idx] = got
    per["pgd"] = pg
    for loss in apgd_losses(W.shape[0]):
        idx = todo()
        a = np.zeros(n, bool)
        if len(idx):
            a[idx] = ~apgd(W, X[idx], y[idx], q=q, rho=rho, eps=eps, norm=norm, loss=loss,
                           steps=apgd_steps, rng=rng, clip=clip, view=view)[1]
        per[f"apgd_{loss}"] = a
    wc = worst_case(per)
    if not cascade:
        for key in ("pgd", "apgd_ce", "apgd_dlr"):
            if key in per:
                res[key] = float(per[key].mean())
    return dict(res, robust=float(wc.mean()), correct=wc)


def attack_description(steps, restarts, apgd_steps) -> str:
    """Words for figures and results: what the robust accuracy of (a) ran."""
    return (f"worst case per point of PGD-{steps} (γ=ε/4, random start, {restarts} restart(s)), "
            f"APGD-CE and APGD-DLR ({apgd_steps} it.), box [0,1]")


def accuracy_vs_eps(W, X, y, eps_list, **kw) -> list[float]:
    """(a) robust accuracy for each ε (ε = 0 is clean accuracy); ``kw`` as
    ``robust_accuracy`` (incl. ``backend``)."""
    return [robust_accuracy(W, X, y, float(e), **kw) for e in eps_list]


# ----------------------------------------------------------------- (b) D_R

def representation(W, X, q, rho, kind: str = "hidden", *, backend=None) -> np.ndarray:
    """φ(X) of (b): (n, P, k, m) for "hidden"/"pre", (n, k) for "logits" (N3)."""
    if kind == "logits":
        return forward(W, X, q=q, rho=rho, backend=backend)
    Z = preactivations(W, X, backend=backend)
    if kind == "pre":
        return Z
    S, _ = smoothed_relu_and_grad(Z, q, rho, overwrite=True)
    return S


def _rep_loss_grad(W, X, target_rep, q, rho, kind, backend=None):
    """(per-sample ½‖φ(x) − φ_t‖², ∇_x of it (n, P, d)), by the model's G3
    machinery: A = ∂loss/∂z (n, P, k, m), then ``backward_x`` (∇_x = A W).
    For "logits", ∂loss/∂F = φ(x) − φ_t takes the place of G1's logit − 1[j=y]."""
    if kind == "logits":
        F, Sp = forward_and_slopes(W, X, q, rho, backend=backend)
        R = F - target_rep
        loss = 0.5 * (R * R).sum(axis=1)
        A = Sp * R[:, None, :, None]
    else:
        Z = preactivations(W, X, backend=backend)
        if kind == "pre":
            A = Z - target_rep
            loss = 0.5 * (A * A).sum(axis=(1, 2, 3))
        else:
            S, Sp = smoothed_relu_and_grad(Z, q, rho, overwrite=True)
            R = S - target_rep
            loss = 0.5 * (R * R).sum(axis=(1, 2, 3))
            A = R * Sp
    return loss, backward_x(W, A)


def match_representation(W, X_target, X_start, *, q, rho, kind="logits", steps=200,
                         step_size=1.0, clip=(0.0, 1.0), backend=None, view=None):
    """(b) x minimising ½‖φ(x) − φ(x_t)‖² from x_s, by normalised projected GD.

    Step t moves by γ_t = step_size·(1 − t/steps) (linearly decaying) along
    −g/‖g‖₂ (per sample), then clips to the box; the best iterate is kept.
    Returns (X (n, P, d), relative residual ‖φ(x) − φ(x_t)‖/‖φ(x_t)‖ (n,)).
    ``view``: the R2 image map; X_target, X_start and X are then in its
    space (for a map that is not a permutation: images, stepped with the
    gradient folded back from the patches, boxed on the image).
    """
    view = through(view)
    if kind not in REPS:
        raise ValueError(f"kind must be one of {', '.join(REPS)} (got {kind!r})")
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1 (got {steps!r})")
    out = np.empty_like(X_target, dtype=np.float64)
    rel = np.empty(X_target.shape[0])
    for s in _batches(X_target.shape[0]):
        tgt = representation(W, _inputs(view, X_target[s]), q, rho, kind, backend=backend)
        norm_t = np.sqrt((tgt.reshape(len(tgt), -1) ** 2).sum(axis=1)) + 1e-12
        X = np.array(X_start[s], dtype=np.float64)
        best, best_loss = X.copy(), np.full(len(tgt), np.inf)
        axes = tuple(range(1, X.ndim))
        for t in range(steps + 1):
            loss, G = _rep_loss_grad(W, _inputs(view, X), tgt, q, rho, kind, backend)
            if view is not None:
                G = view.fold_like(G, X)                 # ∇ on the image (μ is a shift)
            better = loss < best_loss
            best[better], best_loss[better] = X[better], loss[better]
            if t == steps:
                break
            gn = np.sqrt((G * G).sum(axis=axes, keepdims=True))
            X = X - step_size * (1 - t / steps) * np.divide(G, gn, out=np.zeros_like(G), where=gn > 0)
            if clip is not None:
                np.clip(X, clip[0], clip[1], out=X)
        out[s] = best
        rel[s] = np.sqrt(2 * best_loss) / norm_t
    return out, rel


def build_robust_dataset(W_at, X, y, rng, *, q, rho, kind="logits", steps=200,
                         step_size=1.0, clip=(0.0, 1.0), X_pool=None, y_pool=None, backend=None,
                         view=None):
    """(b) D_R from the AT model: (X_R (n, P, d), y (n,), info dict).

    Targets are (X, y); start images are drawn from (X_pool, y_pool) (default:
    the same set) among those of another class. ``view``: the R2 image map
    (all arrays in its space; see ``match_representation``).
    """
    if X_pool is None:
        X_pool, y_pool = X, y
    if len(np.unique(y_pool)) < 2:
        raise ValueError("building D_R needs start images of at least two classes")
    idx = np.empty(len(y), dtype=np.int64)
    for i in range(len(y)):
        while True:
            j = int(rng.integers(len(y_pool)))
            if y_pool[j] != y[i]:
                idx[i] = j
                break
    XR, rel = match_representation(W_at, X, X_pool[idx], q=q, rho=rho, kind=kind,
                                   steps=steps, step_size=step_size, clip=clip, backend=backend,
                                   view=view)
    info = {"kind": kind, "steps": steps, "step_size": step_size,
            "rel_residual_median": float(np.median(rel)),
            "rel_residual_mean": float(np.mean(rel)),
            "start_label_agreement": float((y_pool[idx] == y).mean())}
    return XR, np.asarray(y).copy(), info


# ---------------------------------------------------------------- (b) D_NR

def build_nonrobust_dataset(W_st, X, y, k: int, rng, *, q, rho, eps, norm="linf", steps=20,
                            step_size=None, clip=(0.0, 1.0), backend=None, view=None):
    """(b) D_NR from the ST model: targeted PGD toward a random t ≠ y; label t.

    Returns (X_NR, t, info) with info["target_success"] the fraction the ST
    model classifies as t. ``view``: the R2 image map (X, X_NR in its space;
    the attack acts on the image).
    """
    t = (y + rng.integers(1, k, size=len(y))) % k        # uniform over the k−1 others
    gamma = 2.5 * eps / steps if step_size is None else step_size
    out = np.empty_like(X, dtype=np.float64)
    for s in _batches(X.shape[0]):
        out[s] = attack(W_st, X[s], y[s], q=q, rho=rho, eps=eps, norm=norm, steps=steps,
                        step_size=gamma, random_start=False, clip=clip, targets=t[s],
                        backend=backend, view=view)
    success = float((predict_batched(W_st, out, q, rho, backend=backend, view=view) == t).mean())
    return out, t, {"eps": eps, "norm": norm, "steps": steps, "step_size": gamma,
                    "target_success": success}


# ------------------------------------------------------------------- (c)

def fourier_filter(images: np.ndarray, radius: float, kind: str = "low") -> np.ndarray:
    """(c) low- or high-pass filter of images (N, H, W, C) with a disc of ``radius``."""
    if kind not in ("low", "high"):
        raise ValueError(f"kind must be 'low' or 'high' (got {kind!r})")
    if not np.isfinite(radius) or radius < 0:
        raise ValueError(f"radius must be a number >= 0 (got {radius!r})")
    N, H, W, C = images.shape
    fy = np.fft.fftfreq(H) * H
    fx = np.fft.fftfreq(W) * W
    dist = np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    mask = dist <= radius if kind == "low" else dist > radius
    spec = np.fft.fft2(images, axes=(1, 2))
    return np.real(np.fft.ifft2(spec * mask[None, :, :, None], axes=(1, 2)))


def filtered_accuracy(W, images, y, radii, *, p, q, rho, patchify, backend=None) -> dict:
    """(c) {"low": [...], "high": [...]} accuracies over ``radii``; ``patchify(images, p)``
    makes the network inputs (the run's image map: ``lambda x, p: view.to_input(x)``)."""
    out = {"radii": [float(r) for r in radii], "low": [], "high": []}
    for r in radii:
        for kind in ("low", "high"):
            Xf = patchify(fourier_filter(images, r, kind), p)
            out[kind].append(accuracy(W, Xf, y, q, rho, backend=backend))
    return out
