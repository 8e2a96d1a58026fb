"""T1 (standard training) and T3 (adversarial training), full-batch gradient
descent, with the C2 coefficients logged and the C4 decomposition of every step.

    T1  W^{t+1} = W^t − η ∇L_S(W^t)                      on clean data (ST)
    T3  W^{t+1} = W^t − η ∇_W (1/n) Σ_i ℓ(W^t; X_i^adv, y_i),  X^adv from T2 at W^t,
        held fixed (no gradient through the attack); option λ:
        loss (1−λ)·clean + λ·adversarial (default λ = 1).

``problem(cfg)`` draws everything a run needs from ``cfg.seed`` through the
named streams of ``reffeat.seeding`` (features, train set, test set, W^{(0)});
the attack noise of each mode has its own stream ("attack", mode), so ST and
AT of one seed share data and initial weights and nothing else.
The steps run through ``reffeat.loop.descend``, the one loop shared with
mini-batch training (R3): its objective (T3 with λ), its stop policy — NaN/inf,
divergence (objective > 1e6 or max |w| > 1e3), Ctrl-C — which keeps the last
good W and the history so far and records why in ``stopped``, and its
per-step callback (``train(..., callback=f)``).  ``trace=True`` adds the C5
trace (``reffeat.trace``) at every logged step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

import numpy as np

from . import seeding, stopping
from .attacks import attack, feature_attack_correct
from .constraints import MODES, Options, check
from .distribution import sample
from .features import make_features
from .loop import MAX_LOSS, MAX_WEIGHT, Step, chain, descend, logged_step, objective, objective_points
from .metrics import accuracy, coefficient_summary
from .model import init_weights, loss, predict
from .trace import Recorder

if TYPE_CHECKING:
    from .config import Config


@dataclass
class Problem:
    """Everything shared by the ST and AT runs of one seed."""
    cfg: object
    features: tuple          # (U, V), each (k, d)
    train: tuple             # (X, y, patch_types)
    test: tuple              # (X, y, patch_types)
    W0: np.ndarray           # (k, m, d)
    rngs: dict               # name -> Generator (reffeat.seeding streams)

    def eval_rng(self, mode: str) -> np.random.Generator:
        """A fresh E2 evaluation stream of this seed and ``mode`` ("st" or "at"):
        the generator ``python -m reffeat.run`` passes to ``evaluate``, so
        ``evaluate(W, cfg, prob.test, prob.features, prob.eval_rng(mode))``
        reproduces the command's numbers.  Each call starts the stream anew."""
        return eval_rng(self.cfg, mode)


def eval_rng(cfg, mode: str) -> np.random.Generator:
    """The E2 evaluation stream of ``cfg``'s seed and ``mode`` ("st" or "at"), the
    same in every caller (a fresh generator on each call)."""
    if mode not in ("st", "at"):
        raise ValueError(f"mode must be 'st' or 'at' (got {mode!r})")
    return seeding.rng(cfg.seed, "eval", mode)


def rng_streams(seed: int) -> dict:
    """The problem's named streams (features, train, test, init) of ``reffeat.seeding``."""
    return seeding.problem_streams(seed)


def problem(cfg: Config) -> Problem:
    """Draw features (F), train/test sets (D) and W^{(0)} (N4) from cfg.seed."""
    rngs = rng_streams(cfg.seed)
    feats = make_features(cfg, rngs["features"])
    tr = sample(cfg, cfg.n_train, rngs["train"], feats, return_patch_types=True)
    te = sample(cfg, cfg.n_test, rngs["test"], feats, return_patch_types=True)
    W0 = init_weights(cfg.k, cfg.m, cfg.d, cfg.sigma0, rngs["init"])
    return Problem(cfg, feats, tr, te, W0, rngs)


