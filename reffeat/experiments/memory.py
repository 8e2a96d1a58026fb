"""Peak-memory estimates of the experiments, computed from their configs
before anything is allocated (the commands and verify check them against
the machine's memory, ``cli.common.check_memory``)."""

from __future__ import annotations

import math
import os
from collections.abc import Collection

from ..config import Config
from ..train import MODES


def evaluation(cfg: Config) -> int:
    """Bytes one ``metrics.evaluate`` (E1–E5 and V2 P2 (b)) of ``cfg.n_test``
    points holds at its peak, beyond the test inputs themselves: the attacks'
    kept results (PGD's and APGD-CE/-DLR's adversarial inputs, the one-step and
    PGD perturbations: ~5 copies of the test inputs) plus the largest working
    set of one stage —

    * E5 (``certify_bounds``, level bab, budget 4) on the Q = (k−1)·n_test·P
      (point, target, patch) triples of Qp = (k−1)·n_test pairs:
      4.5·Q·d + 18·Q·m + 2·Qp·m·d floats.  Fitted (non-negative least squares,
      then rounded up ~10%) to tracemalloc peaks of six configs
      (k 3–8, n_test 500–1000, P 8–32, d 19–260, m 4–64; fit within 7%);
    * E2a PGD with restarts: ~5 copies of the test inputs (measured 4.1–5.2);
    * E2c APGD (batches of 500, ``apgd.apgd``): its result (one copy), ~12
      batch-sized working arrays (X, iterate, best, gradients, momentum, …)
      and the two loss traces of ``eval_apgd_K`` + 1 rows per batch.

    Checked against ``evaluate`` itself: k = 4, n_test = 3000, P = 16, d = 68,
    m = 8: measured 649 MB, this estimate 5·26 + 519 MB of measured E5 parts."""
    f = 8
    n, P, d, m, k = cfg.n_test, cfg.P, cfg.d, cfg.m, cfg.k
    X = n * P * d * f
    pairs = (k - 1) * n
    e5 = (4.5 * pairs * P * d + 18 * pairs * P * m + 2 * pairs * m * d) * f
    pgd = 5 * X
    batch = min(n, 500)                     # apgd.apgd's batch: its loss traces are (steps + 1, batch)
    apgd = (X + 12 * batch * P * d * f + 2 * (cfg.eval_apgd_K + 1) * batch * f) if cfg.eval_apgd_K else 0
    return int(5 * X + max(e5, pgd, apgd))


def synthetic(cfg: Config, modes: Collection[str] = MODES, trace: bool = False) -> int:
    """Bytes a ``run_seed`` of ``cfg`` needs at its peak: the train and test
    inputs (float64) and patch types; the larger of the attack's working copies
    during AT training (measured with tracemalloc: ~2.6 copies of the training
    inputs, n_train 3000, P 16, d 68; taken as 2.75) and one evaluation (:func:`evaluation`: E2's attacks incl. APGD's
    buffers, E5's certifier); ~20 copies of W (W, W0, gradient, the kernels'
    slot partials, snapshots); the per-step C4 parts of every mode; and the
    kernels' chunk buffers.  With ``trace`` (C5, ``--trace``) also the traced weights of every
    logged step (L = T/log_every + 2 of them, per mode, plus four working
    copies), the training noise ξ (n_train·P·d twice), the noise basis
    (d × min(d, n_train·P)) and the ζ coefficients (3·L·k·m·n_train·P)."""
    from .. import kernels
    from ..model import get_backend
    f = 8
    n_all = cfg.n_train + cfg.n_test
    X_train = cfg.n_train * cfg.P * cfg.d * f
    X_test = cfg.n_test * cfg.P * cfg.d * f
    types = n_all * cfg.P * f
    W = cfg.k * cfg.m * cfg.d * f
    c4 = 2 * len(modes) * cfg.T * 6 * cfg.k * cfg.m * f
    work = max(2.75 * X_train, evaluation(cfg))
    chunks = 4 * kernels.CHUNK_BYTES * min(kernels.SLOTS, os.cpu_count() or 1)   # chunk buffers per thread
    chunks += kernels.PER_SLOT_BYTES                # one partial per slot, when they are this small
    total = X_train + X_test + types + work + 20 * W + c4 + chunks
    if trace:
        L = cfg.T // cfg.log_every + 2
        nP = cfg.n_train * cfg.P
        total += (len(modes) * L * W + 4 * L * W + 2 * nP * cfg.d * f + cfg.d * min(cfg.d, nP) * f
                  + 3 * L * cfg.k * cfg.m * nP * f)
    if get_backend() == "reference":        # the reference keeps σ'(z) of shape (n, P, k, m)
        total += 2 * max(cfg.n_train, cfg.n_test) * cfg.P * cfg.k * cfg.m * f
    return int(total)


