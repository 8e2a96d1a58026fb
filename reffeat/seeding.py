"""Every random stream of reffeat, named and derived from one seed here.

No other module derives a Generator from a seed by arithmetic (``seed + 7``,
``[seed, 11, mode]`` …): it asks for a stream by name. The derivations below
are the ones the project has always used, so results are unchanged; each name
maps to one numpy ``SeedSequence`` entropy, so streams are independent.

Synthetic experiment (one ``Problem`` per seed; ST and AT share the first four):
    "features"       F3 random geometry
    "train", "test"  D1–D4 training and test sets
    "init"           N4 initial weights W⁽⁰⁾
    "attack", mode   T2 random starts during training (mode "st" | "at")
    "eval", mode     E2 random starts of the evaluation attacks
    "probe", tag     extra streams of verify's analyses (tag an int)

Real images (R3/R4):
    "real-init", "real-shuffle", "real-attack"   R3 training (W⁽⁰⁾, batch order, attacks)
    "real-monitor"                               R3: the monitored training subset
    "real-eval", i                               R4 evaluation attacks (i = 0..3)
    "real-lens"                                  R4 D_R / D_NR construction
    "real-linear", mode                          R4 linear baseline (batch order)
    "real-e2", i                                 R4 E2 worst-case evaluation (PGD and APGD
                                                 starts; i: 0/1 ST/AT headline, 2/3 ST/AT
                                                 across ε, 4 the fresh D_R/D_NR models)
    "data-split"     R1 seeded train/test split and sample caps of an import

Other:
    "features-default"   F3 random geometry when make_features gets no Generator

>>> a = rng(0, "train").standard_normal(); b = rng(0, "train").standard_normal()
>>> a == b
True
"""

from __future__ import annotations

import numpy as np

_PROBLEM = ("features", "train", "test", "init")      # SeedSequence(seed).spawn order
_MODES = ("st", "at")
_REAL_TRAIN = ("real-init", "real-shuffle", "real-attack")


def seed_sequence(seed: int, name: str, *key) -> np.random.SeedSequence:
    """The SeedSequence of stream ``name`` (with its key, e.g. a mode) for ``seed``."""
    seed = int(seed)
    if name in _PROBLEM:
        return np.random.SeedSequence(seed).spawn(len(_PROBLEM))[_PROBLEM.index(name)]
    if name == "attack":
        return np.random.SeedSequence([seed, _mode(key), 7])
    if name == "eval":
        return np.random.SeedSequence([seed, 11, _mode(key)])
    if name == "probe":
        return np.random.SeedSequence([seed, int(key[0])])
    if name in _REAL_TRAIN:
        return np.random.SeedSequence(seed).spawn(3)[_REAL_TRAIN.index(name)]
    if name == "real-monitor":
        return np.random.SeedSequence(seed)
    if name == "real-eval":
        return np.random.SeedSequence(seed + 7 + int(key[0]))
    if name == "real-lens":
        return np.random.SeedSequence([seed, 4])
    if name == "real-e2":
        return np.random.SeedSequence([seed, 0xE2, int(key[0])])
    if name == "real-linear":
        return np.random.SeedSequence([seed, 0x11EA2, _mode(key)])
    if name == "data-split":
        return np.random.SeedSequence(seed)
    if name == "features-default":
        return np.random.SeedSequence([seed, 0xF3])
    raise ValueError(f"unknown random stream {name!r}")


def _mode(key) -> int:
    if len(key) != 1 or key[0] not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)} (got {key!r})")
    return _MODES.index(key[0])


def rng(seed: int, name: str, *key) -> np.random.Generator:
    """A fresh numpy Generator for stream ``name`` of ``seed``."""
    return np.random.default_rng(seed_sequence(seed, name, *key))


def problem_streams(seed: int) -> dict:
    """The four streams of a synthetic Problem: features, train, test, init."""
    return {name: rng(seed, name) for name in _PROBLEM}