def check_problem(cfg, prob) -> None:
    """``cfg`` is a Config and ``prob`` (if given) a Problem drawn from a Config
    of the same seed and sizes: W0 (k, m, d), train (n_train, P, d), test
    (any n, P, d: a subset for the logs is allowed), features (k, d).  ValueError naming what differs: a
    Problem of another Config would be trained and labelled as this one."""
    from .config import Config
    if not isinstance(cfg, Config):
        raise ValueError(f"cfg must be a reffeat.Config (got {type(cfg).__name__}); "
                         "build one with Config(...) or Config.from_dict(...)")
    if prob is None:
        return
    if not isinstance(prob, Problem):
        raise ValueError(f"prob must be a Problem from reffeat.train.problem(cfg) or None "
                         f"(got {type(prob).__name__})")
    theirs = getattr(prob.cfg, "seed", None)
    if theirs != cfg.seed:
        raise ValueError(f"prob was drawn with seed {theirs}, cfg has seed {cfg.seed}: "
                         "pass problem(cfg) for this cfg")
    k, m, d, P = cfg.k, cfg.m, cfg.d, cfg.P
    # the test set only feeds the in-training logs and may be a subset (small_test_problem)
    n_te = np.shape(prob.test[0])[0] if np.ndim(prob.test[0]) == 3 else cfg.n_test
    want = {"W0": (k, m, d), "train X": (cfg.n_train, P, d), "test X": (n_te, P, d),
            "features U": (k, d), "features V": (k, d)}
    have = {"W0": np.shape(prob.W0), "train X": np.shape(prob.train[0]), "test X": np.shape(prob.test[0]),
            "features U": np.shape(prob.features[0]), "features V": np.shape(prob.features[1])}
    for name, shape in want.items():
        if tuple(have[name]) != shape:
            raise ValueError(f"prob does not match cfg: its {name} has shape {tuple(have[name])}, "
                             f"cfg needs {shape} (k, m, d, P, n_train, n_test): pass problem(cfg)")
    if isinstance(prob.cfg, Config):
        diff = sorted(f for f, v in prob.cfg.to_dict().items()
                      if f in _PROBLEM_FIELDS and cfg.to_dict().get(f) != v)
        if diff:
            raise ValueError(f"prob was drawn from a Config with other {', '.join(diff)}: pass problem(cfg)")


#: the Config fields a Problem is drawn from (features, data, W0) — all but training and evaluation
_TRAIN_FIELDS = {"q", "rho", "eta", "T", "norm", "eps", "K", "ascent_step", "random_start", "ascent", "lam", "eval_K",
                 "eval_ascent_step", "eval_restarts", "eval_apgd_K", "log_every", "log_test"}


class _ProblemFields:
    def __contains__(self, f) -> bool:
        return f not in _TRAIN_FIELDS


_PROBLEM_FIELDS = _ProblemFields()


@dataclass
class TrainResult:
    """What one training run produced (kept even when it stopped early).

    history: per logged step — step, loss (objective at the step's points),
      clean_loss (train), train_acc, clean_acc (test), robust_acc_cheap (test,
      the cheap in-training check: survives FGSM and the E2b feature attack —
      not E2's robust accuracy), gamma, phi, gamma_pos, phi_pos (C2); logged at
      ``loop.logged_step`` (every log_every steps, and 0, 1, 2, 4, 8, …).
    extra: max_loss / max_loss_step — the largest per-step objective (spikes
      between logged steps show here; AT at large η is unstable).
    c4_gamma, c4_phi: (steps, 2, 3, k, m) — C4 parts of every step.
    """
    mode: str
    W0: np.ndarray
    W: np.ndarray
    history: dict
    c4_gamma: np.ndarray
    c4_phi: np.ndarray
    steps_done: int
    stopped: str | None = None
    wall_time: float = 0.0
    extra: dict = field(default_factory=dict)


    trace: object = None     # reffeat.trace.Trace when trained with trace=True (C5)
def _log_keys():
    return ["step", "loss", "clean_loss", "train_acc", "clean_acc", "robust_acc_cheap",
            "gamma", "phi", "gamma_pos", "phi_pos"]


def adversarial_examples(W, X, y, cfg, rng) -> np.ndarray:
    """T2 with the training threat of cfg (norm, ε, K, γ, random start, ascent)."""
    return attack(W, X, y, q=cfg.q, rho=cfg.rho, eps=cfg.eps, norm=cfg.norm, steps=cfg.K,
                  step_size=cfg.step_size, random_start=cfg.random_start, rng=rng,
                  ascent=cfg.ascent)