def sweep(configs, n_seeds: int, modes: Collection[str] = MODES, at_once: int = 1) -> int:
    """Bytes a sweep of ``configs`` × ``n_seeds`` seeds needs on this machine when
    ``at_once`` jobs run side by side (local worker processes, a LocalCluster;
    1 inline): the sum of the ``at_once`` largest jobs' :func:`synthetic`
    estimates (each job a process of its own) — the seed changes no size."""
    sizes = sorted((synthetic(c, modes) for c in configs), reverse=True)
    jobs = [s for s in sizes for _ in range(max(1, int(n_seeds)))]
    return int(sum(jobs[:max(1, int(at_once))]))


def real(c: dict) -> int:
    """Bytes of a real-image run (``experiments.real.run``) at its peak, from its
    resolved options ``c``, estimated before loading (float64 everywhere; each
    part taken as resident at once, so the sum errs high):

    * data (R1/R2): the full test split (clean accuracy) as float images, in the
      image map's space and as network inputs — 2.5 image copies plus one of
      the inputs (with overlapping patches, ``--stride`` < ``--patch``, P·p²·C
      floats per image, more than the image);
    * training (R3): ~3 copies of the training images (data, batches, AT's
      adversarial batch);
    * evaluation (E2 on ``--n-eval`` images: PGD with restarts, APGD-CE and
      APGD-DLR with their working arrays): ~7 copies of those inputs;
    * lenses (R4 (b), with ``lenses``): ~8 copies of ``--n-lens`` images (the
      selection, D_R, D_NR, their attacks);
    * W: per model the weights, gradient and optimizer state, and for ST and AT
      a snapshot per epoch (the (d) curves): (4 + 2·(epochs + 1))·|W|.

    Measured (tracemalloc peak of ``run`` incl. figures, Fashion-MNIST, 1 epoch;
    this estimate in brackets): n_train 600, n_eval 200, n_lens 100: 260 MB
    (270); n_train 3000, no lenses: 291 (310); n_eval 1000: 289 (300); m 400:
    395 (440); patch 7 stride 3: 434 (455)."""
    from .real_config import SHAPES
    shape = SHAPES[c["dataset"]]
    side, C = shape.side, shape.channels
    k = len(c["classes"]) if c["classes"] else shape.classes
    f = 8
    img = side * side * C * f
    p = c["p"]
    t = c.get("stride") or p
    P = ((side - p) // t + 1) ** 2
    inputs = max(img, P * p * p * C * f)              # one image as network inputs
    share = k / shape.classes                          # a class subset keeps its share of a split
    n_train = c["n_train"] or int(math.ceil(shape.n_train * share))   # 0 = all
    n_test = int(math.ceil(shape.n_test * share))
    data = 2.5 * n_test * img + n_test * inputs
    train = 3 * n_train * img
    evaluation = 7 * c["n_eval"] * inputs
    lens = 8 * c["n_lens"] * inputs if c.get("lenses", True) else 0
    W = k * c["m"] * p * p * C * f
    return int(data + train + evaluation + lens + (4 + 2 * (c["epochs"] + 1)) * W)
