"""R3: mini-batch ST / AT on real images, with checkpoints.

    R3  mini-batch SGD: the full-batch rules T1 (ST) and T3 (AT) applied to one
        shuffled batch B at a time,
            W ← W − η ∇_W (1/|B|) Σ_{i∈B} [(1−λ) ℓ(W; X_i, y_i) + λ ℓ(W; X_i^adv, y_i)]
        with X^adv from T2 at the current W (one-step FGSM/FGM by default — the
        paper's algorithm — or PGD-K), clipped to the pixel box [0, 1]; ST is λ=0.

Uses N3 (forward), G2 (grad_w), T2 (attack), L3 (loss) on the R2 patches of
``reffeat.real.patches``. Without an image map (or with one that is a
permutation: t = p, no centring) the data are patches: patch space and image
space are related by a permutation of coordinates, so ℓ∞ and ℓ2 balls (and
the [0, 1] box) are the same in both and the attacks run on the patches.
With an ``ImageMap`` that is not a permutation (stride t < p, or centring)
the data are images (n, H, W, C): the attack acts on the image (gradient
folded back from the patches), and each step's points go through the map,
X = patchify(x − μ, p, t), before G2.

Every epoch a checkpoint (W, epoch, RNG state, history, per-epoch W snapshots)
is written atomically; ``resume=True`` continues from it. Ctrl-C stops after
the current batch and returns what was done (``stopped="interrupted"``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path

import numpy as np

from .. import seeding, stopping
from ..attacks import attack
from ..constraints import (
    DTYPES,
    MODES,
    OPTIMIZERS,
    Boolean,
    Box,
    Field,
    Interval,
    NoneOr,
    Options,
    check,
    check_fields,
    check_labels,
    reject_unknown_keywords,
)
from ..constraints import IMAGE_NORMS as NORMS
from ..loop import MAX_LOSS, MAX_WEIGHT, chain, descend, objective, objective_points
from ..model import init_weights, predict
from ..output import atomic_savez, strict_json
from .patches import through

#: learning-rate schedules: η_t = η ("constant") or η·½(1 + cos(π t / T_total)) ("cosine",
#: t the update count, T_total = epochs × batches per epoch: decays to 0 at the last update)
LR_SCHEDULES = ("constant", "cosine")
_K = Interval(Integral, 2)
#: start of the one-step (K = 1) AT attack: the clean point (the paper's FGSM) or a
#: uniform random point of the ball with step γ = 1.25ε (T2's random-start option;
#: Wong et al. 2020's "FGSM-RS", which avoids catastrophic overfitting)
ONE_STEP_STARTS = ("clean", "random")


# ------------------------------------------------------------ R3 training

@reject_unknown_keywords
@dataclass(frozen=True)
class ImageTrainConfig:
    """Parameters of R3 mini-batch training (validated on construction).

    mode "st" | "at"; epochs; batch_size; lr η; optimizer "sgd" (the R3 rule,
    with optional heavy-ball ``momentum``) or "adam" (per-coordinate step sizes,
    β = (0.9, 0.999)); lr_schedule "constant" | "cosine" (see LR_SCHEDULES);
    m filters per class; sigma0 (N4);
    q, rho (N1); threat: norm "linf" | "l2", eps, attack_steps K (1 = FGSM/FGM),
    attack_step_size γ (None: ε for K=1, 2.5ε/K for PGD), random_start (PGD
    starts uniformly in the ball; K = 1 always starts at x, the paper's FGSM); lam λ (AT loss
    mix); clip box (lo, hi); seed;
    dtype "float64" (default) | "float32": the precision training runs in — the
    fast kernels' float32 path makes an MNIST/CIFAR-sized AT step ~1.5–2.0×
    faster and moves one update by ~2–4e-7 relative (``python -m reffeat.bench``);
    evaluation stays float64.
    """
    mode: str = "st"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    optimizer: str = "sgd"
    momentum: float = 0.0
    m: int = 50
    sigma0: float = 0.1
    q: float = 2.0
    rho: float = 1.0
    norm: str = "linf"
    eps: float = 0.1
    attack_steps: int = 1
    attack_step_size: float | None = None
    random_start: bool = True
    lam: float = 1.0
    clip: tuple = (0.0, 1.0)
    seed: int = 0
    dtype: str = "float64"
    lr_schedule: str = "constant"
    one_step_start: str = "clean"

    def __post_init__(self):
        check_fields(self, IMAGE_FIELDS)

    @property
    def step_size(self) -> float:
        if self.attack_step_size is not None:
            return self.attack_step_size
        if self.attack_steps == 1:
            return 1.25 * self.eps if self.one_step_start == "random" else self.eps
        gamma = 2.5 * self.eps / self.attack_steps
        # 2.5ε overflows for ε > 7e307: ε·(2.5/K) is finite for every finite ε
        return gamma if math.isfinite(gamma) else self.eps * (2.5 / self.attack_steps)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["clip"] = list(self.clip) if self.clip is not None else None
        return d


#: ImageTrainConfig's constraints and meanings (``reffeat.constraints``); the
#: ``run real`` options of the same names use these very objects.
IMAGE_FIELDS = {
    "mode": Field(Options(MODES), "st (R3 with λ = 0) or at"),
    "epochs": Field(Interval(Integral, 1), "passes over the training set"),
    "batch_size": Field(Interval(Integral, 1), "images per mini-batch"),
    "lr": Field(Interval(Real, 0, closed="neither"), "learning rate η"),
    "optimizer": Field(Options(OPTIMIZERS), "sgd (the R3 rule, optional momentum) or adam"),
    "momentum": Field(Interval(Real, 0, 1, closed="left"), "SGD heavy-ball momentum"),
    "m": Field(Interval(Integral, 1), "filters per class (N3)"),
    "sigma0": Field(Interval(Real, 0, closed="neither"), "initial weight scale σ_0 (N4)"),
    "q": Field(Interval(Real, 1), "smoothed-ReLU power q (N1)"),
    "rho": Field(Interval(Real, 0, closed="neither"), "smoothed-ReLU knee ρ (N1)"),
    "norm": Field(Options(NORMS), "threat norm (T2; l2 of the whole image)"),
    "eps": Field(Interval(Real, 0), "threat radius ε, pixels in [0, 1]"),
    "attack_steps": Field(Interval(Integral, 1), "AT attack steps K (1 = FGSM, the paper's algorithm)"),
    "attack_step_size": Field(NoneOr(Interval(Real, 0, closed="neither")),
                              "AT attack step (none: eps for K = 1, 2.5 eps/K for PGD)"),
    "random_start": Field(Boolean(), "PGD (K > 1) starts uniformly in the ball"),
    "lam": Field(Interval(Real, 0, 1), "AT loss mix λ"),
    "clip": Field(Box(), "pixel box of adversarial images"),
    "seed": Field(Interval(Integral, 0, 2**32 - 1), "seed of W0, batch order and attack starts"),
    "dtype": Field(Options(DTYPES), "training precision (evaluation stays float64)"),
    "lr_schedule": Field(Options(LR_SCHEDULES), "constant, or cosine decay to 0 over all updates"),
    "one_step_start": Field(Options(ONE_STEP_STARTS),
                            "one-step AT from the clean point (FGSM) or a random start (step 1.25 eps)"),
}


@dataclass
class ImageTrainResult:
    """W (k, m, d); snapshots: W after each epoch (epochs, k, m, d), with W0 first;
    history: per-epoch lists (epoch, loss — the objective averaged over the
    epoch's batches, train_acc — clean accuracy on a fixed subset of ≤ 1000
    training points after the epoch, seconds); stopped: None |
    "interrupted" | "nan" | "diverged" (reffeat.loop's stop policy)."""
    config: ImageTrainConfig
    W: np.ndarray
    snapshots: np.ndarray
    history: dict
    epochs_done: int
    stopped: str | None = None
    wall_time: float = 0.0
    extra: dict = field(default_factory=dict)


def _rngs(seed: int):
    """R3's streams (W⁽⁰⁾, batch order, attack starts) from ``reffeat.seeding``."""
    return tuple(seeding.rng(seed, name) for name in ("real-init", "real-shuffle", "real-attack"))


def adversarial_batch(W, X, y, cfg: ImageTrainConfig, rng, view=None) -> np.ndarray:
    """T2 at the current W for one batch, with the pixel box (on the image
    through the R2 map ``view``, if given)."""
    return attack(W, X, y, q=cfg.q, rho=cfg.rho, eps=cfg.eps, norm=cfg.norm,
                  steps=cfg.attack_steps, step_size=cfg.step_size,
                  random_start=(cfg.random_start and cfg.attack_steps > 1)
                  or (cfg.attack_steps == 1 and cfg.one_step_start == "random"),
                  rng=rng, clip=tuple(cfg.clip) if cfg.clip is not None else None, view=view)


class _Optimizer:
    """The update rule: SGD W ← W − η(G + μ·velocity) (plain R3 rule at μ=0) or Adam."""

    def __init__(self, cfg: ImageTrainConfig, shape, total_steps: int = 1):
        self.cfg = cfg
        self.t = 0
        self.total = max(1, int(total_steps))
        self.M = np.zeros(shape, dtype=cfg.dtype)
        self.V = np.zeros(shape if cfg.optimizer == "adam" else 0, dtype=cfg.dtype)

    def step(self, W, G):
        c = self.cfg
        self.t += 1
        return self._update(W, G).astype(c.dtype, copy=False)   # W keeps the working dtype

    @property
    def lr(self) -> float:
        """η of update number t (1-based) under the schedule."""
        c = self.cfg
        if c.lr_schedule == "cosine":
            return c.lr * 0.5 * (1.0 + math.cos(math.pi * min(self.t - 1, self.total) / self.total))
        return c.lr

    def _update(self, W, G):
        c = self.cfg
        lr = self.lr
        if c.optimizer == "sgd":
            if c.momentum == 0:
                return W - lr * G
            self.M = c.momentum * self.M + G
            return W - lr * self.M
        b1, b2 = 0.9, 0.999
        self.M = b1 * self.M + (1 - b1) * G
        self.V = b2 * self.V + (1 - b2) * G * G
        mh = self.M / (1 - b1 ** self.t)
        vh = self.V / (1 - b2 ** self.t)
        return W - lr * mh / (np.sqrt(vh) + 1e-8)

    def set_state(self, state, arrays):
        self.t = int(state["t"])
        self.M, self.V = (a.astype(self.cfg.dtype, copy=False) for a in arrays)


def data_fingerprint(X, y, k, view=None) -> str:
    """SHA-256 of the training data and of the R2 map that makes the network's
    inputs from it (p, t, μ; none for a map-less or permutation run, as before
    the map existed), so a checkpoint is never resumed on other data."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(X, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    h.update(str((X.shape, int(k))).encode())
    if through(view) is not None:
        h.update(view.fingerprint())
    return h.hexdigest()


def _save_checkpoint(path: Path, W, snapshots, history, epoch, rng_states, cfg, wall, opt,
                     fingerprint, view=None) -> None:
    path = Path(path)
    meta = {"epoch": epoch, "history": history, "rng_states": rng_states,
            "config": cfg.to_dict(), "wall_time": wall, "opt_state": {"t": opt.t},
            "data_sha256": fingerprint}
    extra = {}
    if view is not None:                  # the R2 map the weights read their inputs through
        meta["image_map"] = view.to_dict()
        if view.mean is not None:
            extra["mean"] = view.mean
    atomic_savez(path, W=W, snapshots=np.asarray(snapshots), opt_M=opt.M, opt_V=opt.V,
                 meta=np.array(strict_json(meta)), **extra)


def load_checkpoint(path) -> dict:
    """A checkpoint written by ``train_images``: W, snapshots, epoch, history, ...,
    and for a run through an R2 image map its ``image_map`` (p, t, ...) and
    ``mean`` μ (H, W, C) (None without centring).

    ValueError naming the file and what is wrong with it (not an .npz archive,
    truncated, an entry missing, a meta record that is not this project's)."""
    import zipfile
    hint = "remove it or drop --resume"
    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise ValueError("it is a single array, not a checkpoint archive")
            missing = [e for e in ("meta", "W", "snapshots", "opt_M", "opt_V") if e not in z.files]
            if missing:
                raise ValueError(f"it has no {', '.join(missing)} (not a checkpoint of this project)")
            meta = json.loads(str(z["meta"]))
            if not isinstance(meta, dict):
                raise ValueError("its meta record is not a JSON object")
            absent = [e for e in ("epoch", "history", "rng_states", "config", "wall_time",
                                  "opt_state") if e not in meta]
            if absent:
                raise ValueError(f"its meta record lacks {', '.join(absent)}")
            meta["W"] = z["W"].copy()
            meta["snapshots"] = z["snapshots"].copy()
            meta["opt_arrays"] = (z["opt_M"].copy(), z["opt_V"].copy())
            meta["mean"] = z["mean"].copy() if "mean" in z.files else None
    except ValueError as exc:
        msg = str(exc)
        if "pickle" in msg or "load" in msg.lower() and "file" in msg.lower():
            msg = "not an .npz archive of arrays"
        raise ValueError(f"checkpoint {path}: {msg}; {hint}") from None
    except (zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise ValueError(f"checkpoint {path} is truncated or not a whole .npz archive "
                         f"({type(exc).__name__}); {hint}") from None
    except OSError as exc:
        raise ValueError(f"checkpoint {path} cannot be read ({exc.strerror or exc}); {hint}") from None
    return meta


def check_resume(path, cfg: ImageTrainConfig, fingerprint: str | None = None) -> dict:
    """Everything a resume from checkpoint ``path`` needs, checked before any work:
    the file is whole (``load_checkpoint``), written with the same config (only
    the number of epochs may change) and, when ``fingerprint`` is given, on
    the same data.  Returns the loaded checkpoint; ValueError naming the file."""
    ck = load_checkpoint(path)
    if fingerprint is not None and ck.get("data_sha256") != fingerprint:
        raise ValueError(f"checkpoint {path} was trained on other data "
                         f"(fingerprint differs); remove it or drop --resume")
    if not isinstance(ck["config"], dict):
        raise ValueError(f"checkpoint {path}: its config is not a record; remove it or drop --resume")
    mine = {k_: v for k_, v in cfg.to_dict().items() if k_ != "epochs"}
    theirs = {k_: v for k_, v in ck["config"].items() if k_ != "epochs"}
    theirs.setdefault("dtype", "float64")          # checkpoints from before the option
    theirs.setdefault("lr_schedule", "constant")
    theirs.setdefault("one_step_start", "clean")
    if mine != theirs:  # only the number of epochs may change (extend a run)
        diff = sorted(k_ for k_ in mine if mine[k_] != theirs.get(k_))
        raise ValueError(f"checkpoint {path} was written with a different config "
                         f"({', '.join(diff)}); remove it or drop --resume")
    return ck


def train_images(X: np.ndarray, y: np.ndarray, k: int, cfg: ImageTrainConfig, *,
                 W0: np.ndarray | None = None, checkpoint=None, resume: bool = False,
                 progress=None, label: str = "", callback=None, max_loss: float = MAX_LOSS,
                 max_weight: float = MAX_WEIGHT, view=None) -> ImageTrainResult:
    """R3: mini-batch SGD for ST (cfg.mode="st") or AT ("at") on patches X (n, P, d)
    — or, with an R2 image map ``view`` (``ImageMap``), on X in the map's space
    (images (n, H, W, C) unless the map is a permutation; see the module docstring).

    The steps run through ``reffeat.loop.descend`` (the objective with λ and
    the stop policy of full-batch training; ``callback(step)`` after every
    batch step, t counted over all epochs).  On NaN/inf or divergence the
    weights of the last completed epoch are kept (``stopped`` "nan" or
    "diverged", the reason in ``extra["stop_reason"]``).

    W0 defaults to N4 with ``cfg.sigma0`` drawn from the seed's init stream, so
    ST and AT runs of one seed start from the same weights. ``progress`` is a
    stream for the per-epoch line (stderr by default; False for none).
    """
    X = np.asarray(X, dtype=cfg.dtype)
    y = np.asarray(y)
    view = through(view)
    inputs = (lambda A: A) if view is None else view.inputs
    if view is not None:
        if X.ndim != 4 or X.shape[1:] != view.shape:
            raise ValueError(f"X must be images of shape (n, {', '.join(map(str, view.shape))}) "
                             f"for the image map (got {X.shape})")
    elif X.ndim != 3:
        raise ValueError(f"X must be patches of shape (n, P, d) (got {X.shape})")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},) (got {y.shape})")
    check("k", k, _K)
    check_labels("y", y, X.shape[0], k)
    stream = sys.stderr if progress is None else progress
    n = X.shape[0]
    d = X.shape[2] if view is None else view.d
    r_init, r_shuf, r_att = _rngs(cfg.seed)
    W = init_weights(k, cfg.m, d, cfg.sigma0, r_init) if W0 is None else np.array(W0, dtype=np.float64)
    W = W.astype(cfg.dtype, copy=False)      # W0 is drawn in float64 either way: same start
    if W.shape != (k, cfg.m, d):
        raise ValueError(f"W0 must have shape {(k, cfg.m, d)} (got {W.shape})")
    opt = _Optimizer(cfg, W.shape, cfg.epochs * -(-n // cfg.batch_size))
    # clean training accuracy is measured on a fixed subset (a full pass costs a forward per batch)
    monitor = seeding.rng(cfg.seed, "real-monitor").permutation(n)[:min(n, 1000)]
    snapshots = [W.copy()]
    history: dict[str, list] = {"epoch": [], "loss": [], "train_acc": [], "seconds": []}
    start_epoch, wall0 = 0, 0.0
    fingerprint = data_fingerprint(X, y, k, view)
    if resume and checkpoint is not None and Path(checkpoint).is_file():
        ck = check_resume(checkpoint, cfg, fingerprint)
        W, snapshots = ck["W"].astype(cfg.dtype, copy=False), list(ck["snapshots"])
        opt.set_state(ck["opt_state"], ck["opt_arrays"])
        history, start_epoch, wall0 = ck["history"], ck["epoch"], ck["wall_time"]
        r_shuf.bit_generator.state = ck["rng_states"]["shuffle"]
        r_att.bit_generator.state = ck["rng_states"]["attack"]
        if stream:
            print(f"[{label}] resumed from {checkpoint} at epoch {start_epoch}", file=stream)
    t_start = time.perf_counter()
    stopped = None
    epoch = start_epoch
    nb = -(-n // cfg.batch_size)                       # batches per epoch
    adversary = (lambda W, Xb, yb: adversarial_batch(W, Xb, yb, cfg, r_att, view)) if cfg.eps > 0 else None
    try:
        for epoch in range(start_epoch + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
            order = r_shuf.permutation(n)
            tot = [0.0]

            def evaluate(t, W, order=order, epoch=epoch):
                stopping.check()                 # a safe point between batches
                b = (t - (epoch - 1) * nb) * cfg.batch_size
                idx = order[b:b + cfg.batch_size]
                Xb, yb = X[idx], y[idx]
                pts = objective_points(W, Xb, yb, cfg.mode, cfg.lam, adversary)
                if view is not None:             # images (clean / adversarial) -> network inputs
                    pts = [(inputs(A), wgt) for A, wgt in pts]
                La, G, _ = objective(W, pts, yb, cfg.q, cfg.rho)
                return {"points": pts, "y": yb, "batch": idx, "loss": La, "grad": G}

            def add_loss(step, tot=tot):
                tot[0] += step.loss * len(step.batch)

            W, done, why = descend(W, range((epoch - 1) * nb, epoch * nb), evaluate, opt.step,
                                   callback=chain(add_loss, callback), max_loss=max_loss,
                                   max_weight=max_weight)
            if why is not None and why.startswith("interrupted"):
                raise KeyboardInterrupt
            if why is not None:
                stopped = "nan" if why.startswith("non-finite") else "diverged"
                reason = why
                epoch -= 1
                W = snapshots[-1]  # the last completed epoch
                break
            tot_loss = tot[0]
            acc = float((predict(W, inputs(X[monitor]), q=cfg.q, rho=cfg.rho) == y[monitor]).mean())
            secs = time.perf_counter() - t0
            history["epoch"].append(epoch)
            history["loss"].append(tot_loss / n)
            history["train_acc"].append(acc)
            history["seconds"].append(secs)
            snapshots.append(W.copy())
            if stream:
                what = "adversarial" if cfg.mode == "at" else "clean"
                print(f"[{label or cfg.mode}] epoch {epoch}/{cfg.epochs}  {what} loss {tot_loss / n:.4f}  "
                      f"clean train acc {acc:.3f}  {secs:.1f}s",
                      file=stream, flush=True)
            if checkpoint is not None:
                states = {"shuffle": r_shuf.bit_generator.state, "attack": r_att.bit_generator.state}
                _save_checkpoint(checkpoint, W, snapshots, history, epoch, states, cfg,
                                 wall0 + time.perf_counter() - t_start, opt, fingerprint, view)
    except KeyboardInterrupt:
        stopped = "interrupted"
        epoch = len(history["epoch"]) and history["epoch"][-1]
        W = snapshots[-1]  # the last completed epoch
        if stream:
            print(f"[{label or cfg.mode}] interrupted; keeping {epoch} completed epoch(s)",
                  file=stream, flush=True)
    extra = {}
    if stopped in ("nan", "diverged"):
        extra["stop_reason"] = reason
        if stream:
            print(f"[{label or cfg.mode}] stopped: {reason}; keeping {epoch} completed epoch(s)",
                  file=stream, flush=True)
    return ImageTrainResult(cfg, W, np.asarray(snapshots), history, epoch, stopped,
                            wall0 + time.perf_counter() - t_start, extra)
