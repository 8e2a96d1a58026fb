"""Peak-memory estimates of the experiments, computed from their configs
before anything is allocated (the commands and verify check them against
the machine's memory, ``cli.common.check_memory``)."""

from __future__ import annotations

from collections.abc import Collection

from ..config import Config
from ..train import MODES


def synthetic(cfg: Config, modes: Collection[str] = MODES, trace: bool = False) -> int:
    """Bytes a ``run_seed`` of ``cfg`` needs at its peak: the train and test
    inputs (float64) and patch types; the attack's and the evaluation's working
    copies (measured with tracemalloc on this code: ~2.5 copies of the training
    inputs during AT, ~4.5 of the test inputs during the evaluation with
    restarts); ~20 copies of W (W, W0, gradient, the kernels' slot partials,
    snapshots); the per-step C4 parts of every mode; and the kernels' chunk
    buffers.  With ``trace`` (C5, ``--trace``) also the traced weights of every
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
    work = max(2.5 * X_train, 4.5 * X_test)
    total = X_train + X_test + types + work + 20 * W + c4 + 4 * kernels.CHUNK_BYTES * kernels.SLOTS
    if trace:
        L = cfg.T // cfg.log_every + 2
        nP = cfg.n_train * cfg.P
        total += (len(modes) * L * W + 4 * L * W + 2 * nP * cfg.d * f + cfg.d * min(cfg.d, nP) * f
                  + 3 * L * cfg.k * cfg.m * nP * f)
    if get_backend() == "reference":        # the reference keeps σ'(z) of shape (n, P, k, m)
        total += 2 * max(cfg.n_train, cfg.n_test) * cfg.P * cfg.k * cfg.m * f
    return int(total)


def real(c: dict) -> int:
    """Bytes of a real-image run (``experiments.real.run``) at its peak, from its
    resolved options ``c``, estimated before loading: the training and
    evaluation images (float64, ~4 working copies: patches, adversarial batch,
    lens data sets), with a non-identity image map also the full test split as
    (overlapping) network inputs, and W with its per-epoch snapshots and
    optimizer state, for ST, AT and the two fresh models."""
    from .real_config import SHAPES
    shape = SHAPES[c["dataset"]]
    side, C = shape.side, shape.channels
    k = len(c["classes"]) if c["classes"] else shape.classes
    n = c["n_train"] or shape.n_train                 # 0 = all
    images = (n + c["n_eval"] + 2 * c["n_lens"]) * side * side * C * 8
    extra = 0
    t = c.get("stride") or c["p"]
    if t != c["p"] or c.get("center"):    # data held as images, plus the full test split as
        P = ((side - c["p"]) // t + 1) ** 2   # (overlapping) network inputs
        extra = shape.n_test * P * c["p"] ** 2 * C * 8
    W = k * c["m"] * c["p"] ** 2 * C * 8
    return int(4 * images + extra + 4 * W * (c["epochs"] + 1 + 6))