def train(cfg: Config, mode: str, prob: Problem | None = None, W0: np.ndarray | None = None,
          progress: TextIO | None = None, track_c4: bool = True,
          callback: Callable[[Step], object] | None = None, trace: bool = False,
          max_loss: float = MAX_LOSS, max_weight: float = MAX_WEIGHT) -> TrainResult:
    """T1 (mode "st") or T3 (mode "at") for cfg.T steps of full-batch GD.

    ``prob`` (from ``problem(cfg)``) supplies data, W^{(0)} and random streams;
    built from cfg.seed when omitted. ``progress``: a file (e.g. sys.stderr)
    for one line per logged step, or None.  ``callback(step)`` is called after
    every completed step with a ``loop.Step`` (t, W^{(t)}, the points the step
    was taken at, the objective, its gradient, W^{(t+1)}).  ``trace=True``
    records the C5 trace at every logged step (``result.trace``, a
    ``reffeat.trace.Trace``).  The stop policy (non-finite values, divergence
    beyond ``max_loss`` / ``max_weight``, Ctrl-C) is ``reffeat.loop``'s.
    """
    check("mode", mode, Options(MODES))
    check_problem(cfg, prob)
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be a function of one loop.Step or None (got {type(callback).__name__})")
    t0 = time.perf_counter()
    prob = problem(cfg) if prob is None else prob
    U, V = prob.features
    X, y, types = prob.train
    Xte, yte, _ = prob.test
    W = (prob.W0 if W0 is None else W0).copy()
    W_start = W.copy()
    # attack noise: a fresh stream per mode so ST and AT do not share state
    atk_rng = seeding.rng(cfg.seed, "attack", mode)
    q, rho, eta = cfg.q, cfg.rho, cfg.eta
    hist: dict[str, list] = {key: [] for key in _log_keys()}
    c4g, c4p = [], []

    def adversary(W, X, y):
        return adversarial_examples(W, X, y, cfg, atk_rng)

    def points(W):
        """The (inputs, weight) pairs of this step's objective (T1 / T3 with λ)."""
        return objective_points(W, X, y, mode, cfg.lam, adversary if cfg.eps > 0 else None)

    def log(t, W, obj):
        summ = coefficient_summary(W, U, V)
        clean_loss = obj if mode == "st" else loss(W, X, y, q=q, rho=rho)
        Xf = attack(W, Xte, yte, q=q, rho=rho, eps=cfg.eps, norm=cfg.norm, steps=1)
        rob = (predict(W, Xf, q=q, rho=rho) == yte) & feature_attack_correct(
            W, Xte, yte, V, q=q, rho=rho, eps=cfg.eps, norm=cfg.norm)
        row = {"step": t, "loss": obj, "clean_loss": clean_loss,
               "train_acc": accuracy(W, X, y, q=q, rho=rho),
               "clean_acc": accuracy(W, Xte, yte, q=q, rho=rho), "robust_acc_cheap": float(rob.mean()),
               "gamma": summ["gamma"], "phi": summ["phi"],
               "gamma_pos": summ["gamma_pos"], "phi_pos": summ["phi_pos"]}
        for key in hist:
            hist[key].append(int(row[key]) if key == "step" else float(row[key]))
        if progress is not None:
            # .5g: a diverging run's objective (up to the stop policy's bound) stays one short number
            print(f"[{mode}] step {t:5d}  train loss {obj:.5g}  test acc {row['clean_acc']:.3f}  "
                  f"test rob (FGSM+feature, cheap) {row['robust_acc_cheap']:.3f}  "
                  f"Γ {row['gamma']:.4f}  Φ {row['phi']:.4f}", file=progress, flush=True)

    peak = [-np.inf, -1]                    # largest per-step objective and its step

    def evaluate_step(t, W):
        stopping.check()                    # a safe point: a requested stop is raised here
        pts = points(W)
        obj, G, c4 = objective(W, pts, y, q, rho, (types, U, V, eta) if track_c4 else None)
        if obj > peak[0]:
            peak[:] = [obj, t]
        if logged_step(t, cfg.log_every):
            log(t, W, obj)
        return {"points": pts, "y": y, "loss": obj, "grad": G, "extra": {"c4": c4}}

    def keep_c4(step):
        if track_c4:
            c4g.append(step.extra["c4"][0])
            c4p.append(step.extra["c4"][1])

    recorder = Recorder(cfg.log_every) if trace else None
    W, t, stopped = descend(W, range(cfg.T), evaluate_step, lambda W, G: W - eta * G,
                            callback=chain(keep_c4, recorder, callback), max_loss=max_loss,
                            max_weight=max_weight)
    # final log at the returned W (unless that step is already logged)
    if stopped is None or not stopped.startswith("non-finite"):
        if not hist["step"] or hist["step"][-1] != t:
            log(t, W, objective(W, points(W), y, q, rho)[0])
    if stopped and progress is not None:
        print(f"[{mode}] stopped: {stopped}", file=progress, flush=True)
    c4g, c4p = c4g[:t], c4p[:t]          # a step interrupted mid-way is not counted
    k, m = cfg.k, cfg.m
    empty = np.zeros((0, 2, 3, k, m))
    tr = recorder.finish(t, W, W_start, U, V, X) if recorder is not None else None
    return TrainResult(
        mode=mode, W0=prob.W0.copy() if W0 is None else np.array(W0), W=W, history=hist,
        c4_gamma=np.array(c4g) if c4g else empty, c4_phi=np.array(c4p) if c4p else empty,
        steps_done=t, stopped=stopped, wall_time=time.perf_counter() - t0,
        extra={"max_loss": float(peak[0]), "max_loss_step": int(peak[1])}, trace=tr,
    )
